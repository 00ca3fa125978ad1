"""Issue #2: "an ``eq`` lookup on ``userName`` in an org of 100k users costs about the same as in an org of 1k".

Builds a throw-away instance with two orgs (``small``, ``large``) in ONE SQLite database, seeds both in-process
through ``ScimService.create`` (the same normalisation, ``resources`` row and ``emails`` index rows as a SCIM
POST), starts the real server (``orgscim serve``, gunicorn) on a free loopback port and times, over HTTP,
interleaved lookups of random existing users in both orgs. Every answer is checked (exactly one result, the
right id for *this* org); both orgs hold the same userNames/externalIds/emails, so a lookup that leaks across
orgs counts as an error. Prints p50/p95/mean per lookup kind and org, the large/small ratio, the SQLite query
plans and the server's peak RSS. Exit status 1 only if some answer was wrong.

    .venv/bin/python bench/lookup_scaling.py [--small 1000] [--large 100000] [--lookups 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # orgscim_dev: from the repository, never installed

from orgscim_dev.proc import vm_kib  # noqa: E402

REALM = "bench"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
# ../shared beside the repository (ORGSCIM_SHARED overrides), like tests/conformance/conftest.py
SCIMLOAD = Path(os.environ.get("ORGSCIM_SHARED", REPO.parent / "shared")) / "bench" / "scimload.py"
TTY = sys.stderr.isatty()


# -- data (userName/externalId follow scimload.py, so its lookup/extid phases find these users) -------------
def user_name(i: int) -> str:
    return f"user{i}@example.com"


def external_id(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "scimload:" + user_name(i)))


def user_body(i: int) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT], "externalId": external_id(i),
            "userName": user_name(i), "active": True, "displayName": f"Ada Lovelace {i}",
            "name": {"givenName": "Ada", "familyName": f"Lovelace {i}"}, "title": "Engineer",
            "emails": [{"primary": True, "type": "work", "value": user_name(i)}],
            ENT: {"employeeNumber": str(100000 + i), "department": "Engineering"}}


# lookup kind -> (label, request path for user i of an org whose ids are `ids`)
KINDS: dict[str, tuple[str, Callable[[int, list[str]], str]]] = {
    "userName": ("userName eq", lambda i, ids: _flt(f'userName eq "{user_name(i)}"')),
    "externalId": ("externalId eq", lambda i, ids: _flt(f'externalId eq "{external_id(i)}"')),
    "email": ('emails[type eq "work"].value eq', lambda i, ids: _flt(
        f'emails[type eq "work"].value eq "{user_name(i)}"')),
    "get": ("GET /Users/{id}", lambda i, ids: f"/Users/{ids[i]}"),
}


def _flt(expr: str) -> str:
    return "/Users?filter=" + urllib.parse.quote(expr, safe="")


# -- helpers -------------------------------------------------------------------------------------------------
def progress(text: str) -> None:
    if TTY:
        print(f"\r  {text}\033[K", end="", file=sys.stderr, flush=True)


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    print(f"== {name}", flush=True)
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 2)
    if TTY:
        print("\r\033[K", end="", file=sys.stderr)
    print(f"   {name}: {timings[name]:.1f}s", flush=True)


def cli(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([str(BIN / "orgscim"), *args], env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"orgscim {' '.join(args)} failed:\n{run.stderr[-3000:]}")
    return run.stdout


def git_state() -> str:
    """HEAD, and whether orgscim/ has uncommitted changes (the bench measures the working tree)."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "orgscim"], cwd=here, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def proc_tree(root: int) -> list[int]:
    """``root`` and its descendants (gunicorn master and workers), from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [p for p, pp in parent.items() if pp == pid]
    return out


# -- phases --------------------------------------------------------------------------------------------------
@dataclass
class Org:
    name: str
    size: int
    pk: int = 0
    secret: str = ""
    ids: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/realms/{REALM}/scim/v2/organizations/{self.name}"


def seed(db_path: str, orgs: list[Org]) -> None:
    """ScimService.create per user, one transaction each: exactly what a SCIM POST /Users writes."""
    from orgscim.services import Services
    from orgscim.store.db import Database

    db = Database(db_path)
    services = Services(db, {})
    for org in orgs:
        o = services.orgs.org(REALM, org.name)
        assert o is not None
        org.pk = o.pk
        svc = services.scim(o, f"http://127.0.0.1{org.base}")
        t0 = time.perf_counter()
        for i in range(org.size):
            res = svc.create("User", user_body(i))
            assert res.status == 201 and res.body is not None, res
            org.ids.append(res.body["id"])
            if i % 1000 == 999:
                progress(f"seeding {org.name}: {i + 1:,}/{org.size:,}")
        dt = time.perf_counter() - t0
        print(f"   seeded {org.name}: {org.size:,} users in {dt:.1f}s ({dt / org.size * 1e6:.0f} µs/user)",
              flush=True)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def explain(db_path: str, org: Org) -> dict[str, list[dict[str, Any]]]:
    """The exact statements ResourceStore runs for each lookup kind (trace callback) and their query plans."""
    from orgscim.model import filter as flt
    from orgscim.model.schemas import USER_TYPE
    from orgscim.store.db import Database
    from orgscim.store.resources import ResourceStore

    db = Database(db_path)
    store = ResourceStore(db, org.pk)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    i = org.size // 2
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        statements.clear()
        if kind == "get":
            store.get("User", org.ids[i])
        else:
            expr = urllib.parse.unquote(KINDS[kind][1](i, org.ids).split("=", 1)[1])
            store.search("User", flt.resolve(flt.parse(expr), USER_TYPE), None, False, 0, 100)
        db.conn.set_trace_callback(None)
        out[kind] = [{"sql": s, "plan": [r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + s)]}
                     for s in statements]
        db.conn.set_trace_callback(statements.append)
    db.close()
    return out


def whole_org(plan: list[str]) -> bool:
    """The outer loop over ``resources`` is bounded only by (org_pk, type): cost grows with the org."""
    return any(p.startswith("SCAN r") or (p.startswith("SEARCH r ") and p.endswith("(org_pk=? AND type=?)"))
               for p in plan)


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, secret: str) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", path, headers={"Authorization": f"Bearer {secret}"})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            return 0, repr(e).encode(), time.perf_counter() - t0
        return resp.status, data, time.perf_counter() - t0


def check(kind: str, i: int, org: Org, status: int, data: bytes) -> str | None:
    """None if the answer is right for this org, else what is wrong."""
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    try:
        body = json.loads(data)
    except ValueError:
        return "bad JSON"
    if kind != "get":
        res = body.get("Resources") or []
        if body.get("totalResults") != 1 or len(res) != 1:
            return f"totalResults={body.get('totalResults')} len(Resources)={len(res)}"
        body = res[0]
    if body.get("id") != org.ids[i]:
        return f"wrong id {body.get('id')} (expected {org.ids[i]} of org {org.name})"
    if str(body.get("userName", "")).lower() != user_name(i):
        return f"wrong userName {body.get('userName')!r}"
    return None


def measure(port: int, orgs: list[Org], lookups: int, cell_seconds: float, warmup: int,
            rng: random.Random) -> tuple[dict[tuple[str, str], list[float]], list[str]]:
    """Interleaved: each round runs one lookup of every (kind, org) cell in random order, so drift, caches and
    the auth cache's expiry hit both orgs alike. A cell stops at ``lookups`` samples or ``cell_seconds``."""
    client = Client(port)
    cells = [(k, o) for k in KINDS for o in orgs]
    lat: dict[tuple[str, str], list[float]] = {(k, o.name): [] for k, o in cells}
    spent = dict.fromkeys(lat, 0.0)
    errors: list[str] = []
    rounds = 0
    while True:
        live = [(k, o) for k, o in cells
                if len(lat[k, o.name]) < lookups and (spent[k, o.name] < cell_seconds or len(lat[k, o.name]) < 50)]
        if not live:
            break
        rng.shuffle(live)
        for kind, org in live:
            i = rng.randrange(org.size)
            status, data, dt = client.get(org.base + KINDS[kind][1](i, org.ids), org.secret)
            wrong = check(kind, i, org, status, data)
            if wrong:
                errors.append(f"{kind} {org.name} user{i}: {wrong}")
            if rounds >= warmup:
                lat[kind, org.name].append(dt * 1000)
                spent[kind, org.name] += dt
        rounds += 1
        if rounds % 50 == 0:
            progress(f"measuring: round {rounds}, {sum(map(len, lat.values())):,} timed requests, "
                     f"{len(errors)} errors")
    return lat, errors


def scimload(base: str, org: Org, seconds: float, master: int, out: Path) -> dict[str, Any]:
    """scimload.py lookup,extid against the seeded users. ``--validate shape`` (exactly one result per lookup):
    full validation would first discover every id by paging ``/Users``, which takes > 10 min at 100k users
    (see README). Our own measurement above checks ids."""
    cmd = [sys.executable, str(SCIMLOAD), base, "--token", org.secret, "--users", str(org.size), "--skip-seed",
           "--validate", "shape", "--phases", "lookup,extid", "--seconds", str(seconds), "--threads", "2",
           "--server-pid", str(master), "--label", f"lookup_scaling {org.name}", "--json", str(out)]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 2 + 120)
    except subprocess.TimeoutExpired:
        print(f"   scimload {org.name}: timed out", flush=True)
        return {"total_errors": 1, "failed": "timeout"}
    for line in run.stdout.splitlines()[:-1]:
        print(f"   [scimload {org.name}] {line}", flush=True)
    try:
        summary: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    except (IndexError, ValueError):
        print(f"   scimload {org.name} failed: {run.stderr[-2000:]}", flush=True)
        return {"total_errors": 1, "failed": run.stderr[-2000:]}
    return summary


# -- main ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", type=int, default=1000, help="users in the small org (default 1000)")
    p.add_argument("--large", type=int, default=100_000, help="users in the large org (default 100000)")
    p.add_argument("--lookups", type=int, default=2000, help="timed lookups per kind per org (default 2000)")
    p.add_argument("--cell-seconds", type=float, default=20.0,
                   help="time cap per kind per org; a cell always gets >= 50 samples (default 20)")
    p.add_argument("--warmup", type=int, default=20, help="untimed rounds first (default 20)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--flat", type=float, default=1.5, help="p50 ratio up to which a kind counts as flat (1.5)")
    p.add_argument("--scimload", action="store_true", help=f"also run {SCIMLOAD} lookup,extid on each org")
    p.add_argument("--scimload-seconds", type=float, default=10.0, help="per scimload phase (default 10)")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--json", type=Path, help="write all results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp instance (path printed)")
    a = p.parse_args(argv)
    if min(a.small, a.large, a.lookups) < 1:
        p.error("--small, --large and --lookups must be at least 1")

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    orgs = [Org("small", a.small), Org("large", a.large)]
    tmp = Path(tempfile.mkdtemp(prefix="orgscim-lookup-"))
    # standalone: no ORGSCIM_* from the caller (e.g. Keycloak settings) leaks into the bench instance
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGSCIM_")}
    env["ORGSCIM_INSTANCE"] = str(tmp / "instance")
    db_path = str(tmp / "instance" / "orgscim.sqlite3")
    server: subprocess.Popen[bytes] | None = None
    log = None
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "git": git_state(), "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}
    print(f"lookup_scaling: small={a.small:,} large={a.large:,} lookups={a.lookups} on {os.cpu_count()} CPUs, "
          f"Python {report['python']}, SQLite {report['sqlite']}, orgscim {report['git']}; instance {tmp}",
          flush=True)
    try:
        with phase(timings, "setup (orgscim CLI)"):
            cli(env, "db", "upgrade")
            cli(env, "realm", "enable", REALM)
            for org in orgs:
                cli(env, "org", "configure", REALM, org.name, "--auth-mode", "EXTERNAL_SECRET")
                org.secret = json.loads(cli(env, "org", "credential", "create", REALM, org.name, "--json"))["secret"]
        with phase(timings, "seed (in-process ScimService.create)"):
            seed(db_path, orgs)
        with phase(timings, "explain"):
            plans = explain(db_path, orgs[1])
        report["plans"] = plans
        print("\nEXPLAIN QUERY PLAN, large org (the statements ResourceStore runs):")
        for kind, stmts in plans.items():
            print(f"  {KINDS[kind][0]}")
            for s in stmts:
                if kind == "userName" or whole_org(s["plan"]):
                    print(f"    {s['sql']}")
                for line in s["plan"]:
                    print(f"      {line}")
                if whole_org(s["plan"]):
                    print("      ^^ WARNING: walks every User row of the org (cost grows with org size)")
        print()

        with phase(timings, "server start (orgscim serve, gunicorn)"):
            port = free_port()
            log = (tmp / "server.log").open("wb")
            server = subprocess.Popen([str(BIN / "orgscim"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                       "--workers", str(a.workers)], env=env, stdout=log, stderr=log)
            deadline = time.monotonic() + 30
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start:\n{(tmp / 'server.log').read_text()[-3000:]}")
                time.sleep(0.1)
        with phase(timings, "measure (HTTP, interleaved)"):
            lat, errors = measure(port, orgs, a.lookups, a.cell_seconds, a.warmup, random.Random(a.seed))

        cells: dict[str, Any] = {}
        for kind in KINDS:
            row: dict[str, Any] = {}
            for org in orgs:
                ms = sorted(lat[kind, org.name])
                row[org.name] = {"n": len(ms), "p50_ms": round(pct(ms, .5), 3), "p95_ms": round(pct(ms, .95), 3),
                                 "mean_ms": round(sum(ms) / len(ms), 3)}
            row["ratio"] = {k: round(row["large"][k] / row["small"][k], 2) for k in ("p50_ms", "p95_ms", "mean_ms")}
            row["flat"] = row["ratio"]["p50_ms"] <= a.flat
            cells[kind] = row
        report.update(cells=cells, errors=len(errors), error_samples=errors[:20])

        pids = proc_tree(server.pid)
        report["server_rss"] = [{"pid": pid, "role": "master" if pid == server.pid else "worker",
                                 "VmHWM_kib": vm_kib(pid, "VmHWM"), "VmRSS_kib": vm_kib(pid, "VmRSS")}
                                for pid in pids]
        if a.scimload:
            with phase(timings, "scimload lookup,extid"):
                report["scimload"] = {
                    org.name: scimload(f"http://127.0.0.1:{port}{org.base}", org, a.scimload_seconds, server.pid,
                                       tmp / f"scimload-{org.name}.json")
                    for org in orgs}
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        if log is not None:
            log.close()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    timings["total"] = round(time.perf_counter() - t_start, 2)
    report["timings_s"] = timings
    print_report(report, orgs)
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    total_errors = report["errors"] + sum(s.get("total_errors", 0) for s in report.get("scimload", {}).values())
    return 1 if total_errors else 0


def print_report(r: dict[str, Any], orgs: list[Org]) -> None:
    s, lg = orgs
    print(f"\nlookup latency over HTTP (ms; one sequential client; gunicorn sync workers close every connection; "
          f"{r['cpus']} CPUs, {r['date']})")
    print(f"{'':<34}{'small ' + f'{s.size:,}':>31}  {'large ' + f'{lg.size:,}':>31}  {'large/small':>24}")
    print(f"{'lookup':<34}" + f"{'n':>7}{'p50':>8}{'p95':>8}{'mean':>8}  " * 2 + f"{'p50':>8}{'p95':>8}{'mean':>8}")
    for kind, c in r["cells"].items():
        line = f"{KINDS[kind][0]:<34}"
        for name in ("small", "large"):
            x = c[name]
            line += f"{x['n']:>7}{x['p50_ms']:>8.2f}{x['p95_ms']:>8.2f}{x['mean_ms']:>8.2f}  "
        q = c["ratio"]
        line += f"{q['p50_ms']:>8.2f}{q['p95_ms']:>8.2f}{q['mean_ms']:>8.2f}  {'flat' if c['flat'] else 'GROWS'}"
        print(line)
    print(f"wrong answers: {r['errors']}")
    for e in r["error_samples"][:5]:
        print(f"  {e}")
    rss = ", ".join(f"{x['role']} {x['pid']} {x['VmHWM_kib'] / 1024:.0f} MiB" for x in r["server_rss"]
                    if x["VmHWM_kib"] is not None)
    print(f"server peak RSS (VmHWM): {rss}")
    for name, sm in r.get("scimload", {}).items():
        for ph, v in sm.get("phases", {}).items():
            print(f"scimload {name:<6}{ph:<7} {v['rps']:>7.1f} req/s  p50 {v['p50_ms']} p95 {v['p95_ms']} "
                  f"p99 {v['p99_ms']} ms  errors {v['errors']}  srvcpu {v.get('server_cpu_ms_per_req')} ms/req")
        if "failed" in sm:
            print(f"scimload {name:<6}FAILED: {sm['failed'][:200]}")
    print("phase timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["timings_s"].items()))


if __name__ == "__main__":
    sys.exit(main())
