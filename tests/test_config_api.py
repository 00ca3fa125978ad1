"""Per-org config API (DESIGN §2) without Keycloak: realm tokens are RS256 JWTs signed by a local key that the app
fetches as the realm's JWK Set (``realm_tokens.FakeRealm``), so the real verification code runs.

Covers: 401/403 (and throttling), every endpoint, a bad config → 400 with the reason, no secret or hash in any
response after creation, rotation grace, immediate revocation, DELETE with and without purge, audit events.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import ORG_A, ORG_B, REALM, USER_URN, base_path
from flask import Flask
from flask.testing import FlaskClient
from realm_tokens import KEYCLOAK, FakeRealm

from orgscim.app import create_app
from orgscim.services import Services
from orgscim.web.urls import scim_base_url

NEW_ORG = "org-new"


@pytest.fixture(scope="session")
def realm_key() -> FakeRealm:
    return FakeRealm()


@pytest.fixture
def fake(app: Flask, realm_key: FakeRealm) -> FakeRealm:
    realm_key.install(app)
    return realm_key


class ConfigApi:
    """The config API over the Flask test client, as one caller (a realm token)."""

    def __init__(self, client: FlaskClient, token: str | None, realm: str = REALM) -> None:
        self.client, self.token, self.realm = client, token, realm

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, raw: str | None = None,
             **kw: Any) -> Any:
        headers = {}
        tok = token or self.token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self.client.open(f"/realms/{self.realm}/orgs{path}", method=method, data=data, headers=headers, **kw)

    def org(self, org_id: str, suffix: str = "") -> str:
        return f"/{org_id}/scim{suffix}"


@pytest.fixture
def cfg(client: FlaskClient, fake: FakeRealm) -> ConfigApi:
    return ConfigApi(client, fake.token(username="alice"))


def scim_status(client: FlaskClient, org_id: str, secret: str) -> int:
    return client.get(f"{base_path(REALM, org_id)}/Users", headers={"Authorization": f"Bearer {secret}"}).status_code


def events(services: Services, kind_prefix: str = "config.") -> list[dict[str, Any]]:
    rows = services.db.all("SELECT org_pk, kind, detail FROM events ORDER BY pk")
    return [{"org_pk": r["org_pk"], "kind": r["kind"], "detail": json.loads(r["detail"])} for r in rows
            if r["kind"].startswith(kind_prefix)]


# -- authentication ------------------------------------------------------------------------------------------
def test_no_token_is_401_with_bearer_challenge(client, fake):
    r = ConfigApi(client, None).call("GET", "/config")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.get_json()["error"] == "unauthorized" and "Bearer" in r.get_json()["detail"]
    r = client.get(f"/realms/{REALM}/orgs/config", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401


@pytest.mark.parametrize("case", ["garbage", "expired", "other realm", "other key", "unknown kid", "id token",
                                  "refresh token", "hs256", "alg none", "not yet valid"])
def test_invalid_tokens_are_401(client, fake, case):
    tokens = {
        "garbage": "not.a.jwt",
        "expired": fake.token(lifetime=-120),
        "other realm": fake.token(realm="master"),
        "other key": fake.token(key=FakeRealm.other_key()),
        "unknown kid": fake.token(kid="nope"),
        "id token": fake.token(typ="ID"),
        "refresh token": fake.token(typ="Refresh"),
        "hs256": _hs256_token(fake),
        "alg none": _none_token(fake),
        "not yet valid": fake.token(nbf=int(time.time()) + 600),
    }
    r = ConfigApi(client, tokens[case]).call("GET", "/config")
    assert r.status_code == 401, (case, r.get_json())
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "realm r1" in r.get_json()["detail"]


def _hs256_token(fake: FakeRealm) -> str:
    from jose import jwt

    now = int(time.time())
    return jwt.encode({"iss": f"{KEYCLOAK}/realms/{REALM}", "sub": "x", "typ": "Bearer", "exp": now + 60,
                       "resource_access": {"realm-management": {"roles": ["realm-admin"]}}},
                      json.dumps(fake.jwk), algorithm="HS256", headers={"kid": "test-key-1"})


def _none_token(fake: FakeRealm) -> str:
    import base64

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return (b64({"alg": "none", "kid": "test-key-1"}) + "." + b64({
        "iss": f"{KEYCLOAK}/realms/{REALM}", "sub": "x", "typ": "Bearer", "exp": now + 60,
        "resource_access": {"realm-management": {"roles": ["realm-admin"]}}}) + ".")


def test_token_of_the_realm_in_the_path_only(client, fake):
    """A token of realm r2 is not a token of realm r1, whatever its roles."""
    api = ConfigApi(client, fake.token(realm="r2", roles=["realm-admin"]))
    assert api.call("GET", "/config").status_code == 401
    assert ConfigApi(client, api.token, realm="r2").call("GET", "/config").status_code == 200


def test_realm_unknown_to_keycloak_is_401_without_fetching_keys(client, fake, services):
    fake.fetches.clear()
    token = fake.token(realm="made-up", roles=["realm-admin"])
    r = ConfigApi(client, token, realm="made-up").call("GET", "/config")
    assert r.status_code == 401 and fake.fetches == []
    assert services.db.all("SELECT uri FROM jwks WHERE uri LIKE '%made-up%'") == []
    assert ConfigApi(client, "x.y.z", realm="no such realm!").call("GET", "/config").status_code == 404


@pytest.mark.parametrize("roles", [[], ["view-users", "query-users", "manage-users"], ["view-organizations"]])
def test_token_without_admin_role_is_403(client, fake, roles):
    r = ConfigApi(client, fake.token(roles=roles, username="bob")).call("GET", "/config")
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert "bob lacks the realm-management role" in r.get_json()["detail"]


def test_roles_of_another_client_do_not_count(client, fake):
    token = fake.token(roles=[], resource_access={"account": {"roles": ["manage-realm"]},
                                                   "realm-management": {"roles": ["view-realm"]}})
    assert ConfigApi(client, token).call("GET", "/config").status_code == 403
    token = fake.token(roles=[], realm_access={"roles": ["realm-admin", "manage-realm"]})
    assert ConfigApi(client, token).call("GET", "/config").status_code == 403


@pytest.mark.parametrize("role", ["manage-organizations", "manage-realm", "realm-admin"])
def test_each_admin_role_is_enough(client, fake, role):
    assert ConfigApi(client, fake.token(roles=[role])).call("GET", "/config").status_code == 200


def test_repeated_bad_tokens_are_throttled_good_ones_still_pass(client, fake):
    api = ConfigApi(client, fake.token(key=FakeRealm.other_key()))
    codes = [api.call("GET", "/config").status_code for _ in range(15)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429, codes
    assert int(api.call("GET", "/config").headers["Retry-After"]) >= 1
    # a valid token from the throttled address passes the cheap check (cached keys, no fetch)
    assert ConfigApi(client, fake.token()).call("GET", "/config").status_code == 200


def test_without_keycloak_the_api_says_what_to_set(instance, template):
    app = create_app({"TESTING": True, "DATABASE": str(instance / "orgscim.sqlite3")})
    r = app.test_client().get(f"/realms/{REALM}/orgs/config", headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 503
    assert "KEYCLOAK_URL" in r.get_json()["detail"]
    app.extensions["orgscim"].db.close()


# -- realm flag ----------------------------------------------------------------------------------------------
def test_realm_flag_get_put(cfg, services, client, auth_headers):
    assert cfg.call("GET", "/config").get_json() == {"realm": REALM, "scimEnabled": True}
    r = cfg.call("PUT", "/config", {"scimEnabled": False})
    assert r.status_code == 200 and r.get_json() == {"realm": REALM, "scimEnabled": False}
    assert not services.orgs.realm_enabled(REALM)
    # the flag closes every org's SCIM endpoint of the realm
    assert client.get(f"{base_path(REALM, ORG_A)}/Users", headers=auth_headers[ORG_A]).status_code == 404
    assert cfg.call("PUT", "/config", {"scimEnabled": True}).get_json()["scimEnabled"] is True
    assert client.get(f"{base_path(REALM, ORG_A)}/Users", headers=auth_headers[ORG_A]).status_code == 200
    [off, on] = events(services)
    assert off["kind"] == "config.realm" and off["org_pk"] is None
    assert off["detail"] == {"realm": REALM, "scimEnabled": False, "who": "alice", "sub": "user-alice",
                             "client": "orgscim-admin", "via": "api"}
    assert on["detail"]["scimEnabled"] is True


@pytest.mark.parametrize("body", [{"scimEnabled": "yes"}, {"scimEnabled": 1}, {}, [], {"scimEnabled": True, "x": 1}])
def test_realm_flag_needs_a_boolean(cfg, body):
    r = cfg.call("PUT", "/config", body)
    assert r.status_code == 400 and "scimEnabled" in r.get_json()["detail"]


def test_realm_flag_bad_json_and_wrong_method(cfg):
    r = cfg.call("PUT", "/config", raw="{nope")
    assert r.status_code == 400 and "not valid JSON" in r.get_json()["detail"]
    r = cfg.call("DELETE", "/config")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PUT"


# -- org config ----------------------------------------------------------------------------------------------
def test_get_org_config(cfg, api_a):
    api_a.create_user("carol")
    r = cfg.call("GET", cfg.org(ORG_A))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["orgId"] == ORG_A and body["realm"] == REALM and body["authMode"] == "EXTERNAL_SECRET"
    assert body["serving"] is True and body["enabled"] is True and body["realmScimEnabled"] is True
    assert body["scimBaseUrl"] == f"http://localhost{base_path(REALM, ORG_A)}"
    assert body["resources"] == {"User": 1}


def test_get_unconfigured_org_is_404_with_what_to_do(cfg):
    r = cfg.call("GET", cfg.org("nobody"))
    assert r.status_code == 404
    assert "PUT /realms/r1/orgs/nobody/scim" in r.get_json()["detail"]


def test_post_creates_then_409(cfg, services, client):
    r = cfg.call("POST", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_SECRET", "authConfig": {"grace_hours": 2},
                                            "options": {"delete_policy": "disable"}})
    assert r.status_code == 201, r.get_json()
    assert r.headers["Location"].endswith(f"/realms/{REALM}/orgs/{NEW_ORG}/scim")
    body = r.get_json()
    assert body["authConfig"] == {"grace_hours": 2.0} and body["settings"]["delete_policy"] == "disable"
    assert body["serving"] is True
    again = cfg.call("POST", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_SECRET"})
    assert again.status_code == 409 and "use PUT" in again.get_json()["detail"]
    [created] = events(services)
    assert created["kind"] == "config.org.created" and created["detail"]["who"] == "alice"
    assert created["org_pk"] == services.orgs.org(REALM, NEW_ORG).pk


def test_put_creates_and_updates_keeping_omitted_fields(cfg, services):
    r = cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_BASIC", "options": {"adopt_policy": "org-members"}})
    assert r.status_code == 201
    r = cfg.call("PUT", cfg.org(NEW_ORG), {"enabled": False})
    assert r.status_code == 200
    body = r.get_json()
    assert body["enabled"] is False and body["serving"] is False
    assert body["authMode"] == "EXTERNAL_BASIC" and body["settings"]["adopt_policy"] == "org-members"
    # what GET shows can be sent back as is
    shown = cfg.call("GET", cfg.org(NEW_ORG)).get_json()
    assert cfg.call("PUT", cfg.org(NEW_ORG), {**shown, "enabled": True}).get_json()["serving"] is True
    assert [e["kind"] for e in events(services)] == ["config.org.created", "config.org.updated",
                                                     "config.org.updated"]


@pytest.mark.parametrize(("body", "message"), [
    ({"authMode": "NOPE"}, "unknown auth mode 'NOPE'"),
    ({"authMode": "EXTERNAL_SECRET", "authConfig": {"colour": "red"}}, "takes no settings named colour"),
    ({"authMode": "EXTERNAL_SECRET", "authConfig": {"grace_hours": 9999}}, "grace_hours must be between"),
    ({"authMode": "EXTERNAL_SECRET", "options": {"delete_policy": "shred"}}, "delete_policy must be one of"),
    ({"authMode": "EXTERNAL_SECRET", "options": {"colour": "red"}}, "unknown org option 'colour'"),
    ({"authMode": "EXTERNAL_SECRET", "federation": "nope"}, "unknown federation behaviour 'nope'"),
    ({"authMode": "EXTERNAL_SECRET", "enabled": "yes"}, "enabled must be true or false"),
    ({"authMode": "EXTERNAL_SECRET", "authConfig": []}, "authConfig must be an object"),
    ({"authMode": "EXTERNAL_SECRET", "colour": "red"}, "unknown field(s) colour"),
    ({}, "authMode is required"),
    ([], "send a JSON object"),
    ({"authMode": "KEYCLOAK", "authConfig": {"allowed_clients": ["x"]}}, "set KEYCLOAK_URL"),
])
def test_bad_config_is_400_with_the_reason(cfg, services, body, message):
    r = cfg.call("PUT", cfg.org(NEW_ORG), body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"] == "invalid_config"
    assert message in r.get_json()["detail"]
    assert services.orgs.org(REALM, NEW_ORG) is None
    assert events(services) == []


def test_bad_config_leaves_an_existing_org_unchanged(cfg, services):
    before = services.orgs.org(REALM, ORG_A)
    r = cfg.call("PUT", cfg.org(ORG_A), {"options": {"username_policy": "nickname"}})
    assert r.status_code == 400 and "username_policy must be one of" in r.get_json()["detail"]
    assert services.orgs.org(REALM, ORG_A) == before


def test_delete_closes_revokes_and_keeps_data(cfg, services, client, template, api_a):
    user = api_a.create_user("dave")
    issued = cfg.call("POST", cfg.org(ORG_A, "/credentials")).get_json()["secret"]
    assert scim_status(client, ORG_A, issued) == 200
    r = cfg.call("DELETE", cfg.org(ORG_A))
    assert r.status_code == 204 and r.get_data() == b""
    assert scim_status(client, ORG_A, template.secrets[ORG_A]) == 404
    body = cfg.call("GET", cfg.org(ORG_A)).get_json()
    assert body["enabled"] is False and body["resources"] == {"User": 1}
    creds = cfg.call("GET", cfg.org(ORG_A, "/credentials")).get_json()
    assert creds and all(c["status"] == "revoked" for c in creds)
    # configuring it again reopens it with its data; the old credentials stay revoked
    assert cfg.call("PUT", cfg.org(ORG_A), {"enabled": True}).status_code == 200
    assert scim_status(client, ORG_A, template.secrets[ORG_A]) == 401
    fresh = cfg.call("POST", cfg.org(ORG_A, "/credentials")).get_json()["secret"]
    got = client.get(f"{base_path(REALM, ORG_A)}/Users/{user['id']}", headers={"Authorization": f"Bearer {fresh}"})
    assert got.status_code == 200 and got.get_json()["userName"] == "dave"
    removed = [e for e in events(services) if e["kind"] == "config.org.removed"]
    assert removed[0]["detail"]["orgId"] == ORG_A and len(removed[0]["detail"]["revoked"]) == 2


def test_delete_purge_deletes_config_and_data(cfg, services, api_b):
    api_b.create_user("erin")
    pk = services.orgs.org(REALM, ORG_B).pk
    assert cfg.call("DELETE", cfg.org(ORG_B) + "?purge=true").status_code == 204
    assert cfg.call("GET", cfg.org(ORG_B)).status_code == 404
    assert services.orgs.org_counts(pk) == {} and services.orgs.credentials(pk) == []
    assert cfg.call("POST", cfg.org(ORG_B), {"authMode": "EXTERNAL_SECRET"}).status_code == 201
    assert cfg.call("GET", cfg.org(ORG_B)).get_json()["resources"] == {}
    [purged] = [e for e in events(services) if e["kind"] == "config.org.purged"]
    assert purged["detail"]["realm"] == REALM and purged["detail"]["orgId"] == ORG_B
    assert cfg.call("DELETE", cfg.org(ORG_B) + "?purge=maybe").status_code == 400
    assert cfg.call("DELETE", cfg.org("nobody")).status_code == 404


def test_wrong_method_and_unknown_path_are_json(cfg):
    r = cfg.call("PATCH", cfg.org(ORG_A))
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST, PUT, DELETE"
    r = cfg.call("GET", "/org-a/nothing/here")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


# -- credentials ----------------------------------------------------------------------------------------------
def test_credential_lifecycle_never_shows_a_secret_or_hash_again(cfg, services, client, template):
    r = cfg.call("POST", cfg.org(ORG_A, "/credentials"))
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    created = r.get_json()
    secret = created["secret"]
    assert set(created) == {"id", "kind", "username", "created", "lastUsed", "expires", "revoked", "status",
                            "secret"}
    assert created["status"] == "active" and created["kind"] == "secret"
    assert scim_status(client, ORG_A, secret) == 200
    hashes = [c.hash for c in services.orgs.credentials(services.orgs.org(REALM, ORG_A).pk)]
    listing = cfg.call("GET", cfg.org(ORG_A, "/credentials"))
    assert listing.status_code == 200
    ids = [c["id"] for c in listing.get_json()]
    assert created["id"] in ids and len(ids) == 2
    one = cfg.call("GET", cfg.org(ORG_A, f"/credentials/{created['id']}")).get_json()
    assert one["lastUsed"] is not None
    later = [listing, cfg.call("GET", cfg.org(ORG_A, f"/credentials/{created['id']}")), cfg.call("GET", cfg.org(ORG_A)),
             cfg.call("GET", "/config")]
    for resp in later:
        text = resp.get_data(as_text=True)
        assert secret not in text and template.secrets[ORG_A] not in text
        assert "secret\"" not in text.replace('"kind":"secret"', "").replace('"kind": "secret"', "")
        assert not any(h in text for h in hashes) and "$argon2" not in text
        assert "hash" not in text
    all_events = json.dumps(events(services, ""))
    assert secret not in all_events and "$argon2" not in all_events


def test_basic_credentials_show_username_and_password_once(cfg, client):
    assert cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_BASIC"}).status_code == 201
    created = cfg.call("POST", cfg.org(NEW_ORG, "/credentials")).get_json()
    assert created["kind"] == "basic" and created["username"] and created["secret"]
    import base64

    basic = base64.b64encode(f"{created['username']}:{created['secret']}".encode()).decode()
    r = client.get(f"{base_path(REALM, NEW_ORG)}/Users", headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200
    assert created["secret"] not in cfg.call("GET", cfg.org(NEW_ORG, "/credentials")).get_data(as_text=True)


def test_rotate_keeps_old_secret_until_the_grace_deadline(cfg, services, client, template):
    old = template.secrets[ORG_A]
    r = cfg.call("POST", cfg.org(ORG_A, "/credentials/rotate"), {"graceHours": 2})
    assert r.status_code == 201
    body = r.get_json()
    new = body["secret"]
    assert [c["status"] for c in body["superseded"]] == ["expiring"]
    deadline = datetime.strptime(body["deadline"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert abs((deadline - datetime.now(UTC)).total_seconds() - 7200) < 120
    assert body["superseded"][0]["expires"] == body["deadline"]
    assert scim_status(client, ORG_A, old) == 200
    assert scim_status(client, ORG_A, new) == 200
    # a second rotation with no grace ends every other credential now
    r = cfg.call("POST", cfg.org(ORG_A, "/credentials/rotate"), {"graceHours": 0})
    newest = r.get_json()["secret"]
    assert scim_status(client, ORG_A, old) == 401
    assert scim_status(client, ORG_A, new) == 401
    assert scim_status(client, ORG_A, newest) == 200
    rotated = [e for e in events(services) if e["kind"] == "config.credential.rotated"]
    assert len(rotated) == 2 and rotated[0]["detail"]["who"] == "alice"
    assert rotated[0]["detail"]["superseded"] and "secret" not in json.dumps(rotated)


def test_rotate_default_grace_is_the_orgs_setting(cfg):
    assert cfg.call("PUT", cfg.org(ORG_A), {"authConfig": {"grace_hours": 1}}).status_code == 200
    body = cfg.call("POST", cfg.org(ORG_A, "/credentials/rotate")).get_json()
    deadline = datetime.strptime(body["deadline"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert abs((deadline - datetime.now(UTC)).total_seconds() - 3600) < 120


@pytest.mark.parametrize("body", [{"graceHours": -1}, {"graceHours": 1000}, {"graceHours": "soon"},
                                  {"grace": 1}, [1]])
def test_rotate_refuses_a_bad_grace(cfg, services, body):
    r = cfg.call("POST", cfg.org(ORG_A, "/credentials/rotate"), body)
    assert r.status_code == 400, r.get_json()
    assert "grace" in r.get_json()["detail"].lower()
    assert len(services.orgs.credentials(services.orgs.org(REALM, ORG_A).pk)) == 1


def test_revoke_is_immediate(cfg, services, client, template):
    [cred] = cfg.call("GET", cfg.org(ORG_A, "/credentials")).get_json()
    assert scim_status(client, ORG_A, template.secrets[ORG_A]) == 200  # warm verified cache
    r = cfg.call("DELETE", cfg.org(ORG_A, f"/credentials/{cred['id']}"))
    assert r.status_code == 204
    assert scim_status(client, ORG_A, template.secrets[ORG_A]) == 401
    [after] = cfg.call("GET", cfg.org(ORG_A, "/credentials")).get_json()
    assert after["status"] == "revoked" and after["revoked"]
    [revoked] = [e for e in events(services) if e["kind"] == "config.credential.revoked"]
    assert revoked["detail"]["credential"] == cred["id"] and revoked["detail"]["who"] == "alice"
    assert revoked["org_pk"] == services.orgs.org(REALM, ORG_A).pk


def test_credentials_of_another_org_are_404(cfg, client, template):
    [cred_b] = cfg.call("GET", cfg.org(ORG_B, "/credentials")).get_json()
    r = cfg.call("DELETE", cfg.org(ORG_A, f"/credentials/{cred_b['id']}"))
    assert r.status_code == 404 and "see GET" in r.get_json()["detail"]
    assert scim_status(client, ORG_B, template.secrets[ORG_B]) == 200
    assert cfg.call("GET", cfg.org("nobody", "/credentials")).status_code == 404


def test_token_modes_have_no_issued_credentials(cfg, services, fake):
    jwt_cfg = {"issuer": "https://idp.example", "jwks_uri": f"{KEYCLOAK}/realms/idp/protocol/openid-connect/certs",
               "audience": "scim"}
    # the JWK Set fetch at configure time goes to the fake fetcher too; http is allowed for loopback only
    r = cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_JWT", "authConfig": jwt_cfg})
    assert r.status_code == 400 and "https" in r.get_json()["detail"]
    services.auth_ctx.jwks.fetcher = lambda uri: fake.fetch(uri.replace("https://127.0.0.1", KEYCLOAK))
    jwt_cfg["jwks_uri"] = "https://127.0.0.1/realms/idp/protocol/openid-connect/certs"
    assert cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_JWT", "authConfig": jwt_cfg}).status_code == 201
    for method, path in (("POST", "/credentials"), ("POST", "/credentials/rotate")):
        r = cfg.call(method, cfg.org(NEW_ORG, path))
        assert r.status_code == 409 and "does not use credentials issued by orgscim" in r.get_json()["detail"]
    assert cfg.call("GET", cfg.org(NEW_ORG, "/credentials")).get_json() == []


def test_every_change_is_audited_with_who_and_without_secrets(cfg, services, client, fake):
    other = ConfigApi(client, fake.token(username="svc", sub="sub-svc", azp="ci-bot", aud="orgscim",
                                             roles=["manage-realm"]))
    cfg.call("PUT", "/config", {"scimEnabled": True})
    cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_SECRET"})
    secret = other.call("POST", other.org(NEW_ORG, "/credentials")).get_json()
    rotated = other.call("POST", other.org(NEW_ORG, "/credentials/rotate"), {"graceHours": 1}).get_json()
    cfg.call("DELETE", cfg.org(NEW_ORG, f"/credentials/{secret['id']}"))
    cfg.call("DELETE", cfg.org(NEW_ORG))
    got = [(e["kind"], e["detail"]["who"], e["detail"]["via"]) for e in events(services)]
    assert got == [("config.realm", "alice", "api"), ("config.org.created", "alice", "api"),
                   ("config.credential.created", "svc", "api"), ("config.credential.rotated", "svc", "api"),
                   ("config.credential.revoked", "alice", "api"), ("config.org.removed", "alice", "api")]
    assert events(services)[2]["detail"]["client"] == "ci-bot" and events(services)[2]["detail"]["sub"] == "sub-svc"
    text = json.dumps(events(services, ""))
    assert secret["secret"] not in text and rotated["secret"] not in text
    # reads are not changes
    n = len(events(services))
    cfg.call("GET", cfg.org(ORG_A))
    cfg.call("GET", cfg.org(ORG_A, "/credentials"))
    assert len(events(services)) == n


def test_scim_base_url_follows_public_base_url(cfg, app):
    app.config["PUBLIC_BASE_URL"] = "https://sso.example.com/"
    body = cfg.call("GET", cfg.org(ORG_A)).get_json()
    assert body["scimBaseUrl"] == f"https://sso.example.com{base_path(REALM, ORG_A)}"


def test_location_of_a_created_config_follows_public_base_url(cfg, app, services):
    """Behind a proxy the config API's Location, like every URL orgscim gives out, is on PUBLIC_BASE_URL, not on
    the Host the request came with."""
    app.config["PUBLIC_BASE_URL"] = "https://sso.example.com/"
    r = cfg.call("POST", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_SECRET"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"https://sso.example.com/realms/{REALM}/orgs/{NEW_ORG}/scim"
    assert r.get_json()["scimBaseUrl"] == f"https://sso.example.com{base_path(REALM, NEW_ORG)}"
    listed = cfg.call("GET", "").get_json()["orgs"]
    assert {o["scimBaseUrl"] for o in listed if o["orgId"] == NEW_ORG} == {r.get_json()["scimBaseUrl"]}
    org = services.orgs.org(REALM, NEW_ORG)
    with app.test_request_context(base_url="http://internal:8000"):  # what the SCIM blueprint is given too
        assert scim_base_url(org.realm, org.org_id) == r.get_json()["scimBaseUrl"]


def test_created_org_serves_scim_with_the_issued_secret(cfg, client):
    cfg.call("PUT", cfg.org(NEW_ORG), {"authMode": "EXTERNAL_SECRET"})
    secret = cfg.call("POST", cfg.org(NEW_ORG, "/credentials")).get_json()["secret"]
    r = client.post(f"{base_path(REALM, NEW_ORG)}/Users", data=json.dumps({"schemas": [USER_URN], "userName": "f"}),
                    headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"})
    assert r.status_code == 201


def test_org_listing_is_paged(cfg, services, app):
    """issue 12: GET /realms/{realm}/orgs pages in SQL (cursor), searches, filters; a bad page request is 400."""
    ids = [f"list-{i:03d}" for i in range(25)]
    for org_id in ids:
        services.orgs.upsert_org(REALM, org_id, "EXTERNAL_SECRET", {})
    services.orgs.seen_in_keycloak(REALM, [{"id": i, "name": f"Tenant {i}", "alias": i} for i in ids]
                                   + [{"id": "kc-only", "name": "Unconfigured", "alias": "unconf"}])
    seen: list[str] = []
    url = "?limit=10"
    while url:
        r = cfg.call("GET", url)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", r.get_json()
        body = r.get_json()
        assert len(body["orgs"]) <= 10
        seen += [o["orgId"] for o in body["orgs"]]
        url = body["nextUrl"].split("/orgs", 1)[1] if body["next"] else ""
        assert "$argon2" not in json.dumps(body) and "credentials" not in json.dumps(body)  # never a hash
    assert seen == sorted(seen) and set(seen) == {*ids, ORG_A, ORG_B, "kc-only"} and len(seen) == 28
    found = cfg.call("GET", "/?search=tenant%20list-007").get_json()
    assert [(o["orgId"], o["name"], o["status"]) for o in found["orgs"]] == [("list-007", "Tenant list-007", "serving")]
    assert found["orgs"][0]["scimBaseUrl"].endswith(base_path(REALM, "list-007"))
    assert [o["orgId"] for o in cfg.call("GET", "?status=not-configured").get_json()["orgs"]] == ["kc-only"]
    for bad in ("?limit=0", "?limit=x", "?limit=501", "?status=nope", "?after=garbage"):
        r = cfg.call("GET", bad)
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_request", bad
    assert cfg.call("POST", "", {}).status_code == 405
    assert app.test_client().get(f"/realms/{REALM}/orgs").status_code == 401  # a realm token is needed
