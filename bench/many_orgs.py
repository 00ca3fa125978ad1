"""Issue #12: thousands of organizations on one host. What is paid per *active* org must not grow with their number.

One throw-away instance (temp folder): ``--orgs`` orgs (default 2,000) with ``--users`` users (50) and ``--groups``
groups (2) each, seeded through the store (no HTTP); ``--active`` of them (500) get their own ``EXTERNAL_SECRET``
credential (Argon2id hashes made with the default parameters, in a process pool). Then a real ``orgscim serve``
(gunicorn, default settings; ``--workers`` passes through when given) and, in one run:

1. **cold**: the first request of every active org (each pays one Argon2id somewhere on the host);
2. **one org**: ``--threads`` client threads (8) on one org for ``--seconds``, vs **cycling**: the same threads
   stepping through all active orgs. Every answer is checked (status 200, ``totalResults`` 1, the user asked for).
   Prints req/s and p50/p99 of both and the ratios (targets: cycling ≥ 0.5× the throughput, p99 ≤ 3×);
3. **Argon2id verifications** during the run, from ``/metrics`` (``orgscim_auth_argon2_verifications_total``,
   summed over the workers), next to (active credentials × worker processes);
4. **RSS per worker** after touching one org, then after a request to every one of the ``--orgs`` orgs (each
   active org authenticated; the others answer 401/404 before any hashing) — target ≤ 1.2×;
5. **/metrics time** on an instance with one org (served alongside, same traffic kinds) vs this one after all the
   traffic: medians of ``--scrapes`` scrapes interleaved between the two — target ≤ 1.5×; the series in both;
6. **listing**: ``orgscim org list --json`` (its first page, and every page through ``--after``): time and bytes.

    .venv/bin/python bench/many_orgs.py [--orgs 2000] [--active 500] [--users 50] [--groups 2] [--threads 8]
                                        [--seconds 20] [--workers N]

Needs nothing but the venv (standalone mode: no Keycloak). The machine should be quiet: Argon2id is CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from orgscim.auth import HASHER, new_credential_id
from orgscim.services import Services
from orgscim.store.db import Database
from orgscim.store.resources import ResourceStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # orgscim_dev: from the repository, never installed
from orgscim_dev.proc import vm_kib  # noqa: E402

REALM = "bench"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
VENV_BIN = Path(sys.executable).parent


def org_id(i: int) -> str:
    return f"org-{i:05d}"


def user_name(i: int, j: int) -> str:
    return f"user{j:03d}@org{i:05d}.example"


# -- seeding (through the store, not HTTP) -----------------------------------------------------------------
def _hash(secret: str) -> str:
    return HASHER.hash(secret)


def seed(db_path: Path, orgs: int, users: int, groups: int, active: int) -> dict[int, str]:
    """The instance's orgs, resources and credentials; returns {org index: secret} of the active orgs."""
    db = Database(db_path)
    db.upgrade()
    services = Services(db, {})
    services.orgs.set_realm(REALM, True)
    mode = services.auth_mode("EXTERNAL_SECRET")
    pks = []
    for i in range(orgs):
        org = services.orgs.upsert_org(REALM, org_id(i), "EXTERNAL_SECRET", {}, True, "none",
                                       {"federation": {}})
        pks.append(org.pk)
        store = ResourceStore(db, org.pk)
        for j in range(users):
            name = user_name(i, j)
            store.create("User", {"schemas": [USER_URN], "userName": name, "active": True,
                                  "name": {"givenName": f"U{j}", "familyName": f"Org{i}"},
                                  "emails": [{"value": name, "type": "work", "primary": True}]}, name, f"ext-{j}")
        for k in range(groups):
            store.create("Group", {"schemas": [GROUP_URN], "displayName": f"group-{k}"}, f"group-{k}", None)
        if (i + 1) % 200 == 0:
            print(f"  seeded {i + 1}/{orgs} orgs", file=sys.stderr, flush=True)
    creds = []
    for i in range(active):
        cred_id = new_credential_id()
        _, secret, hashed = mode.generate(cred_id)
        creds.append((i, cred_id, secret, hashed))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        hashes = list(pool.map(_hash, [c[3] for c in creds], chunksize=8))
    for (i, cred_id, _, _), hash_ in zip(creds, hashes, strict=True):
        services.orgs.add_credential(pks[i], cred_id, "secret", hash_)
    print(f"  {active} Argon2id hashes in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {i: c[2] for i, c in zip(range(active), creds, strict=True)}


# -- the server --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``orgscim serve`` on a free loopback port, in its own process group."""

    def __init__(self, instance: Path, workers: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ORGSCIM_INSTANCE": str(instance)}
        args = [str(VENV_BIN / "orgscim"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if workers:
            args += ["--workers", str(workers)]
        self.log = open(instance / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200 and self.workers():
                    time.sleep(1.0)  # let every worker finish booting
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"orgscim serve did not start; see {instance / 'serve.log'}")

    def workers(self) -> list[int]:
        """Pids of the gunicorn workers (children of the master)."""
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    out.append(int(p.name))
        return sorted(out)

    def rss_mb(self) -> list[float]:
        return [kib / 1024 for pid in self.workers() if (kib := vm_kib(pid, "VmRSS")) is not None]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


# -- clients -----------------------------------------------------------------------------------------------
class Failure(Exception):
    pass


def lookup(session: requests.Session, base: str, i: int, secret: str, j: int) -> float:
    """``GET /Users?filter=userName eq …`` as an IdP sends first; checks the answer; returns seconds."""
    name = user_name(i, j)
    t0 = time.perf_counter()
    r = session.get(f"{base}/realms/{REALM}/scim/v2/organizations/{org_id(i)}/Users",
                    params={"filter": f'userName eq "{name}"'}, headers={"Authorization": f"Bearer {secret}"},
                    timeout=60)
    took = time.perf_counter() - t0
    if r.status_code != 200:
        raise Failure(f"{org_id(i)}: HTTP {r.status_code} {r.text[:200]}")
    body = r.json()
    if body.get("totalResults") != 1 or body["Resources"][0]["userName"] != name:
        raise Failure(f"{org_id(i)}: wrong answer {r.text[:200]}")
    return took


def drive(base: str, secrets: dict[int, str], orgs: list[int], threads: int, seconds: float,
          users: int) -> dict[str, Any]:
    """``threads`` threads for ``seconds``; thread t asks orgs[t], orgs[t + threads], … in turn."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def run(t: int) -> None:
        session = requests.Session()
        k = t
        while time.monotonic() < stop:
            i = orgs[k % len(orgs)]
            try:
                latencies[t].append(lookup(session, base, i, secrets[i], k % users))
            except (Failure, requests.RequestException) as e:
                errors.append(str(e))
            k += threads

    started = time.monotonic()
    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for xs in latencies for x in xs)
    return {"requests": len(flat), "errors": len(errors), "first_error": errors[0] if errors else None,
            "rps": len(flat) / elapsed, "p50_ms": pct(flat, 50) * 1000, "p99_ms": pct(flat, 99) * 1000}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def scrape(base: str) -> tuple[float, dict[str, float], int]:
    """(seconds, {sample name: summed value}, number of series) of one ``GET /metrics``."""
    t0 = time.perf_counter()
    r = requests.get(f"{base}/metrics", timeout=30)
    took = time.perf_counter() - t0
    r.raise_for_status()
    sums: dict[str, float] = {}
    series = 0
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            series += 1
            sums[s.name] = sums.get(s.name, 0.0) + s.value
    return took, sums, series


def metrics_time(base: str, n: int) -> tuple[float, int]:
    times = []
    series = 0
    for _ in range(n):
        took, _, series = scrape(base)
        times.append(took)
    return statistics.median(times), series


def touch(base: str, secrets: dict[int, str], orgs: int, passes: int) -> int:
    """One request per org per pass (authenticated when the org has a credential); returns the errors."""
    session = requests.Session()
    bad = 0
    for _ in range(passes):
        for i in range(orgs):
            if i in secrets:
                try:
                    lookup(session, base, i, secrets[i], 0)
                except (Failure, requests.RequestException):
                    bad += 1
            else:
                r = session.get(f"{base}/realms/{REALM}/scim/v2/organizations/{org_id(i)}/Users", timeout=60)
                bad += r.status_code != 401
    return bad


def listing(instance: Path) -> dict[str, Any]:
    env = {**os.environ, "ORGSCIM_INSTANCE": str(instance)}
    cmd = [str(VENV_BIN / "orgscim"), "org", "list", "--json"]
    t0 = time.perf_counter()
    first = subprocess.run(cmd, env=env, capture_output=True, check=True)
    first_s = time.perf_counter() - t0
    out: dict[str, Any] = {"first_page_s": first_s, "first_page_bytes": len(first.stdout)}
    try:
        page = json.loads(first.stdout)
    except ValueError:
        return out
    if isinstance(page, dict) and "next" in page:
        pages, total, nxt = 1, len(page.get("orgs", [])), page.get("next")
        t0 = time.perf_counter()
        while nxt:
            page = json.loads(subprocess.run([*cmd, "--limit", "500", "--after", nxt], env=env, capture_output=True,
                                             check=True).stdout)
            pages, total, nxt = pages + 1, total + len(page.get("orgs", [])), page.get("next")
        out.update(all_pages=pages, all_rows=total, all_pages_s=first_s + time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orgs", type=int, default=2000)
    ap.add_argument("--active", type=int, default=500)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=None, help="default: orgscim serve's own default")
    ap.add_argument("--scrapes", type=int, default=30)
    a = ap.parse_args()
    active = min(a.active, a.orgs)
    print(f"many_orgs: {a.orgs} orgs x ({a.users} users, {a.groups} groups), {active} active with their own "
          f"EXTERNAL_SECRET; {a.threads} client threads; Python {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="orgscim-many-") as tmp:
        small, big = Path(tmp) / "one", Path(tmp) / "many"
        small.mkdir()
        big.mkdir()
        t0 = time.perf_counter()
        small_secrets = seed(small / "orgscim.sqlite3", 1, a.users, a.groups, 1)
        secrets = seed(big / "orgscim.sqlite3", a.orgs, a.users, a.groups, active)
        print(f"seeded in {time.perf_counter() - t0:.0f} s")

        one_server = Server(small, a.workers)
        server = None
        try:
            drive(one_server.url, small_secrets, [0], a.threads, 2, a.users)  # the same kinds of traffic
            server = Server(big, a.workers)
            workers = len(server.workers())
            _, m0, _ = scrape(server.url)
            argon0 = m0.get("orgscim_auth_argon2_verifications_total", 0.0)
            drive(server.url, secrets, [0], a.threads, 3, a.users)
            rss_one = server.rss_mb()
            first_metrics, _ = metrics_time(server.url, a.scrapes)

            t0 = time.perf_counter()
            cold_lat: list[float] = []
            session = requests.Session()
            for i in range(active):
                cold_lat.append(lookup(session, server.url, i, secrets[i], 1))
            cold_s = time.perf_counter() - t0
            cold_lat.sort()

            # warm-up: every active org through every worker, then the measured runs
            drive(server.url, secrets, list(range(active)), a.threads, max(5.0, a.seconds / 2), a.users)
            single = drive(server.url, secrets, [0], a.threads, a.seconds, a.users)
            cycling = drive(server.url, secrets, list(range(active)), a.threads, a.seconds, a.users)

            bad_touch = touch(server.url, secrets, a.orgs, passes=max(2, workers))
            rss_all = server.rss_mb()
            _, m1, _ = scrape(server.url)
            argon = m1.get("orgscim_auth_argon2_verifications_total", 0.0) - argon0
            hits = {k: v for k, v in m1.items() if k.startswith("orgscim_auth_cache_hits")}
            touch(one_server.url, small_secrets, 1, passes=2)
            # interleaved, so load from elsewhere on the host hits both alike
            one_times, many_times = [], []
            for _ in range(a.scrapes):
                for url, times in ((one_server.url, one_times), (server.url, many_times)):
                    took, _, series = scrape(url)
                    times.append(took)
                    if url == server.url:
                        many_series = series
                    else:
                        one_org_series = series
            one_org_metrics, many_metrics = statistics.median(one_times), statistics.median(many_times)
        finally:
            one_server.stop()
            if server is not None:
                server.stop()
        lst = listing(big)

    print(f"\nworkers: {workers} (orgscim serve default{'' if a.workers is None else ' overridden'})")
    print(f"cold first request per org ({active} orgs, one client): p50 {pct(cold_lat, 50) * 1000:.0f} ms, "
          f"p99 {pct(cold_lat, 99) * 1000:.0f} ms, all {cold_s:.1f} s")
    print(f"{'':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}")
    for name, r in (("8 threads, one org", single), (f"8 threads, {active} orgs", cycling)):
        print(f"{name:<28}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['requests']:>10}{r['errors']:>8}")
        if r["first_error"]:
            print(f"   first error: {r['first_error']}")
    print(f"cycling/one-org throughput: {cycling['rps'] / single['rps']:.2f}x (target >= 0.5x); "
          f"p99 ratio {cycling['p99_ms'] / single['p99_ms']:.2f}x (target <= 3x)")
    print(f"Argon2id verifications during the run: {argon:.0f}; active credentials x workers = {active} x "
          f"{workers} = {active * workers} (target: <=); cache hits {json.dumps(hits)}")
    print(f"worker RSS after one org: {', '.join(f'{x:.1f}' for x in rss_one)} MB; after all {a.orgs} orgs "
          f"({bad_touch} unexpected answers): {', '.join(f'{x:.1f}' for x in rss_all)} MB; ratio "
          f"{max(b / o for o, b in zip(rss_one, rss_all, strict=False)):.2f}x (target <= 1.2x)")
    print(f"/metrics median of {a.scrapes}, interleaved: 1-org instance {one_org_metrics * 1000:.2f} ms "
          f"({one_org_series} series), {a.orgs}-org instance after all traffic {many_metrics * 1000:.2f} ms "
          f"({many_series} series): ratio {many_metrics / one_org_metrics:.2f}x (target <= 1.5x); "
          f"{a.orgs}-org instance after one org {first_metrics * 1000:.2f} ms")
    print(f"org list --json: {json.dumps(lst)}")


if __name__ == "__main__":
    main()
