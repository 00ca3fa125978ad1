"""Admin pages without a browser or Keycloak: the OIDC login (code + PKCE, state, nonce, ID token checks) against
a fake token endpoint whose tokens are signed by ``realm_tokens.FakeRealm``; CSRF, the one-time secret page,
the session cookie, and the pages' content. The real-browser, real-Keycloak run is
``tests/keycloak/test_admin_browser.py``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import DB_NAME, ORG_A, ORG_B, REALM, base_path
from flask import Flask
from flask.testing import FlaskClient
from realm_tokens import KEYCLOAK, FakeRealm

from orgscim.app import create_app
from orgscim.auth import AuthFailed
from orgscim.services import Services
from orgscim.web.admin import oidc
from orgscim.web.admin.orgs import PAGE_SIZE

CLIENT_ID = "orgscim-admin"
ADMIN_CONFIG = {"ADMIN_REALM": REALM, "ADMIN_CLIENT_SECRET": "admin-secret", "KEYCLOAK_TIMEOUT": 2}


@pytest.fixture(scope="session")
def realm_key() -> FakeRealm:
    return FakeRealm()


@pytest.fixture
def admin_app(instance: Path, realm_key: FakeRealm) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), **ADMIN_CONFIG})
    realm_key.install(app)
    yield app
    app.extensions["orgscim"].db.close()


@pytest.fixture
def services(admin_app: Flask) -> Services:
    return admin_app.extensions["orgscim"]


class FakeTokenEndpoint:
    """Stands in for ``requests.post`` to the realm's token endpoint: checks the code exchange like Keycloak."""

    def __init__(self, realm: FakeRealm) -> None:
        self.realm = realm
        self.pending: dict[str, dict[str, Any]] = {}  # code → what the authorization request carried
        self.calls: list[dict[str, Any]] = []
        self.id_overrides: dict[str, Any] = {}
        self.roles: list[str] = ["manage-organizations"]
        self.username = "root"

    def authorize(self, url: str) -> str:
        """What Keycloak does on the login page: remember the request and hand back a code."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        code = f"code-{len(self.pending)}"
        self.pending[code] = q
        return code

    def __call__(self, url: str, data: dict[str, str], auth: tuple[str, str], timeout: float) -> Any:
        self.calls.append({"url": url, "data": data, "auth": auth})
        assert url == f"{KEYCLOAK}/realms/{REALM}/protocol/openid-connect/token"
        req = self.pending.pop(data["code"], None)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(data["code_verifier"].encode()).digest()).rstrip(b"=")
        if (req is None or auth != (CLIENT_ID, "admin-secret") or data["grant_type"] != "authorization_code"
                or data["redirect_uri"] != req["redirect_uri"] or challenge.decode() != req["code_challenge"]):
            return _Resp(400, {"error": "invalid_grant", "error_description": "Code not valid"})
        sub = f"user-{self.username}"
        id_claims = {"typ": "ID", "aud": CLIENT_ID, "azp": CLIENT_ID, "nonce": req["nonce"], "name": "Root Admin",
                     **self.id_overrides}
        return _Resp(200, {
            "access_token": self.realm.token(REALM, self.roles, username=self.username, sub=sub, azp=CLIENT_ID),
            "id_token": self.realm.token(REALM, [], username=self.username, sub=sub, **id_claims),
            "token_type": "Bearer"})


class _Resp:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code, self.body = status, body

    def json(self) -> dict[str, Any]:
        return self.body


@pytest.fixture
def kc(monkeypatch: pytest.MonkeyPatch, realm_key: FakeRealm) -> FakeTokenEndpoint:
    endpoint = FakeTokenEndpoint(realm_key)
    monkeypatch.setattr(oidc.requests, "post", endpoint)
    return endpoint


@pytest.fixture
def browser(admin_app: Flask) -> FlaskClient:
    return admin_app.test_client()


def start_login(browser: FlaskClient, path: str = "/admin/") -> str:
    """Follow /admin/… to the Keycloak authorization URL."""
    r = browser.get(path)
    assert r.status_code == 302 and r.location.startswith("/admin/login"), (r.status_code, r.location)
    r = browser.get(r.location)
    assert r.status_code == 302
    return r.location


def log_in(browser: FlaskClient, kc: FakeTokenEndpoint, path: str = "/admin/") -> Any:
    auth_url = start_login(browser, path)
    code = kc.authorize(auth_url)
    state = parse_qs(urlsplit(auth_url).query)["state"][0]
    return browser.get(f"/admin/callback?code={code}&state={state}")


@pytest.fixture
def logged_in(browser: FlaskClient, kc: FakeTokenEndpoint) -> FlaskClient:
    r = log_in(browser, kc)
    assert r.status_code == 302 and r.location == "/admin/", r.get_data(as_text=True)
    return browser


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def once(page: str) -> str:
    return re.search(r'name="once" value="([^"]+)"', page).group(1)


def text(resp: Any) -> str:
    return resp.get_data(as_text=True)


# -- login ------------------------------------------------------------------------------------------------
def test_login_redirects_to_keycloak_with_pkce_state_and_nonce(browser, kc):
    url = start_login(browser, "/admin/drift")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{KEYCLOAK}/realms/{REALM}/protocol/openid-connect/auth"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID and q["scope"] == "openid"
    assert q["redirect_uri"] == "http://localhost/admin/callback"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and q["state"] != q["nonce"]


def test_the_oidc_client_works_outside_flask(admin_app, realm_key, monkeypatch):
    """:class:`oidc.OidcClient` is the login protocol alone (no request, no session): PKCE S256 over the
    verifier, ``state`` checked and expiring, the code exchanged and both tokens verified, RP-initiated logout."""
    client = oidc.OidcClient(REALM, CLIENT_ID, "admin-secret", realm_key.install(admin_app), 2.0)
    pending = client.start("/admin/drift")
    url = client.authorization_url(pending, "https://orgscim.test/admin/callback")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    digest = hashlib.sha256(pending["verifier"].encode()).digest()
    assert q["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert oidc.answers(pending, pending["state"]) and not oidc.answers(pending, "forged")
    assert not oidc.answers(None, pending["state"])
    with monkeypatch.context() as later:
        later.setattr(oidc.time, "time", lambda: pending["at"] + oidc.LOGIN_SECONDS + 1)
        assert not oidc.answers(pending, pending["state"])
    kc_endpoint = FakeTokenEndpoint(realm_key)
    monkeypatch.setattr(oidc.requests, "post", kc_endpoint)
    code = kc_endpoint.authorize(url)
    tokens = client.exchange(code, pending["verifier"], "https://orgscim.test/admin/callback")
    user, claims = client.verify(tokens, pending["nonce"])
    assert user.who == "root" and user.is_admin and claims["nonce"] == pending["nonce"]
    with pytest.raises(AuthFailed):
        client.verify(tokens, "another nonce")
    with pytest.raises(oidc.LoginFailed):
        client.exchange(code, pending["verifier"], "https://orgscim.test/admin/callback")  # a code works once
    logout = parse_qs(urlsplit(client.logout_url("https://orgscim.test/admin/logged-out", "id-token")).query)
    assert logout["id_token_hint"] == ["id-token"] and logout["client_id"] == [CLIENT_ID]


def test_login_lands_on_the_page_asked_for(browser, kc):
    r = log_in(browser, kc, "/admin/drift")
    assert r.status_code == 302 and r.location == "/admin/drift"
    assert kc.calls and kc.calls[0]["data"]["code_verifier"]
    assert browser.get("/admin/drift").status_code == 200


def test_next_must_be_an_admin_page(browser, kc):
    url = browser.get("/admin/login?next=//evil.example/x").location
    code = kc.authorize(url)
    state = parse_qs(urlsplit(url).query)["state"][0]
    assert browser.get(f"/admin/callback?code={code}&state={state}").location == "/admin/"


def test_wrong_state_is_refused(browser, kc):
    url = start_login(browser)
    code = kc.authorize(url)
    r = browser.get(f"/admin/callback?code={code}&state=forged")
    assert r.status_code == 400 and "This login has expired" in text(r)
    assert kc.calls == []
    assert browser.get("/admin/").status_code == 302


def test_state_is_single_use(browser, kc):
    url = start_login(browser)
    code = kc.authorize(url)
    state = parse_qs(urlsplit(url).query)["state"][0]
    assert browser.get(f"/admin/callback?code={code}&state={state}").status_code == 302
    browser.post("/admin/logout", data={"csrf": csrf(text(browser.get("/admin/")))})
    assert browser.get(f"/admin/callback?code={code}&state={state}").status_code == 400


@pytest.mark.parametrize("override", [{"nonce": "other"}, {"aud": "another-client"}, {"typ": "Bearer"},
                                      {"azp": "another-client"}, {"iss": f"{KEYCLOAK}/realms/master"}])
def test_id_token_checks(browser, kc, override):
    kc.id_overrides = override
    r = log_in(browser, kc)
    assert r.status_code == 400 and "did not pass verification" in text(r)
    assert browser.get("/admin/").status_code == 302


def test_keycloak_error_and_refused_code_say_what_happened(browser, kc):
    start_login(browser)
    r = browser.get("/admin/callback?error=access_denied&error_description=User+cancelled")
    assert r.status_code == 400 and "User cancelled" in text(r)
    url = start_login(browser)
    state = parse_qs(urlsplit(url).query)["state"][0]
    r = browser.get(f"/admin/callback?code=made-up&state={state}")
    assert r.status_code == 502 and "Code not valid" in text(r) and "ADMIN_CLIENT_ID" in text(r)


def test_user_without_the_roles_gets_the_403_page(browser, kc):
    kc.roles, kc.username = ["view-users", "manage-users"], "mallory"
    r = log_in(browser, kc)
    assert r.status_code == 403
    page = text(r)
    assert "Not allowed" in page and "mallory" in page and "manage-organizations" in page
    assert 'id="logout"' in page
    r = browser.get("/admin/")
    assert r.status_code == 302 and r.location.startswith("/admin/login")


def test_session_cookie_flags_and_security_headers(browser, kc):
    r = log_in(browser, kc)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("orgscim_admin=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/admin" in cookie
    page = browser.get("/admin/")
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in text(page)


def test_session_expires(instance, realm_key, kc):
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), **ADMIN_CONFIG,
                      "ADMIN_SESSION_SECONDS": -1})
    realm_key.install(app)
    browser = app.test_client()
    assert log_in(browser, kc).status_code == 302
    assert browser.get("/admin/").location.startswith("/admin/login")
    app.extensions["orgscim"].db.close()


def test_logout_ends_both_sessions(logged_in):
    page = text(logged_in.get("/admin/"))
    r = logged_in.post("/admin/logout", data={"csrf": csrf(page)})
    assert r.status_code == 302
    parts = urlsplit(r.location)
    assert r.location.startswith(f"{KEYCLOAK}/realms/{REALM}/protocol/openid-connect/logout?")
    q = parse_qs(parts.query)
    assert q["post_logout_redirect_uri"] == ["http://localhost/admin/logged-out"] and q["id_token_hint"]
    assert logged_in.get("/admin/").status_code == 302
    assert "You are logged out" in text(logged_in.get("/admin/logged-out"))


def test_not_set_up_names_the_missing_keys(instance, realm_key):
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME)})
    realm_key.install(app)
    r = app.test_client().get("/admin/")
    assert r.status_code == 503
    assert "ADMIN_REALM" in text(r) and "ADMIN_CLIENT_SECRET_FILE" in text(r)
    app.extensions["orgscim"].db.close()


def test_client_secret_from_file(instance, realm_key, kc, tmp_path):
    secret_file = tmp_path / "admin-secret"
    secret_file.write_text("admin-secret\n")
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), "ADMIN_REALM": REALM,
                      "ADMIN_CLIENT_SECRET_FILE": str(secret_file)})
    realm_key.install(app)
    assert log_in(app.test_client(), kc).status_code == 302
    assert kc.calls[-1]["auth"] == (CLIENT_ID, "admin-secret")
    app.extensions["orgscim"].db.close()


def test_generated_secret_key_is_private_and_persistent(instance, admin_app):
    path = instance / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert admin_app.config["SECRET_KEY"] == path.read_text().strip()
    again = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME)})
    assert again.config["SECRET_KEY"] == admin_app.config["SECRET_KEY"]
    again.extensions["orgscim"].db.close()


# -- CSRF ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "forged"])
def test_posts_need_the_csrf_token(logged_in, services, token):
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    data = {"once": once(page)}
    if token:
        data["csrf"] = token
    r = logged_in.post(f"/admin/orgs/{ORG_A}/credentials", data=data)
    assert r.status_code == 400 and "The form has expired" in text(r)
    assert len(services.orgs.credentials(services.orgs.org(REALM, ORG_A).pk)) == 1


# -- pages --------------------------------------------------------------------------------------------------
def test_orgs_page_lists_configured_and_discovered(logged_in, services):
    services.orgs.seen_in_keycloak(REALM, [{"id": "kc-org-1", "name": "Initech", "alias": "initech"}])
    page = text(logged_in.get("/admin/"))
    assert ORG_A in page and ORG_B in page and "Initech" in page
    assert page.count("serving") >= 2 and "not configured" in page
    assert 'id="realm-off"' in page


def test_realm_flag_form(logged_in, services):
    page = text(logged_in.get("/admin/"))
    r = logged_in.post("/admin/realm", data={"csrf": csrf(page)})
    assert r.status_code == 302 and not services.orgs.realm_enabled(REALM)
    page = text(logged_in.get("/admin/"))
    assert "every organization&#39;s SCIM endpoint answers 404" in page and 'id="realm-on"' in page
    logged_in.post("/admin/realm", data={"csrf": csrf(page), "scimEnabled": "on"})
    assert services.orgs.realm_enabled(REALM)
    [off, on] = [json.loads(r["detail"]) for r in services.db.all(
        "SELECT detail FROM events WHERE kind = 'config.realm' ORDER BY pk")]
    assert off["who"] == "root" and off["via"] == "admin" and off["scimEnabled"] is False and on["scimEnabled"]


def test_credential_secret_is_shown_once(logged_in, services, admin_app):
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    form = {"csrf": csrf(page), "once": once(page)}
    r = logged_in.post(f"/admin/orgs/{ORG_A}/credentials", data=form)
    assert r.status_code == 201
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    secret = re.search(r'<code id="secret" class="secret-value">([^<]+)</code>', text(r)).group(1)
    assert secret.startswith("osk_") and "only time" in text(r)
    status = admin_app.test_client().get(f"{base_path(REALM, ORG_A)}/Users",
                                         headers={"Authorization": f"Bearer {secret}"}).status_code
    assert status == 200
    # the same form again (a reload re-posts it): nothing new, nothing shown
    again = logged_in.post(f"/admin/orgs/{ORG_A}/credentials", data=form)
    assert again.status_code == 409 and secret not in text(again) and "shown only once" in text(again)
    assert len(services.orgs.credentials(services.orgs.org(REALM, ORG_A).pk)) == 2
    for path in ("/admin/", f"/admin/orgs/{ORG_A}", "/admin/activity", "/admin/drift"):
        assert secret not in text(logged_in.get(path))
        assert "$argon2" not in text(logged_in.get(path))


def test_rotate_and_revoke_forms(logged_in, services):
    org = services.orgs.org(REALM, ORG_A)
    [old] = services.orgs.credentials(org.pk)
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    r = logged_in.post(f"/admin/orgs/{ORG_A}/credentials/rotate",
                       data={"csrf": csrf(page), "once": once(page), "graceHours": "abc"})
    assert r.status_code == 400 and "grace_hours must be a number" in text(r)
    r = logged_in.post(f"/admin/orgs/{ORG_A}/credentials/rotate",
                       data={"csrf": csrf(page), "once": once(page), "graceHours": "3"})
    assert r.status_code == 201 and old.cred_id in text(r) and "keep working until" in text(r)
    assert services.orgs.credential(org.pk, old.cred_id).status() == "expiring"
    r = logged_in.post(f"/admin/orgs/{ORG_A}/credentials/{old.cred_id}/revoke", data={"csrf": csrf(page)})
    assert r.status_code == 302
    assert f"Credential {old.cred_id} revoked" in text(logged_in.get(r.location))
    assert services.orgs.credential(org.pk, old.cred_id).status() == "revoked"
    kinds = [r["kind"] for r in services.db.all("SELECT kind FROM events WHERE kind LIKE 'config.%' ORDER BY pk")]
    assert kinds == ["config.credential.rotated", "config.credential.revoked"]


def test_configure_form_errors_keep_the_input(logged_in, services):
    """issue 11: real fields per auth mode and federation behaviour instead of JSON text areas."""
    page = text(logged_in.get("/admin/orgs/org-new"))
    assert "SCIM is not configured" in page
    assert 'id="auth-EXTERNAL_SECRET-grace_hours"' in page and 'id="auth-KEYCLOAK-allowed_clients"' in page
    assert 'id="auth-EXTERNAL_JWT-jwks_uri"' in page and 'id="fed-link-org-idp-id_attribute"' in page
    assert "<textarea" not in page  # every built-in mode has fields
    form = {"csrf": csrf(page), "authMode": "EXTERNAL_SECRET", "auth-EXTERNAL_SECRET-grace_hours": "9999",
            "auth-KEYCLOAK-allowed_clients": "ignored-for-another-mode", "federation": "none", "enabled": "on",
            "option_username_policy": "email"}
    r = logged_in.post("/admin/orgs/org-new/configure", data=form)
    assert r.status_code == 400 and "grace_hours must be between" in text(r)
    assert 'value="9999"' in text(r)  # the input is kept
    assert services.orgs.org(REALM, "org-new") is None
    r = logged_in.post("/admin/orgs/org-new/configure", data={**form, "auth-EXTERNAL_SECRET-grace_hours": "4",
                                                             "federation": "link-org-idp",
                                                             "fed-link-org-idp-id_attribute": "userName",
                                                             "fed-none-alias": "not a field"})
    assert r.status_code == 302
    org = services.orgs.org(REALM, "org-new")
    assert org.serving and org.auth_config == {"grace_hours": 4.0} and org.settings["username_policy"] == "email"
    assert org.federation == "link-org-idp" and org.settings["federation"]["id_attribute"] == "userName"
    page = text(logged_in.get(r.location))
    assert "SCIM config created" in page and 'id="no-credentials"' in page
    assert f"http://localhost{base_path(REALM, 'org-new')}" in page
    assert 'value="4.0"' in page  # the stored value fills the field


def test_remove_form(logged_in, services, admin_app):
    page = text(logged_in.get(f"/admin/orgs/{ORG_B}"))
    r = logged_in.post(f"/admin/orgs/{ORG_B}/remove", data={"csrf": csrf(page)})
    assert r.status_code == 302 and "1 credential(s) revoked" in text(logged_in.get(r.location))
    assert not services.orgs.org(REALM, ORG_B).enabled
    logged_in.post(f"/admin/orgs/{ORG_B}/remove", data={"csrf": csrf(page), "purge": "on"})
    assert services.orgs.org(REALM, ORG_B) is None


def test_drift_and_activity_pages(logged_in, services):
    assert 'id="no-drift"' in text(logged_in.get("/admin/drift"))
    activity = text(logged_in.get("/admin/activity"))
    assert 'id="no-pending"' in activity and 'id="no-provisioning"' in activity
    org = services.orgs.org(REALM, ORG_A)
    services.drift.report(org.pk, "User", "u-1", "member_missing", "member", "absent")
    drift = text(logged_in.get("/admin/drift"))
    assert "member_missing" in drift and "u-1" in drift and ORG_A in drift
    assert "1 open drift record(s)" in text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    services.orgs.event(org.pk, "auth.failure", {"addr": "192.0.2.1", "reason": "rejected"})
    activity = text(logged_in.get("/admin/activity"))
    assert "auth.failure" in activity and "192.0.2.1" in activity


def test_unknown_admin_page_and_method(logged_in):
    r = logged_in.get("/admin/nothing/here")
    assert r.status_code == 404 and "no such admin page" in text(r)
    r = logged_in.get(f"/admin/orgs/{ORG_A}/credentials")  # the address bar after creating one
    assert r.status_code == 302 and r.location == f"/admin/orgs/{ORG_A}"
    r = logged_in.put("/admin/drift")
    assert r.status_code == 405 and "no such admin page" in text(r)
    assert logged_in.put("/healthz").status_code == 405  # outside /admin: unchanged


# -- issue 11/12: pages that scale, names, test connection, IdP guides -------------------------------------
def seed_orgs(services: Services, n: int, realm: str = REALM) -> list[str]:
    """``n`` configured orgs with Keycloak names (as reconcile caches them), straight through the store."""
    ids = [f"org-{i:05d}" for i in range(n)]
    for org_id in ids:
        services.orgs.upsert_org(realm, org_id, "EXTERNAL_SECRET", {})
    services.orgs.seen_in_keycloak(realm, [{"id": i, "name": f"Customer {i[-5:]}", "alias": f"cust-{i[-5:]}"}
                                           for i in ids])
    return ids


def test_orgs_page_pages_searches_and_filters(logged_in, services):
    seed_orgs(services, 120)
    services.orgs.seen_in_keycloak(REALM, [{"id": "kc-only", "name": "Initech", "alias": "initech"}])
    first = text(logged_in.get("/admin/"))
    assert first.count('<tr data-org="') == PAGE_SIZE and 'id="next-page"' in first
    assert 'id="first-page"' not in first
    nxt = re.search(r'href="([^"]+)" id="next-page"', first).group(1).replace("&amp;", "&")
    second = text(logged_in.get(nxt))
    rows1 = set(re.findall(r'<tr data-org="([^"]+)"', first))
    rows2 = set(re.findall(r'<tr data-org="([^"]+)"', second))
    assert len(rows2) == PAGE_SIZE and not rows1 & rows2 and 'id="first-page"' in second
    seen, url = set(), "/admin/"
    while url:
        page = text(logged_in.get(url))
        seen |= set(re.findall(r'<tr data-org="([^"]+)"', page))
        m = re.search(r'href="([^"]+)" id="next-page"', page)
        url = m.group(1).replace("&amp;", "&") if m else ""
    assert len(seen) == 120 + 2 + 1  # seeded, org-a/org-b, the organization without SCIM config

    found = text(logged_in.get("/admin/?q=customer+00042"))
    assert re.findall(r'<tr data-org="([^"]+)"', found) == ["org-00042"] and "cust-00042" in found
    assert re.findall(r'<tr data-org="([^"]+)"', text(logged_in.get("/admin/?q=CUST-00077"))) == ["org-00077"]
    assert re.findall(r'<tr data-org="([^"]+)"', text(logged_in.get("/admin/?q=org-0011"))) == [
        f"org-{i:05d}" for i in range(110, 120)]
    assert 'id="no-match"' in text(logged_in.get("/admin/?q=%25_nothing"))  # LIKE wildcards are literal
    not_configured = text(logged_in.get("/admin/?status=not-configured"))
    assert re.findall(r'<tr data-org="([^"]+)"', not_configured) == ["kc-only"] and "Initech" in not_configured
    org = services.orgs.org(REALM, "org-00007")
    services.drift.report(org.pk, "User", "u-7", "removed_from_org", True, False)
    assert re.findall(r'<tr data-org="([^"]+)"', text(logged_in.get("/admin/?status=drift"))) == ["org-00007"]
    services.outbox.enqueue(services.orgs.org(REALM, "org-00009").pk,
                            [type("E", (), {"resource_type": "User", "resource_id": "u-9",
                                            "action": "user.upsert", "payload": {}})()])
    assert 'id="no-match"' in text(logged_in.get("/admin/?status=failing"))  # pending, never failed yet
    pk = services.db.one("SELECT pk FROM outbox WHERE resource_id = 'u-9'")[0]
    services.outbox.retry_later(pk, "Keycloak answered 503", 60)
    failing = text(logged_in.get("/admin/?status=failing"))
    assert re.findall(r'<tr data-org="([^"]+)"', failing) == ["org-00009"] and "1 failing" in failing
    assert logged_in.get("/admin/?after=not-a-cursor").status_code == 400


def test_names_beside_ids(logged_in, services, api):
    services.orgs.seen_in_keycloak(REALM, [{"id": ORG_A, "name": "Acme Corp", "alias": "acme"}])
    user = api.create_user(user_name="alice@acme.example")
    org = services.orgs.org(REALM, ORG_A)
    services.drift.report(org.pk, "User", user["id"], "removed_from_org", True, False)
    drift = text(logged_in.get("/admin/drift"))
    assert "Acme Corp" in drift and "alice@acme.example" in drift and user["id"] in drift
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    assert re.search(r'id="crumb-org">Acme Corp<', page) and "<h1 id=\"org-title\">Acme Corp</h1>" in page
    assert 'class="nowrap">' in page  # credential ids do not wrap one character per line
    services.orgs.event(org.pk, "config.org.updated", {"who": "root"})
    services.outbox.enqueue(org.pk, [type("E", (), {"resource_type": "User", "resource_id": user["id"],
                                                    "action": "user.upsert", "payload": {}})()])
    activity = text(logged_in.get("/admin/activity"))
    pending = activity[activity.index('id="pending"'):activity.index('id="provisioning"')]
    assert "Acme Corp" in pending and "alice@acme.example" in pending and user["id"] in pending
    events = activity[activity.index('id="events"'):]
    assert "Acme Corp</a></td><td>config.org.updated" in events


def test_test_connection_sends_what_an_idp_sends(logged_in, services, template, caplog):
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    secret = template.secrets[ORG_A]
    r = logged_in.post(f"/admin/orgs/{ORG_A}/test", data={"csrf": csrf(page), "credential": secret,
                                                          "lookup": "nobody@acme.example"})
    body = text(r)
    assert r.status_code == 200, body
    assert "GET /realms/r1/scim/v2/organizations/org-a/ServiceProviderConfig" in body
    assert "SCIM 2.0 service provider: PATCH yes" in body
    assert 'userName eq &#34;nobody@acme.example&#34;' in body and "totalResults 0" in body
    assert secret not in body and secret not in caplog.text  # never shown or logged
    wrong = logged_in.post(f"/admin/orgs/{ORG_A}/test",
                           data={"csrf": csrf(page), "credential": template.secrets[ORG_B]})
    assert wrong.status_code == 400 and "HTTP 401" in text(wrong) and "belongs to this organization" in text(wrong)
    assert template.secrets[ORG_B] not in text(wrong)
    kinds = [r["kind"] for r in services.db.all("SELECT kind FROM events WHERE kind LIKE 'config.%' ORDER BY pk")]
    assert kinds == ["config.connection_tested", "config.connection_tested"]
    assert secret not in json.dumps([dict(r) for r in services.db.all("SELECT * FROM events")])
    assert logged_in.post(f"/admin/orgs/{ORG_A}/test", data={"credential": secret}).status_code == 400  # no CSRF


def test_org_page_has_idp_instructions(logged_in):
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    base = f"http://localhost{base_path(REALM, ORG_A)}"
    for slug in ("okta", "entra-id", "jumpcloud", "onelogin", "google-workspace", "generic"):
        assert f'id="guide-{slug}"' in page
    assert f"<code>{base}?aadOptscim062020</code>" in page and "SCIM connector base URL" in page
    assert "{$parameters.scimusername}" in page


def test_repair_needs_keycloak_and_csrf(logged_in):
    page = text(logged_in.get(f"/admin/orgs/{ORG_A}"))
    assert 'id="repair"' not in page  # standalone: nothing to compare with
    assert logged_in.post(f"/admin/orgs/{ORG_A}/repair", data={"csrf": csrf(page)}).status_code == 409
    assert logged_in.post(f"/admin/orgs/{ORG_A}/repair").status_code == 400
