"""The systemd units as shipped pass ``systemd-analyze verify`` after the documented install (issue 11, DESIGN §9).

``scripts/install --root DIR`` lays out exactly what ``sudo scripts/install`` installs (the venv from
requirements.lock, the units, the sysusers.d file, /etc/orgscim, the CLI wrapper) under a staging root; the host's
own systemd units are copied beside them (a real host has them), and ``systemd-analyze verify --root`` checks the
installed units there: every directive, and that each ExecStart/ExecStartPre binary exists and is executable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = ("orgscim-web.service", "orgscim-worker.service")


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install"), "--root", str(root)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd")
    return path


def test_units_verify_after_the_documented_install(staged: Path) -> None:
    system = staged / "etc" / "systemd" / "system"
    for name in UNITS:
        assert (system / name).read_bytes() == (REPO / "systemd" / name).read_bytes()  # verified as shipped
    host_units = Path("/usr/lib/systemd/system")
    assert host_units.is_dir(), "this host has no systemd units to verify against"
    shutil.copytree(host_units, staged / "usr" / "lib" / "systemd" / "system", symlinks=True, dirs_exist_ok=True)
    proc = subprocess.run([analyze(), "verify", f"--root={staged}", *(f"/etc/systemd/system/{n}" for n in UNITS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # the same check fails when the install did not happen (the binary is what verify looks for)
    binary = staged / "opt" / "orgscim" / ".venv" / "bin" / "orgscim"
    binary.rename(binary.with_suffix(".moved"))
    try:
        proc = subprocess.run([analyze(), "verify", f"--root={staged}", "/etc/systemd/system/orgscim-web.service"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "/opt/orgscim/.venv/bin/orgscim is not executable" in proc.stderr
    finally:
        binary.with_suffix(".moved").rename(binary)


def test_units_share_one_user_and_load_both_secrets() -> None:
    texts = {n: (REPO / "systemd" / n).read_text() for n in UNITS}
    for name, text in texts.items():
        assert "DynamicUser" not in text, name  # two DynamicUser= units could not share the database
        assert re.search(r"^User=orgscim$", text, re.M) and re.search(r"^Group=orgscim$", text, re.M), name
        assert "StateDirectory=orgscim\n" in text and "Environment=ORGSCIM_INSTANCE=/var/lib/orgscim" in text
        assert "ProtectSystem=strict" in text and "EnvironmentFile=/etc/orgscim/env" in text
        for secret, key in (("keycloak-client-secret", "KEYCLOAK"), ("admin-client-secret", "ADMIN")):
            assert f"LoadCredential={secret}:/etc/orgscim/{secret}" in text, (name, secret)
            assert f"Environment=ORGSCIM_{key}_CLIENT_SECRET_FILE=%d/{secret}" in text, (name, secret)
        pre = re.findall(r"^ExecStartPre=(.*)$", text, re.M)
        assert pre == ["/opt/orgscim/.venv/bin/orgscim db upgrade",
                       "/opt/orgscim/.venv/bin/orgscim check --require-keycloak"], (name, pre)
    sysusers = (REPO / "systemd" / "orgscim.sysusers.conf").read_text()
    assert re.search(r"^u orgscim - .* /var/lib/orgscim ", sysusers, re.M)
    example = (REPO / "systemd" / "orgscim.env.example").read_text()
    assert "SECRET=" not in example and "ORGSCIM_KEYCLOAK_URL=" in example  # settings only, secrets are files


def test_staged_install_runs(staged: Path, tmp_path: Path) -> None:
    """The installed venv is complete (dependencies from the lock, orgscim without extra resolution) and the
    units' first steps behave: db upgrade works, check --require-keycloak refuses a standalone start."""
    orgscim = str(staged / "opt" / "orgscim" / ".venv" / "bin" / "orgscim")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ORGSCIM_INSTANCE": str(tmp_path / "instance")}
    assert subprocess.run([orgscim, "db", "upgrade"], env=env, capture_output=True, timeout=120).returncode == 0
    check = subprocess.run([orgscim, "check", "--require-keycloak"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 1 and "STANDALONE" in check.stdout
    for name in ("keycloak-client-secret", "admin-client-secret"):
        secret = staged / "etc" / "orgscim" / name
        assert secret.read_text() == "" and oct(secret.stat().st_mode & 0o777) == "0o640"
    wrapper = (staged / "usr" / "local" / "sbin" / "orgscim").read_text()
    assert "setpriv --reuid=orgscim" in wrapper and os.access(staged / "usr/local/sbin/orgscim", os.X_OK)
    assert subprocess.run(["sh", "-n", str(staged / "usr/local/sbin/orgscim")]).returncode == 0
    locked = {line.split("==")[0] for line in (REPO / "requirements.lock").read_text().splitlines()
              if re.match(r"^[a-z0-9]", line)}
    frozen = subprocess.run([str(staged / "opt/orgscim/.venv/bin/python"), "-m", "pip", "freeze", "--all"],
                            capture_output=True, text=True, timeout=120).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in frozen.splitlines() if "==" in line}
    tools = {"pip", "setuptools"}  # the venv's own installer: locked only when a dependency needs it
    assert installed - tools - {"orgscim"} == {n.lower() for n in locked} - tools, installed ^ locked
