"""A live ``orgscim serve`` for tests and ``bench/resilience.py``: the project's own console script driven
through its CLI (``db upgrade``, ``realm enable``, ``org configure``, ``org credential create --json``,
``serve``), in its own process group so that it, its workers and any orphan of a killed master can be
stopped together. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """``orgscim serve`` on a free loopback port over the instance folder ``instance``."""

    def __init__(self, instance: Path, env: dict[str, str] | None = None, workers: int = 2, threads: int = 16,
                 orgscim: str | None = None) -> None:
        self.instance = Path(instance)
        self.instance.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "ORGSCIM_INSTANCE": str(self.instance), **(env or {})}
        self.workers, self.threads = workers, threads
        self.orgscim = orgscim or str(Path(sys.executable).with_name("orgscim"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.instance / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._groups: list[int] = []  # process groups started (a killed master leaves its workers in it)

    # -- CLI ---------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([self.orgscim, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"`orgscim {' '.join(args)}` exited {proc.returncode}: {proc.stderr or proc.stdout}")
        return proc.stdout

    def add_org(self, realm: str = "live", org_id: str | None = None) -> LiveOrg:
        """Enable ``realm``, configure an EXTERNAL_SECRET org and issue its secret."""
        org_id = org_id or str(uuid.uuid4())
        self.cli("realm", "enable", realm)
        self.cli("org", "configure", realm, org_id, "--auth-mode", "EXTERNAL_SECRET")
        out = self.cli("org", "credential", "create", realm, org_id, "--json")
        secret = json.loads(out[out.index("{"):out.rindex("}") + 1])["secret"]
        return LiveOrg(realm, org_id, secret, f"{self.url}/realms/{realm}/scim/v2/organizations/{org_id}")

    # -- process -----------------------------------------------------------------------------------
    def start(self, timeout: float = 40) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.orgscim, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--threads", str(self.threads)],
                env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self._groups.append(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orgscim serve exited {self.proc.returncode}: {self.log_tail()}")
            if self.healthz() == 200 and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"orgscim serve did not answer /healthz within {timeout:.0f} s: {self.log_tail()}")

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
        return [pid for pid, ppid in _processes() if ppid == self.proc.pid]

    def group_pids(self) -> list[int]:
        """Every live process of the groups this server started (orphaned workers included)."""
        return [pid for pid, _ in _processes() if _pgid(pid) in self._groups]

    def kill_master(self) -> None:
        """SIGKILL the gunicorn master only (its workers become orphans and must notice and exit)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_worker(self) -> int:
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Stop every process group this server started: TERM, then KILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self._groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self.group_pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    continue
            if not self.group_pids():
                break

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def stop_sessions(procs: list[subprocess.Popen[Any]], grace: float = 20) -> None:
    """Stop processes started with ``start_new_session=True`` (``orgscim serve`` and ``worker``): SIGTERM to
    each process group, then SIGKILL to a group whose leader has not exited within ``grace`` seconds."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _processes() -> list[tuple[int, int]]:
    """(pid, ppid) of every process, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                out.append((int(name), int(fields[1])))
    return out


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


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
