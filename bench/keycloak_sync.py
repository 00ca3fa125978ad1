#!/usr/bin/env python3
"""Users/s reaching Keycloak as organization members through orgscim, against Keycloak's own admin API.

    .venv/bin/python bench/keycloak_sync.py [--users 1000] [--threads 4,16] [--warmup 300] [--fair-users 5000]
        [--count-users 100] [--throttle-users 300] [--orgs 1000] [--org-users 20] [--workers 2] [--json F]

One run starts its own Keycloak (``KeycloakDev``: quiet figures, not a shared one), a real ``orgscim serve``
(gunicorn) plus ``orgscim worker`` in front of it, and a second pair behind a small loopback proxy that counts
Keycloak calls (and, in one phase, answers 429 with ``Retry-After`` to every third call). It measures:

* **rate**: after an untimed warm-up of ``--warmup`` users through each path, N users x T client threads, the
  raw admin API (create user + add member, 2 calls) against orgscim (SCIM POST until every user is an org member,
  checked through the admin API), each twice in the order raw, orgscim, orgscim, raw so that neither side gains
  from Keycloak's JIT warming up or loses from its realm growing; each user is then checked in
  Keycloak (names, email, attributes, membership) and ``orgscim drift`` / ``orgscim outbox`` must report
  nothing;
* **calls**: Keycloak admin calls per created user and per update (a PATCH of names), through the proxy;
* **fairness**: while org A imports ``--fair-users`` users, single users created in org B: time until each is
  an org member in Keycloak (p50/p95);
* **429**: the proxy answers 429 (``Retry-After: 1``) to a third of the calls: every user lands exactly once,
  and no refused call is repeated before its ``Retry-After``;
* **many orgs**: ``--orgs`` organizations (created in Keycloak by the bench) x ``--org-users`` users each,
  SCIM POSTs spread over all orgs, against the raw rate; then one full ``orgscim reconcile`` of them, its time
  against the default reconcile interval, and its peak RSS against a reconcile of one org.

Ratios are printed against the baseline measured in the same run. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # orgscim_dev: from the repository, never installed

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.keycloak.transport import Transport
from orgscim.provision.mapping import ATTR_EXTERNAL_ID, ATTR_ID, ATTR_ORG, PROFILE_ATTRIBUTES
from orgscim_dev.kcproxy import ProxyState, make_proxy
from orgscim_dev.keycloak import KeycloakDev, ensure_distribution
from orgscim_dev.live import LiveServer
from orgscim_dev.proc import cpu_seconds, group_pids, host_busy, vm_kib

REALM = "orgscim-test"
DEFAULT_RECONCILE_INTERVAL = 3600  # WORKER_RECONCILE_SECONDS: the worker must get through every org within it
SECRET = "orgscim-dev-secret"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROOT = Path(__file__).resolve().parent.parent
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "content-length", "host"}


# -- an orgscim instance: serve (gunicorn) + worker over a temporary instance folder ------------------------------
def orgscim_at(keycloak_url: str, workers: int) -> LiveServer:
    """orgscim in front of ``keycloak_url``, its database migrated; ``start()`` it."""
    o = LiveServer(workers=workers, worker=True, keycloak_url=keycloak_url, keycloak_secret=SECRET,
                   env={"PYTHONUNBUFFERED": "1"}, settings={"KEYCLOAK_TIMEOUT": 30})
    o.cli("db", "upgrade")
    return o


# -- workloads ---------------------------------------------------------------------------------------------------
def scim_user(name: str, org_tag: str) -> dict[str, Any]:
    return {"schemas": [USER], "userName": f"{name}@{org_tag}.example", "externalId": f"ext-{name}",
            "name": {"givenName": "Bench", "familyName": name}, "active": True,
            "emails": [{"value": f"{name}@{org_tag}.example", "type": "work", "primary": True}]}


def run_threads(n: int, threads: int, fn: Callable[[Transport, int], None]) -> float:
    """Run ``fn(client, i)`` for i in range(n) on ``threads`` threads; seconds taken.

    ``client`` is the HTTP client the raw side uses through :class:`KeycloakAdmin` (libcurl, one connection per
    thread): both sides pay the same client CPU per request on the host they share with Keycloak and orgscim.
    """
    client = Transport(pool_size=threads)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            fn(client, i)
        except BaseException as e:  # noqa: BLE001 - counted and reported
            errors.append(e)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]!r}")
    return time.perf_counter() - t0


def new_org(admin: KeycloakAdmin, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]}), name


def wait_members(admin: KeycloakAdmin, org_id: str, n: int, timeout: float = 600) -> float:
    """Poll until the org has ``n`` members; the monotonic time it happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.count_members(org_id) >= n:
            return time.monotonic()
        time.sleep(0.2)
    raise RuntimeError(f"org {org_id}: {admin.count_members(org_id)} of {n} members after {timeout}s")


def check_users(admin: KeycloakAdmin, org_id: str, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Every SCIM user exactly once among the org's members with the right fields; problems as text."""
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for m in admin.iter_members(org_id, brief=False, page_size=500):
        attrs = m.get("attributes") or {}
        sid = (attrs.get(ATTR_ID) or [None])[0]
        seen[sid] += 1
        want = expected.get(sid)
        if want is None:
            problems.append(f"unexpected member {m.get('username')}")
            continue
        got = (m.get("username"), m.get("email"), m.get("firstName"), m.get("lastName"), m.get("enabled"),
               attrs.get(ATTR_ORG), attrs.get(ATTR_EXTERNAL_ID))
        exp = (want["userName"].lower(), want["emails"][0]["value"].lower(), want["name"]["givenName"],
               want["name"]["familyName"], True, [org_id], [want["externalId"]])
        if got != exp:
            problems.append(f"{sid}: {got} != {exp}")
    problems += [f"{sid}: {n} Keycloak users" for sid, n in seen.items() if n > 1]
    problems += [f"{sid}: missing" for sid in expected if sid not in seen]
    return problems


def clean_after(o: LiveServer) -> list[str]:
    """``orgscim drift`` and ``orgscim outbox`` must report nothing (waits briefly for the worker)."""
    problems = []
    deadline = time.monotonic() + 60
    rc, out = o.cli_json("outbox")
    while rc != 0 and time.monotonic() < deadline:
        time.sleep(1)
        rc, out = o.cli_json("outbox")
    if rc != 0 or out:
        problems.append(f"outbox not empty: {str(out)[:300]}")
    rc, out = o.cli_json("drift")
    if rc != 0 or out:
        problems.append(f"drift: {str(out)[:300]}")
    return problems


def raw_import(admin: KeycloakAdmin, org_id: str, tag: str, n: int, threads: int) -> float:
    """The same users straight through the admin API: the representation orgscim sends (names, email, enabled,
    its three attributes), then the membership; seconds taken."""
    def one(_s: Transport, i: int) -> None:
        body = scim_user(f"raw{tag}{i:05d}", tag)
        kc_id = admin.create_user({"username": body["userName"], "email": body["emails"][0]["value"],
                                   "firstName": "Bench", "lastName": body["name"]["familyName"], "enabled": True,
                                   "attributes": {ATTR_ID: [f"raw-{tag}-{i}"], ATTR_ORG: [org_id],
                                                  ATTR_EXTERNAL_ID: [body["externalId"]]}})
        admin.add_member(org_id, kc_id)

    return run_threads(n, threads, one)


def scim_import(o: LiveServer, org_id: str, secret: str, tag: str, n: int, threads: int,
                expected: dict[str, dict[str, Any]], start: int = 0) -> None:
    url = f"{o.url}/realms/{REALM}/scim/v2/organizations/{org_id}/Users"
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"}
    lock = threading.Lock()

    def one(s: Transport, i: int) -> None:
        body = scim_user(f"u{tag}{start + i:05d}", tag)
        r = s.post(url, json=body, headers=headers, timeout=60)
        if r.status_code != 201:
            raise RuntimeError(f"POST {r.status_code}: {r.text[:200]}")
        with lock:
            expected[r.json()["id"]] = body

    run_threads(n, threads, one)


@contextmanager
def phase(title: str, out: dict[str, Any], save: str | None) -> Iterator[None]:
    """Announce a phase; afterwards write what is known so far (a long run keeps its figures if it stops)."""
    print(f"-- {title}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"   ({time.perf_counter() - t0:.0f}s) {json.dumps(out)[-400:]}", file=sys.stderr, flush=True)
    if save:
        Path(save).write_text(json.dumps(out, indent=2))


class CpuMeter:
    """CPU seconds used by Keycloak, orgscim (serve + worker) and this bench's client threads, and how busy the
    host was, summed over the runs each side makes inside :meth:`measure`: where each user's CPU went, on a host
    they all share."""

    def __init__(self, keycloak_group: int, servers: list[LiveServer]) -> None:
        self.keycloak_group, self.servers = keycloak_group, servers
        self.totals: Counter[str] = Counter()

    def sample(self) -> dict[str, float]:
        t = os.times()
        busy, total = host_busy()
        return {"keycloak": cpu_seconds(group_pids([self.keycloak_group])),
                "orgscim": cpu_seconds([p for o in self.servers for p in o.group_pids()]),
                "client": t.user + t.system, "host_busy": busy, "host_total": total}

    @contextmanager
    def measure(self, side: str) -> Iterator[None]:
        before = self.sample()
        yield
        after = self.sample()
        for k in before:
            self.totals[f"{side}_{k}"] += after[k] - before[k]

    def per_user(self, side: str, users: int) -> dict[str, float]:
        """ms of CPU per user of each part, and the host's busy share during ``side``'s runs."""
        t = self.totals
        out = {k: round(1000 * t[f"{side}_{k}"] / users, 2) for k in ("keycloak", "orgscim", "client")}
        out["host_busy"] = round(t[f"{side}_host_busy"] / max(1e-9, t[f"{side}_host_total"]), 2)
        return out


# -- phases ------------------------------------------------------------------------------------------------------
def bench_rate(admin: KeycloakAdmin, o: LiveServer, n: int, threads: int, out: dict[str, Any],
               keycloak_group: int) -> list[str]:
    """Raw admin API and orgscim, each twice in the order raw, orgscim, orgscim, raw (ABBA): Keycloak gets
    faster as its JIT warms and slower as its realm grows, and either drift would otherwise favour one side."""
    problems: list[str] = []
    raw_runs: list[float] = []
    scim_runs: list[float] = []
    acked: list[float] = []
    meter = CpuMeter(keycloak_group, [o])
    for side in ("raw", "scim", "scim", "raw"):
        if side == "raw":
            raw_org, raw_name = new_org(admin, "raw")
            with meter.measure(side):
                raw_runs.append(raw_import(admin, raw_org, raw_name, n, threads))
            continue
        org_id, name = new_org(admin, "scim")
        secret = o.configure(REALM, org_id).secret
        expected: dict[str, dict[str, Any]] = {}
        with meter.measure(side):
            t0 = time.monotonic()
            scim_import(o, org_id, secret, name, n, threads, expected)
            acked.append(time.monotonic() - t0)
            scim_runs.append(wait_members(admin, org_id, n) - t0)
        problems += check_users(admin, org_id, expected) + clean_after(o)
    raw_s, scim_s = sum(raw_runs), sum(scim_runs)
    out[f"rate_T{threads}"] = {"users": n, "threads": threads, "runs": 2,
                               "raw_users_per_s": round(2 * n / raw_s, 1),
                               "orgscim_users_per_s": round(2 * n / scim_s, 1),
                               "raw_runs_s": [round(x, 2) for x in raw_runs],
                               "orgscim_runs_s": [round(x, 2) for x in scim_runs],
                               "acknowledged_s": round(max(acked), 2), "ratio": round(raw_s / scim_s, 2),
                               "cpu_ms_per_user": {"raw": meter.per_user("raw", 2 * n),
                                                   "orgscim": meter.per_user("scim", 2 * n)},
                               "problems": len(problems)}
    return problems


def warm_up(admin: KeycloakAdmin, o: LiveServer, n: int, threads: int) -> None:
    """Untimed: ``n`` users through each path, so that no measured phase pays for Keycloak's JIT warming up."""
    raw_org, raw_name = new_org(admin, "warm-raw")
    raw_import(admin, raw_org, raw_name, n, threads)
    org_id, name = new_org(admin, "warm-scim")
    scim_import(o, org_id, o.configure(REALM, org_id).secret, name, n, threads, {})
    wait_members(admin, org_id, n)


def bench_calls(admin: KeycloakAdmin, o: LiveServer, proxy: ProxyState, n: int, out: dict[str, Any]) -> list[str]:
    org_id, name = new_org(admin, "calls")
    secret = o.configure(REALM, org_id).secret
    expected: dict[str, dict[str, Any]] = {}
    scim_import(o, org_id, secret, name, 5, 1, expected)  # warm caches (token, profile) outside the count
    wait_members(admin, org_id, 5)
    proxy.reset()
    scim_import(o, org_id, secret, name, n, 4, expected, start=5)
    wait_members(admin, org_id, n + 5)
    create_calls = sum(v for k, v in proxy.counts.items() if k != "token")
    create_detail = dict(proxy.counts)
    proxy.reset()
    base = f"{o.url}/realms/{REALM}/scim/v2/organizations/{org_id}/Users"
    headers = {"Authorization": f"Bearer {secret}"}
    ids = list(expected)[5:]

    def patch(s: Transport, i: int) -> None:
        ops = [{"op": "replace", "path": "name.givenName", "value": "Renamed"},
               {"op": "replace", "path": "name.familyName", "value": f"Person{i}"}]
        r = s.request("PATCH", f"{base}/{ids[i]}", headers=headers, timeout=60,
                      json={"schemas": [PATCH], "Operations": ops})
        if r.status_code != 200:
            raise RuntimeError(f"PATCH {r.status_code}: {r.text[:200]}")
        expected[ids[i]]["name"] = {"givenName": "Renamed", "familyName": f"Person{i}"}

    run_threads(len(ids), 4, patch)
    problems = clean_after(o)
    update_calls = sum(v for k, v in proxy.counts.items() if k != "token")
    problems += check_users(admin, org_id, expected)
    out["calls"] = {"users": n, "per_create": round(create_calls / n, 2), "per_update": round(update_calls / n, 2),
                    "create_calls": create_detail, "update_calls": dict(proxy.counts)}
    if create_calls / n > 3:
        problems.append(f"{create_calls / n:.2f} Keycloak calls per created user (> 3)")
    if update_calls / n > 2:
        problems.append(f"{update_calls / n:.2f} Keycloak calls per update (> 2)")
    return problems


def bench_fair(admin: KeycloakAdmin, o: LiveServer, n: int, threads: int, out: dict[str, Any]) -> list[str]:
    a_id, a_name = new_org(admin, "fair-a")
    b_id, b_name = new_org(admin, "fair-b")
    a_secret, b_secret = o.configure(REALM, a_id).secret, o.configure(REALM, b_id).secret
    expected_a: dict[str, dict[str, Any]] = {}
    expected_b: dict[str, dict[str, Any]] = {}
    done = threading.Event()
    latencies: list[float] = []

    def org_b() -> None:
        url = f"{o.url}/realms/{REALM}/scim/v2/organizations/{b_id}/Users"
        s = Transport(pool_size=1)
        i = 0
        time.sleep(2)  # let A's import get going
        while not done.is_set():
            body = scim_user(f"b{b_name}{i:04d}", b_name)
            t0 = time.monotonic()
            r = s.post(url, json=body, headers={"Authorization": f"Bearer {b_secret}"}, timeout=60)
            expected_b[r.json()["id"]] = body
            while not admin.list_members(b_id, search=body["userName"], exact=True, max=1):
                time.sleep(0.05)
            latencies.append(time.monotonic() - t0)
            i += 1
            time.sleep(0.5)

    bt = threading.Thread(target=org_b)
    bt.start()
    t0 = time.monotonic()
    try:
        scim_import(o, a_id, a_secret, a_name, n, threads, expected_a)
        wait_members(admin, a_id, n)
    finally:
        done.set()
        bt.join()
    elapsed = time.monotonic() - t0
    lat = sorted(latencies)
    p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)] if lat else float("inf")
    out["fairness"] = {"org_a_users": n, "threads": threads, "org_a_s": round(elapsed, 1), "org_b_samples": len(lat),
                       "org_b_p50_s": round(statistics.median(lat), 2) if lat else None, "org_b_p95_s": round(p95, 2)}
    problems = check_users(admin, b_id, expected_b) + clean_after(o)
    if p95 > 5:
        problems.append(f"org B p95 {p95:.2f}s > 5s")
    return problems


def bench_throttled(admin: KeycloakAdmin, o: LiveServer, proxy: ProxyState, n: int, out: dict[str, Any]) -> list[str]:
    org_id, name = new_org(admin, "throttled")
    secret = o.configure(REALM, org_id).secret
    expected: dict[str, dict[str, Any]] = {}
    proxy.reset()
    proxy.throttle_every = 3
    try:
        t0 = time.monotonic()
        scim_import(o, org_id, secret, name, n, 4, expected)
        took = wait_members(admin, org_id, n, timeout=900) - t0
        problems = clean_after(o)
    finally:
        proxy.throttle_every = 0
    problems += check_users(admin, org_id, expected)
    created = sum(proxy.created.values())  # users Keycloak created: by POST /users or in a partial import
    twice = sorted(u for u, k in proxy.created.items() if k > 1)
    added = proxy.statuses.get("POST /admin/realms/orgscim-test/organizations/{id}/members 201", 0) + \
        proxy.statuses.get("POST /admin/realms/orgscim-test/organizations/{id}/members 204", 0)
    out["throttled"] = {"users": n, "answered_429": proxy.throttled, "repeated_before_retry_after": proxy.early,
                        "early_calls": proxy.early_calls[:10],
                        "users_created": created, "members_added": added, "seconds": round(took, 1),
                        "problems": len(problems)}
    if created != n or twice:
        problems.append(f"{created} users created for {n} SCIM users; created more than once: {twice[:5]}")
    if proxy.early:
        problems.append(f"{proxy.early} calls repeated before Retry-After")
    return problems


def bench_many_orgs(admin: KeycloakAdmin, o: LiveServer, orgs: int, per_org: int, threads: int,
                    raw_rate: float, out: dict[str, Any]) -> list[str]:
    def make(i: int) -> tuple[str, str, str]:
        org_id, name = new_org(admin, f"many{i:04d}")
        return org_id, name, o.configure(REALM, org_id).secret

    with ThreadPoolExecutor(threads) as pool:
        created = list(pool.map(make, range(orgs)))
    expected: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    jobs = [(org, j) for j in range(per_org) for org in created]  # interleaved, as many IdPs would send

    def one(s: Transport, i: int) -> None:
        (org_id, name, secret), j = jobs[i]
        body = scim_user(f"m{name}{j:03d}", name)
        r = s.post(f"{o.url}/realms/{REALM}/scim/v2/organizations/{org_id}/Users", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {secret}"})
        if r.status_code != 201:
            raise RuntimeError(f"POST {r.status_code}: {r.text[:200]}")
        with lock:
            expected[r.json()["id"]] = body

    t0 = time.monotonic()
    run_threads(len(jobs), threads, one)
    for org_id, _, _ in created:
        wait_members(admin, org_id, per_org)
    took = time.monotonic() - t0
    problems = clean_after(o)
    rate = len(jobs) / took
    # then one full reconcile of all of them (`orgscim reconcile`, as an operator runs it), against the interval
    # in which the worker must get through every org; its peak RSS against a reconcile of one of these orgs
    one_s, one_kib, rc, text = run_peak_rss([o.orgscim, "reconcile", "--org", created[0][0], "--json"], o.env)
    if rc != 0:
        problems.append(f"reconcile of one org exited {rc}: {text[-300:]!r}")
    reconcile_s, peak_kib, rc, text = run_peak_rss([o.orgscim, "reconcile", "--json"], o.env)
    if rc != 0:
        problems.append(f"reconcile of {orgs} orgs exited {rc}: {text[-300:]!r}")
    out["many_orgs"] = {"orgs": orgs, "users_per_org": per_org, "threads": threads, "seconds": round(took, 1),
                        "users_per_s": round(rate, 1), "ratio_to_raw": round(rate / raw_rate, 2),
                        "reconcile_s": round(reconcile_s, 1),
                        "reconcile_share_of_interval": round(reconcile_s / DEFAULT_RECONCILE_INTERVAL, 3),
                        "reconcile_peak_rss_mib": round(peak_kib / 1024, 1),
                        "reconcile_one_org_s": round(one_s, 1),
                        "reconcile_one_org_peak_rss_mib": round(one_kib / 1024, 1),
                        "reconcile_rss_ratio": round(peak_kib / max(1, one_kib), 2)}
    return problems


def run_peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run ``cmd``; (seconds, peak RSS in KiB, exit code, output). The peak is the process's own ``VmHWM``,
    read until it exits: ``ru_maxrss`` of a child starts at the parent's RSS when it forked, so it measured
    this bench, not the command."""
    peak = 0
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(cmd, env=env, stdout=output, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, vm_kib(proc.pid, "VmHWM") or 0)
            time.sleep(0.05)
        took = time.monotonic() - t0
        output.seek(0)
        return took, peak, proc.returncode, output.read().decode(errors="replace")


def pin_apart(keycloak_group: int) -> None:
    """Every thread of Keycloak's processes on CPU 0; this bench (and what it starts from now on) on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    for pid in group_pids([keycloak_group]):
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    print(f"-- pinned: Keycloak on CPU {cpus[0]}, orgscim and the clients on {cpus[1:]}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--threads", default="4,16")
    ap.add_argument("--warmup", type=int, default=300, help="untimed users through each path before measuring")
    ap.add_argument("--fair-users", type=int, default=5000)
    ap.add_argument("--fair-threads", type=int, default=8)
    ap.add_argument("--count-users", type=int, default=100)
    ap.add_argument("--throttle-users", type=int, default=300)
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--org-users", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers of orgscim serve")
    ap.add_argument("--pin", action="store_true",
                    help="Keycloak on CPU 0, orgscim and the bench's clients on the other CPUs (as when Keycloak "
                         "runs on hosts of its own); default: all share every CPU")
    ap.add_argument("--json")
    a = ap.parse_args()

    kc = KeycloakDev(ensure_distribution(), startup_timeout=600).start()  # a busy host starts it slowly
    if a.pin:
        pin_apart(kc.pid)
    out: dict[str, Any] = {"cpus": "Keycloak on CPU 0, the rest on the others" if a.pin else "shared"}
    problems: list[str] = []
    direct = proxied = None
    server = None
    try:
        admin = KeycloakAdmin(kc.base_url, REALM, "orgscim", SECRET, timeout=60, pool_size=32)
        admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
        proxy = ProxyState(kc.base_url)
        server = make_proxy(proxy)
        direct = orgscim_at(kc.base_url, a.workers)
        proxied = orgscim_at(f"http://127.0.0.1:{server.server_address[1]}", a.workers)
        direct.start(timeout=120)
        proxied.start(timeout=120)
        raw_rates = []
        threads = [int(x) for x in a.threads.split(",") if x]
        if a.warmup and threads:
            with phase(f"warm-up (untimed): {a.warmup} users through each path", out, a.json):
                warm_up(admin, direct, a.warmup, max(threads))
        for t in threads:
            with phase(f"rate: {a.users} users x {t} threads", out, a.json):
                problems += bench_rate(admin, direct, a.users, t, out, kc.pid)
                raw_rates.append(out[f"rate_T{t}"]["raw_users_per_s"])
        if a.count_users:
            with phase(f"calls per user: {a.count_users} users through the counting proxy", out, a.json):
                problems += bench_calls(admin, proxied, proxy, a.count_users, out)
        if a.fair_users:
            with phase(f"fairness: org A imports {a.fair_users}, org B creates single users", out, a.json):
                problems += bench_fair(admin, direct, a.fair_users, a.fair_threads, out)
        if a.throttle_users:
            with phase(f"429 on a third of the calls: {a.throttle_users} users", out, a.json):
                problems += bench_throttled(admin, proxied, proxy, a.throttle_users, out)
        if a.orgs:
            with phase(f"initial sync: {a.orgs} orgs x {a.org_users} users", out, a.json):
                problems += bench_many_orgs(admin, direct, a.orgs, a.org_users, max(4, max(
                    int(x) for x in a.threads.split(","))), max(raw_rates or [1.0]), out)
    finally:
        for o in (direct, proxied):
            if o is not None:
                o.stop(grace=20)
        if server is not None:
            server.shutdown()
        kc.stop()
    report(out, problems)
    if a.json:
        Path(a.json).write_text(json.dumps({**out, "problems": problems}, indent=2))
    return 1 if problems else 0


def report(out: dict[str, Any], problems: list[str]) -> None:
    print(f"\nCPUs: {out.get('cpus')}")
    for key, r in out.items():
        if key.startswith("rate_"):
            print(f"rate  N={r['users']} T={r['threads']}: raw admin API {r['raw_users_per_s']} users/s, orgscim "
                  f"{r['orgscim_users_per_s']} users/s (all acknowledged in {r['acknowledged_s']}s)  "
                  f"ratio {r['ratio']}")
            for side, c in r["cpu_ms_per_user"].items():
                print(f"  {side:8} CPU ms per user: Keycloak {c['keycloak']}, orgscim {c['orgscim']}, bench client "
                      f"{c['client']}; host busy {c['host_busy']:.0%}")
    if "calls" in out:
        c = out["calls"]
        print(f"calls per created user {c['per_create']} (raw: 2.00, ratio {c['per_create'] / 2:.2f}), "
              f"per update {c['per_update']}")
        print(f"  create: {c['create_calls']}\n  update: {c['update_calls']}")
    if "fairness" in out:
        f = out["fairness"]
        print(f"fairness: org A {f['org_a_users']} users in {f['org_a_s']}s; org B single user member after "
              f"p50 {f['org_b_p50_s']}s, p95 {f['org_b_p95_s']}s ({f['org_b_samples']} samples; limit 5s, "
              f"ratio {f['org_b_p95_s'] / 5:.2f})")
    if "throttled" in out:
        t = out["throttled"]
        print(f"429 on 1/3: {t['users']} users, {t['answered_429']} calls answered 429, "
              f"{t['repeated_before_retry_after']} repeated before Retry-After, {t['users_created']} users created, "
              f"{t['members_added']} member adds, {t['seconds']}s")
    if "many_orgs" in out:
        m = out["many_orgs"]
        print(f"initial sync {m['orgs']} orgs x {m['users_per_org']} users: {m['seconds']}s, {m['users_per_s']} "
              f"users/s, ratio to the raw admin API {m['ratio_to_raw']}")
        print(f"one full reconcile of them: {m['reconcile_s']}s = {m['reconcile_share_of_interval']} of the default "
              f"{DEFAULT_RECONCILE_INTERVAL}s interval, peak RSS {m['reconcile_peak_rss_mib']} MiB against "
              f"{m['reconcile_one_org_peak_rss_mib']} MiB for one org (ratio {m['reconcile_rss_ratio']})")
    print(f"problems: {len(problems)}")
    for p in problems[:20]:
        print(f"  {p}")


if __name__ == "__main__":
    sys.exit(main())
