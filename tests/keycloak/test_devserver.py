"""The dev Keycloak launcher: distribution cache, Java choice, start failures, the running server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from orgscim_dev import keycloak as kcdev
from orgscim_dev.keycloak import (
    DEFAULT_REALM_FILE,
    KeycloakDev,
    ensure_distribution,
    find_java_home,
    java_feature_version,
    required_java,
)

pytestmark = pytest.mark.keycloak


def test_realm_file_declares_what_the_tests_need() -> None:
    realm = json.loads(DEFAULT_REALM_FILE.read_text())
    assert realm["realm"] == "orgscim-test" and realm["organizationsEnabled"] is True
    clients = {c["clientId"]: c for c in realm["clients"]}
    assert clients["orgscim"]["serviceAccountsEnabled"] and clients["orgscim"]["secret"] == "orgscim-dev-secret"
    assert clients["other-client"]["serviceAccountsEnabled"]
    orgs = {o["alias"]: o for o in realm["organizations"]}
    assert orgs["acme"]["domains"][0]["name"] == "acme.example"
    assert orgs["globex"]["domains"][0]["name"] == "globex.example"
    assert orgs["acme"]["identityProviders"] == [{"alias": "acme-idp"}]


def test_distribution_is_cached_and_incomplete_unpack_is_redone(tmp_path: Path) -> None:
    home = ensure_distribution()  # the session's cached copy: instant
    assert (home / "bin" / "kc.sh").is_file() and (home / ".orgscim-unpacked").is_file()
    t0 = time.monotonic()
    assert ensure_distribution() == home
    assert time.monotonic() - t0 < 1.0

    # a private cache: unpack, then simulate an interrupted unpack (no marker) -> redone
    cache = tmp_path / "cache"
    try:
        fresh = ensure_distribution(cache_dir=cache)
        assert fresh == cache / f"keycloak-{kcdev.DEFAULT_VERSION}"
        (fresh / ".orgscim-unpacked").unlink()
        (fresh / "bin" / "kc.sh").unlink()
        again = ensure_distribution(cache_dir=cache)
        assert (again / "bin" / "kc.sh").is_file() and (again / ".orgscim-unpacked").is_file()
        assert not [p for p in cache.iterdir() if p.name.startswith(".keycloak-") and p.is_dir()]  # no staging left
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # ~200 MB


def test_cache_dir_defaults_to_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORGSCIM_CACHE", str(tmp_path / "c"))
    assert kcdev.cache_root() == tmp_path / "c"
    monkeypatch.delenv("ORGSCIM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kcdev.cache_root() == tmp_path / "xdg" / "orgscim"
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert repo not in kcdev.cache_root().parents


def test_java_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert required_java("26.7.3") == 17
    monkeypatch.setenv("JAVA_HOME", "/opt/some-jdk")
    assert find_java_home(17) == "/opt/some-jdk"  # JAVA_HOME always wins
    monkeypatch.delenv("JAVA_HOME")
    chosen = find_java_home(17)
    java = os.path.join(chosen, "bin", "java") if chosen else shutil.which("java")
    assert java and (java_feature_version(java) or 0) >= 17
    # asking for a newer Java than the one on PATH finds a JDK under /usr/lib/jvm (if one exists)
    newest = max(
        (
            java_feature_version(str(p / "bin" / "java")) or 0
            for p in Path("/usr/lib/jvm").glob("*")
            if (p / "bin" / "java").is_file()
        ),
        default=0,
    )
    path_v = java_feature_version(shutil.which("java") or "java") or 0
    if newest > path_v:
        home = find_java_home(newest)
        assert home and java_feature_version(os.path.join(home, "bin", "java")) == newest


def test_failed_start_raises_with_log_tail() -> None:
    kc = KeycloakDev(ensure_distribution(), extra_args=["--no-such-option=1"], startup_timeout=120)
    with pytest.raises(RuntimeError) as exc:
        kc.start(seed=False)
    msg = str(exc.value)
    assert "no-such-option" in msg  # Keycloak's own complaint, from the log tail
    assert not kc.running
    # the log stays for inspection, the private Keycloak home does not
    assert kc.log_path is not None and kc.log_path.is_file() and str(kc.log_path) in msg
    assert kc.work_dir is not None and not (kc.work_dir / "kc-home").exists()
    shutil.rmtree(kc.work_dir)


def test_fixed_port_in_use_fails_at_once() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not kcdev.port_is_free(port)
        kc = KeycloakDev(ensure_distribution(), management_port=port, startup_timeout=120)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=f"port {port} .* already in use"):
            kc.start(seed=False)
        assert time.monotonic() - t0 < 5
    assert not kc.running


def test_start_timeout_raises_and_keeps_the_log() -> None:
    kc = KeycloakDev(ensure_distribution(), startup_timeout=0.5)
    with pytest.raises(RuntimeError, match="did not become ready"):
        kc.start(seed=False)
    assert not kc.running
    assert kc.work_dir is not None and kc.log_path is not None and kc.log_path.is_file()
    shutil.rmtree(kc.work_dir)


def test_port_clash_is_recognised_in_the_log() -> None:
    # what Keycloak 26.7.3 logs when it loses the race for a port (seen live)
    line = "ERROR [org.keycloak.quarkus.runtime.cli.ExecutionExceptionHandler] (main) ERROR: Address already in use"
    assert kcdev._PORT_CLASH.search(line)  # noqa: SLF001
    assert not kcdev._PORT_CLASH.search("ERROR: Unknown option: '--no-such-option'")  # noqa: SLF001


def test_running_server(keycloak: Any) -> None:
    assert keycloak.base_url.startswith("http://127.0.0.1:")
    r = requests.get(f"{keycloak.base_url}/realms/orgscim-test/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200
    assert r.json()["issuer"] == f"{keycloak.base_url}/realms/orgscim-test"
    if isinstance(keycloak, KeycloakDev):
        assert requests.get(f"{keycloak.management_url}/health/ready", timeout=10).json()["status"] == "UP"
        token = keycloak.admin_token()
        assert token.count(".") == 2


def test_cli_start_writes_state_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "kc.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgscim_dev.keycloak", "start", "--state-file", str(state)],
        cwd=Path(kcdev.__file__).parents[1],  # the repository root: orgscim_dev is not installed
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "CLI did not write its state file"
            time.sleep(0.5)
        info = json.loads(state.read_text())
        assert info["realms"] == ["orgscim-test"]
        r = requests.post(
            f"{info['base_url']}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": info["admin_user"],
                "password": info["admin_password"],
            },
            timeout=10,
        )
        assert r.status_code == 200
        proc.terminate()
        out, _err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert out.strip() == info["base_url"]
        assert not state.exists()
        with pytest.raises(requests.ConnectionError):
            requests.get(info["management_url"] + "/health/ready", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
