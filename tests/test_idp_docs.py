"""Each page of docs/idp/ is backed by a replay of that IdP's requests against a server configured exactly as the
page says (issue 11): the page's ``orgscim-setup`` block runs verbatim through the CLI against a live
``orgscim serve``, then ``../shared/conformance/replay.py`` sends the IdP's requests — the shared capture for Okta
and Entra ID (``client_requests.jsonl``), ``tests/idp/<page>.jsonl`` (shaped after QUIRKS.md) for the others.
The org page's short instructions (``orgscim/web/idp_guides.py``) must name the same fields as the page."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgscim.web.idp_guides import GUIDES

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ORGSCIM_SHARED", REPO.parent / "shared"))
DOCS = REPO / "docs" / "idp"
ORGSCIM = Path(sys.executable).parent / "orgscim"
REALM = "idp-docs"
# page → (client names in the shared capture, extra corpus of our own)
CORPORA: dict[str, tuple[str | None, bool]] = {
    "okta": ("okta", False), "entra-id": ("entra,entra-validator", True), "jumpcloud": (None, True),
    "onelogin": (None, True), "google-workspace": (None, True), "generic": (None, True),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env

    def cli(self, args: list[str]) -> str:
        proc = subprocess.run([str(ORGSCIM), *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"orgscim {shlex.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        return proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``orgscim serve`` (gunicorn) on a fresh instance, standalone (the SCIM side is what the IdPs see)."""
    folder = tmp_path_factory.mktemp("idp-docs")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "ORGSCIM_INSTANCE": str(folder)}
    port = free_port()
    srv = Server(f"http://127.0.0.1:{port}", env)
    srv.cli(["db", "upgrade"])
    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(ORGSCIM), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{srv.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield srv
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def setup_block(page: str) -> list[list[str]]:
    """The commands of the page's ``orgscim-setup`` block, one argv per line (without ``orgscim``)."""
    m = re.search(r"```orgscim-setup\n(.*?)```", page, re.S)
    assert m, "the page has no ```orgscim-setup block"
    commands = [shlex.split(line) for line in m.group(1).splitlines() if line.strip()]
    assert all(c[0] == "orgscim" for c in commands)
    return [c[1:] for c in commands]


@pytest.mark.parametrize("slug", list(CORPORA))
def test_idp_page(server: Server, slug: str, tmp_path: Path) -> None:
    page = (DOCS / f"{slug}.md").read_text()
    org_id = f"org-{slug}"
    secret = None
    for args in setup_block(page):
        out = server.cli([org_id if a == "ORG_ID" else REALM if a == "REALM" else a for a in args])
        if args[:3] == ["org", "credential", "create"]:
            secret = json.loads(out)["secret"]
    assert secret, "the page's setup creates no credential"
    shown = json.loads(server.cli(["org", "show", REALM, org_id, "--json"]))
    assert shown["serving"], shown  # configured as the page says, and open
    base = f"{server.url}/realms/{REALM}/scim/v2/organizations/{org_id}"
    assert "https://<orgscim host>/realms/<realm>/scim/v2/organizations/<org id>" in page

    clients, own = CORPORA[slug]
    runs = []
    if clients:
        runs.append(["--corpus", str(SHARED / "conformance" / "client_requests.jsonl"), "--client", clients])
    if own:
        runs.append(["--corpus", str(REPO / "tests" / "idp" / f"{slug}.jsonl")])
    for extra in runs:
        report = tmp_path / "replay.json"
        proc = subprocess.run([sys.executable, str(SHARED / "conformance" / "replay.py"), base, "--token", secret,
                               "--json", str(report), *extra], capture_output=True, text=True, timeout=300)
        results = json.loads(report.read_text())
        assert proc.returncode == 0 and all(r["ok"] for r in results), proc.stdout[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == f"{len(results)} passed, 0 failed"
        assert len(results) >= 3


@pytest.mark.parametrize("guide", GUIDES, ids=[g.slug for g in GUIDES])
def test_org_page_guide_matches_the_doc(guide) -> None:
    """The org page's instructions name the fields and mappings the full page documents."""
    doc = re.sub(r"[*`]", "", (DOCS / f"{guide.slug}.md").read_text()).lower()
    for label, _ in guide.fields:
        key = re.sub(r"\s*\(.*\)$", "", label.split("→")[-1]).strip().lower()
        assert key in doc, f"{guide.slug}: field {label!r} is not on docs/idp/{guide.slug}.md"
    for src, dst in guide.mappings:
        source = re.sub(r"\s*\(.*\)$", "", src).strip().lower()
        assert source in doc and dst.lower() in doc, f"{guide.slug}: mapping {src} → {dst} is not on the page"
    assert guide.slug in CORPORA  # every guide has a replay test
