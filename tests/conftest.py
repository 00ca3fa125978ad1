"""Top-level fixtures for the fast functional suite (the shape of Flask's ``flaskr`` tutorial).

``app`` is a fresh instance folder with a freshly migrated SQLite database in which realm ``r1`` has SCIM on
and two organizations, A and B, use ``EXTERNAL_SECRET`` with one credential each. The credentials are issued
through ``ExternalSecretAuth.issue`` (the code ``orgscim org credential create`` runs).

Argon2id costs 64 MiB and ~0.15 s per hash or verification, so the two credentials are issued once per session
into a template database that every test gets a private copy of (SQLite online backup), and the verified
credential cache (keyed digests, never the secrets) is shared between the per-test apps. Every test still has
its own database and its own app.

The real-Keycloak fixtures (``keycloak``, ``kc_admin`` …) come from ``fixtures_keycloak.py`` (registered below);
``tests/conformance`` has its own conftest (``live_server``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from orgscim.app import create_app
from orgscim.cli import main as cli_main
from orgscim.services import Services
from orgscim.store.db import Database

pytest_plugins = ["fixtures_keycloak"]

# The suite's JWK Sets and IdPs are local servers: allow loopback URLs, as an operator with a local IdP would
# (every app, CLI run and live server of the suite reads it; tests of the SSRF guard turn it off).
os.environ.setdefault("ORGSCIM_ALLOW_LOOPBACK_URLS", "true")

REALM = "r1"
ORG_A = "org-a"
ORG_B = "org-b"
SCIM_JSON = "application/scim+json"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DB_NAME = "orgscim.sqlite3"


def base_path(realm: str, org_id: str) -> str:
    return f"/realms/{realm}/scim/v2/organizations/{org_id}"


@dataclass(frozen=True)
class Template:
    db_path: Path
    secrets: dict[str, str]
    cache_key: bytes
    cache: dict


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Migrated database with realm r1 on, orgs A and B (EXTERNAL_SECRET) and one credential each."""
    folder = tmp_path_factory.mktemp("template")
    db = Database(folder / DB_NAME)
    db.upgrade()
    services = Services(db, {})
    services.orgs.set_realm(REALM, True)
    issued = {}
    for org_id in (ORG_A, ORG_B):
        org = services.configure_org(REALM, org_id, "EXTERNAL_SECRET")
        issued[org_id] = services.auth_mode("EXTERNAL_SECRET").issue(org).secret
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ctx = services.auth_ctx
    db.close()
    cache = getattr(ctx, "cache", None)
    return Template(folder / DB_NAME, issued, getattr(cache, "key", b""), getattr(cache, "entries", {}))


def clone_template(template: Template, target: Path) -> None:
    """A private copy of the template database (SQLite online backup API)."""
    Database(template.db_path).backup(target)


@pytest.fixture
def instance(template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh instance folder holding a copy of the template database; ``ORGSCIM_INSTANCE`` points at it."""
    folder = tmp_path / "instance"
    folder.mkdir()
    clone_template(template, folder / DB_NAME)
    monkeypatch.setenv("ORGSCIM_INSTANCE", str(folder))
    return folder


@pytest.fixture
def app(instance: Path, template: Template) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), "AUTH_CACHE_SECONDS": 3600})
    # Share the verified-credential cache across the per-test apps (same credential rows in every copy), so
    # Argon2id runs once per credential per session instead of once per test.
    # (Only a speed-up: if the verified cache ever drops these fields, tests stay correct, just slower.)
    cache = getattr(app.extensions["orgscim"].auth_ctx, "cache", None)
    if hasattr(cache, "key") and hasattr(cache, "entries"):
        cache.key = template.cache_key
        cache.entries = template.cache
    yield app
    app.extensions["orgscim"].db.close()


@pytest.fixture
def services(app: Flask) -> Services:
    return app.extensions["orgscim"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class CLI:
    """``orgscim`` (click) run in-process against the test's instance folder."""

    def __init__(self, instance: Path) -> None:
        self.instance = instance
        self.runner = CliRunner()

    def invoke(self, *args: str) -> Result:
        return self.runner.invoke(cli_main, list(args), env={"ORGSCIM_INSTANCE": str(self.instance)},
                                  catch_exceptions=False)


@pytest.fixture
def runner(instance: Path) -> CLI:
    return CLI(instance)


# -- HTTP helpers --------------------------------------------------------------------------------------------
def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class Api:
    """One org's SCIM base over the Flask test client; bodies go out as ``application/scim+json``."""

    def __init__(self, client: FlaskClient, realm: str, org_id: str, secret: str | None) -> None:
        self.client = client
        self.realm = realm
        self.org_id = org_id
        self.secret = secret
        self.base = base_path(realm, org_id)

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.secret) if self.secret else {}

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | str | None = None, **kw: Any) -> Any:
        hdrs = {**self.headers, **(headers or {})}
        data = raw
        if body is not None:
            data = json.dumps(body)
        if data is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = SCIM_JSON
        return self.client.open(self.base + path, method=method, data=data, headers=hdrs, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, *ops: dict[str, Any], **kw: Any) -> Any:
        return self.request("PATCH", path, {"schemas": [PATCH_URN], "Operations": list(ops)}, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    # conveniences
    def create_user(self, user_name: str | None = None, **attrs: Any) -> dict[str, Any]:
        body = {"schemas": [USER_URN], "userName": user_name or f"user-{secrets.token_hex(4)}", **attrs}
        r = self.post("/Users", body)
        assert r.status_code == 201, r.get_data(as_text=True)
        return r.get_json()

    def create_group(self, display_name: str | None = None, **attrs: Any) -> dict[str, Any]:
        body = {"schemas": [GROUP_URN], "displayName": display_name or f"group-{secrets.token_hex(4)}", **attrs}
        r = self.post("/Groups", body)
        assert r.status_code == 201, r.get_data(as_text=True)
        return r.get_json()

    def ids(self, path: str, **kw: Any) -> set[str]:
        """The ids a list/filter GET returns (asserting 200 and that the page holds every match)."""
        r = self.get(path, **kw)
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        assert body["totalResults"] == len(body["Resources"]), body
        return {x["id"] for x in body["Resources"]}

    def read(self, kind: str, rid: str) -> dict[str, Any]:
        r = self.get(f"/{kind}/{rid}")
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()

    # assertions, reachable from test modules without importing this conftest (tests/keycloak has another one)
    @staticmethod
    def error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
        return assert_scim_error(resp, status, scim_type)

    @staticmethod
    def listing(resp: Any) -> dict[str, Any]:
        return assert_list(resp)


@pytest.fixture
def auth_headers(template: Template) -> dict[str, dict[str, str]]:
    """``{"org-a": {"Authorization": "Bearer …"}, "org-b": {…}}`` for requests made without :class:`Api`."""
    return {org_id: auth(secret) for org_id, secret in template.secrets.items()}


@pytest.fixture
def api_a(client: FlaskClient, template: Template) -> Api:
    return Api(client, REALM, ORG_A, template.secrets[ORG_A])


@pytest.fixture
def api_b(client: FlaskClient, template: Template) -> Api:
    return Api(client, REALM, ORG_B, template.secrets[ORG_B])


@pytest.fixture
def api(api_a: Api) -> Api:
    """Org A's API: the default org of single-org tests."""
    return api_a


def assert_scim_error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM Error (RFC 7644 §3.12): status, content type, schema, string status, scimType, detail."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == SCIM_JSON, resp.headers.get("Content-Type")
    body = resp.get_json()
    assert isinstance(body, dict), resp.get_data(as_text=True)[:500]
    assert body["schemas"] == [ERROR_URN]
    assert body["status"] == str(status)
    assert set(body) <= {"schemas", "status", "scimType", "detail"}, body
    assert isinstance(body.get("detail"), str) and body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def assert_list(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == SCIM_JSON
    body = resp.get_json()
    assert body["schemas"] == [LIST_URN]
    for key in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[key]) is int, (key, body[key])
    assert isinstance(body["Resources"], list)
    assert body["itemsPerPage"] == len(body["Resources"])
    return body
