"""The external SCIM checkers against a live server (shared/conformance/README.md, DESIGN §10).

Each checker runs against an org of its own; a test fails when the checker's pass criterion is not met, and
its message quotes only the failing lines of the checker's output (the full output is kept in the log folder).

    pytest -m conformance tests/conformance
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

LINE_MAX = 300  # characters kept of one failing line
LINES_MAX = 60  # failing lines quoted in a message


def _clip(line: str, limit: int = LINE_MAX) -> str:
    line = line.rstrip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _report(title: str, lines: list[str], log: Path) -> str:
    shown = [_clip(x, 3 * LINE_MAX) for x in lines[:LINES_MAX]]
    if len(lines) > LINES_MAX:
        shown.append(f"… and {len(lines) - LINES_MAX} more")
    return f"{title}\n" + "\n".join(shown) + f"\n(full output: {log})"


def _checker_env(**extra: str) -> dict[str, str]:
    """Environment for a checker: ours, minus anything that could point it elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_CLI_")}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        log.write_text(out)
        pytest.fail(f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s (partial output: {log})", pytrace=False)
    log.write_text(
        f"$ {' '.join(cmd)}\n--- exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


# --------------------------------------------------------------------------------------------- scim2-tester

SCIM2_STATUSES = ("SUCCESS", "COMPLIANT", "ACCEPTABLE", "DEVIATION", "ERROR", "CRITICAL", "SKIPPED")
_SCIM2_LINE = re.compile(rf"^({'|'.join(SCIM2_STATUSES)}) (\S.*)$")


def scim2_results(stdout: str) -> list[tuple[str, str, list[str]]]:
    """(status, check, reason lines) of each result `scim2 test` printed.

    A result starts with a status word at column 0; the lines after it (indented reason, and the unindented
    continuation lines of a multi-line reason) belong to it.
    """
    results: list[tuple[str, str, list[str]]] = []
    for line in stdout.splitlines():
        m = _SCIM2_LINE.match(line)
        if m:
            results.append((m.group(1), m.group(2), []))
        elif results and line.strip():
            results[-1][2].append(line.strip())
    return results


def scim2_failures(stdout: str) -> list[str]:
    """One line per result that is not SUCCESS: status, check, and its reason lines (each clipped) joined by |."""
    lines = []
    for status, check, reason in scim2_results(stdout):
        if status != "SUCCESS":
            text = " | ".join(_clip(x) for x in reason)
            lines.append(f"{status} {check}: {text}" if text else f"{status} {check}")
    return lines


def test_scim2_tester(conformance_venv, live_server):
    """scim2-tester through `scim2 test`: exit 0, every result SUCCESS."""
    org = live_server.org("scim2-tester")
    log = live_server.logdir / "scim2-tester.log"
    env = _checker_env(SCIM_CLI_URL=org.base_url, SCIM_CLI_HEADERS=f"Authorization: Bearer {org.secret}")
    proc = _run([str(conformance_venv.bin("scim2")), "test"], env, log, timeout=900)

    failures = scim2_failures(proc.stdout)
    results = scim2_results(proc.stdout)
    if proc.returncode == 0 and not failures and results:
        assert_delivered(live_server, "scim2-tester")
        return
    if not results:  # discovery failed before any check, or the tool crashed
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-15:]
        pytest.fail(_report(f"scim2 test exited {proc.returncode} without results:", detail, log), pytrace=False)
    passed = sum(1 for r in results if r[0] == "SUCCESS")
    title = (
        f"scim2 test exited {proc.returncode}: {len(failures)} of {len(results)} checks not SUCCESS ({passed} passed):"
    )
    pytest.fail(_report(title, failures or [proc.stderr.strip()[-LINE_MAX:]], log), pytrace=False)


# --------------------------------------------------------------------------------------------- scim-sanity


def sanity_failures(report: dict) -> list[str]:
    lines = []
    for r in report.get("results", []):
        if r.get("status") in ("fail", "error"):
            phase = f"{r['phase']} / " if r.get("phase") else ""
            msg = f": {r['message']}" if r.get("message") else ""
            lines.append(f"{r['status'].upper()} {phase}{r.get('name', '?')}{msg}")
    return lines


def _json_document(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            return json.loads(text[start : end + 1])
        raise


def test_scim_sanity(conformance_venv, live_server):
    """scim-sanity probe: summary.failed == 0 and summary.errors == 0 (the 3 Agent skips are expected)."""
    org = live_server.org("scim-sanity")
    log = live_server.logdir / "scim-sanity.log"
    cmd = [
        str(conformance_venv.bin("scim-sanity")),
        "probe",
        org.base_url,
        "--token",
        org.secret,
        "--i-accept-side-effects",
        "--json-output",
    ]
    proc = _run(cmd, _checker_env(), log, timeout=600)
    try:
        report = _json_document(proc.stdout)
        summary = report["summary"]
    except (ValueError, KeyError, TypeError):
        detail = (proc.stdout.strip() + "\n" + proc.stderr.strip()).strip().splitlines()[-15:]
        pytest.fail(_report(f"scim-sanity exited {proc.returncode} without a JSON report:", detail, log), pytrace=False)
    if summary.get("failed", 1) == 0 and summary.get("errors", 1) == 0:
        assert_delivered(live_server, "scim-sanity")
        return
    counts = ", ".join(f"{k} {summary.get(k)}" for k in ("total", "passed", "failed", "errors", "warnings", "skipped"))
    title = f"scim-sanity exited {proc.returncode} ({counts}):"
    pytest.fail(_report(title, sanity_failures(report), log), pytrace=False)


# --------------------------------------------------------------------------------------------- client replay

_REPLAY_SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def replay_failures(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("FAIL ")]


def test_client_replay(live_server, shared_conformance_dir):
    """shared/conformance/replay.py (Okta / Entra request shapes): last line `N passed, 0 failed`."""
    org = live_server.org("replay")
    log = live_server.logdir / "replay.log"
    python = shutil.which("python3") or sys.executable
    cmd = [python, str(shared_conformance_dir / "replay.py"), org.base_url, "--token", org.secret]
    proc = _run(cmd, _checker_env(), log, timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    m = _REPLAY_SUMMARY.match(lines[-1].strip()) if lines else None
    if m and m.group(2) == "0" and int(m.group(1)) > 0 and proc.returncode == 0:
        assert_delivered(live_server, "replay")
        return
    summary = lines[-1].strip() if m else f"no summary line (exit {proc.returncode})"
    failing = replay_failures(proc.stdout) or (proc.stderr.strip().splitlines()[-15:])
    pytest.fail(_report(f"replay: {summary}", failing, log), pytrace=False)



# --------------------------------------------------------------------------------------------- Keycloak behind


def assert_delivered(live_server, checker: str) -> None:
    """With Keycloak behind the server, the checker's writes reached it: outbox drained, nothing refused, no drift.
    Standalone, nothing is queued at all."""
    import sqlite3

    org_id = live_server.org(checker).org_id
    conn = sqlite3.connect(live_server.instance / "orgscim.sqlite3")
    try:
        (org_pk,) = conn.execute("SELECT pk FROM orgs WHERE org_id = ?", (org_id,)).fetchone()
        delivered, pending, refused = conn.execute(
            "SELECT count(done), count(*) - count(done), count(last_error) FROM outbox WHERE org_pk = ?",
            (org_pk,)).fetchone()
        drift = conn.execute("SELECT kind, count(*) FROM drift WHERE org_pk = ? GROUP BY kind", (org_pk,)).fetchall()
    finally:
        conn.close()
    if not live_server.keycloak:
        assert (delivered, pending) == (0, 0), "standalone: nothing should be queued for Keycloak"
        return
    assert delivered > 0 and pending == 0 and refused == 0, (
        f"{checker}: {delivered} delivered, {pending} pending, {refused} refused by Keycloak")
    assert drift == [], f"{checker}: drift recorded: {drift}"
