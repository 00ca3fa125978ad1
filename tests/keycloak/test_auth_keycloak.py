"""``KEYCLOAK`` auth mode against the real Keycloak (DESIGN §5): realm access tokens, checked against the realm's
JWK Set, and allowed only for the clients on the org's list."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures_keycloak import ORGSCIM_CLIENT, OTHER_CLIENT, REALM, client_token
from flask import Flask

from orgscim.services import ConfigError, Services

pytestmark = pytest.mark.keycloak



@pytest.fixture
def app(kc_flask_app: Flask) -> Flask:
    return kc_flask_app


@pytest.fixture
def services(app: Flask) -> Services:
    services = app.extensions["orgscim"]
    services.orgs.set_realm(REALM, True)
    return services


def users(app: Flask, org_id: str, token: str) -> Any:
    return app.test_client().get(f"/realms/{REALM}/scim/v2/organizations/{org_id}/Users",
                                 headers={"Authorization": f"Bearer {token}"})


def test_allowed_client_passes_and_another_client_of_the_realm_gets_401(app, services, keycloak, acme):
    services.configure_org(REALM, acme["id"], "KEYCLOAK", {"allowed_clients": [ORGSCIM_CLIENT[0]]})
    allowed = client_token(keycloak, *ORGSCIM_CLIENT)
    other = client_token(keycloak, *OTHER_CLIENT)
    ok = users(app, acme["id"], allowed)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    refused = users(app, acme["id"], other)
    assert refused.status_code == 401
    assert refused.get_json()["detail"] == "missing or invalid credentials for this SCIM endpoint"
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="orgscim"'
    spc = app.test_client().get(f"/realms/{REALM}/scim/v2/organizations/{acme['id']}/ServiceProviderConfig",
                                headers={"Authorization": f"Bearer {allowed}"}).get_json()
    assert [s["type"] for s in spc["authenticationSchemes"]] == ["oauthbearertoken"]
    assert "Keycloak" in spc["authenticationSchemes"][0]["name"]


def test_allow_lists_are_per_org(app, services, keycloak, acme, globex):
    services.configure_org(REALM, acme["id"], "KEYCLOAK", {"allowed_clients": [ORGSCIM_CLIENT[0]]})
    services.configure_org(REALM, globex["id"], "KEYCLOAK", {"allowed_clients": OTHER_CLIENT[0]})
    allowed, other = client_token(keycloak, *ORGSCIM_CLIENT), client_token(keycloak, *OTHER_CLIENT)
    assert users(app, globex["id"], other).status_code == 200
    assert users(app, globex["id"], allowed).status_code == 401
    assert users(app, acme["id"], allowed).status_code == 200


def test_tampered_and_foreign_issuer_tokens_are_401(app, services, keycloak, acme):
    services.configure_org(REALM, acme["id"], "KEYCLOAK", {"allowed_clients": [ORGSCIM_CLIENT[0]]})
    token = client_token(keycloak, *ORGSCIM_CLIENT)
    head, payload, sig = token.split(".")
    assert users(app, acme["id"], f"{head}.{payload}.{sig[:-4]}AAAA").status_code == 401
    # the same, genuine token when orgscim expects the realm under another public URL: wrong issuer
    services.auth_ctx.config["KEYCLOAK_FRONTEND_URL"] = "https://sso.example.test"
    assert users(app, acme["id"], token).status_code == 401


def test_config_needs_an_allow_list(services, acme):
    with pytest.raises(ConfigError, match="allowed_clients"):
        services.configure_org(REALM, acme["id"], "KEYCLOAK", {})
    with pytest.raises(ConfigError, match="refused"):
        services.configure_org(REALM, acme["id"], "KEYCLOAK", {"allowed_clients": "orgscim", "algorithms": "HS256"})
