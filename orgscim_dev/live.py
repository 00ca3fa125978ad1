"""A live ``orgscim serve`` (and, when asked, ``orgscim worker`` beside it) for tests and benchmarks: the
project's own console scripts over one instance folder, each in its own process group so that it, its workers
and any orphan of a killed master can be stopped together. Users: tests/test_serving.py,
tests/keycloak/test_delivery.py, bench/resilience.py, bench/keycloak_sync.py.

Orgs are configured either through the CLI (``add_org``: ``realm enable``, ``org configure``, ``org credential
create --json``, what an operator runs) or in process (``configure``: thousands of orgs without a process each).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from orgscim.services import Services
from orgscim.store.db import Database

from .keycloak import free_port
from .proc import group_pids, processes

DEV_CLIENT_SECRET = "orgscim-dev-secret"  # client ``orgscim`` of the dev realm (realm-orgscim.json)
# With a worker: the outbox is polled every second and reconcile never runs on its own (tests and benchmarks
# count Keycloak calls and look at drift; a reconcile tick in the middle would add both).
WORKER_ENV = {"ORGSCIM_WORKER_OUTBOX_SECONDS": "1", "ORGSCIM_WORKER_RECONCILE_SECONDS": "86400"}


@dataclass
class LiveOrg:
    realm: str
    org_id: str
    secret: str
    base_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/scim+json"}


class LiveServer:
    """``orgscim serve`` on a free loopback port over the instance folder ``instance`` (None: a temporary folder,
    removed by ``stop``), ``workers`` gunicorn workers with ``threads`` requests in flight each. ``worker``:
    ``orgscim worker`` runs beside it. ``keycloak_url``: both use that Keycloak with the orgscim client's
    ``keycloak_secret``. ``env`` is added last (it may override any of these); ``settings`` are extra settings
    of the in-process ``services`` only."""

    def __init__(self, instance: Path | None = None, env: dict[str, str] | None = None, workers: int = 2,
                 threads: int = 16, orgscim: str | None = None, *, worker: bool = False,
                 keycloak_url: str | None = None, keycloak_secret: str = DEV_CLIENT_SECRET,
                 settings: dict[str, Any] | None = None) -> None:
        self.temporary = instance is None
        self.instance = Path(tempfile.mkdtemp(prefix="orgscim-live-")) if instance is None else Path(instance)
        self.instance.mkdir(parents=True, exist_ok=True)
        self.keycloak_url, self.keycloak_secret = keycloak_url, keycloak_secret
        kc_env = {"ORGSCIM_KEYCLOAK_URL": keycloak_url, "ORGSCIM_KEYCLOAK_CLIENT_SECRET": keycloak_secret} \
            if keycloak_url else {}
        self.env = {**os.environ, "ORGSCIM_INSTANCE": str(self.instance), **kc_env, **(WORKER_ENV if worker else {}),
                    **(env or {})}
        self.workers, self.threads, self.worker = workers, threads, worker
        self.settings = settings or {}
        self.orgscim = orgscim or str(Path(sys.executable).with_name("orgscim"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.instance / "server.log"
        self.worker_log_path = self.instance / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_proc: subprocess.Popen[bytes] | None = None
        self._groups: list[int] = []  # process groups started (a killed master leaves its workers in it)
        self._realms: set[str] = set()

    # -- CLI ---------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([self.orgscim, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"`orgscim {' '.join(args)}` exited {proc.returncode}: {proc.stderr or proc.stdout}")
        return proc.stdout

    def cli_json(self, *args: str, timeout: float = 300) -> tuple[int, Any]:
        """``orgscim ARGS --json``: its exit status and its parsed output (the output's tail if not JSON)."""
        p = subprocess.run([self.orgscim, *args, "--json"], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        try:
            return p.returncode, json.loads(p.stdout or "null")
        except ValueError:
            return p.returncode, p.stdout[-500:]

    def scim_url(self, realm: str, org_id: str) -> str:
        return f"{self.url}/realms/{realm}/scim/v2/organizations/{org_id}"

    def add_org(self, realm: str = "live", org_id: str | None = None) -> LiveOrg:
        """Enable ``realm``, configure an EXTERNAL_SECRET org and issue its secret, through the CLI."""
        org_id = org_id or str(uuid.uuid4())
        self.cli("realm", "enable", realm)
        self.cli("org", "configure", realm, org_id, "--auth-mode", "EXTERNAL_SECRET")
        out = self.cli("org", "credential", "create", realm, org_id, "--json")
        secret = json.loads(out[out.index("{"):out.rindex("}") + 1])["secret"]
        return LiveOrg(realm, org_id, secret, self.scim_url(realm, org_id))

    # -- in process --------------------------------------------------------------------------------
    @cached_property
    def services(self) -> Services:
        """Services over the instance's database (``cli("db", "upgrade")`` first), with the server's Keycloak."""
        db = Database(self.instance / "orgscim.sqlite3")
        kc = {"KEYCLOAK_URL": self.keycloak_url, "KEYCLOAK_CLIENT_SECRET": self.keycloak_secret} \
            if self.keycloak_url else {}
        return Services(db, {**kc, **self.settings})

    def configure(self, realm: str, org_id: str, federation: str = "none",
                  options: dict[str, Any] | None = None) -> LiveOrg:
        """Enable ``realm``, configure an EXTERNAL_SECRET org and issue its secret, in process."""
        if realm not in self._realms:
            self.services.orgs.set_realm(realm, True)
            self._realms.add(realm)
        org = self.services.configure_org(realm, org_id, "EXTERNAL_SECRET", federation=federation, options=options)
        secret = self.services.auth_mode("EXTERNAL_SECRET").issue(org).secret
        return LiveOrg(realm, org_id, secret, self.scim_url(realm, org_id))

    def settle(self, timeout: float = 120) -> None:
        """Wait until the outbox is empty (every change delivered); AssertionError if it is not in time."""
        deadline = time.monotonic() + timeout
        while self.services.outbox.entries() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert self.services.outbox.entries() == []

    # -- process -----------------------------------------------------------------------------------
    def start(self, timeout: float = 40) -> None:
        """Start serve (again, after ``kill_master``) and the worker if it is not running; return when /healthz
        answers 200 and every gunicorn worker is up."""
        self.proc = self._spawn([self.orgscim, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                                 str(self.workers), "--threads", str(self.threads)], self.log_path)
        if self.worker and (self.worker_proc is None or self.worker_proc.poll() is not None):
            self.worker_proc = self._spawn([self.orgscim, "worker"], self.worker_log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orgscim serve exited {self.proc.returncode}: {self.log_tail()}")
            if self.worker_proc is not None and self.worker_proc.poll() is not None:
                raise RuntimeError(f"orgscim worker exited {self.worker_proc.returncode}: "
                                   f"{self.log_tail(path=self.worker_log_path)}")
            if self.healthz() == 200 and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"orgscim serve did not answer /healthz within {timeout:.0f} s: {self.log_tail()}")

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self._groups.append(proc.pid)
        return proc

    def healthz(self) -> int | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, ValueError):
            return None

    @property
    def master_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The live processes whose parent is the current master."""
        if self.proc is None:
            return []
        return [pid for pid, ppid in processes() if ppid == self.proc.pid]

    def group_pids(self) -> list[int]:
        """Every live process of the groups this server started (orphaned workers included)."""
        return group_pids(self._groups)

    def kill_master(self) -> None:
        """SIGKILL the gunicorn master only (its workers become orphans and must notice and exit)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_worker(self) -> int:
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, grace: float = 10) -> None:
        """Stop every process group this server started: TERM, then KILL what is left after ``grace`` seconds.
        A temporary instance folder is removed."""
        procs = [p for p in (self.proc, self.worker_proc) if p is not None]
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            for group in self._groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.group_pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            try:
                for p in procs:
                    p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
            if not self.group_pids():
                break
        if self.temporary:
            shutil.rmtree(self.instance, ignore_errors=True)

    def log_tail(self, lines: int = 30, path: Path | None = None) -> str:
        try:
            return "\n".join((path or self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def open_files(pid: int) -> list[str]:
    """The paths a process holds open (/proc/PID/fd)."""
    paths = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
    except OSError:
        pass
    return paths


@contextmanager
def slow_clients(port: int, count: int, every: float = 0.5) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``127.0.0.1:port`` that never finish their request: half send headers a byte
    every ``every`` seconds, half announce a 9,000-byte body and send it a byte at a time (slowloris)."""
    slow: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(every):
            for s in slow:
                try:
                    s.send(b"a")
                except OSError:
                    pass

    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " if i % 2 else
                      b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9000\r\n\r\n{")
            slow.append(s)
        threading.Thread(target=trickle, daemon=True).start()
        yield slow
    finally:
        stop.set()
        for s in slow:
            s.close()
