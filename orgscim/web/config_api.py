"""Per-org config API (DESIGN §2): JSON under ``/realms/{realm}/orgs``, for realm admins with a Keycloak token.

Authentication: ``Authorization: Bearer <access token of realm {realm}>``, checked by
:class:`orgscim.auth.realm_tokens.RealmTokens` (the JWT checks the ``KEYCLOAK`` auth mode uses too: signature
against the realm's JWK Set, ``iss``, ``exp``/``nbf``/``iat`` with leeway, algorithm allow list) plus
``typ: Bearer``. The token's user or client must
hold one of the realm-management roles ``manage-organizations``, ``manage-realm`` or ``realm-admin``
(``resource_access["realm-management"].roles``). No or a bad token: 401 with ``WWW-Authenticate: Bearer``;
a good token without the role: 403. Failed attempts are throttled per client address like SCIM logins.

Endpoints (``{base}`` = ``/realms/{realm}/orgs/{orgId}/scim``):

* ``GET|PUT /realms/{realm}/orgs/config`` ``{"scimEnabled": bool}``: the realm flag.
* ``GET {base}``: the org's SCIM config (``Org.public()``, ``scimBaseUrl``, resource counts; never a secret).
* ``POST {base}``: create (409 if it exists); ``PUT {base}``: create or update. Body fields: ``authMode``,
  ``authConfig``, ``enabled``, ``federation``, ``federationConfig``, ``options`` (``settings`` as ``GET`` shows
  it works too); fields left out keep their current value. A bad config is 400 with the reason.
* ``DELETE {base}``: closes the endpoint (``enabled`` off) and revokes every credential; the SCIM data stays
  (a later ``PUT`` resumes with it). ``DELETE {base}?purge=true`` also deletes the config and all the org's
  SCIM data. Keycloak users and memberships are not touched either way.
* ``GET {base}/credentials``; ``POST {base}/credentials`` (201, the secret in this response only);
  ``POST {base}/credentials/rotate`` ``{"graceHours": n}`` (new secret once; the previous ones keep working
  until the deadline); ``DELETE {base}/credentials/{id}`` (revoked at once, 204).

Every change goes to the audit events with who made it (token ``preferred_username``/``sub`` and client), never
a secret. :class:`orgscim.orgadmin.OrgAdmin` makes those changes; the admin pages (:mod:`orgscim.web.admin`) use
it too. This module is the HTTP side only: routes, token check, JSON errors.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..auth import AuthFailed, bearer
from ..auth.realm_tokens import RealmTokens
from ..model.contract import Org
from ..model.errors import ModelError
from ..model.types import JSON, JSONValue
from ..orgadmin import ConfigConflict, OrgAdmin
from ..services import ConfigError
from ..throttle import client_key, retry_after
from .current import services
from .errors import ScimError
from .scim import body as parse_json_body
from .urls import public_url, scim_base_url

audit_log = logging.getLogger("orgscim.audit")
log = logging.getLogger("orgscim.web")
bp = Blueprint("config_api", __name__, url_prefix="/realms/<realm>/orgs")

REALM_NAME = re.compile(r"^[\w.-]{1,255}$")
EXTENSION = "orgscim.realm_tokens"
ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def realm_tokens(app: Flask | None = None) -> RealmTokens | None:
    """The app's :class:`RealmTokens` (built on first use; tests may put their own in ``app.extensions``)."""
    app = app or current_app
    if EXTENSION not in app.extensions:
        svc = services(app)
        try:
            app.extensions[EXTENSION] = RealmTokens.from_config(svc.auth_ctx, svc.config)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    tokens: RealmTokens | None = app.extensions[EXTENSION]
    return tokens


# -- HTTP ---------------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An HTTP error of the config API, rendered as ``{"error": …, "detail": …}``."""
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def _json(data: JSONValue, status: int = 200) -> Response:
    """A JSON response with ``status``."""
    resp = jsonify(data)
    resp.status_code = status
    return resp


@bp.url_value_preprocessor
def pull_realm(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Take ``{realm}`` out of the view arguments (every view works on ``g.api_realm``)."""
    g.api_realm = values.pop("realm") if values else None


@bp.before_request
def authenticate() -> None:
    """Bearer access token of the path's realm with an admin role, else 401/403 (throttled like SCIM auth)."""
    realm = g.api_realm
    if not realm or not REALM_NAME.match(realm):
        raise ApiError(404, "not_found", "no such realm")
    tokens = realm_tokens()
    if tokens is None:
        raise ApiError(503, "unavailable", "the config API checks Keycloak access tokens: set KEYCLOAK_URL "
                                           "(ORGSCIM_KEYCLOAK_URL) and restart orgscim")
    challenge = 'Bearer realm="orgscim"'
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise ApiError(401, "unauthorized", f"send an access token of realm {realm}: Authorization: Bearer <token>",
                       {"WWW-Authenticate": challenge})
    ctx = services().auth_ctx
    key = f"config-api|{client_key(request.remote_addr or '')}"
    wait = ctx.throttle.acquire(key)
    try:
        caller = tokens.access_token(realm, token, cheap_only=wait > 0)
    except AuthFailed as e:
        audit_log.info("config api auth failure realm=%s addr=%s reason=%s", realm, request.remote_addr,
                       e.reason[:120])
        if wait:
            raise ApiError(429, "throttled", "too many failed authentication attempts from this address; retry "
                           "later", {"Retry-After": retry_after(wait)}) from None
        raise ApiError(401, "invalid_token", f"the token is not a valid access token of realm {realm} (signature, "
                       "issuer, expiry, type, or a client not among orgscim's: ADMIN_TOKEN_CLIENTS); get a fresh one "
                       "from this realm's token endpoint",
                       {"WWW-Authenticate": f'{challenge}, error="invalid_token"'}) from None
    if not wait:
        ctx.throttle.refund(key)
    if not caller.is_admin:
        audit_log.info("config api forbidden realm=%s who=%s", realm, caller.who)
        raise ApiError(403, "forbidden", f"{caller.who} lacks the realm-management role manage-organizations, "
                       f"manage-realm or realm-admin of realm {realm}",
                       {"WWW-Authenticate": f'{challenge}, error="insufficient_scope"'})
    g.api_caller = caller


@bp.after_request
def no_store(resp: Response) -> Response:
    """Config and one-time secrets are never cached by a browser or proxy."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(ApiError)
def on_api_error(e: ApiError) -> Response:
    """Render an :class:`ApiError` (with its headers, e.g. ``WWW-Authenticate``)."""
    resp = _json({"error": e.error, "detail": e.detail}, e.status)
    resp.headers.update(e.headers)
    return resp


@bp.errorhandler(ConfigError)
def on_config_error(e: ConfigError) -> Response:
    """A refused config: 400 with the reason, as :meth:`Services.configure_org` gave it."""
    return _json({"error": "invalid_config", "detail": str(e)}, 400)


@bp.errorhandler(ConfigConflict)
def on_conflict(e: ConfigConflict) -> Response:
    """409 with the reason."""
    return _json({"error": "conflict", "detail": str(e)}, 409)


@bp.errorhandler(HTTPException)
def on_http_error(e: HTTPException) -> Response:
    """Werkzeug's HTTP errors (413 …) as JSON."""
    status = e.code or 500
    detail = {413: "request body too large"}.get(status, e.description or e.name)
    return _json({"error": e.name.lower().replace(" ", "_"), "detail": detail}, status)


@bp.errorhandler(Exception)
def on_unexpected(e: Exception) -> Response:
    """500 as JSON; the traceback goes to the log only."""
    log.exception("config API: unexpected error")
    return _json({"error": "internal", "detail": "internal error; the change may not have been applied, check "
                  "with GET and retry"}, 500)


def admin() -> OrgAdmin:
    """The :class:`OrgAdmin` acting for this request's caller."""
    return OrgAdmin(services(), g.api_caller, "api")


def body(optional: bool = False) -> JSONValue:
    """The request's JSON (any nesting/encoding problem is a 400 with the reason)."""
    if optional and not request.get_data(cache=True).strip():
        return {}
    try:
        return parse_json_body()
    except (ScimError, ModelError) as e:
        raise ApiError(400, "invalid_json", e.detail) from None


def method_not_allowed(*allowed: str) -> ApiError:
    """405 with ``Allow``."""
    return ApiError(405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}",
                    {"Allow": ", ".join(allowed)})


def configured(org_id: str) -> Org:
    """The org's config, or 404 that says how to create it."""
    org = services().orgs.org(g.api_realm, org_id)
    if org is None:
        raise ApiError(404, "not_found", f"org {org_id} of realm {g.api_realm} has no SCIM config: "
                       f"PUT /realms/{g.api_realm}/orgs/{org_id}/scim with {{\"authMode\": \"EXTERNAL_SECRET\"}}")
    return org


def org_view(org: Org) -> JSON:
    """``GET {base}``: the config as orgscim shows it everywhere, the SCIM base URL and resource counts."""
    return {**org.public(), "scimBaseUrl": scim_base_url(org.realm, org.org_id),
            "resources": services().orgs.org_counts(org.pk)}


@bp.route("/config", methods=ALL)
def realm_config() -> Response:
    """``GET``/``PUT /realms/{realm}/orgs/config``: the realm flag."""
    realm = g.api_realm
    if request.method == "PUT":
        data = body()
        if not isinstance(data, dict) or not isinstance(data.get("scimEnabled"), bool) or set(data) - {"scimEnabled"}:
            raise ApiError(400, "invalid_config", 'send {"scimEnabled": true} or {"scimEnabled": false}')
        admin().set_realm(realm, data["scimEnabled"])
    elif request.method != "GET":
        raise method_not_allowed("GET", "PUT")
    return _json({"realm": realm, "scimEnabled": services().orgs.realm_enabled(realm)})


@bp.route("/<org_id>/scim", methods=ALL)
def org_config(org_id: str) -> Response:
    """``GET``/``POST``/``PUT``/``DELETE /realms/{realm}/orgs/{orgId}/scim``."""
    realm = g.api_realm
    if request.method == "GET":
        return _json(org_view(configured(org_id)))
    if request.method in ("POST", "PUT"):
        org, created = admin().configure(realm, org_id, body(), create_only=request.method == "POST")
        resp = _json(org_view(org), 201 if created else 200)
        if created:
            resp.headers["Location"] = public_url(f"/realms/{realm}/orgs/{org_id}/scim")
        return resp
    if request.method == "DELETE":
        purge = request.args.get("purge", "false").lower()
        if purge not in ("true", "false", "1", "0"):
            raise ApiError(400, "invalid_request", "purge must be true or false")
        admin().remove(configured(org_id), purge in ("true", "1"))
        return Response(status=204)
    raise method_not_allowed("GET", "POST", "PUT", "DELETE")


@bp.route("/<org_id>/scim/credentials", methods=ALL)
def credentials(org_id: str) -> Response:
    """``GET``/``POST …/scim/credentials``: list, or issue one (its secret in this response only)."""
    org = configured(org_id)
    if request.method == "GET":
        return _json([c.public() for c in services().orgs.credentials(org.pk)])
    if request.method == "POST":
        admin().credential_issuer(org)  # 409 for the token modes
        if body(optional=True) != {}:
            raise ApiError(400, "invalid_request", "creating a credential takes no fields; send an empty body")
        return _json(admin().issue(org).public(), 201)
    raise method_not_allowed("GET", "POST")


@bp.route("/<org_id>/scim/credentials/rotate", methods=ALL)
def rotate(org_id: str) -> Response:
    """``POST …/scim/credentials/rotate`` ``{"graceHours": n}``."""
    if request.method != "POST":
        raise method_not_allowed("POST")
    org = configured(org_id)
    admin().credential_issuer(org)  # 409 for the token modes
    data = body(optional=True)
    if not isinstance(data, dict) or set(data) - {"graceHours"}:
        raise ApiError(400, "invalid_request", 'send {} or {"graceHours": <hours the previous credentials keep '
                                               'working, 0 to 720>}')
    rotation = admin().rotate(org, data.get("graceHours"))
    return _json({**rotation.issued.public(), "superseded": [c.public() for c in rotation.superseded],
                  "deadline": rotation.deadline}, 201)


@bp.route("/<org_id>/scim/credentials/<cred_id>", methods=ALL)
def credential(org_id: str, cred_id: str) -> Response:
    """``GET``/``DELETE …/scim/credentials/{id}``: one credential's listing form, or revoke it now."""
    org = configured(org_id)
    if request.method == "GET":
        cred = services().orgs.credential(org.pk, cred_id)
        if cred is None:
            raise ApiError(404, "not_found", f"org {org_id} has no credential {cred_id}")
        return _json(cred.public())
    if request.method != "DELETE":
        raise method_not_allowed("GET", "DELETE")
    if admin().revoke(org, cred_id) is None:
        raise ApiError(404, "not_found", f"org {org_id} has no credential {cred_id}: see GET "
                       f"/realms/{g.api_realm}/orgs/{org_id}/scim/credentials")
    return Response(status=204)


@bp.route("", methods=ALL, strict_slashes=False)
def org_listing() -> Response:
    """``GET /realms/{realm}/orgs?limit=&after=&search=&status=``: one page of the realm's organizations —
    configured ones (their config, as ``GET …/scim`` shows it) and those Keycloak lists without a SCIM config —
    in org id order, with Keycloak names; ``next`` is the cursor of the next page (``nextUrl`` the link), null on
    the last page. Keyset paging in SQL: every page costs the same (issue 12)."""
    from ..model.contract import MAX_PAGE, ORG_STATUS_FILTERS
    from ..services import org_status

    if request.method != "GET":
        raise method_not_allowed("GET")
    args = request.args
    try:
        limit = int(args.get("limit", 100))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "invalid_request", f"limit must be a whole number from 1 to {MAX_PAGE}")
    status = args.get("status") or None
    if status not in (None, *ORG_STATUS_FILTERS):
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(ORG_STATUS_FILTERS)}")
    try:
        page = services().orgs.org_page(g.api_realm, after=args.get("after") or None, limit=limit,
                                        search=(args.get("search") or "")[:200] or None, status=status)
    except ValueError:
        raise ApiError(400, "invalid_request", "after must be the `next` value of a previous page") from None
    for row in page.rows:
        row["status"] = org_status(row)
        row["scimBaseUrl"] = scim_base_url(row["realm"], row["orgId"])
    query = {k: v for k, v in {"limit": str(limit) if "limit" in args else None, "search": args.get("search"),
                               "status": status, "after": page.next}.items() if v}
    next_url = f"{request.base_url.rstrip('/')}?{urlencode(query)}" if page.next else None
    return _json({"orgs": page.rows, "next": page.next, "nextUrl": next_url})


@bp.route("/<path:rest>", methods=ALL)
def unknown(rest: str) -> Response:
    """Anything else under ``/realms/{realm}/orgs``: 404 as JSON."""
    raise ApiError(404, "not_found", f"no config API endpoint /orgs/{rest}")
