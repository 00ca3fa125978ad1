"""Auth state for thousands of orgs (issue 12) and a throttle shared by workers (issue 9).

"Processes" here are separate :class:`Services` on the same database, as gunicorn workers and the CLI are; the
multi-worker test at the end runs the real ``orgscim serve --workers 3``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import DB_NAME, ORG_A, REALM, base_path
from prometheus_client.parser import text_string_to_metric_families
from test_auth_credentials import CountingHasher, bearer, get

from orgscim.services import Services
from orgscim.store.db import Database


def worker(instance: Path, **config) -> Services:
    """Another process's view of the same instance (its own caches)."""
    return Services(Database(instance / DB_NAME), {"AUTH_CACHE_SECONDS": 3600, **config})


def counting(services: Services) -> CountingHasher:
    hasher = CountingHasher(services.auth_ctx.hasher)
    services.auth_ctx.hasher = hasher
    return hasher


def check(services: Services, org_id: str, secret: str, addr: str = "127.0.0.1") -> bool:
    from orgscim.auth import AuthRequest

    org = services.orgs.org(REALM, org_id)
    mode = services.auth_mode(org.auth_mode)
    return services.auth_ctx.authenticate(mode, org, AuthRequest(bearer(secret), addr)).principal is not None


def test_a_credential_verified_by_one_process_costs_no_argon2id_in_another(instance, template):
    one, two = worker(instance), worker(instance)
    c1, c2 = counting(one), counting(two)
    secret = template.secrets[ORG_A]
    assert check(one, ORG_A, secret) and check(one, ORG_A, secret)
    assert check(two, ORG_A, secret) and check(two, ORG_A, secret)
    assert (c1.verifications, c2.verifications) == (1, 0)
    # a wrong value under the same credential id is never taken from the shared table
    assert not check(two, ORG_A, secret[:-4] + "zzzz") and c2.verifications == 1


def test_the_host_table_holds_digests_only_and_the_key_is_not_in_the_database(instance, template):
    services = worker(instance)
    secret = template.secrets[ORG_A]
    assert check(services, ORG_A, secret)
    state = services.auth_ctx.state
    rows = state.db.all("SELECT digest, cred_pk FROM verified")
    assert rows and all(len(r[0]) == 32 for r in rows)
    key_file = instance / "orgscim-auth.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    for path in (instance / DB_NAME, Path(state.db.path)):
        data = path.read_bytes()
        assert secret.encode() not in data and key_file.read_bytes() not in data


def test_revocation_and_rotation_apply_at_once_to_warm_processes(instance, template, runner):
    one, two = worker(instance), worker(instance)
    org = one.orgs.org(REALM, ORG_A)
    fresh = one.auth_mode("EXTERNAL_SECRET").issue(org)
    for w in (one, two):
        assert check(w, ORG_A, fresh.secret) and check(w, ORG_A, template.secrets[ORG_A])
    runner.invoke("org", "credential", "rotate", REALM, ORG_A, "--grace", "0")  # another process (the CLI)
    assert not check(one, ORG_A, template.secrets[ORG_A]) and not check(two, ORG_A, fresh.secret)
    newest = one.auth_mode("EXTERNAL_SECRET").issue(org)
    assert check(two, ORG_A, newest.secret)
    runner.invoke("org", "credential", "revoke", REALM, ORG_A, newest.credential.cred_id)
    assert not check(one, ORG_A, newest.secret) and not check(two, ORG_A, newest.secret)


def test_eviction_is_gradual_least_recently_used_first(instance):
    services = worker(instance, AUTH_CACHE_ENTRIES=3)
    org = services.orgs.org(REALM, ORG_A)
    issued = [services.auth_mode("EXTERNAL_SECRET").issue(org).secret for _ in range(4)]
    for secret in issued[:3]:
        assert check(services, ORG_A, secret)
    assert check(services, ORG_A, issued[0])  # used again: now the most recent
    assert check(services, ORG_A, issued[3])  # one over: only the least recently used (issued[1]) goes
    cache = services.auth_ctx.cache.entries
    assert len(cache) == 3
    kept = {services.auth_ctx.digest(org.pk, s) for s in (issued[0], issued[2], issued[3])}
    assert set(cache) == kept
    hasher = counting(services)
    assert check(services, ORG_A, issued[1]) and hasher.verifications == 0  # back from the host table


def test_expiry_slides_with_use(instance):
    services = worker(instance, AUTH_CACHE_SECONDS=100)
    org = services.orgs.org(REALM, ORG_A)
    secret = services.auth_mode("EXTERNAL_SECRET").issue(org).secret
    now = [1_000_000.0]
    services.auth_ctx.clock = lambda: now[0]
    assert check(services, ORG_A, secret)
    hasher = counting(services)
    for _ in range(5):  # used every 80 s: 400 s in all, never idle 100 s
        now[0] += 80
        assert check(services, ORG_A, secret)
    assert hasher.verifications == 0
    now[0] += 101  # idle past the limit: paid again
    assert check(services, ORG_A, secret) and hasher.verifications == 1


def test_success_path_keeps_no_per_org_or_per_address_state(client, services, template, auth_headers):
    for i in range(50):
        assert get(client, ORG_A, bearer(template.secrets[ORG_A]), addr=f"10.0.{i}.1").status_code == 200
    assert len(services.auth_ctx.throttle) == 0  # no bucket for a success
    assert not hasattr(services.auth_ctx, "_touched")
    digest = services.auth_ctx.digest(services.orgs.org(REALM, ORG_A).pk, template.secrets[ORG_A])
    assert digest in services.auth_ctx.cache.entries


def test_the_failure_throttle_is_shared_by_processes(instance, template):
    """Issue 9: each worker had its own buckets, so N workers allowed N times the burst."""
    one, two = worker(instance), worker(instance)
    c1, c2 = counting(one), counting(two)
    wrong = template.secrets[ORG_A][:-6] + "zzzzzz"
    burst = one.auth_ctx.throttle.burst
    frozen = time.time()
    for w in (one, two):
        w.auth_ctx.throttle.clock = lambda: frozen
    for i in range(burst):
        assert not check(one if i % 2 else two, ORG_A, wrong, addr="192.0.2.9")
    assert c1.verifications + c2.verifications == burst
    for w in (one, two):
        assert not check(w, ORG_A, wrong, addr="192.0.2.9")
    assert c1.verifications + c2.verifications == burst  # both refuse before hashing
    assert check(two, ORG_A, template.secrets[ORG_A], addr="192.0.2.10")


# -- several gunicorn workers -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(instance):
    port = _free_port()
    orgscim = Path(sys.executable).parent / "orgscim"
    log = open(instance / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(orgscim), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "3"],
                            env={**os.environ, "ORGSCIM_INSTANCE": str(instance),
                                 "ORGSCIM_AUTH_THROTTLE_BURST": "1000"}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("orgscim serve did not start: " + (instance / "serve.log").read_text()[-2000:])
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _statuses(url: str, secret: str, n: int = 30) -> tuple[set[int], list[int]]:
    """Statuses of ``n`` fresh connections (each may land on any worker)."""
    statuses = []
    for _ in range(n):
        r = requests.get(f"{url}{base_path(REALM, ORG_A)}/Users?count=1", headers={"Authorization": bearer(secret)},
                         timeout=30)
        statuses.append(r.status_code)
    return set(statuses), statuses


def test_rotation_and_revocation_take_effect_at_once_across_three_workers(served, runner, template):
    old = template.secrets[ORG_A]
    seen, _ = _statuses(served, old)
    assert seen == {200}  # warm in every worker that answered
    out = runner.invoke("org", "credential", "rotate", REALM, ORG_A, "--grace", "0", "--json")
    assert out.exit_code == 0, out.output
    new = json.loads(out.output)["secret"]
    assert _statuses(served, old)[0] == {401}
    assert _statuses(served, new)[0] == {200}
    cred_id = new[len("osk_"):].split(".")[0]
    assert runner.invoke("org", "credential", "revoke", REALM, ORG_A, cred_id).exit_code == 0
    assert _statuses(served, new)[0] == {401}
    metrics = requests.get(f"{served}/metrics", timeout=30).text
    argon = [line for line in metrics.splitlines() if line.startswith("orgscim_auth_argon2_verifications_total")]
    assert argon and float(argon[0].split()[-1]) <= 2 * 3  # each credential at most once per worker
    # multiprocess mode: the scrape sums every worker's counters (one worker alone saw about a third)
    answered = sum(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                   if s.name == "orgscim_http_requests_total" and s.labels["route"].endswith("/Users"))
    assert answered >= 4 * 30  # the four rounds above, whichever worker answered
