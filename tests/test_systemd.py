"""The systemd units are accepted by ``systemd-analyze verify`` (DESIGN §9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = ("orgscim-web.service", "orgscim-worker.service")


def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd")
    venv_bin = Path(sys.executable).parent
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text()
        assert "ProtectSystem=strict" in text and "DynamicUser=yes" in text and "StateDirectory=orgscim" in text
        # Point the units at this checkout's venv instead of /opt/orgscim so verify can check the binaries.
        (tmp_path / name).write_text(text.replace("/opt/orgscim/.venv/bin", str(venv_bin)))
    proc = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
