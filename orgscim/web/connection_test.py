"""The admin page's "test connection": the first two requests every IdP sends, answered by this app's own SCIM
endpoint in-process (the same routing, auth plugin and SCIM service an IdP reaches; no network hop, so it works
behind any proxy and cannot wait on a busy worker).

1. ``GET …/ServiceProviderConfig`` (RFC 7644 §4): what the IdP learns about paging, PATCH, filters, auth.
2. ``GET …/Users?filter=userName eq "…"`` (RFC 7644 §3.4.2.2): the lookup IdPs make before creating a user.

The credential is put into the ``Authorization`` header of these two requests and nowhere else: the steps carry
status lines and SCIM answers, never the credential.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TypedDict
from urllib.parse import quote

from flask import Flask, request
from werkzeug.test import TestResponse

from ..model.contract import Org
from ..model.types import JSON
from .urls import SCIM_PATH

TEST_LOOKUP = "orgscim.connection.test@example.invalid"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_JSON = "application/scim+json"
BODY_SHOWN = 2000  # characters of an answer the page shows


class Step(TypedDict):
    """One request of the test and what came back."""

    request: str  # method and path
    status: int
    ok: bool
    summary: str  # what an admin needs to read
    contentType: str | None
    body: str  # the SCIM answer, shortened


#: reads a 200 answer's JSON: a summary, or None when it is not the SCIM answer expected
Summary = Callable[[JSON], "str | None"]


def authorization(credential: str, username: str = "") -> str:
    """``Basic`` for a username and password (EXTERNAL_BASIC), else ``Bearer`` (a secret or a token); a value
    that already names its scheme is sent as it is."""
    if credential.split(" ", 1)[0].lower() in ("bearer", "basic"):
        return credential
    if username:
        return "Basic " + base64.b64encode(f"{username}:{credential}".encode()).decode()
    return f"Bearer {credential}"


def connection_test(app: Flask, org: Org, credential: str, username: str, lookup: str) -> list[Step]:
    """Run the two requests; one step per request: ``request`` (method and path), ``status``, ``ok``,
    ``summary`` (what an admin needs to read) and ``body`` (the SCIM answer, shortened)."""
    base = SCIM_PATH.format(realm=quote(org.realm, safe=''), org_id=quote(org.org_id, safe=''))
    headers = {"Authorization": authorization(credential, username), "Accept": SCIM_JSON,
               "User-Agent": "orgscim connection test"}
    # the admin's address (auth throttle, audit) and host (URLs in the answers, ALLOWED_HOSTS) carry over
    environ = {"REMOTE_ADDR": request.remote_addr or "127.0.0.1"}
    client = app.test_client()
    steps: list[Step] = []
    spc = client.get(f"{base}/ServiceProviderConfig", headers=headers, environ_base=environ,
                     base_url=request.host_url)
    steps.append(_step("GET", f"{base}/ServiceProviderConfig", spc, _spc_summary))
    if spc.status_code == 200:
        flt = f'userName eq "{lookup}"'
        users = client.get(f"{base}/Users", query_string={"filter": flt}, headers=headers, environ_base=environ,
                           base_url=request.host_url)
        steps.append(_step("GET", f"{base}/Users?filter={flt}", users, _list_summary))
    return steps


def _step(method: str, path: str, resp: TestResponse, summarize: Summary) -> Step:
    try:
        data = json.loads(resp.get_data(as_text=True) or "null")
    except ValueError:
        data = None
    scim_type = resp.mimetype == SCIM_JSON
    ok = resp.status_code == 200 and scim_type and isinstance(data, dict)
    if ok:
        summary = summarize(data)
        ok = summary is not None
    else:
        detail = data.get("detail") if isinstance(data, dict) else None
        summary = f"HTTP {resp.status_code}" + (f": {detail}" if detail else "") + _hint(resp.status_code)
    text = json.dumps(data, indent=2) if data is not None else resp.get_data(as_text=True)
    return {"request": f"{method} {path}", "status": resp.status_code, "ok": ok,
            "summary": summary or "not a SCIM answer", "contentType": resp.mimetype,
            "body": text[:BODY_SHOWN] + ("…" if len(text) > BODY_SHOWN else "")}


def _hint(status: int) -> str:
    return {401: " — the IdP would get the same answer: check that the credential belongs to this organization "
                 "and is active (not revoked or expired)",
            404: " — the endpoint is closed: turn SCIM on for the realm and enable the config",
            429: " — too many failed attempts from this address; wait and try again"}.get(status, "")


def _spc_summary(data: JSON) -> str | None:
    if SPC_URN not in (data.get("schemas") or []):
        return None

    def on(key: str) -> str:
        return "yes" if (data.get(key) or {}).get("supported") else "no"

    schemes = ", ".join(a.get("name") or a.get("type") or "?" for a in data.get("authenticationSchemes") or [])
    return (f"SCIM 2.0 service provider: PATCH {on('patch')}, Bulk {on('bulk')}, filter {on('filter')} "
            f"(up to {(data.get('filter') or {}).get('maxResults', '?')} results), sort {on('sort')}, ETags "
            f"{on('etag')}; authentication: {schemes or 'none published'}")


def _list_summary(data: JSON) -> str | None:
    if LIST_URN not in (data.get("schemas") or []) or not isinstance(data.get("totalResults"), int):
        return None
    n = data["totalResults"]
    return (f"ListResponse with totalResults {n}: " + ("no such user yet, so the IdP would create it (POST /Users)"
            if n == 0 else "the user exists, so the IdP would update it (PATCH or PUT /Users/{id})"))
