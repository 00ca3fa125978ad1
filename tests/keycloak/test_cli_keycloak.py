"""The admin CLI around the worker, against the real Keycloak: exit codes and --json (issue #5)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scimkit import Scim, kc_user, okta_user, uniq

from orgscim.keycloak.client import KeycloakAdmin

pytestmark = pytest.mark.keycloak

ORGSCIM = str(Path(sys.executable).parent / "orgscim")


def cli(scim: Scim, keycloak: Any, *args: str, client: tuple[str, str] = ("orgscim", "orgscim-dev-secret"),
        expect: int | None = 0) -> subprocess.CompletedProcess:
    secret_file = Path(scim.services.db.path).parent / f"{client[0]}.secret"
    secret_file.write_text(client[1])
    env = {"PATH": "/usr/bin:/bin", "ORGSCIM_INSTANCE": str(Path(scim.services.db.path).parent),
           "ORGSCIM_KEYCLOAK_URL": keycloak.base_url, "ORGSCIM_KEYCLOAK_CLIENT_ID": client[0],
           "ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file)}
    proc = subprocess.run([ORGSCIM, *args], env=env, capture_output=True, text=True, timeout=120)
    if expect is not None:
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_reconcile_drift_outbox_commands(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin,
                                         keycloak: Any, temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    user = scim.call("POST", "/Users", okta_user(uniq("cli")), 201).get_json()
    assert json.loads(cli(scim, keycloak, "outbox", "--json").stdout) == []  # delivered during the request
    assert json.loads(cli(scim, keycloak, "reconcile", "--org", temp_org["id"], "--json").stdout)["drift"] == []
    kc_admin.remove_member(temp_org["id"], kc_user(kc_admin, user["id"])["id"])

    dry = cli(scim, keycloak, "reconcile", "--org", temp_org["id"], "--dry-run", "--json", expect=1)
    assert [(d["resourceId"], d["kind"]) for d in json.loads(dry.stdout)["drift"]] == [(user["id"], "removed_from_org")]
    assert json.loads(cli(scim, keycloak, "drift", "--json").stdout) == []  # dry-run recorded nothing

    cli(scim, keycloak, "reconcile", "--org", temp_org["id"], expect=1)
    drift = json.loads(cli(scim, keycloak, "drift", "--json", expect=1).stdout)
    assert [(d["resourceId"], d["kind"], d["resolved"]) for d in drift] == [(user["id"], "removed_from_org", None)]
    assert drift[0]["resourceName"] == user["userName"] and drift[0]["orgName"] == temp_org["name"]
    human = cli(scim, keycloak, "drift", expect=1).stdout
    assert "removed_from_org" in human and user["id"] in human
    assert user["userName"] in human and temp_org["name"] in human

    repaired = json.loads(cli(scim, keycloak, "reconcile", "--org", temp_org["id"], "--repair", "--json").stdout)
    assert repaired["repaired"] == 1 and repaired["drift"] == []
    assert kc_admin.is_member(temp_org["id"], kc_user(kc_admin, user["id"])["id"])
    assert json.loads(cli(scim, keycloak, "drift", "--json").stdout) == []
    everything = json.loads(cli(scim, keycloak, "drift", "--all", "--json").stdout)
    assert everything[0]["resolved"] is not None


def test_check_names_missing_roles(scim_for: Callable[..., Scim], keycloak: Any, temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    ok = json.loads(cli(scim, keycloak, "check", "--json").stdout)
    assert ok[0]["ok"] is True and ok[0]["missing"] == []
    bad = cli(scim, keycloak, "check", "--json", client=("other-client", "other-client-dev-secret"), expect=1)
    report = json.loads(bad.stdout)[0]
    assert report["ok"] is False and "manage-users" in report["missing"]
    assert "manage-users" in cli(scim, keycloak, "check", client=("other-client", "other-client-dev-secret"),
                                 expect=1).stdout


def test_org_list_and_show(scim_for: Callable[..., Scim], keycloak: Any, temp_org: dict[str, Any],
                           acme: dict[str, Any]) -> None:
    scim = scim_for(acme["id"])
    cli(scim, keycloak, "reconcile", "--realm", "orgscim-test", expect=None)
    listed = {o["orgId"]: o for o in json.loads(cli(scim, keycloak, "org", "list", "--search", "acme",
                                                     "--json").stdout)["orgs"]}
    assert listed[acme["id"]]["configured"] and listed[acme["id"]]["serving"]
    assert listed[acme["id"]]["name"] == acme["name"]
    fresh = json.loads(cli(scim, keycloak, "org", "list", "--search", temp_org["name"], "--json").stdout)["orgs"]
    assert [(o["orgId"], o["name"], o["configured"], o["serving"]) for o in fresh] == [
        (temp_org["id"], temp_org["name"], False, False)]
    human = cli(scim, keycloak, "org", "list", "--search", temp_org["name"]).stdout
    assert temp_org["name"] in human and temp_org["id"] in human and "not configured" in human
    shown = json.loads(cli(scim, keycloak, "org", "show", "orgscim-test", acme["id"], "--json").stdout)
    assert shown["orgId"] == acme["id"] and len(shown["credentials"]) == 1


def test_backup_is_consistent(scim_for: Callable[..., Scim], keycloak: Any, temp_org: dict[str, Any],
                              tmp_path: Path) -> None:
    scim = scim_for(temp_org["id"])
    ids = {scim.call("POST", "/Users", okta_user(uniq("bk")), 201).get_json()["id"] for _ in range(3)}
    target = tmp_path / "backup.sqlite3"
    cli(scim, keycloak, "backup", str(target))
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {r[0] for r in conn.execute("SELECT id FROM resources WHERE type = 'User'")} == ids


def test_reconcile_shows_progress_on_a_terminal_only(scim_for: Callable[..., Scim], keycloak: Any,
                                                     temp_org: dict[str, Any]) -> None:
    """issue 11: long CLI work shows a progress bar on a terminal (stderr), never under --json or in a pipe."""
    import os
    import pty

    scim = scim_for(temp_org["id"])
    for _ in range(3):
        scim.call("POST", "/Users", okta_user(uniq("bar")), 201)
    secret_file = Path(scim.services.db.path).parent / "orgscim.secret"
    secret_file.write_text("orgscim-dev-secret")
    env = {"PATH": "/usr/bin:/bin", "ORGSCIM_INSTANCE": str(Path(scim.services.db.path).parent),
           "ORGSCIM_KEYCLOAK_URL": keycloak.base_url, "ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file),
           "COLUMNS": "120"}
    for args, bar_expected in ((["--dry-run"], True), (["--dry-run", "--json"], False)):
        master, slave = pty.openpty()
        proc = subprocess.run([ORGSCIM, "reconcile", "--org", temp_org["id"], *args], env=env, stdout=subprocess.PIPE,
                              stderr=slave, timeout=120)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        text = seen.decode(errors="replace")
        assert proc.returncode == 0, text
        if bar_expected:
            assert "dry-run: 1 orgs" in text and "1/1" in text and "3 Keycloak members compared" in text, text
        else:
            assert text == "" and json.loads(proc.stdout)["keycloakMembers"] == 3
    piped = cli(scim, keycloak, "reconcile", "--org", temp_org["id"], "--dry-run")
    assert "Keycloak members compared" not in piped.stderr
