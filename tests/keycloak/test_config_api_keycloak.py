"""Per-org config API with real Keycloak tokens (DESIGN §2): the realm's own access tokens, checked against its
JWK Set; the realm-management roles decide; tokens of another realm are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from fixtures_keycloak import ORGSCIM_CLIENT, OTHER_CLIENT, REALM, client_token
from flask import Flask

from orgscim.services import Services

pytestmark = pytest.mark.keycloak



def master_admin_token(keycloak: Any) -> str:
    """The bootstrap admin's token: realm ``master``, all-powerful there, but not a token of the test realm."""
    resp = requests.post(f"{keycloak.base_url}/realms/master/protocol/openid-connect/token",
                         data={"grant_type": "password", "client_id": "admin-cli", "username": keycloak.admin_user,
                               "password": keycloak.admin_password}, timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


@pytest.fixture
def app(kc_flask_app: Flask) -> Flask:
    return kc_flask_app


@pytest.fixture
def services(app: Flask) -> Services:
    return app.extensions["orgscim"]


def call(app: Flask, method: str, path: str, token: str, body: Any = None, realm: str = REALM) -> Any:
    return app.test_client().open(f"/realms/{realm}/orgs{path}", method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body))


def test_service_account_with_the_roles_configures_an_org(app, services, keycloak, temp_org):
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    assert call(app, "PUT", "/config", token, {"scimEnabled": True}).get_json()["scimEnabled"] is True
    r = call(app, "PUT", f"/{temp_org['id']}/scim", token, {"authMode": "EXTERNAL_SECRET"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["serving"] is True
    created = call(app, "POST", f"/{temp_org['id']}/scim/credentials", token)
    assert created.status_code == 201
    secret = created.get_json()["secret"]
    scim = app.test_client().get(f"/realms/{REALM}/scim/v2/organizations/{temp_org['id']}/Users",
                                 headers={"Authorization": f"Bearer {secret}"})
    assert scim.status_code == 200
    listing = call(app, "GET", f"/{temp_org['id']}/scim/credentials", token)
    assert secret not in listing.get_data(as_text=True)
    whos = {json.loads(r["detail"])["who"] for r in services.db.all(
        "SELECT detail FROM events WHERE kind LIKE 'config.%'")}
    assert whos == {"service-account-orgscim"}


def test_org_must_exist_in_keycloak(app, keycloak):
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    r = call(app, "PUT", "/00000000-0000-0000-0000-000000000000/scim", token, {"authMode": "EXTERNAL_SECRET"})
    assert r.status_code == 400
    assert "has no organization with id 00000000-0000-0000-0000-000000000000" in r.get_json()["detail"]


def test_keycloak_mode_config_through_the_api(app, keycloak, temp_org):
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    r = call(app, "PUT", f"/{temp_org['id']}/scim", token,
             {"authMode": "KEYCLOAK", "authConfig": {"allowed_clients": [OTHER_CLIENT[0]]}})
    assert r.status_code == 201, r.get_json()
    r = call(app, "POST", f"/{temp_org['id']}/scim/credentials", token)
    assert r.status_code == 409 and "does not use credentials issued by orgscim" in r.get_json()["detail"]


def test_keycloak_mode_allowed_clients_must_exist_in_keycloak(app, keycloak, temp_org):
    """Issue 9: allowed_clients naming a client the realm does not have was accepted silently."""
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    r = call(app, "PUT", f"/{temp_org['id']}/scim", token,
             {"authMode": "KEYCLOAK", "authConfig": {"allowed_clients": [OTHER_CLIENT[0], "no-such-client-x9"]}})
    assert r.status_code == 400 and "no-such-client-x9" in r.get_json()["detail"]
    assert OTHER_CLIENT[0] not in r.get_json()["detail"]


def test_token_of_a_client_that_is_not_orgscims_is_401_even_with_the_roles(app, keycloak, acme):
    """Issue 9: any realm token with a realm-management role was accepted whatever its client."""
    token = client_token(keycloak, *OTHER_CLIENT)
    services = app.extensions["orgscim"]
    before = services.orgs.realm_enabled(REALM)
    r = call(app, "GET", "/config", token)
    assert r.status_code == 401 and "ADMIN_TOKEN_CLIENTS" in r.get_json()["detail"]
    assert call(app, "PUT", "/config", token, {"scimEnabled": not before}).status_code == 401
    assert services.orgs.realm_enabled(REALM) == before


def test_client_without_the_roles_is_403(app, keycloak, acme):
    app.extensions["orgscim"].config["ADMIN_TOKEN_CLIENTS"] = f"{ORGSCIM_CLIENT[0]},{OTHER_CLIENT[0]}"
    app.extensions.pop("orgscim.realm_tokens", None)  # rebuilt from the config above
    token = client_token(keycloak, *OTHER_CLIENT)
    r = call(app, "GET", "/config", token)
    assert r.status_code == 403
    assert "service-account-other-client lacks the realm-management role" in r.get_json()["detail"]
    assert call(app, "PUT", f"/{acme['id']}/scim", token, {"authMode": "EXTERNAL_SECRET"}).status_code == 403


def test_token_of_another_realm_is_401(app, keycloak):
    master = master_admin_token(keycloak)
    r = call(app, "GET", "/config", master)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # and a token of the test realm is no token of realm master
    r = call(app, "GET", "/config", client_token(keycloak, *ORGSCIM_CLIENT), realm="master")
    assert r.status_code == 401
    # a realm Keycloak does not have: refused before any key fetch, nothing remembered
    r = call(app, "GET", "/config", client_token(keycloak, *ORGSCIM_CLIENT), realm="no-such-realm")
    assert r.status_code == 401
    assert app.extensions["orgscim"].db.all("SELECT uri FROM jwks WHERE uri LIKE '%no-such-realm%'") == []


def test_tampered_token_is_401(app, keycloak):
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    head, payload, sig = token.split(".")
    flipped = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    assert call(app, "GET", "/config", f"{head}.{payload}.{flipped}").status_code == 401
    assert call(app, "GET", "/config", token).status_code == 200
