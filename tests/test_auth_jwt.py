"""``EXTERNAL_JWT`` against a real RSA/EC key pair and a JWK Set served by a local HTTP server (DESIGN §5).

Every rejected token differs from an accepted one in exactly the property under test, so each test fails if
that one check is dropped. Each test gets a fresh app (fresh throttle and JWKS cache).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import REALM, base_path
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt

from orgscim.jwks import JwksCache, JwksError, UrlPolicy, fetch
from orgscim.services import ConfigError

LOCAL = UrlPolicy(allow_loopback=True)  # the IdP of these tests is a loopback server

ISSUER = "https://idp.example.test/tenant-1/v2.0"
AUDIENCE = "api://orgscim-acme"
TENANT = "11111111-2222-3333-4444-555555555555"
ORG = "org-jwt"


class KeyPair:
    """A private key, its kid and its public JWK."""

    def __init__(self, kid: str, kind: str = "RSA", bits: int = 2048, curve: ec.EllipticCurve | None = None) -> None:
        self.kid = kid
        self.alg = "RS256" if kind == "RSA" else "ES256"
        self.private = (rsa.generate_private_key(public_exponent=65537, key_size=bits) if kind == "RSA"
                        else ec.generate_private_key(curve or ec.SECP256R1()))
        self.pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.jwk = {**jwk.construct(self.public_pem, self.alg).to_dict(), "kid": kid, "use": "sig"}
        if curve is not None:  # publish the key without an alg member: only its curve tells what it is for
            self.jwk.pop("alg")
            self.jwk["crv"] = {"secp384r1": "P-384", "secp521r1": "P-521"}[curve.name]

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.pem, algorithm=self.alg, headers={"kid": self.kid, **header})


class JwksServer:
    """A JWK Set on http://127.0.0.1:<free port>/jwks; ``keys`` can change at any time; counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.body: bytes | None = None  # raw override
        self.delay_per_chunk = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/jwks")
                    self.end_headers()
                    return
                server.fetches += 1
                body = server.body if server.body is not None else json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if not server.delay_per_chunk:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.delay_per_chunk:
                    for i in range(0, len(body), 8):
                        self.wfile.write(body[i:i + 8])
                        self.wfile.flush()
                        time.sleep(server.delay_per_chunk)
                else:
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def rsa_key() -> KeyPair:
    return KeyPair("rsa-1")


@pytest.fixture(scope="module")
def other_key() -> KeyPair:
    return KeyPair("rsa-2")


@pytest.fixture
def idp(rsa_key: KeyPair) -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys = [rsa_key.jwk]
    yield server
    server.close()


@pytest.fixture
def jwt_config(idp: JwksServer) -> dict[str, Any]:
    return {"issuer": ISSUER, "jwks_uri": idp.uri, "audience": AUDIENCE, "required_claims": {"tid": TENANT}}


@pytest.fixture
def jwt_org(services, jwt_config):
    return services.configure_org(REALM, ORG, "EXTERNAL_JWT", jwt_config)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"iss": ISSUER, "aud": AUDIENCE, "sub": "okta-provisioning", "tid": TENANT, "iat": now - 10,
           "nbf": now - 10, "exp": now + 600}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def call(client, token: str, org: str = ORG):
    return client.get(f"{base_path(REALM, org)}/Users", headers={"Authorization": f"Bearer {token}"})


def assert_401(resp) -> None:
    assert resp.status_code == 401, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401",
                    "detail": "missing or invalid credentials for this SCIM endpoint"}
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="orgscim"'


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def audit_reasons(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "orgscim.audit"]


# -- accepted ------------------------------------------------------------------------------------------------
def test_valid_token_passes_and_spc_describes_the_mode(client, jwt_org, rsa_key):
    resp = call(client, rsa_key.sign(claims()))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    spc = client.get(f"{base_path(REALM, ORG)}/ServiceProviderConfig",
                     headers={"Authorization": f"Bearer {rsa_key.sign(claims())}"}).get_json()
    (scheme,) = spc["authenticationSchemes"]
    assert scheme["type"] == "oauthbearertoken" and "JWT" in scheme["name"]


def test_aud_as_a_list_and_leeway_are_accepted(client, jwt_org, rsa_key):
    now = int(time.time())
    token = rsa_key.sign(claims(aud=["other", AUDIENCE], exp=now - 5, nbf=now + 5))  # within the 30 s leeway
    assert call(client, token).status_code == 200


def test_ec_keys_work_and_must_fit_the_algorithm(client, services, idp, rsa_key):
    ec_key = KeyPair("ec-1", "EC")
    idp.keys = [rsa_key.jwk, ec_key.jwk]
    services.configure_org(REALM, ORG, "EXTERNAL_JWT", {"issuer": ISSUER, "jwks_uri": idp.uri, "audience": AUDIENCE,
                                                        "algorithms": ["RS256", "ES256"]})
    assert call(client, ec_key.sign(claims())).status_code == 200
    # the RSA key's kid with an ES256 signature: the key does not fit the algorithm
    forged = ec_key.sign(claims(), kid=rsa_key.kid)
    assert_401(call(client, forged))


@pytest.mark.parametrize("weak", ["rsa-1024", "es256-on-p384"])
def test_keys_that_do_not_fit_the_algorithm_are_401(client, services, idp, rsa_key, weak):
    bad = KeyPair(weak, "RSA", bits=1024) if weak == "rsa-1024" else KeyPair(weak, "EC", curve=ec.SECP384R1())
    idp.keys = [rsa_key.jwk, bad.jwk]
    services.configure_org(REALM, ORG, "EXTERNAL_JWT", {"issuer": ISSUER, "jwks_uri": idp.uri, "audience": AUDIENCE,
                                                        "algorithms": ["RS256", "ES256"]})
    assert call(client, rsa_key.sign(claims())).status_code == 200
    assert_401(call(client, bad.sign(claims())))  # RFC 7518 §3.3: RSA >= 2048 bits; §3.4: ES256 is P-256


# -- rejected ------------------------------------------------------------------------------------------------
# built when the test runs: timestamps taken at import are stale when a long suite reaches these tests
BAD_CLAIMS: dict[str, Callable[[], dict[str, Any]]] = {
    "expired": lambda: dict(exp=int(time.time()) - 120),
    "not-yet-valid": lambda: dict(nbf=int(time.time()) + 600),
    "issued-in-the-future": lambda: dict(iat=int(time.time()) + 600),
    "no-exp": lambda: dict(exp=None),
    "exp-as-string": lambda: dict(exp=str(int(time.time()) + 600)),
    "wrong-issuer": lambda: dict(iss="https://idp.example.test/tenant-2/v2.0"),
    "issuer-prefix": lambda: dict(iss=ISSUER + "/"),
    "wrong-audience": lambda: dict(aud="api://orgscim-globex"),
    "no-audience": lambda: dict(aud=None),
    "missing-required-claim": lambda: dict(tid=None),
    "wrong-required-claim": lambda: dict(tid="99999999-2222-3333-4444-555555555555"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLAIMS))
def test_bad_claims_are_401(client, jwt_org, rsa_key, caplog, case):
    caplog.set_level("INFO", "orgscim.audit")
    assert call(client, rsa_key.sign(claims())).status_code == 200  # the same token without the defect passes
    assert_401(call(client, rsa_key.sign(claims(**BAD_CLAIMS[case]()))))
    assert any("auth failure" in m for m in audit_reasons(caplog))


def test_unknown_kid_is_401_and_refetched_at_most_once_a_minute(client, services, jwt_org, idp, other_key):
    ctx = services.auth_ctx
    clock = [1000.0]
    ctx.jwks.clock = lambda: clock[0]
    stranger = other_key.sign(claims())  # kid rsa-2: not published
    assert_401(call(client, stranger))
    fetches = idp.fetches
    for _ in range(3):
        assert_401(call(client, stranger))
    assert idp.fetches == fetches  # no re-fetch within the minute
    clock[0] += 61
    assert_401(call(client, stranger))
    assert idp.fetches == fetches + 1


def test_idp_key_rotation_works_without_restart(client, jwt_org, idp, rsa_key, other_key):
    assert call(client, rsa_key.sign(claims())).status_code == 200
    fetches = idp.fetches
    idp.keys = [other_key.jwk]  # the IdP rolls over to a new kid
    assert call(client, other_key.sign(claims())).status_code == 200
    assert idp.fetches == fetches + 1
    assert call(client, other_key.sign(claims())).status_code == 200
    assert idp.fetches == fetches + 1  # cached again
    assert_401(call(client, rsa_key.sign(claims())))  # the retired key is gone from the set


def test_alg_none_is_401(client, jwt_org, rsa_key):
    unsigned = f"{b64({'alg': 'none', 'kid': rsa_key.kid, 'typ': 'JWT'})}.{b64(claims())}."
    assert_401(call(client, unsigned))
    assert_401(call(client, unsigned + "x"))


@pytest.mark.parametrize("secret", ["pem", "jwk-json", "n"])
def test_hs256_keyed_with_the_public_key_is_401(client, jwt_org, rsa_key, secret):
    key = {"pem": rsa_key.public_pem, "jwk-json": json.dumps(rsa_key.jwk).encode(),
           "n": rsa_key.jwk["n"].encode()}[secret]
    signing_input = f"{b64({'alg': 'HS256', 'kid': rsa_key.kid, 'typ': 'JWT'})}.{b64(claims())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    assert_401(call(client, f"{signing_input}.{b64(sig)}"))


def test_tampered_signature_or_payload_is_401(client, jwt_org, rsa_key):
    token = rsa_key.sign(claims())
    head, payload, sig = token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert_401(call(client, f"{head}.{payload}.{flipped}"))
    other_payload = b64(claims(sub="someone-else"))
    assert_401(call(client, f"{head}.{other_payload}.{sig}"))
    assert call(client, token).status_code == 200


def test_signed_by_another_key_under_the_known_kid_is_401(client, jwt_org, rsa_key, other_key):
    forged = other_key.sign(claims(), kid=rsa_key.kid)
    assert_401(call(client, forged))


def test_crit_header_and_missing_kid_are_401(client, jwt_org, rsa_key):
    assert_401(call(client, rsa_key.sign(claims(), crit=["exp"])))
    no_kid = jwt.encode(claims(), rsa_key.pem, algorithm="RS256")
    assert_401(call(client, no_kid))


def test_a_valid_token_for_one_org_is_401_on_another(client, services, jwt_org, idp, rsa_key):
    services.configure_org(REALM, "org-jwt-2", "EXTERNAL_JWT", {"issuer": ISSUER, "jwks_uri": idp.uri,
                                                                "audience": "api://orgscim-globex"})
    token = rsa_key.sign(claims())
    assert call(client, token).status_code == 200
    assert_401(call(client, token, "org-jwt-2"))


def test_jwks_unreachable_at_request_time_is_401_not_500(client, jwt_org, idp, rsa_key, services):
    ctx = services.auth_ctx
    ctx.jwks = JwksCache(policy=LOCAL)  # cold cache, as in a freshly started worker
    idp.close()
    assert_401(call(client, rsa_key.sign(claims())))


# -- configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"algorithms": ["none"]}, "refused"),
    ({"algorithms": ["RS256", "HS256"]}, "refused"),
    ({"algorithms": "PS999"}, "unknown algorithm"),
    ({"issuer": ""}, "issuer"),
    ({"audience": []}, "audience"),
    ({"jwks_uri": "http://idp.example.test/keys"}, "https"),
    ({"jwks_uri": "https://user:pw@idp.example.test/keys"}, "credentials"),
    ({"leeway": 3600}, "leeway"),
    ({"required_claims": ["tid"]}, "required_claims"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_config_is_refused_when_set(services, jwt_config, change, message):
    with pytest.raises(ConfigError, match=message):
        services.configure_org(REALM, ORG, "EXTERNAL_JWT", {**jwt_config, **change})
    assert services.orgs.org(REALM, ORG) is None


def test_missing_audience_and_unusable_jwks_are_refused(services, idp, jwt_config):
    with pytest.raises(ConfigError, match="audience"):
        services.configure_org(REALM, ORG, "EXTERNAL_JWT", {"issuer": ISSUER, "jwks_uri": idp.uri})
    with pytest.raises(ConfigError, match="no signature key"):
        services.configure_org(REALM, ORG, "EXTERNAL_JWT", {**jwt_config, "algorithms": ["ES256"]})
    idp.body = b"<html>not json</html>"
    with pytest.raises(ConfigError, match="jwks_uri"):
        services.configure_org(REALM, ORG, "EXTERNAL_JWT", jwt_config)


def test_config_from_the_cli_forms(runner, idp):
    runner.invoke("realm", "enable", REALM)
    result = runner.invoke("org", "configure", REALM, ORG, "--auth-mode", "EXTERNAL_JWT", "--set", f"issuer={ISSUER}",
                           "--set", f"jwks_uri={idp.uri}", "--set", f"audience={AUDIENCE}",
                           "--set", "algorithms=RS256,ES256", "--set", f'required_claims={{"tid": "{TENANT}"}}',
                           "--set", "leeway=60", "--json")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.stdout)["authConfig"]
    assert cfg == {"issuer": ISSUER, "jwks_uri": idp.uri, "audience": [AUDIENCE], "algorithms": ["RS256", "ES256"],
                   "required_claims": {"tid": TENANT}, "leeway": 60}


# -- JWKS fetch bounds ---------------------------------------------------------------------------------------
def test_fetch_is_bounded_in_size(idp):
    idp.body = json.dumps({"keys": [], "pad": "x" * 300_000}).encode()
    with pytest.raises(JwksError, match="larger"):
        fetch(idp.uri, max_bytes=256 * 1024, policy=LOCAL)


def test_fetch_is_bounded_in_time(idp, rsa_key):
    idp.delay_per_chunk = 0.05  # drips 8 bytes every 50 ms: each read is quick, the whole is not
    start = time.monotonic()
    with pytest.raises(JwksError, match="within"):
        fetch(idp.uri, timeout=0.5, policy=LOCAL)
    assert time.monotonic() - start < 2


def test_fetch_does_not_follow_redirects_and_keeps_only_public_signature_keys(idp, rsa_key):
    with pytest.raises(JwksError, match="302"):
        fetch(idp.uri.replace("/jwks", "/redirect"), policy=LOCAL)
    private = {**rsa_key.jwk, "kid": "leaked", "d": "AAAA"}
    idp.keys = [rsa_key.jwk, private, {**rsa_key.jwk, "kid": "enc", "use": "enc"},
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, {k: v for k, v in rsa_key.jwk.items() if k != "kid"}]
    assert list(fetch(idp.uri, policy=LOCAL)) == [rsa_key.kid]


def test_failed_refresh_keeps_the_last_good_keys_until_max_stale(idp, rsa_key):
    clock = [0.0]
    cache = JwksCache(ttl=10, min_interval=60, max_stale=100, clock=lambda: clock[0], policy=LOCAL)
    assert cache.key(1, idp.uri, rsa_key.kid, "RS256") is not None
    idp.body = b"broken"
    clock[0] = 61
    assert cache.key(1, idp.uri, rsa_key.kid, "RS256") is not None  # refresh failed: stale keys still serve
    assert "not JSON" in cache.status(idp.uri)["error"]
    clock[0] = 200
    assert cache.key(1, idp.uri, rsa_key.kid, "RS256") is None  # past max_stale: dropped


# -- KEYCLOAK mode's own rules, with the local server standing in for the realm's certs endpoint ---------------
@pytest.fixture
def kc_org(services, idp):
    base = idp.uri.rsplit("/", 1)[0]
    services.auth_ctx.config["KEYCLOAK_URL"] = base  # the plugin's view only: no Keycloak admin calls here
    services.configure_org(REALM, "org-kc", "KEYCLOAK", {"allowed_clients": "okta-scim,entra-scim"})
    return f"{base}/realms/{REALM}"


@pytest.mark.parametrize("extra, status", [
    ({"azp": "okta-scim"}, 200),
    ({"client_id": "entra-scim"}, 200),
    ({"azp": "okta-scim", "client_id": "okta-scim"}, 200),
    ({"azp": "another-client"}, 401),
    ({}, 401),
    ({"azp": "okta-scim", "client_id": "another-client"}, 401),
    ({"azp": "okta-scim", "typ": "ID"}, 401),
    ({"azp": "okta-scim", "typ": "Refresh"}, 401),
])
def test_keycloak_mode_needs_an_access_token_of_an_allowed_client(client, kc_org, rsa_key, extra, status):
    token = rsa_key.sign({**claims(iss=kc_org, aud="realm-management", tid=None), "typ": "Bearer", **extra})
    assert call(client, token, "org-kc").status_code == status


def test_keycloak_mode_checks_the_realm_issuer(client, kc_org, rsa_key):
    other_realm = kc_org.rsplit("/", 1)[0] + "/other-realm"
    token = rsa_key.sign({**claims(iss=other_realm, tid=None), "typ": "Bearer", "azp": "okta-scim"})
    assert_401(call(client, token, "org-kc"))


def test_keycloak_mode_needs_keycloak_url(services):
    with pytest.raises(ConfigError, match="KEYCLOAK_URL"):
        services.configure_org(REALM, "org-kc", "KEYCLOAK", {"allowed_clients": ["okta-scim"]})


# -- the worker's refresh (issue #5) -------------------------------------------------------------------------
def test_worker_refresh_reaches_web_processes_and_keeps_last_good_keys(app, services, idp, rsa_key, other_key,
                                                                      jwt_config, runner):
    """The worker fetches the sets into SQLite; a web process (its own cache) picks a rotated key up from there
    without fetching; a failing set keeps the last good keys and is reported."""
    from orgscim.services import Services
    from orgscim.worker import Worker

    services.configure_org(REALM, ORG, "EXTERNAL_JWT", jwt_config)
    worker = Worker(Services(services.db, dict(app.config)))  # another process: its own caches
    client = app.test_client()
    assert call(client, rsa_key.sign(claims())).status_code == 200

    idp.keys = [other_key.jwk]  # the IdP rotates its signing key
    job = next(j for j in worker.jobs if j.name == "jwks")
    assert worker.run_once(job) and worker.runs["jwks"] == 1
    fetched = idp.fetches
    assert call(client, other_key.sign(claims())).status_code == 200
    assert idp.fetches == fetched  # the web process took the worker's set from SQLite

    idp.body = b"<html>maintenance</html>"  # the IdP's JWKS endpoint breaks
    results = worker.services.refresh_jwks()
    assert results[idp.uri] != "ok" and "JSON" in results[idp.uri]
    assert call(client, other_key.sign(claims())).status_code == 200  # last good keys kept
    org_pk = services.orgs.org(REALM, ORG).pk
    kinds = [r["kind"] for r in services.db.all("SELECT kind FROM events WHERE org_pk = ?", (org_pk,))]
    assert "jwks.refresh_failed" in kinds
    out = runner.invoke("jwks", "refresh", "--json")
    assert out.exit_code == 1
    (row,) = json.loads(out.output)
    assert row["uri"] == idp.uri and row["kids"] == [other_key.kid] and row["error"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "\norgscim_jwks_refresh_failing 1.0\n" in metrics and idp.uri not in metrics  # a count, no tenant URI
    idp.body = None
    assert runner.invoke("jwks", "refresh").exit_code == 0
