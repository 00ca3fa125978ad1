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
        deadline = time.monotonic() + 300
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
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with socket.socket() as s:  # quickstart stopped what it started
        assert s.connect_ex(("127.0.0.1", port)) != 0, "orgscim still listening after quickstart stopped"
