"""The README's first command, scripts/quickstart, brings up Keycloak + orgscim and prints a working SCIM URL
and secret (issue #2/#3: "the README's quick-start command works on a fresh machine")."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.keycloak

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, secret: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def test_quickstart_serves_a_working_scim_endpoint(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ORGSCIM_INSTANCE": str(tmp_path / "instance"), "ORGSCIM_PORT": str(port)}
    for key in [k for k in env if k.startswith("ORGSCIM_KEYCLOAK")]:
        env.pop(key)
    log = tmp_path / "quickstart.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "quickstart")], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 660  # the quick start gives Keycloak up to 600 s on a busy machine
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            if "Listening at" in text:
                break
            time.sleep(1)
        assert "Listening at" in text, f"quickstart did not start (exit {proc.poll()}):\n{text[-3000:]}"
        url = re.search(r"SCIM base URL : (\S+)", text).group(1)  # type: ignore[union-attr]
        secret = re.search(r"Bearer secret : (\S+)", text).group(1)  # type: ignore[union-attr]
        assert url.startswith(f"http://127.0.0.1:{port}/realms/orgscim-test/scim/v2/organizations/")
        status, user = _request(f"{url}/Users", secret, {"userName": "qs.user@acme.example", "emails": [
            {"value": "qs.user@acme.example", "primary": True}], "name": {"givenName": "Q", "familyName": "S"}})
        assert status == 201 and user["userName"] == "qs.user@acme.example"
        status, found = _request(f"{url}/Users?filter=userName%20eq%20%22QS.USER@acme.example%22", secret)
        assert status == 200 and found["totalResults"] == 1
        outbox = subprocess.run([str(REPO / ".venv" / "bin" / "orgscim"), "outbox", "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert outbox.returncode == 0 and json.loads(outbox.stdout) == [], outbox.stdout  # delivered to Keycloak
        new_shell_commands_act_on_the_quickstart_keycloak(env["ORGSCIM_INSTANCE"], tmp_path, url, secret)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with socket.socket() as s:  # quickstart stopped what it started
        assert s.connect_ex(("127.0.0.1", port)) != 0, "orgscim still listening after quickstart stopped"


def new_shell_commands_act_on_the_quickstart_keycloak(instance: str, tmp_path: Path, url: str, secret: str) -> None:
    """issue 11: in a new shell (no ORGSCIM_* settings at all, another working directory) the CLI acts on the
    quick start's Keycloak and shows names: the settings come from the instance's config.toml."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "ORGSCIM_INSTANCE": instance}
    orgscim = str(REPO / ".venv" / "bin" / "orgscim")

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        proc = subprocess.run([orgscim, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode in ok, (args, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc.stdout

    config = Path(instance, "config.toml").read_text()
    assert "KEYCLOAK_URL" in config and "orgscim-dev-secret" not in config  # secrets live in files beside it
    check = run("check", "--require-keycloak")
    assert "ok  realm orgscim-test" in check and "standalone" not in check.lower(), check
    listing = run("org", "list")
    acme_line = next(line for line in listing.splitlines() if line.startswith("acme"))
    assert "serving" in acme_line and "EXTERNAL_SECRET" in acme_line, listing
    assert any(line.startswith("globex") and "not configured" in line for line in listing.splitlines()), listing
    listed = json.loads(run("org", "list", "--json"))
    assert {o["name"] for o in listed["orgs"]} >= {"acme", "globex"} and listed["next"] is None

    # a user deleted in Keycloak behind orgscim's back: reconcile --dry-run names it; nothing is recorded
    state = json.loads(Path(instance, "quickstart", "keycloak.json").read_text())
    from orgscim.keycloak.client import KeycloakAdmin

    admin = KeycloakAdmin(state["base_url"], "orgscim-test", "orgscim", "orgscim-dev-secret")
    kc_user = admin.find_user_by_username("qs.user@acme.example")
    assert kc_user is not None
    admin.delete_user(kc_user["id"])
    dry = run("reconcile", "--dry-run", ok=(1,))
    assert "acme" in dry and "User qs.user@acme.example" in dry and "missing_in_keycloak" in dry, dry
    assert run("drift").strip() == "no drift"  # a dry run writes nothing
    run("reconcile", ok=(1,))
    drift = run("drift", ok=(1,))
    assert "acme" in drift and "qs.user@acme.example" in drift, drift
