"""The ``orgscim`` CLI in the exact forms the docs give, against a fresh instance folder (DESIGN §8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orgscim.app import create_app
from orgscim.cli import main
from orgscim.cli.common import config as cli_settings


class Cli:
    def __init__(self, instance: Path) -> None:
        self.instance = instance
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        result = self.runner.invoke(main, list(args), env={"ORGSCIM_INSTANCE": str(self.instance)})
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def json(self, *args: str):
        return json.loads(self(*args).stdout)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A brand-new, empty instance folder (no database yet)."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    monkeypatch.setenv("ORGSCIM_INSTANCE", str(folder))
    return Cli(folder)


def no_secrets(text: str, *secrets: str) -> None:
    assert "$argon2" not in text
    for secret in secrets:
        assert secret not in text
        assert secret.split(".", 1)[1] not in text


def test_db_upgrade_creates_and_is_idempotent(cli):
    first = cli("db", "upgrade")
    assert "schema version" in first.output and "applied" in first.output
    assert (cli.instance / "orgscim.sqlite3").exists()
    again = cli("db", "upgrade")
    assert "up to date" in again.output


def test_commands_before_upgrade_say_what_to_do(cli):
    result = cli("realm", "enable", "r9", ok=False)
    assert result.exit_code != 0 and "orgscim db upgrade" in result.output


def test_full_flow_and_the_secret_works_against_the_api(cli):
    cli("db", "upgrade")
    assert "enabled" in cli("realm", "enable", "r9").output
    configured = cli.json("org", "configure", "r9", "org-1", "--auth-mode", "EXTERNAL_SECRET", "--json")
    assert configured["orgId"] == "org-1" and configured["authMode"] == "EXTERNAL_SECRET"
    assert configured["serving"] is True
    plain = cli("org", "configure", "r9", "org-2", "--auth-mode", "EXTERNAL_SECRET")
    assert "org-2" in plain.output

    created = cli.json("org", "credential", "create", "r9", "org-1", "--json")
    secret = created["secret"]
    assert isinstance(secret, str) and len(secret) >= 40 and created["id"] in secret
    assert created["revoked"] is None and created["kind"] == "secret"

    client = create_app().test_client()
    base = "/realms/r9/scim/v2/organizations"
    ok = client.get(f"{base}/org-1/Users", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200 and ok.get_json()["totalResults"] == 0
    assert client.get(f"{base}/org-2/Users", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert client.get(f"{base}/org-1/Users", headers={"Authorization": "Bearer nope"}).status_code == 401

    listed = cli("org", "credential", "list", "r9", "org-1", "--json")
    creds = json.loads(listed.stdout)
    assert [c["id"] for c in creds] == [created["id"]]
    assert creds[0]["lastUsed"] is not None  # the API call above was recorded
    no_secrets(listed.output, secret)
    shown = cli("org", "show", "r9", "org-1", "--json")
    data = json.loads(shown.stdout)
    assert data["orgId"] == "org-1" and [c["id"] for c in data["credentials"]] == [created["id"]]
    no_secrets(shown.output, secret)
    human = cli("org", "show", "r9", "org-1").output + cli("org", "credential", "list", "r9", "org-1").output
    no_secrets(human, secret)

    orgs = cli.json("org", "list", "--json")["orgs"]
    assert sorted((o["realm"], o["orgId"], o["serving"]) for o in orgs) == [("r9", "org-1", True),
                                                                           ("r9", "org-2", True)]
    no_secrets(cli("org", "list", "--json").output, secret)
    assert [(r["realm"], r["scimEnabled"]) for r in cli.json("realm", "show", "r9", "--json")] == [("r9", True)]

    cli("realm", "disable", "r9")
    closed = client.get(f"{base}/org-1/Users", headers={"Authorization": f"Bearer {secret}"})
    assert closed.status_code == 404 and closed.get_json()["status"] == "404"
    assert [o["serving"] for o in cli.json("org", "list", "--json")["orgs"]] == [False, False]
    cli("realm", "enable", "r9")

    cli("org", "credential", "revoke", "r9", "org-1", created["id"])
    revoked = client.get(f"{base}/org-1/Users", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401  # revocation is immediate, the verified cache does not outlive it
    assert cli.json("org", "credential", "list", "r9", "org-1", "--json")[0]["revoked"] is not None


def test_unknown_auth_mode_is_a_helpful_error(cli):
    cli("db", "upgrade")
    result = cli("org", "configure", "r9", "org-1", "--auth-mode", "NOPE", ok=False)
    assert result.exit_code != 0
    assert "unknown auth mode 'NOPE'" in result.output and "EXTERNAL_SECRET" in result.output
    assert cli.json("org", "list", "--json") == {"orgs": [], "next": None, "nextCommand": None}


def test_bad_settings_and_unknown_org_are_helpful_errors(cli):
    cli("db", "upgrade")
    result = cli("org", "configure", "r9", "org-1", "--auth-mode", "EXTERNAL_SECRET", "--set", "bogus=1", ok=False)
    assert result.exit_code != 0 and "bogus" in result.output
    result = cli("org", "credential", "create", "r9", "ghost", "--json", ok=False)
    assert result.exit_code != 0 and "orgscim org configure r9 ghost" in result.output
    result = cli("org", "show", "r9", "ghost", ok=False)
    assert result.exit_code != 0 and "not configured" in result.output


def test_runner_fixture_targets_the_test_instance(runner, api):
    """The shared ``runner`` fixture drives the same database the ``app`` fixture serves."""
    result = runner.invoke("org", "list", "--json")
    assert result.exit_code == 0
    assert sorted(o["orgId"] for o in json.loads(result.stdout)["orgs"]) == ["org-a", "org-b"]
    assert runner.invoke("realm", "disable", "r1").exit_code == 0
    api.error(api.get("/Users"), 404)


def test_the_cli_and_the_app_read_the_same_settings(cli, monkeypatch: pytest.MonkeyPatch):
    """One loader (orgscim.config): config.toml, then ORGSCIM_* over it, in the same instance folder for both."""
    (cli.instance / "config.toml").write_text("KEYCLOAK_TIMEOUT = 7\nRETENTION_DAYS = 9\n")
    monkeypatch.setenv("ORGSCIM_RETENTION_DAYS", "12")
    cli("db", "upgrade")
    from_cli = cli_settings()
    app = create_app()
    from_app = app.extensions["orgscim"].config
    app.extensions["orgscim"].db.close()
    assert from_cli["DATABASE"] == from_app["DATABASE"] == str(cli.instance / "orgscim.sqlite3")
    for key in ("KEYCLOAK_TIMEOUT", "RETENTION_DAYS", "MAX_CONTENT_LENGTH", "_CONFIG_SOURCE"):
        assert from_cli[key] == from_app[key], key
    assert (from_app["KEYCLOAK_TIMEOUT"], from_app["RETENTION_DAYS"]) == (7, 12)
    assert str(cli.instance / "config.toml") in from_app["_CONFIG_SOURCE"]
