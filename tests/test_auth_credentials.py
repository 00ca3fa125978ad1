"""Issued credentials (``EXTERNAL_SECRET``, ``EXTERNAL_BASIC``): Argon2id, the verified cache, rotation with a
grace deadline, immediate revocation, throttling before any hashing, and the audit trail (DESIGN §5).

The CLI runs in-process with its own ``Services`` (its own verified cache) on the test's database, like the
``orgscim`` command next to a running server: what it writes must take effect in the app at once.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters
from conftest import ORG_A, ORG_B, REALM, base_path

from orgscim.auth import HASHER
from orgscim.model.clock import later

BASIC_ORG = "org-basic"


class CountingHasher(PasswordHasher):
    """The real hasher, counting Argon2id verifications."""

    def __init__(self, base: PasswordHasher) -> None:
        super().__init__(base.time_cost, base.memory_cost, base.parallelism, base.hash_len, base.salt_len,
                         type=base.type)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's signature
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def counting(services) -> CountingHasher:
    hasher = CountingHasher(services.auth_ctx.hasher)
    services.auth_ctx.hasher = hasher
    return hasher


def get(client, org: str, header: str | None, addr: str = "127.0.0.1"):
    headers = {"Authorization": header} if header else {}
    return client.get(f"{base_path(REALM, org)}/Users", headers=headers, environ_base={"REMOTE_ADDR": addr})


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def events(services, kind: str) -> list[dict[str, Any]]:
    rows = services.db.all("SELECT detail FROM events WHERE kind = ? ORDER BY pk", (kind,))
    return [json.loads(r[0]) for r in rows]


# -- Argon2id ---------------------------------------------------------------------------------------------
def test_hashes_are_argon2id_at_or_above_rfc9106_and_owasp(services):
    org = services.orgs.org(REALM, ORG_A)
    (cred,) = services.orgs.credentials(org.pk)
    p = extract_parameters(cred.hash)
    assert p.type.name == "ID" and p.version == 19
    assert p.memory_cost >= 65536 and p.time_cost >= 3 and p.parallelism >= 4  # RFC 9106 §4 option 2
    assert p.salt_len >= 16 and p.hash_len >= 32


def test_a_weaker_hash_is_upgraded_on_successful_use_and_a_stronger_one_is_kept(client, services):
    org = services.orgs.org(REALM, ORG_A)
    issued = services.auth_mode("EXTERNAL_SECRET").issue(org)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(issued.secret)
    services.orgs.update_credential(issued.credential.pk, hash=weak)
    assert get(client, ORG_A, bearer(issued.secret)).status_code == 200
    upgraded = services.orgs.credential(org.pk, issued.credential.cred_id).hash
    assert extract_parameters(upgraded) == extract_parameters(HASHER.hash("x"))
    strong = PasswordHasher(time_cost=4, memory_cost=65536, parallelism=4).hash(issued.secret)
    services.orgs.update_credential(issued.credential.pk, hash=strong)
    services.auth_ctx.forget()
    assert get(client, ORG_A, bearer(issued.secret)).status_code == 200
    assert services.orgs.credential(org.pk, issued.credential.cred_id).hash == strong


def test_warm_cache_skips_argon2_and_is_keyed_by_a_digest(client, services, counting):
    org = services.orgs.org(REALM, ORG_A)
    issued = services.auth_mode("EXTERNAL_SECRET").issue(org)
    for _ in range(5):
        assert get(client, ORG_A, bearer(issued.secret)).status_code == 200
    assert counting.verifications == 1
    cache = services.auth_ctx.cache.entries
    assert all(isinstance(k, bytes) and len(k) == 32 for k in cache)
    assert issued.secret.encode() not in b"".join(cache)


# -- rotation and revocation --------------------------------------------------------------------------------
def test_rotation_keeps_old_and_new_until_the_deadline_then_only_new(client, services, runner, template):
    old = template.secrets[ORG_A]
    assert get(client, ORG_A, bearer(old)).status_code == 200  # warm cache for the old secret
    rotated = json.loads(runner.invoke("org", "credential", "rotate", REALM, ORG_A, "--grace", "2h",
                                       "--json").stdout)
    new = rotated["secret"]
    (superseded,) = rotated["superseded"]
    assert superseded["status"] == "expiring" and superseded["expires"] > later(7100)
    assert superseded["expires"] < later(7300)
    assert rotated["status"] == "active" and rotated["expires"] is None
    assert get(client, ORG_A, bearer(old)).status_code == 200
    assert get(client, ORG_A, bearer(new)).status_code == 200
    # the deadline passes (moved through the stored expiry): the old secret fails even with a warm cache
    org = services.orgs.org(REALM, ORG_A)
    services.orgs.update_credential(services.orgs.credential(org.pk, superseded["id"]).pk, expires=later(-1))
    assert get(client, ORG_A, bearer(old)).status_code == 401
    assert get(client, ORG_A, bearer(new)).status_code == 200
    listed = {c["id"]: c for c in json.loads(runner.invoke("org", "credential", "list", REALM, ORG_A,
                                                           "--json").stdout)}
    assert listed[superseded["id"]]["status"] == "expired" and listed[rotated["id"]]["status"] == "active"
    assert [e["superseded"] for e in events(services, "credential.rotated")] == [[superseded["id"]]]


def test_rotation_grace_defaults_to_the_org_setting_then_24h(services, runner):
    assert "grace_hours" in services.configure_org(REALM, ORG_B, "EXTERNAL_SECRET", {"grace_hours": 1}).auth_config
    rotated = json.loads(runner.invoke("org", "credential", "rotate", REALM, ORG_B, "--json").stdout)
    assert later(3500) < rotated["superseded"][0]["expires"] < later(3700)
    rotated = json.loads(runner.invoke("org", "credential", "rotate", REALM, ORG_A, "--json").stdout)
    assert later(86300) < rotated["superseded"][0]["expires"] < later(86500)


def test_rotation_with_zero_grace_cuts_over_at_once(client, runner, template):
    old = template.secrets[ORG_A]
    assert get(client, ORG_A, bearer(old)).status_code == 200
    new = json.loads(runner.invoke("org", "credential", "rotate", REALM, ORG_A, "--grace", "0",
                                   "--json").stdout)["secret"]
    assert get(client, ORG_A, bearer(old)).status_code == 401
    assert get(client, ORG_A, bearer(new)).status_code == 200


def test_revoke_is_immediate_even_with_a_warm_cache(client, services, runner, template):
    secret = template.secrets[ORG_A]
    assert get(client, ORG_A, bearer(secret)).status_code == 200
    cred_id = secret[len("osk_"):].split(".")[0]
    revoked = json.loads(runner.invoke("org", "credential", "revoke", REALM, ORG_A, cred_id, "--json").stdout)
    assert revoked["status"] == "revoked" and revoked["revoked"]
    assert get(client, ORG_A, bearer(secret)).status_code == 401
    assert events(services, "credential.revoked") == [{"credential": cred_id}]


def test_several_credentials_per_org(client, runner, template):
    extra = json.loads(runner.invoke("org", "credential", "create", REALM, ORG_A, "--json").stdout)["secret"]
    assert get(client, ORG_A, bearer(extra)).status_code == 200
    assert get(client, ORG_A, bearer(template.secrets[ORG_A])).status_code == 200
    assert len(json.loads(runner.invoke("org", "credential", "list", REALM, ORG_A, "--json").stdout)) == 2


def test_credential_commands_refuse_modes_without_issued_credentials(services, runner):
    services.orgs.upsert_org(REALM, "org-kc", "KEYCLOAK", {"allowed_clients": ["x"]})
    result = runner.invoke("org", "credential", "rotate", REALM, "org-kc")
    assert result.exit_code != 0 and "does not use credentials issued by orgscim" in result.output


# -- EXTERNAL_BASIC -----------------------------------------------------------------------------------------
@pytest.fixture
def basic_cred(services, runner) -> dict[str, Any]:
    runner.invoke("org", "configure", REALM, BASIC_ORG, "--auth-mode", "EXTERNAL_BASIC")
    return json.loads(runner.invoke("org", "credential", "create", REALM, BASIC_ORG, "--json").stdout)


def test_basic_auth_works_and_rejects_wrong_parts(client, basic_cred, template):
    user, password = basic_cred["username"], basic_cred["secret"]
    assert basic_cred["kind"] == "basic" and user.startswith("scim-") and ":" not in user
    assert get(client, BASIC_ORG, basic(user, password)).status_code == 200
    for header in (basic(user, password[:-1] + "x"), basic(user + "x", password), basic(user.upper(), password),
                   basic("", password), bearer(password), "Basic !!notbase64", bearer(template.secrets[ORG_A])):
        resp = get(client, BASIC_ORG, header)
        assert resp.status_code == 401, header
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="orgscim", charset="UTF-8"'
        assert resp.get_json()["detail"] == "missing or invalid credentials for this SCIM endpoint"


def test_basic_credential_of_one_org_looks_wrong_on_another(client, services, runner, basic_cred):
    runner.invoke("org", "configure", REALM, "org-basic-2", "--auth-mode", "EXTERNAL_BASIC")
    other = json.loads(runner.invoke("org", "credential", "create", REALM, "org-basic-2", "--json").stdout)
    cross = get(client, BASIC_ORG, basic(other["username"], other["secret"]))
    wrong = get(client, BASIC_ORG, basic(basic_cred["username"], "wrong-password"))
    assert cross.status_code == wrong.status_code == 401
    assert cross.get_data() == wrong.get_data() and cross.headers == wrong.headers


def test_basic_rotation_and_spc(client, runner, basic_cred):
    old = basic(basic_cred["username"], basic_cred["secret"])
    rotated = json.loads(runner.invoke("org", "credential", "rotate", REALM, BASIC_ORG, "--grace", "1h",
                                       "--json").stdout)
    new = basic(rotated["username"], rotated["secret"])
    assert rotated["username"] != basic_cred["username"]
    assert get(client, BASIC_ORG, old).status_code == 200 and get(client, BASIC_ORG, new).status_code == 200
    runner.invoke("org", "credential", "revoke", REALM, BASIC_ORG, basic_cred["id"])
    assert get(client, BASIC_ORG, old).status_code == 401 and get(client, BASIC_ORG, new).status_code == 200
    spc = client.get(f"{base_path(REALM, BASIC_ORG)}/ServiceProviderConfig", headers={"Authorization": new})
    assert [s["type"] for s in spc.get_json()["authenticationSchemes"]] == ["httpbasic"]


# -- throttling and audit -----------------------------------------------------------------------------------
def test_failures_are_throttled_before_any_hashing(client, services, template, counting, caplog):
    caplog.set_level("INFO", "orgscim.audit")
    good = template.secrets[ORG_A]
    wrong = good[:-6] + "zzzzzz"  # the right credential id: each attempt would cost one Argon2id
    burst = services.auth_ctx.throttle.burst
    frozen = services.auth_ctx.throttle.clock()
    services.auth_ctx.throttle.clock = lambda: frozen  # no refill while Argon2id runs on a busy machine
    statuses = [get(client, ORG_A, bearer(wrong)).status_code for _ in range(200)]
    assert statuses[:burst] == [401] * burst and set(statuses[burst:]) == {429}
    assert counting.verifications == burst  # 200 wrong secrets, `burst` Argon2id verifications
    throttled = get(client, ORG_A, bearer(wrong))
    body = throttled.get_json()
    assert body["status"] == "429" and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    # the lockout is per org and per address
    assert get(client, ORG_B, bearer(template.secrets[ORG_B])).status_code == 200
    assert get(client, ORG_A, bearer(wrong), addr="10.9.8.7").status_code == 401
    # audit: each failure that reached the mode, one line for the lockout, never the secret
    assert len(events(services, "auth.failure")) == burst + 1
    assert len(events(services, "auth.throttled")) == 1
    assert all(good not in r.getMessage() and wrong not in r.getMessage() for r in caplog.records)


def test_a_throttled_address_still_passes_with_a_cached_credential_but_never_hashes(client, services, template,
                                                                                     counting):
    good = template.secrets[ORG_A]
    assert get(client, ORG_A, bearer(good)).status_code == 200  # in the verified cache
    fresh = services.auth_mode("EXTERNAL_SECRET").issue(services.orgs.org(REALM, ORG_A)).secret  # not cached
    for _ in range(services.auth_ctx.throttle.burst):
        get(client, ORG_A, bearer("osk_000000000000.wrong"))
    before = counting.verifications
    assert get(client, ORG_A, bearer(good)).status_code == 200
    assert get(client, ORG_A, bearer(fresh)).status_code == 429
    assert counting.verifications == before
    clock = services.auth_ctx.throttle
    now = clock.clock()
    clock.clock = lambda: now + clock.refill_seconds * 2
    assert get(client, ORG_A, bearer(fresh)).status_code == 200


def test_requests_without_credentials_do_not_lock_out_the_client(client, template, services):
    for _ in range(3 * services.auth_ctx.throttle.burst):
        assert get(client, ORG_A, None).status_code == 401
    assert get(client, ORG_A, bearer(template.secrets[ORG_A])).status_code == 200


def test_successes_and_failures_are_audited_without_the_secret(client, template, caplog):
    caplog.set_level("INFO", "orgscim.audit")
    good = template.secrets[ORG_A]
    get(client, ORG_A, bearer(good))
    get(client, ORG_A, bearer(good + "x"))
    get(client, ORG_B, bearer(good))
    lines = [r.getMessage() for r in caplog.records if r.name == "orgscim.audit"]
    cred_id = good[len("osk_"):].split(".")[0]
    assert any(m.startswith("auth ok") and f"org={ORG_A}" in m and f"credential={cred_id}" in m for m in lines)
    assert sum(m.startswith("auth failure") for m in lines) == 2
    assert not any(good in m or good[-20:] in m for m in lines)


def test_ipv6_clients_are_throttled_per_64():
    from orgscim.throttle import client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1" and client_key("10.0.0.1") == "10.0.0.1"
