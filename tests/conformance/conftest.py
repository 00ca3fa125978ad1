"""A live orgscim server for the external SCIM checkers (shared/conformance/README.md).

The server is the project's own console script, driven through its CLI contract:

    orgscim db upgrade
    orgscim realm enable REALM
    orgscim org configure REALM ORG_ID --auth-mode EXTERNAL_SECRET
    orgscim org credential create REALM ORG_ID --json      -> {"secret": ...}
    orgscim serve --host 127.0.0.1 --port P

with ``ORGSCIM_INSTANCE`` pointing at a fresh temporary instance folder. Each checker gets an org of its own,
so that no checker sees the resources of another.

Overrides (environment): ``ORGSCIM_BIN`` (default ``<repo>/.venv/bin/orgscim``), ``ORGSCIM_CONFORMANCE_VENV``
(default ``<repo>/.venv-conformance``), ``ORGSCIM_SHARED`` (default ``<repo>/../shared``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REALM = "conformance"
KEYCLOAK_REALM = "orgscim-test"  # the dev realm tests/fixtures_keycloak.py starts
CHECKERS = ("scim2-tester", "scim-sanity", "replay")
HEALTH_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def read_tail(path: Path, lines: int = 40) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "<no output>"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------- checker venv


@dataclass(frozen=True)
class ConformanceVenv:
    path: Path

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


@pytest.fixture(scope="session")
def conformance_venv() -> ConformanceVenv:
    """The checkers' virtual environment; built by scripts/conformance-venv when missing (failing, not skipping)."""
    venv = ConformanceVenv(Path(os.environ.get("ORGSCIM_CONFORMANCE_VENV", REPO / ".venv-conformance")))
    needed = ("scim2", "scim-sanity", "python")
    if all(os.access(venv.bin(b), os.X_OK) for b in needed):
        return venv
    script = REPO / "scripts" / "conformance-venv"
    try:
        proc = subprocess.run(
            ["bash", str(script)],
            env={**os.environ, "ORGSCIM_CONFORMANCE_VENV": str(venv.path)},
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish within 900 s", pytrace=False)
    missing = [b for b in needed if not os.access(venv.bin(b), os.X_OK)]
    if proc.returncode != 0 or missing:
        pytest.fail(
            f"{script} failed (exit {proc.returncode}, missing {missing}):\n{tail(proc.stdout + proc.stderr)}",
            pytrace=False,
        )
    return venv


# --------------------------------------------------------------------------------------------- live server


@dataclass
class Org:
    org_id: str
    secret: str
    base_url: str


@dataclass
class LiveServer:
    url: str
    instance: Path
    logdir: Path
    keycloak: bool
    stderr_path: Path
    orgs: dict[str, Org] = field(default_factory=dict)

    def org(self, checker: str) -> Org:
        return self.orgs[checker]

    def stderr_tail(self, lines: int = 40) -> str:
        return read_tail(self.stderr_path, lines)


def _orgscim_bin() -> Path:
    path = Path(os.environ.get("ORGSCIM_BIN", REPO / ".venv" / "bin" / "orgscim"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"the orgscim console script is missing: {path}", pytrace=False)
    return path


def _run_cli(orgscim: Path, env: dict[str, str], *args: str) -> str:
    cmd = [str(orgscim), *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`orgscim {' '.join(args)}` did not finish within {CLI_TIMEOUT:.0f} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"`orgscim {' '.join(args)}` exited {proc.returncode}:\n{tail(proc.stderr or proc.stdout)}",
            pytrace=False,
        )
    return proc.stdout


def _json_object(text: str) -> dict:
    """The JSON object a command printed, tolerating log lines around it."""
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(text[start : end + 1])
        except ValueError:
            pass
    raise ValueError(f"no JSON object in output: {text.strip()[:300]!r}")


def _healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/healthz"), timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and whatever it spawned (it leads its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="session", params=["standalone", "keycloak"])
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A real orgscim server on a free loopback port, one enabled realm and one org per checker.

    ``standalone``: no Keycloak (SCIM state in SQLite only). ``keycloak``: the session's real Keycloak behind the
    server, one fresh Keycloak organization per checker, every SCIM write provisioned into Keycloak.
    """
    root = tmp_path_factory.mktemp(f"conformance-{request.param}")
    if request.param == "standalone":
        yield from _live_server(root, REALM, {}, [str(uuid.uuid4()) for _ in CHECKERS])
        return
    keycloak = request.getfixturevalue("keycloak")
    admin = request.getfixturevalue("kc_admin")
    org_ids = []
    for checker in CHECKERS:
        name = f"conformance-{checker}-{uuid.uuid4().hex[:8]}"
        rep = {"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]}
        org_ids.append(admin.create_organization(rep))
    secret_file = root / "keycloak-client-secret"
    secret_file.write_text("orgscim-dev-secret")
    env = {"ORGSCIM_KEYCLOAK_URL": keycloak.base_url, "ORGSCIM_KEYCLOAK_CLIENT_ID": "orgscim",
           "ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file)}
    try:
        yield from _live_server(root, KEYCLOAK_REALM, env, org_ids)
    finally:
        for org_id in org_ids:
            admin.delete_organization(org_id)


def _live_server(root: Path, realm: str, env_extra: dict[str, str], org_ids: list[str]):
    orgscim = _orgscim_bin()
    instance = root / "instance"
    instance.mkdir()
    logdir = root / "logs"
    logdir.mkdir()
    env = {**os.environ, "ORGSCIM_INSTANCE": str(instance), **env_extra}

    _run_cli(orgscim, env, "db", "upgrade")
    _run_cli(orgscim, env, "realm", "enable", realm)
    creds: dict[str, tuple[str, str]] = {}
    for checker, org_id in zip(CHECKERS, org_ids, strict=True):
        # the checkers send names of any domain (the domain policy has its own tests)
        _run_cli(orgscim, env, "org", "configure", realm, org_id, "--auth-mode", "EXTERNAL_SECRET",
                 "--option", "domain_policy=off")
        out = _run_cli(orgscim, env, "org", "credential", "create", realm, org_id, "--json")
        try:
            secret = _json_object(out)["secret"]
        except (ValueError, KeyError) as e:
            pytest.fail(f"`orgscim org credential create … --json` gave no secret ({e}): {out[:300]!r}", pytrace=False)
        creds[checker] = (org_id, secret)

    proc = None
    stderr_path = logdir / "server.stderr"
    for attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        stdout_path = logdir / "server.stdout"
        with open(stdout_path, "ab") as out, open(stderr_path, "ab") as err:
            proc = subprocess.Popen(
                [str(orgscim), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + HEALTH_TIMEOUT
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            status = _healthz(url)
            if status == 200:
                break
            time.sleep(0.2)
        if status == 200 and proc.poll() is None:
            break
        exited = proc.poll()
        _stop(proc)
        if exited is not None and "address already in use" in read_tail(stderr_path, 20).lower() and attempt < 2:
            continue
        what = f"exited with {exited}" if exited is not None else f"last /healthz status {status}"
        pytest.fail(
            f"orgscim serve did not answer GET /healthz 200 within {HEALTH_TIMEOUT:.0f} s ({what}).\n"
            f"server stderr (tail):\n{read_tail(stderr_path)}",
            pytrace=False,
        )

    server = LiveServer(url=url, instance=instance, logdir=logdir, keycloak=bool(env_extra), stderr_path=stderr_path)
    for checker, (org_id, secret) in creds.items():
        base = f"{url}/realms/{realm}/scim/v2/organizations/{org_id}"
        server.orgs[checker] = Org(org_id=org_id, secret=secret, base_url=base)
    try:
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def shared_conformance_dir() -> Path:
    shared = Path(os.environ.get("ORGSCIM_SHARED", REPO.parent / "shared"))
    folder = shared / "conformance"
    if not (folder / "replay.py").is_file():
        pytest.fail(f"{folder / 'replay.py'} not found (set ORGSCIM_SHARED to the shared folder)", pytrace=False)
    return folder
