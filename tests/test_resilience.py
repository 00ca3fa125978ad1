"""``bench/resilience.py --quick`` in the normal suite (issue 9): kills under load, a noisy neighbour, hostile
input, slow clients and a full disk against a live ``orgscim serve``; every row must be clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_resilience_table_is_clean(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "resilience.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = {r["scenario"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"worker-kill", "master-kill", "noisy-neighbour", "hostile", "slow-clients", "disk-full"}
    for row in rows.values():
        assert row["lost"] == row["duplicates"] == row["unexpected_5xx"] == 0, row
        assert row["integrity"] in ("ok", "-"), row
    assert rows["master-kill"]["acknowledged"] > 0 and rows["worker-kill"]["acknowledged"] > 0
    assert rows["noisy-neighbour"]["ratio"] <= 3.0, rows["noisy-neighbour"]["note"]
    assert rows["hostile"]["requests"] >= 200
