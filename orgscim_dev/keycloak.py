"""A real Keycloak for development and tests.

``ensure_distribution()`` fetches the Keycloak server distribution
(``org.keycloak:keycloak-quarkus-dist:<version>:tar.gz``) through Maven and unpacks it once into a
cache folder outside the repository. ``KeycloakDev`` runs it in dev mode (``kc.sh start-dev``) on free
loopback ports, imports realm JSON files, waits until ``/health/ready`` answers on the management port
and seeds what realm import does not cover.

Runs never collide: every ``KeycloakDev`` gets its own small Keycloak *home* in a temporary directory
(``bin/`` and ``conf/`` copied, the big read-only parts of the distribution symlinked, ``lib/quarkus``
copied because dev mode re-augments into it, and a fresh ``data/`` holding the H2 database and the
realm files to import). Several test sessions can therefore run side by side from one cached
distribution.

CLI::

    python -m orgscim_dev.keycloak fetch
    python -m orgscim_dev.keycloak start --state-file /tmp/kc.json   # runs until SIGTERM/Ctrl-C

Only the standard library and ``requests`` are used.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests

DEFAULT_VERSION = "26.7.3"
DEFAULT_REALM_FILE = Path(__file__).with_name("realm-orgscim.json")
DEFAULT_STARTUP_TIMEOUT = 180.0
MAVEN_GROUP = "org.keycloak"
MAVEN_ARTIFACT = "keycloak-quarkus-dist"
_MARKER = ".orgscim-unpacked"
# Directories probed for a JDK when neither JAVA_HOME nor the `java` on PATH is recent enough.
_JDK_SEARCH_DIRS = ("/usr/lib/jvm", "/usr/java", "/opt/java", "/opt")


def _log(msg: str) -> None:
    print(f"[orgscim-keycloak] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """The cache folder: ``$ORGSCIM_CACHE`` or ``~/.cache/orgscim`` (never inside the repository)."""
    env = os.environ.get("ORGSCIM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "orgscim"


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _maven_local_repo() -> Path:
    """``$MAVEN_LOCAL_REPO`` (also passed to mvn as ``maven.repo.local``) or ``~/.m2/repository``."""
    return Path(os.environ.get("MAVEN_LOCAL_REPO") or Path.home() / ".m2" / "repository").expanduser()


def _local_repo_artifact(version: str) -> Path | None:
    """The tarball in the local Maven repository if it is there and matches its recorded SHA-1."""
    d = _maven_local_repo() / MAVEN_GROUP.replace(".", "/") / MAVEN_ARTIFACT / version
    tgz = d / f"{MAVEN_ARTIFACT}-{version}.tar.gz"
    sha = d / f"{MAVEN_ARTIFACT}-{version}.tar.gz.sha1"
    if not tgz.is_file():
        return None
    if sha.is_file():
        expected = sha.read_text().split()[0].strip().lower() if sha.read_text().strip() else ""
        if expected and _sha1(tgz) != expected:
            _log(f"{tgz} does not match its .sha1; fetching again")
            return None
    return tgz


def _maven_fetch(version: str, dest_dir: Path) -> Path:
    """Fetch the distribution tarball through Maven into *dest_dir*; return its path."""
    local = _local_repo_artifact(version)
    if local is not None:
        _log(f"using {local} from the local Maven repository")
        return local
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is not on PATH; it is needed to fetch the Keycloak distribution")
    dest_dir.mkdir(parents=True, exist_ok=True)
    artifact = f"{MAVEN_GROUP}:{MAVEN_ARTIFACT}:{version}:tar.gz"
    cmd = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={dest_dir}"]
    if os.environ.get("MAVEN_LOCAL_REPO"):
        cmd.append(f"-Dmaven.repo.local={_maven_local_repo()}")
    _log(f"fetching {artifact} through Maven (first time only, ~180 MB) ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(dest_dir))
    if proc.returncode != 0:
        raise RuntimeError(
            f"Maven could not fetch {artifact} (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    tgz = dest_dir / f"{MAVEN_ARTIFACT}-{version}.tar.gz"
    if not tgz.is_file():
        raise RuntimeError(f"Maven reported success but {tgz} is missing")
    _log(f"fetched in {time.monotonic() - t0:.1f}s")
    return tgz


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    try:
        tar.extractall(dest, filter="data")
    except TypeError:  # Python without extraction filters
        root = dest.resolve()
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if root not in target.parents and target != root:
                raise RuntimeError(f"refusing to extract {member.name!r} outside {dest}") from None
        tar.extractall(dest)


def ensure_distribution(version: str = DEFAULT_VERSION, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the Keycloak home (the folder holding ``bin/kc.sh``) for *version*, fetching it if needed.

    The distribution is unpacked to ``<cache>/keycloak-<version>`` where ``<cache>`` is *cache_dir*,
    ``$ORGSCIM_CACHE`` or ``~/.cache/orgscim``. A marker file written after a complete unpack makes the
    next call return at once; a folder without the marker (an interrupted unpack) is removed and redone.
    Concurrent callers are serialised with a lock file.
    """
    base = Path(cache_dir).expanduser() if cache_dir else cache_root()
    home = base / f"keycloak-{version}"
    marker = home / _MARKER
    if marker.is_file() and (home / "bin" / "kc.sh").is_file():
        return home
    with _file_lock(base / f".keycloak-{version}.lock"):
        if marker.is_file() and (home / "bin" / "kc.sh").is_file():
            return home
        if home.exists():
            _log(f"{home} is incomplete; unpacking again")
            shutil.rmtree(home)
        tgz = _maven_fetch(version, base / "downloads")
        _log(f"unpacking {tgz.name} into {home} ...")
        t0 = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix=f".keycloak-{version}-", dir=base))
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                _safe_extract(tar, staging)
            inner = [p for p in staging.iterdir() if (p / "bin" / "kc.sh").is_file()]
            if len(inner) != 1:
                raise RuntimeError(f"unexpected layout in {tgz}: {[p.name for p in staging.iterdir()]}")
            inner[0].rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        marker.write_text(json.dumps({"version": version, "source": str(tgz), "unpacked": time.time()}))
        _log(f"unpacked in {time.monotonic() - t0:.1f}s")
    return home


# --------------------------------------------------------------------------------------------------
# java
# --------------------------------------------------------------------------------------------------


def required_java(version: str) -> int:
    """Lowest Java feature release the Keycloak *version* runs on (26.x: 17; later: 21, assumed)."""
    m = re.match(r"(\d+)", version)
    major = int(m.group(1)) if m else 26
    return 17 if major <= 26 else 21


def java_feature_version(java_executable: str) -> int | None:
    """The feature release (17, 21, 25, ...) of a ``java`` binary, or None if it does not run."""
    try:
        out = subprocess.run(
            [java_executable, "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"java\.specification\.version = (\d+)(?:\.(\d+))?", out.stderr + out.stdout)
    if not m:
        return None
    first = int(m.group(1))
    return int(m.group(2)) if first == 1 and m.group(2) else first


def find_java_home(min_version: int = 17) -> str | None:
    """Pick a JDK for Keycloak.

    ``JAVA_HOME`` from the environment always wins. Otherwise the ``java`` on PATH is used when it is
    at least *min_version* (returns None: let kc.sh use PATH); failing that, JDKs under the usual
    folders (``/usr/lib/jvm``, ...) are probed and the newest suitable one is returned.
    """
    env_home = os.environ.get("JAVA_HOME")
    if env_home:
        return env_home
    on_path = shutil.which("java")
    if on_path:
        v = java_feature_version(on_path)
        if v is not None and v >= min_version:
            return None
    found: list[tuple[int, str]] = []
    for d in _JDK_SEARCH_DIRS:
        root = Path(d)
        if not root.is_dir():
            continue
        for cand in sorted(root.iterdir()):
            java = cand / "bin" / "java"
            if java.is_file() and os.access(java, os.X_OK):
                v = java_feature_version(str(java))
                if v is not None and v >= min_version:
                    found.append((v, str(cand)))
    if not found:
        raise RuntimeError(f"no Java {min_version}+ found (set JAVA_HOME to a JDK {min_version} or later)")
    found.sort()
    return found[-1][1]


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on *host* right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _PortClash(RuntimeError):
    """Another process got one of our ports first."""


_PORT_CLASH = re.compile(r"already in use|in use by another|already bound|BindException", re.IGNORECASE)


def _dev_build_dir(dist: Path, key: str) -> Path:
    return dist / ".orgscim-dev-builds" / key / "quarkus"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether *port* on *host* can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _make_run_home(dist: Path, run_dir: Path, realm_files: Sequence[Path], build_key: str) -> Path:
    """A private Keycloak home for one run, sharing the big read-only parts of *dist*.

    ``lib/quarkus`` (what dev mode's re-augmentation writes) comes from a cached dev build with the
    same build-time options when there is one, which saves the ~15 s augmentation step.
    """
    home = run_dir / "kc-home"
    (home / "lib").mkdir(parents=True)
    (home / "bin").mkdir()
    shutil.copy2(dist / "bin" / "kc.sh", home / "bin" / "kc.sh")  # kc.sh resolves symlinks: copy it
    shutil.copytree(dist / "conf", home / "conf")
    shutil.copy2(dist / "lib" / "quarkus-run.jar", home / "lib" / "quarkus-run.jar")
    for name in ("lib", "app"):
        (home / "lib" / name).symlink_to(dist / "lib" / name)
    cached = _dev_build_dir(dist, build_key)
    source = cached if (cached / "quarkus-application.dat").is_file() else dist / "lib" / "quarkus"
    if source.is_dir():
        shutil.copytree(source, home / "lib" / "quarkus")
    for name in ("themes", "providers"):
        if (dist / name).exists():
            shutil.copytree(dist / name, home / name, symlinks=True)
    imp = home / "data" / "import"
    imp.mkdir(parents=True)
    for f in realm_files:
        shutil.copy2(f, imp / Path(f).name)
    return home


def _save_dev_build(dist: Path, run_home: Path, build_key: str) -> None:
    """Keep this run's augmented ``lib/quarkus`` for the next runs with the same build options."""
    target = _dev_build_dir(dist, build_key)
    if (target / "quarkus-application.dat").is_file():
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        shutil.copytree(run_home / "lib" / "quarkus", staging / "quarkus")
        try:
            (staging / "quarkus").rename(target)
        except OSError:  # another run saved it first
            pass
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        _log(f"could not cache the dev build ({exc}); next start re-augments")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child when the thread that started it dies (no orphaned Keycloak
    when the test runner is killed). kc.sh forwards the signal to the JVM, or *is* the JVM after
    its relaunch (``exec``); the setting survives exec."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _tail(path: Path, lines: int = 60) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


class KeycloakDev:
    """A Keycloak server in dev mode, bound to 127.0.0.1 on free ports.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. After ``start()`` the attributes
    ``base_url`` (e.g. ``http://127.0.0.1:41234``), ``management_url``, ``admin_user`` and
    ``admin_password`` (bootstrap admin of the master realm) are set.
    """

    def __init__(
        self,
        home: str | os.PathLike | None = None,
        *,
        version: str = DEFAULT_VERSION,
        admin_user: str = "admin",
        admin_password: str | None = None,
        http_port: int | None = None,
        management_port: int | None = None,
        java_home: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        work_dir: str | os.PathLike | None = None,
        keep_work_dir: bool = False,
        extra_args: Sequence[str] = (),
        die_with_parent: bool = True,
    ) -> None:
        self.version = version
        self.dist = Path(home) if home else None
        self.admin_user = admin_user
        self.admin_password = admin_password or "admin-" + secrets.token_hex(8)
        self._want_http_port = http_port
        self._want_mgmt_port = management_port
        self._java_home = java_home
        self.startup_timeout = startup_timeout
        self._work_dir_arg = Path(work_dir) if work_dir else None
        self.keep_work_dir = keep_work_dir
        self.extra_args = list(extra_args)
        self.die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self.http_port: int | None = None
        self.management_port: int | None = None
        self.base_url: str = ""
        self.management_url: str = ""
        self.work_dir: Path | None = None
        self.java: str | None = None  # the java binary Keycloak runs on (after start)
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self.realms: list[str] = []
        self._realm_jsons: list[dict[str, Any]] = []
        self._proc: subprocess.Popen | None = None
        self._log_fh = None
        self._run_home: Path | None = None
        self._build_key = ""
        self._t0 = 0.0

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(
        self,
        realm_files: Iterable[str | os.PathLike] | None = None,
        *,
        seed: bool = True,
    ) -> KeycloakDev:
        """Start Keycloak, import *realm_files* (default: ``realm-orgscim.json``), wait until ready.

        With *seed* (default) the organizations, their domains and IdP links declared in the realm
        files are then checked through the admin REST API and created where import left them out.
        Raises ``RuntimeError`` with the tail of the Keycloak log if the server does not come up within
        ``startup_timeout`` seconds. Never returns a half-started server.
        """
        if self.running:
            raise RuntimeError("Keycloak is already running")
        files = [Path(f) for f in (realm_files if realm_files is not None else [DEFAULT_REALM_FILE])]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f)
        if self.dist is None:
            self.dist = ensure_distribution(self.version)
        java_home = self._java_home or find_java_home(required_java(self.version))
        attempts = 1 if (self._want_http_port or self._want_mgmt_port) else 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch(files, java_home)
                self._wait_ready()
                break
            except _PortClash as exc:
                self._terminate()
                if attempt == attempts:
                    self._cleanup_work_dir(keep_log=True)
                    raise RuntimeError(str(exc)) from None
                self._cleanup_work_dir()
                _log(f"port clash ({exc.args[0].splitlines()[0]}); retrying on other ports")
            except BaseException:
                self._terminate()
                self._cleanup_work_dir(keep_log=True)
                raise
        self._realm_jsons = [json.loads(f.read_text()) for f in files]
        self.realms = [r.get("realm", "") for r in self._realm_jsons]
        if seed:
            try:
                for f in files:
                    seed_realm(self, json.loads(f.read_text()))
            except Exception:
                self.stop()
                raise
        return self

    def _launch(self, files: Sequence[Path], java_home: str | None) -> None:
        assert self.dist is not None
        for port in (self._want_http_port, self._want_mgmt_port):
            if port and not port_is_free(port):
                raise RuntimeError(f"port {port} on 127.0.0.1 is already in use; choose another one")
        self.http_port = self._want_http_port or free_port()
        self.management_port = self._want_mgmt_port or free_port()
        while self.management_port == self.http_port:
            self.management_port = free_port()
        if self._work_dir_arg:
            self.work_dir = self._work_dir_arg
            self.work_dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.work_dir / "kc-home", ignore_errors=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="orgscim-kc-"))
        build_key = hashlib.sha256(
            json.dumps([self.version, java_home or shutil.which("java"), self._build_args()]).encode()
        ).hexdigest()[:16]
        self._build_key = build_key
        run_home = _make_run_home(self.dist, self.work_dir, files, build_key)
        self._run_home = run_home
        self.log_path = self.work_dir / "keycloak.log"
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.management_url = f"http://127.0.0.1:{self.management_port}"
        cmd = [
            str(run_home / "bin" / "kc.sh"),
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={self.http_port}",
            "--http-management-host=127.0.0.1",
            f"--http-management-port={self.management_port}",
            f"--hostname={self.base_url}",
            "--import-realm",
            "--log-console-color=false",
            *self._build_args(),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_", "QUARKUS_"))}
        env.update(
            KC_BOOTSTRAP_ADMIN_USERNAME=self.admin_user,
            KC_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
        )
        if java_home:
            env["JAVA_HOME"] = java_home
        self.java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        self._log_fh = open(self.log_path, "ab")
        _log(
            f"starting Keycloak {self.version} on {self.base_url} (management {self.management_url}, "
            f"java {java_home or shutil.which('java')}, log {self.log_path})"
        )
        self._launch_args = (cmd, env)
        self._spawn()

    def _spawn(self) -> None:
        cmd, env = self._launch_args
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            cwd=str(self.work_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        atexit.register(self.stop)

    def kill(self) -> None:
        """SIGKILL the server as a crash would, keeping its home and data for :meth:`restart`."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def restart(self) -> None:
        """Start a killed server again on the same ports and data (realms already there are not re-imported)."""
        if self.running:
            raise RuntimeError("Keycloak is still running")
        self._spawn()
        self._wait_ready()

    def _build_args(self) -> list[str]:
        """Options that may change the build (they key the cached dev build)."""
        return ["--health-enabled=true", *self.extra_args]

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.log_path is not None
        deadline = self._t0 + self.startup_timeout
        url = f"{self.management_url}/health/ready"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = _tail(self.log_path)
                cls = _PortClash if _PORT_CLASH.search(tail) else RuntimeError
                raise cls(
                    f"Keycloak exited with status {code} before it was ready. Last log lines ({self.log_path}):\n{tail}"
                )
            try:
                r = requests.get(url, timeout=2)
                if r.status_code == 200 and r.json().get("status") == "UP":
                    self._check_identity()
                    break
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Keycloak did not become ready at {url} within {self.startup_timeout:.0f}s. "
                    f"Last log lines ({self.log_path}):\n{_tail(self.log_path)}"
                )
            time.sleep(0.5)
        self.startup_seconds = time.monotonic() - self._t0
        _log(f"Keycloak ready at {self.base_url} after {self.startup_seconds:.1f}s")
        if self.dist is not None and self._run_home is not None:
            _save_dev_build(self.dist, self._run_home, self._build_key)

    def _check_identity(self) -> None:
        """Make sure the server that said UP is ours (a port taken by another server between
        ``free_port()`` and bind would answer too): it must know our random admin password."""
        if self._proc is None or self._proc.poll() is not None:
            raise requests.ConnectionError("our process is gone")  # the loop reports the exit
        r = self._admin_login()
        if r.status_code != 200:
            if self._proc.poll() is not None:
                raise requests.ConnectionError("our process is gone")
            raise _PortClash(
                f"a server on {self.base_url} / {self.management_url} answered but rejected our admin "
                f"credentials (HTTP {r.status_code}): another server holds one of the ports"
            )

    def _terminate(self, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log("Keycloak did not stop after SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._proc = None
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None

    def _cleanup_work_dir(self, keep_log: bool = False) -> None:
        """Remove this run's private home; with *keep_log* only the Keycloak log is left (for failures)."""
        if not self.work_dir or self.keep_work_dir:
            return
        if keep_log or self._work_dir_arg:
            shutil.rmtree(self.work_dir / "kc-home", ignore_errors=True)
            if not keep_log and self.log_path:
                with contextlib.suppress(FileNotFoundError):
                    self.log_path.unlink()
            return
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after *timeout*) and clean up."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._proc is None:
            return
        self._terminate(timeout)
        self._cleanup_work_dir()
        _log("Keycloak stopped")

    def __enter__(self) -> KeycloakDev:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin helpers ------------------------------------------------------------------------------

    def _admin_login(self) -> requests.Response:
        """Password grant of the bootstrap admin at the master realm (``admin-cli``)."""
        return requests.post(
            f"{self.base_url}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli", "username": self.admin_user,
                  "password": self.admin_password},
            timeout=30,
        )

    def admin_token(self) -> str:
        """An access token of the bootstrap admin (master realm, ``admin-cli``)."""
        r = self._admin_login()
        if r.status_code != 200:
            raise RuntimeError(f"admin login failed: {r.status_code} {r.text[:500]}")
        return r.json()["access_token"]

    def admin_session(self) -> requests.Session:
        """A ``requests.Session`` carrying the bootstrap admin's bearer token (valid ~60 s)."""
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.admin_token()}"
        return s

    def state(self) -> dict[str, Any]:
        """What a caller needs to talk to this server (written by ``start --state-file``)."""
        return {
            "base_url": self.base_url,
            "management_url": self.management_url,
            "admin_user": self.admin_user,
            "admin_password": self.admin_password,
            "realms": self.realms,
            # confidential clients with their (dev-only) secrets, per realm, from the imported files
            "clients": {
                r.get("realm", ""): {
                    c["clientId"]: c["secret"] for c in r.get("clients") or [] if c.get("secret") and c.get("clientId")
                }
                for r in self._realm_jsons
            },
            "pid": self.pid,
            "log": str(self.log_path) if self.log_path else None,
            "version": self.version,
            "java": self.java,
        }


# --------------------------------------------------------------------------------------------------
# seeding (what realm import may leave out)
# --------------------------------------------------------------------------------------------------


def _check(r: requests.Response, what: str, ok: Iterable[int] = (200, 201, 204)) -> requests.Response:
    if r.status_code not in tuple(ok):
        raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
    return r


def seed_realm(kc: KeycloakDev, realm_json: dict[str, Any]) -> None:
    """Make sure the organizations declared in *realm_json* exist with their domains and IdP links.

    Realm import in Keycloak 26.x does create organizations; this is a safety net (older or future
    versions, partial imports) and is idempotent: it only creates what is missing.
    """
    realm = realm_json.get("realm")
    orgs = realm_json.get("organizations") or []
    if not realm or not orgs:
        return
    s = kc.admin_session()
    admin = f"{kc.base_url}/admin/realms/{realm}"
    rep = _check(s.get(admin, timeout=30), f"read realm {realm}").json()
    if not rep.get("organizationsEnabled"):
        rep["organizationsEnabled"] = True
        _check(s.put(admin, json=rep, timeout=30), f"enable organizations in {realm}")
        _log(f"enabled organizations in realm {realm}")
    for idp in realm_json.get("identityProviders") or []:
        r = s.get(f"{admin}/identity-provider/instances/{idp['alias']}", timeout=30)
        if r.status_code == 404:
            _check(s.post(f"{admin}/identity-provider/instances", json=idp, timeout=30), "create IdP")
            _log(f"created identity provider {idp['alias']}")
    for org in orgs:
        alias = org.get("alias") or org["name"]
        found = _check(
            s.get(f"{admin}/organizations", params={"search": org["name"], "exact": "true"}, timeout=30),
            "search organizations",
        ).json()
        match = [o for o in found if o.get("alias") == alias or o.get("name") == org["name"]]
        if match:
            org_id = match[0]["id"]
        else:
            body = {k: v for k, v in org.items() if k not in ("identityProviders", "members", "groups")}
            r = _check(s.post(f"{admin}/organizations", json=body, timeout=30), f"create org {alias}")
            org_id = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
            _log(f"created organization {alias}")
        linked = {
            i["alias"]
            for i in _check(s.get(f"{admin}/organizations/{org_id}/identity-providers", timeout=30), "org IdPs").json()
        }
        for idp in org.get("identityProviders") or []:
            if idp["alias"] not in linked:
                _check(
                    s.post(f"{admin}/organizations/{org_id}/identity-providers", json=idp["alias"], timeout=30),
                    f"link IdP {idp['alias']} to {alias}",
                )
                _log(f"linked identity provider {idp['alias']} to organization {alias}")


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _cmd_fetch(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    home = ensure_distribution(args.version, args.cache_dir)
    _log(f"distribution ready in {time.monotonic() - t0:.1f}s")
    print(home)
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    stop_requested = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    home = ensure_distribution(args.version, args.cache_dir)
    kc = KeycloakDev(
        home,
        version=args.version,
        admin_user=args.admin_user,
        admin_password=args.admin_password,
        http_port=args.http_port,
        management_port=args.management_port,
        startup_timeout=args.timeout,
    )
    realm_files = args.realm_file or [str(DEFAULT_REALM_FILE)]
    kc.start(realm_files)
    state_file = Path(args.state_file) if args.state_file else None
    try:
        if state_file:
            tmp = state_file.with_suffix(state_file.suffix + ".tmp")
            tmp.write_text(json.dumps(kc.state(), indent=2))
            os.chmod(tmp, 0o600)
            tmp.replace(state_file)
        print(kc.base_url, flush=True)
        while not stop_requested:
            if not kc.running:
                _log(f"Keycloak exited unexpectedly; log tail:\n{_tail(kc.log_path)}")  # type: ignore[arg-type]
                return 1
            time.sleep(0.5)
    finally:
        kc.stop()
        if state_file:
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orgscim_dev.keycloak", description=__doc__.split("\n")[0])
    p.add_argument("--version", default=DEFAULT_VERSION, help="Keycloak version (default %(default)s)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $ORGSCIM_CACHE or ~/.cache/orgscim)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="fetch and unpack the distribution; print its path")
    st = sub.add_parser("start", help="run Keycloak in dev mode until SIGTERM/Ctrl-C; print its base URL")
    st.add_argument("--state-file", help="write base URL, admin credentials, pid ... as JSON here")
    st.add_argument("--realm-file", action="append", help="realm JSON to import (repeatable)")
    st.add_argument("--http-port", type=int, default=None)
    st.add_argument("--management-port", type=int, default=None)
    st.add_argument("--admin-user", default="admin")
    st.add_argument("--admin-password", default=None, help="default: random (see the state file)")
    st.add_argument("--timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT)
    args = p.parse_args(argv)
    try:
        return {"fetch": _cmd_fetch, "start": _cmd_start}[args.cmd](args)
    except RuntimeError as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
