"""Fixtures for tests against a real Keycloak (started once per test session, only when a test asks for it).

The server is the real ``keycloak-quarkus-dist`` fetched through Maven (``ensure_distribution``) and run
in dev mode by ``KeycloakDev`` with ``orgscim_dev/realm-orgscim.json`` imported. If it cannot be
fetched or started, the ``keycloak`` fixture raises: tests that need it fail, they are never skipped.

Set ``ORGSCIM_KEYCLOAK_STATE`` to the state file written by
``python -m orgscim_dev.keycloak start --state-file F`` to reuse an already running server
(tests use unique names, so a reused realm is fine).

Registered from the top-level ``conftest.py`` (``pytest_plugins``) so that ``tests/keycloak`` and the
conformance checks with Keycloak behind the server share one Keycloak.
"""


from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from orgscim.keycloak.client import KeycloakAdmin, NotFound
from orgscim_dev.keycloak import KeycloakDev, ensure_distribution

REALM = "orgscim-test"
ORGSCIM_CLIENT = ("orgscim", "orgscim-dev-secret")
OTHER_CLIENT = ("other-client", "other-client-dev-secret")


@pytest.fixture(scope="session")
def keycloak() -> Iterator[Any]:
    """A running Keycloak with realm ``orgscim-test``: has ``base_url``, ``admin_user``, ``admin_password``."""
    state_file = os.environ.get("ORGSCIM_KEYCLOAK_STATE")
    if state_file:
        state = json.loads(Path(state_file).read_text())
        yield SimpleNamespace(**state)
        return
    home = ensure_distribution()
    kc = KeycloakDev(home)
    kc.start()  # raises RuntimeError (with the log tail) if Keycloak does not come up
    try:
        yield kc
    finally:
        kc.stop()


@pytest.fixture(scope="session")
def kc_admin(keycloak: Any) -> KeycloakAdmin:
    """``KeycloakAdmin`` for realm orgscim-test as the ``orgscim`` client (all required roles)."""
    return KeycloakAdmin(keycloak.base_url, REALM, *ORGSCIM_CLIENT)


@pytest.fixture(scope="session")
def other_admin(keycloak: Any) -> KeycloakAdmin:
    """``KeycloakAdmin`` as ``other-client`` (only view-users: most calls are forbidden)."""
    return KeycloakAdmin(keycloak.base_url, REALM, *OTHER_CLIENT)


@pytest.fixture(scope="session")
def acme(kc_admin: KeycloakAdmin) -> dict[str, Any]:
    org = kc_admin.find_organization(alias="acme")
    assert org is not None, "organization acme missing from the dev realm"
    return org


@pytest.fixture(scope="session")
def globex(kc_admin: KeycloakAdmin) -> dict[str, Any]:
    org = kc_admin.find_organization(alias="globex")
    assert org is not None, "organization globex missing from the dev realm"
    return org


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_user(kc_admin: KeycloakAdmin) -> Iterator[Callable[..., str]]:
    """Factory: ``make_user(**rep) -> user id``; users are deleted after the test."""
    created: list[str] = []

    def _make(**rep: Any) -> str:
        rep.setdefault("username", unique("user"))
        rep.setdefault("enabled", True)
        user_id = kc_admin.create_user(rep)
        created.append(user_id)
        return user_id

    yield _make
    for user_id in created:
        try:
            kc_admin.delete_user(user_id)
        except NotFound:
            pass


@pytest.fixture
def temp_org(kc_admin: KeycloakAdmin) -> Iterator[dict[str, Any]]:
    """A fresh organization, deleted after the test."""
    name = unique("org")
    org_id = kc_admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})
    yield kc_admin.get_organization(org_id)
    try:
        kc_admin.delete_organization(org_id)
    except NotFound:
        pass


@pytest.fixture
def scim_for(keycloak: Any, tmp_path: Path) -> Callable[..., Any]:
    """``scim_for(org_id, federation=…, fed={…}, **org_options)`` → a ``scimkit.Scim`` for a fresh orgscim app
    in front of the session's Keycloak."""
    from scimkit import make_scim

    return lambda org_id, **kw: make_scim(keycloak, tmp_path, org_id, **kw)


def client_token(keycloak: Any, client_id: str, secret: str, realm: str = REALM) -> str:
    """An access token of ``client_id``'s service account (client credentials grant)."""
    resp = requests.post(f"{keycloak.base_url}/realms/{realm}/protocol/openid-connect/token",
                         data={"grant_type": "client_credentials", "client_id": client_id,
                               "client_secret": secret}, timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


@pytest.fixture
def kc_flask_app(keycloak: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh orgscim app (migrated SQLite in ``tmp_path``) whose Keycloak is the session's."""
    from orgscim.app import create_app
    from orgscim.store.db import Database

    db_path = tmp_path / "orgscim.sqlite3"
    Database(db_path).upgrade()
    app = create_app({"TESTING": True, "DATABASE": str(db_path), "KEYCLOAK_URL": keycloak.base_url,
                      "KEYCLOAK_CLIENT_SECRET": ORGSCIM_CLIENT[1]})
    yield app
    app.extensions["orgscim"].db.close()
