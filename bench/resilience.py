"""Resilience table (issue 9): faults under load, and what they cost.

    .venv/bin/python bench/resilience.py            # every scenario, Keycloak included (~6 min on 2 cores)
    .venv/bin/python bench/resilience.py --quick    # CI: the standalone scenarios, small sizes (~1 min)

Each scenario runs against a live ``orgscim serve`` (2 workers) in a fresh instance folder and prints one row:
requests sent, acknowledged writes (2xx), lost (acknowledged but missing afterwards, in SQLite and, with
Keycloak, in the organization's members), duplicates (a userName twice), 5xx answers that were not expected
(507 is expected while the disk is full), the p99 latency of the scenario's measured requests, and
``PRAGMA integrity_check``. The exit status is 1 when any row has a loss, a duplicate, an unexpected 5xx or
a damaged database.

Scenarios: ``worker-kill`` and ``master-kill`` (SIGKILL under write load, then a restart), ``keycloak-kill``
(SIGKILL Keycloak under load, restart it on its data, drain the outbox), ``keycloak-429`` / ``keycloak-503``
(a loopback proxy answering every 3rd admin call so), ``noisy-neighbour`` (org A sends its worst requests at
full rate while org B's p99 is compared with its idle p99), ``hostile`` (deep nesting, 10k-term filters, a
huge Bulk, invalid UTF-8, NUL bytes, random mutations), ``slow-clients`` (connections sending headers a byte
at a time while normal requests are measured), ``disk-full`` (the instance on a small tmpfs: needs root).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # orgscim_dev: from the repository, never installed

from orgscim_dev.live import LiveOrg, LiveServer, slow_clients

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
KC_REALM = "orgscim-test"
KC_CLIENT = ("orgscim", "orgscim-dev-secret")


@dataclass
class Row:
    scenario: str
    requests: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected_5xx: int = 0
    p99_ms: float = 0.0
    integrity: str = "-"
    note: str = ""

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.unexpected_5xx == 0
                and self.integrity in ("ok", "-") and not self.note.startswith("FAIL"))


@dataclass
class Load:
    """Writer threads creating users in one org until stopped; every answer is recorded."""

    org: LiveOrg
    prefix: str
    threads: int = 4
    expected_5xx: tuple[int, ...] = ()
    domain: str = "res.example"  # userNames within the org's domains (the domain policy refuses others)
    pause: float = 0.0  # seconds between one thread's writes
    acked: dict[str, str] = field(default_factory=dict)  # userName -> id
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    unexpected: int = 0
    expected: int = 0  # answers with one of expected_5xx
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self.stop.wait(self.pause):
            name = f"{self.prefix}-{n}-{i}@{self.domain}"
            i += 1
            t0 = time.perf_counter()
            try:
                r = session.post(f"{self.org.base_url}/Users", headers=self.org.headers, timeout=30,
                                 data=json.dumps({"schemas": [USER], "userName": name, "active": True}))
            except requests.RequestException:  # connection cut by a kill: not acknowledged
                with self.lock:
                    self.sent += 1
                time.sleep(0.05)
                continue
            with self.lock:
                self.sent += 1
                if r.status_code == 201:
                    self.acked[name] = r.json()["id"]
                    self.latencies.append(time.perf_counter() - t0)
                elif r.status_code in self.expected_5xx:
                    self.expected += 1
                elif r.status_code >= 500:
                    self.unexpected += 1

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(60)


def p99(samples: list[float]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def scim_users(org: LiveOrg) -> list[dict[str, Any]]:
    out, start = [], 1
    while True:
        r = requests.get(f"{org.base_url}/Users", params={"startIndex": start, "count": 1000,
                                                          "attributes": "userName"}, headers=org.headers, timeout=60)
        r.raise_for_status()
        page = r.json()
        out += page["Resources"]
        start += page["itemsPerPage"]
        if not page["itemsPerPage"] or start > page["totalResults"]:
            return out


def integrity(server: LiveServer) -> str:
    conn = sqlite3.connect(server.instance / "orgscim.sqlite3", timeout=30)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def settle(row: Row, server: LiveServer, org: LiveOrg, load: Load) -> Row:
    """Lost and duplicated acknowledged writes, integrity, counts: the row's verdict columns."""
    users = scim_users(org)
    names = [u["userName"] for u in users]
    by_name = {u["userName"]: u["id"] for u in users}
    row.requests += load.sent
    row.acknowledged += len(load.acked)
    row.lost += sum(1 for name, rid in load.acked.items() if by_name.get(name) != rid)
    row.duplicates += len(names) - len(set(names))
    row.unexpected_5xx += load.unexpected
    row.p99_ms = round(p99(load.latencies), 1)
    row.integrity = integrity(server)
    if not load.acked:
        row.note = "FAIL: no write was acknowledged " + row.note
    return row


def fresh(root: Path, name: str, env: dict[str, str] | None = None, orgs: int = 1) -> tuple[LiveServer, list[LiveOrg]]:
    server = LiveServer(root / name, env=env)
    server.cli("db", "upgrade")
    made = [server.add_org(env.get("_REALM", "res") if env else "res", (env or {}).get(f"_ORG{i}"))
            for i in range(orgs)]
    server.start()
    return server, made


# -- scenarios -----------------------------------------------------------------------------------------------
def kill_scenario(root: Path, which: str, seconds: float) -> Row:
    server, (org,) = fresh(root, which)
    row = Row(which)
    try:
        with Load(org, which) as load:
            time.sleep(seconds / 2)
            if which == "worker-kill":
                server.kill_worker()
            else:
                orphans = server.worker_pids()
                killed = time.monotonic()
                server.kill_master()
                time.sleep(2)  # systemd's RestartSec; the orphans stop accepting and finish their connections
                server.start()
            time.sleep(seconds / 2)
        if which == "master-kill":
            while any(os.path.exists(f"/proc/{p}") for p in orphans) and time.monotonic() - killed < 60:
                time.sleep(0.2)
            left = sum(os.path.exists(f"/proc/{p}") for p in orphans)
            row.note = f"orphaned workers gone {time.monotonic() - killed:.0f} s after the kill" if not left else \
                f"{left} orphaned workers still running 60 s after the kill"
        return settle(row, server, org, load)
    finally:
        server.stop()


def hostile_scenario(root: Path, mutations: int) -> Row:
    server, (org,) = fresh(root, "hostile")
    row = Row("hostile")
    statuses: list[int] = []
    latencies: list[float] = []
    bad: list[str] = []  # the requests answered 5xx or not at all, for the note
    session = requests.Session()
    url = org.base_url

    def send(method: str, path: str, body: bytes | None = None, ctype: str = "application/scim+json",
             params: dict[str, str] | None = None) -> None:
        t0 = time.perf_counter()
        what = f"#{len(statuses) + 1} {method} {path} {(body or b'')[:60]!r}"
        try:
            r = session.request(method, url + path, data=body, params=params, timeout=60,
                                headers={"Authorization": org.headers["Authorization"], "Content-Type": ctype})
            statuses.append(r.status_code)
            if r.status_code >= 500:
                bad.append(f"{what}: {r.status_code} {r.text[:200]!r}")
        except requests.RequestException as e:
            statuses.append(0)
            bad.append(f"{what}: {type(e).__name__}: {str(e)[:200]}")
        latencies.append(time.perf_counter() - t0)

    try:
        seed = json.dumps({"schemas": [USER], "userName": "seed@res.example"}).encode()
        send("POST", "/Users", seed)
        send("POST", "/Users", b"[" * 100_000 + b"]" * 100_000)
        send("POST", "/Users", b'{"a":' * 5000 + b"1" + b"}" * 5000)
        send("GET", "/Users", params={"filter": " or ".join(f'userName eq "u{i}"' for i in range(10_000))})
        send("GET", "/Users", params={"filter": " or ".join("title pr" for _ in range(450))})
        send("GET", "/Users", params={"filter": "(" * 2000 + "title pr" + ")" * 2000})
        ops = [{"method": "POST", "path": "/Users", "bulkId": f"b{i}",
                "data": {"userName": f"bulk{i}@res.example", "x": [f"bulkId:r{i}_{j}" for j in range(40)]}}
               for i in range(1000)]
        send("POST", "/Bulk", json.dumps({"schemas": [BULK], "Operations": ops}, separators=(",", ":")).encode())
        send("POST", "/Users", b'{"userName": "\xff\xfe bad utf-8"}')
        send("POST", "/Users", b'{"userName": "nul\\u0000x"}')
        send("POST", "/Users", b'{"userName": "nul\x00raw"}')
        send("POST", "/Users", b'{"userName": "big", "n": 1e999999}')
        send("POST", "/Users", seed, ctype="text/plain")
        rng = random.Random(9)
        templates = [
            ("POST", "/Users", {"schemas": [USER], "userName": "m@res.example", "name": {"givenName": "A"},
                                "emails": [{"value": "m@res.example", "type": "work", "primary": True}]}),
            ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g", "members": [{"value": "x"}]}),
            ("POST", "/Users/.search", {"filter": 'userName eq "m@res.example"', "count": 10}),
            ("POST", "/Bulk", {"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "bk@res.example"}},
                {"method": "PATCH", "path": "/Users/bulkId:a", "version": 'W/"1"', "data": {
                    "schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "t"}]}}]}),
        ]
        for _ in range(mutations):
            method, path, body = rng.choice(templates)
            raw = bytearray(json.dumps(body).encode())
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(raw))
                kind = rng.random()
                if kind < 0.4:
                    raw[pos] = rng.randrange(256)
                elif kind < 0.6:
                    del raw[pos]
                elif kind < 0.8:
                    raw[pos:pos] = rng.choice([b"\x00", b"\\u0000", b"1e999", b"[", b"{", b'"', b"-0", b"\xc3"])
                else:
                    raw[pos:pos] = raw[rng.randrange(len(raw)):][:rng.randint(1, 40)]
            send(method, path, bytes(raw))
        row.requests = len(statuses)
        row.acknowledged = sum(1 for s in statuses if 200 <= s < 300)
        row.unexpected_5xx = sum(1 for s in statuses if s >= 500 or s == 0)
        row.note = "; ".join(bad)
        row.p99_ms = round(p99(latencies), 1)
        names = [u["userName"] for u in scim_users(org)]
        row.duplicates = len(names) - len(set(names))
        row.lost = 0 if "seed@res.example" in names else 1
        row.integrity = integrity(server)
        return row
    finally:
        server.stop()


def slow_clients_scenario(root: Path, connections: int) -> Row:
    server, (org,) = fresh(root, "slow-clients")
    row = Row("slow-clients")
    try:
        with slow_clients(server.port, connections, every=1.0), Load(org, "slow", threads=2) as load:
            time.sleep(4)
        settle(row, server, org, load)
        if len(load.acked) < 15:
            row.note = f"FAIL: only {len(load.acked)} normal requests served"
        else:
            row.note = f"{connections} slow connections open"
        return row
    finally:
        server.stop()


def noisy_scenario(root: Path, seconds: float) -> Row:
    server, (org_a, org_b) = fresh(root, "noisy-neighbour", orgs=2)
    row = Row("noisy-neighbour")
    try:
        users = [requests.post(f"{org_a.base_url}/Users", headers=org_a.headers, timeout=30,
                               data=json.dumps({"schemas": [USER], "userName": f"a{i}@res.example"})).json()["id"]
                 for i in range(50)]
        for g in range(20):
            requests.post(f"{org_a.base_url}/Groups", headers=org_a.headers, timeout=30, data=json.dumps(
                {"schemas": [GROUP], "displayName": f"ag{g}", "members": [{"value": u} for u in users]}))
        for i in range(20):
            requests.post(f"{org_b.base_url}/Users", headers=org_b.headers, timeout=30,
                          data=json.dumps({"schemas": [USER], "userName": f"b{i}@res.example"}))

        # B is measured all along; A's worst requests run in alternating windows, so that the other load on
        # the host (which drifts) weighs on B's idle and loaded samples alike.
        loud = threading.Event()
        stop = threading.Event()
        samples: dict[bool, list[float]] = {False: [], True: []}
        worst_sent = [0, 0]

        def measure_b() -> None:
            session, i = requests.Session(), 0
            while not stop.is_set():
                phase = loud.is_set()
                t0 = time.perf_counter()
                r = session.get(f"{org_b.base_url}/Users", headers=org_b.headers, timeout=60,
                                params={"filter": f'userName eq "b{i % 20}@res.example"'})
                if loud.is_set() == phase:
                    samples[phase].append(time.perf_counter() - t0)
                row.unexpected_5xx += r.status_code >= 500
                i += 1
                time.sleep(0.01)

        def worst() -> None:
            session = requests.Session()
            ops = [{"method": "POST", "path": "/Users", "bulkId": f"b{i}",
                    "data": {"userName": f"x{i}", "x": [f"bulkId:r{i}_{j}" for j in range(40)]}} for i in range(1000)]
            bulk = json.dumps({"schemas": [BULK], "Operations": ops}, separators=(",", ":"))
            big_filter = " or ".join(f'userName eq "a{i}@res.example"' for i in range(180))
            requests_ = [("POST", "/Bulk", bulk, None), ("GET", "/Groups", None, {"count": "1000"}),
                         ("GET", "/Users", None, {"filter": big_filter, "count": "1000"})]
            n = 0
            while not stop.is_set():
                if not loud.wait(0.1):
                    continue
                method, path, body, params = requests_[n % len(requests_)]
                n += 1
                r = session.request(method, org_a.base_url + path, data=body, params=params, timeout=120,
                                    headers=org_a.headers)
                worst_sent[0] += 1
                worst_sent[1] += r.status_code >= 500

        threads = [threading.Thread(target=measure_b, daemon=True)]
        threads += [threading.Thread(target=worst, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        end = time.monotonic() + 2 * seconds
        while time.monotonic() < end:
            loud.set() if not loud.is_set() else loud.clear()
            time.sleep(2.0)
        stop.set()
        loud.set()
        for t in threads:
            t.join(120)
        idle, loaded = samples[False], samples[True]
        ratio = p99(loaded) / max(p99(idle), 0.001)
        row.requests = len(idle) + len(loaded) + worst_sent[0]
        row.acknowledged = 0
        row.unexpected_5xx += worst_sent[1]
        row.p99_ms = round(p99(loaded), 1)
        row.integrity = integrity(server)
        row.note = (f"B p99 {p99(idle):.1f} ms idle -> {p99(loaded):.1f} ms loaded ({ratio:.1f}x); "
                    f"A sent {worst_sent[0]} worst requests")
        row.ratio = ratio  # type: ignore[attr-defined]
        return row
    finally:
        server.stop()


def disk_full_scenario(root: Path) -> Row:
    row = Row("disk-full")
    mnt = root / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        row.note = "not run: mounting a small tmpfs needs root"
        return row
    server = None
    try:
        server, (org,) = fresh(mnt, "instance")  # READY_MIN_FREE_BYTES: the default 8 MiB
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        with open(filler, "wb") as f:  # leave ~300 KB for the database to grow into
            f.write(b"\0" * max(0, free - 300_000))
        load = Load(org, "full", threads=2, expected_5xx=(507,))
        with load:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and load.expected < 5:
                time.sleep(0.5)
        ready_when_full = requests.get(server.url + "/readyz", timeout=10).status_code
        filler.unlink()
        time.sleep(6)  # /readyz answers are cached a few seconds; "disk full" is remembered 60 s per process
        after = requests.post(f"{org.base_url}/Users", headers=org.headers, timeout=30,
                              data=json.dumps({"schemas": [USER], "userName": "after-full@res.example"}))
        settle(row, server, org, load)
        row.note = (f"{load.expected} answered 507; /readyz {ready_when_full} while full; POST after freeing space: "
                    f"{after.status_code}")
        if ready_when_full != 503 or after.status_code != 201 or not load.expected:
            row.note = "FAIL: " + row.note
        return row
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# -- Keycloak scenarios ---------------------------------------------------------------------------------------
def keycloak_scenarios(root: Path, seconds: float) -> list[Row]:
    from orgscim.keycloak.client import KeycloakAdmin
    from orgscim_dev.kcproxy import ProxyState, make_proxy
    from orgscim_dev.keycloak import KeycloakDev, ensure_distribution

    kc = KeycloakDev(ensure_distribution(), startup_timeout=900)  # a busy 2-core host takes minutes
    kc.start()
    rows = []
    try:
        admin = KeycloakAdmin(kc.base_url, KC_REALM, *KC_CLIENT)
        secret_file = root / "kc-secret"
        secret_file.write_text(KC_CLIENT[1])
        state = ProxyState(kc.base_url)
        proxy = make_proxy(state)
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        try:
            for name, url, fault in (("keycloak-kill", kc.base_url, "kill"), ("keycloak-429", proxy_url, 429),
                                     ("keycloak-503", proxy_url, 503)):
                org_name = f"res-{name}-{uuid.uuid4().hex[:6]}"
                org_id = admin.create_organization({"name": org_name, "alias": org_name,
                                                    "domains": [{"name": f"{org_name}.example"}]})
                env = {"ORGSCIM_KEYCLOAK_URL": url, "ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file),
                       "ORGSCIM_KEYCLOAK_TIMEOUT": "3", "_REALM": KC_REALM, "_ORG0": org_id}
                row = Row(name)
                server = None
                try:
                    server, (org,) = fresh(root, name, env=env)
                    state.throttle_every, state.throttle_status = (3, fault) if fault != "kill" else (0, 429)
                    with Load(org, name, threads=2, domain=f"{org_name}.example", pause=0.2) as load:
                        time.sleep(seconds / 3)
                        if fault == "kill":
                            kc.kill()  # writes go on while it is down: acknowledged, queued in the outbox
                        time.sleep(seconds / 3)
                    if fault == "kill":
                        kc.restart()
                    state.throttle_every = 0
                    settle(row, server, org, load)
                    drained = drain(server)
                    members = [m["username"] for m in admin.iter_members(org_id)]
                    wanted = {n.lower() for n in load.acked}
                    row.lost += len(wanted - set(members))
                    row.duplicates += len(members) - len(set(members))
                    row.note = f"outbox drained: {drained}; {len(members)} members in Keycloak " + row.note
                    if not drained:
                        row.note = "FAIL: " + row.note
                except Exception as e:  # noqa: BLE001 - this row fails, the next scenario still runs
                    row.note = f"FAIL: {type(e).__name__}: {str(e)[:200]}"
                finally:
                    if server is not None:
                        server.stop()
                rows.append(row)
        finally:
            proxy.shutdown()
    finally:
        kc.stop()
    return rows


def drain(server: LiveServer, timeout: float = 900) -> bool:
    """Run the worker until the outbox is empty (the deliveries that failed during the fault)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.cli("worker", "--once", timeout=900)
        if subprocess.run([server.orgscim, "outbox"], env=server.env, capture_output=True).returncode == 0:
            return True
        time.sleep(2)
    return False


# -- main -------------------------------------------------------------------------------------------------
def run(quick: bool, only: list[str] | None = None, keycloak: bool = True) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="orgscim-resilience-"))
    seconds = 4.0 if quick else 12.0
    scenarios: list[tuple[str, Callable[[], Row | list[Row]]]] = [
        ("worker-kill", lambda: kill_scenario(root, "worker-kill", seconds)),
        ("master-kill", lambda: kill_scenario(root, "master-kill", seconds)),
        ("noisy-neighbour", lambda: noisy_scenario(root, max(seconds, 10.0))),
        ("hostile", lambda: hostile_scenario(root, 200 if quick else 2000)),
        ("slow-clients", lambda: slow_clients_scenario(root, 60 if quick else 200)),
        ("disk-full", lambda: disk_full_scenario(root)),
    ]
    if keycloak and not quick:
        scenarios.append(("keycloak", lambda: keycloak_scenarios(root, seconds * 2)))
    rows: list[Row] = []
    try:
        for name, fn in scenarios:
            if only and not any(name.startswith(o) for o in only):
                continue
            t0 = time.monotonic()
            try:
                out = fn()
            except Exception as e:  # noqa: BLE001 - a scenario that breaks is a failed row, the others still run
                out = Row(name, note=f"FAIL: {type(e).__name__}: {str(e)[:200]}")
            for r in out if isinstance(out, list) else [out]:
                r.note = (r.note + f" [{time.monotonic() - t0:.0f} s]").strip()
                rows.append(r)
                print_row(r, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


HEADER = ("scenario", "requests", "acked", "lost", "dups", "5xx", "p99 ms", "integrity", "note")


def print_row(r: Row, flush: bool = False) -> None:
    if not getattr(print_row, "headed", False):
        print(f"{HEADER[0]:<16} {HEADER[1]:>8} {HEADER[2]:>6} {HEADER[3]:>5} {HEADER[4]:>5} {HEADER[5]:>4} "
              f"{HEADER[6]:>8} {HEADER[7]:<9} {HEADER[8]}")
        print_row.headed = True  # type: ignore[attr-defined]
    print(f"{r.scenario:<16} {r.requests:>8} {r.acknowledged:>6} {r.lost:>5} {r.duplicates:>5} "
          f"{r.unexpected_5xx:>4} {r.p99_ms:>8} {r.integrity:<9} {r.note}", flush=flush)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, no Keycloak (what CI runs)")
    ap.add_argument("--only", nargs="*", help="scenario name prefixes")
    ap.add_argument("--no-keycloak", action="store_true")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    rows = run(args.quick, args.only, not args.no_keycloak)
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    bad = [r.scenario for r in rows if not r.ok]
    print("all rows clean" if not bad else f"FAILED: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
