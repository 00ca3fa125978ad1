"""Auth modes and federation behaviours are entry-point plugins; the built-in ones are found the same way a
third-party one is (DESIGN §5, §6)."""

from __future__ import annotations

import json
import sys
import types
from importlib import metadata
from typing import Any

import pytest
from orgscim_plugins.auth_secret import ExternalSecretAuth
from orgscim_plugins.federation_none import NoFederation

from orgscim import plugins
from orgscim.services import ConfigError

BUILTIN_AUTH = {"EXTERNAL_SECRET": ExternalSecretAuth}
BUILTIN_FEDERATION = {"none": NoFederation}


class HeaderTokenAuth:
    """A third-party auth mode: a fixed token per org, from the org's config."""

    name = "HEADER_TOKEN"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(config.get("token"), str):
            raise ValueError("HEADER_TOKEN needs token=<value>")
        return {"token": config["token"]}

    def authenticate(self, org: Any, req: Any) -> Any:
        from orgscim.auth import Principal, bearer

        return Principal(self.name) if bearer(req.authorization) == org.auth_config["token"] else None

    def schemes(self, org: Any) -> list[dict[str, Any]]:
        return [{"type": "oauthbearertoken", "name": "Header token", "description": "third-party plugin"}]


class AuditFederation:
    name = "audit"

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return dict(config)

    def link_for(self, org: Any, user: dict[str, Any]) -> None:
        return None


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace what ``importlib.metadata`` reports to ``orgscim.plugins``: (extra entry points, drop built-ins)."""
    extra: list[metadata.EntryPoint] = []
    state = {"installed": True}

    def fake(**kw: Any) -> list[metadata.EntryPoint]:
        found = list(metadata.entry_points(**kw)) if state["installed"] else []
        return found + [ep for ep in extra if ep.group == kw.get("group")]

    module = types.ModuleType("thirdparty_orgscim_plugin")
    module.HeaderTokenAuth = HeaderTokenAuth  # type: ignore[attr-defined]
    module.AuditFederation = AuditFederation  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(plugins, "entry_points", fake)
    plugins.load.cache_clear()
    yield extra, state
    plugins.load.cache_clear()


def register(extra: list, name: str, target: str, group: str) -> None:
    extra.append(metadata.EntryPoint(name=name, value=f"thirdparty_orgscim_plugin:{target}", group=group))


def test_builtins_are_registered_as_entry_points():
    plugins.load.cache_clear()
    auth = {ep.name: ep for ep in metadata.entry_points(group=plugins.AUTH_GROUP)}
    fed = {ep.name: ep for ep in metadata.entry_points(group=plugins.FEDERATION_GROUP)}
    for name, cls in BUILTIN_AUTH.items():
        assert auth[name].load() is cls
        assert plugins.auth_modes()[name] is cls
    for name, cls in BUILTIN_FEDERATION.items():
        assert fed[name].load() is cls
        assert plugins.federation_plugins()[name] is cls
    assert auth["EXTERNAL_SECRET"].value == "orgscim_plugins.auth_secret:ExternalSecretAuth"


def test_builtins_come_only_from_entry_points(entry_points, services, api, runner):
    _, state = entry_points
    state["installed"] = False
    plugins.load.cache_clear()
    assert plugins.auth_modes() == {} and plugins.federation_plugins() == {}
    with pytest.raises(ConfigError, match="unknown auth mode 'EXTERNAL_SECRET'"):
        services.auth_mode("EXTERNAL_SECRET")
    result = runner.invoke("org", "configure", "r1", "org-x", "--auth-mode", "EXTERNAL_SECRET")
    assert result.exit_code != 0 and "unknown auth mode" in result.output
    state["installed"] = True
    plugins.load.cache_clear()
    assert api.get("/Users").status_code == 200


def test_third_party_auth_mode_is_honoured(entry_points, services, client):
    extra, _ = entry_points
    register(extra, "HEADER_TOKEN", "HeaderTokenAuth", plugins.AUTH_GROUP)
    plugins.load.cache_clear()
    assert set(BUILTIN_AUTH) | {"HEADER_TOKEN"} <= set(plugins.auth_modes())
    with pytest.raises(ConfigError, match="needs token"):
        services.configure_org("r1", "org-c", "HEADER_TOKEN", {})
    services.configure_org("r1", "org-c", "HEADER_TOKEN", {"token": "let-me-in"})
    base = "/realms/r1/scim/v2/organizations/org-c"
    good = {"Authorization": "Bearer let-me-in"}
    spc = client.get(f"{base}/ServiceProviderConfig", headers=good)
    assert spc.status_code == 200
    assert spc.get_json()["authenticationSchemes"] == [{"type": "oauthbearertoken", "name": "Header token",
                                                        "description": "third-party plugin"}]
    created = client.post(f"{base}/Users", data=json.dumps({"userName": "plugged"}), headers=good,
                          content_type="application/scim+json")
    assert created.status_code == 201
    denied = client.get(f"{base}/Users", headers={"Authorization": "Bearer wrong"})
    assert denied.status_code == 401 and denied.get_json()["status"] == "401"
    # the plugin's org is as isolated as any other
    other = client.get("/realms/r1/scim/v2/organizations/org-a/Users", headers=good)
    assert other.status_code == 401


def test_third_party_plugins_through_the_cli(entry_points, runner):
    extra, _ = entry_points
    register(extra, "HEADER_TOKEN", "HeaderTokenAuth", plugins.AUTH_GROUP)
    register(extra, "audit", "AuditFederation", plugins.FEDERATION_GROUP)
    plugins.load.cache_clear()
    result = runner.invoke("org", "configure", "r1", "org-d", "--auth-mode", "HEADER_TOKEN", "--set", "token=abc",
                           "--federation", "audit", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["authMode"] == "HEADER_TOKEN" and shown["federation"] == "audit"
    result = runner.invoke("org", "credential", "create", "r1", "org-d")
    assert result.exit_code != 0 and "does not use credentials issued by orgscim" in result.output
    result = runner.invoke("org", "configure", "r1", "org-e", "--auth-mode", "EXTERNAL_SECRET", "--federation",
                           "nope")
    assert result.exit_code != 0 and "unknown federation behaviour 'nope'" in result.output


def test_org_whose_auth_plugin_is_gone_gets_503_not_500(client, services, auth_headers) -> None:  # type: ignore[no-untyped-def]
    """An org configured with a third-party mode that was later uninstalled: a clear 503 SCIM error."""
    org = services.orgs.org("r1", "org-a")
    services.orgs.upsert_org(org.realm, org.org_id, "UNINSTALLED_MODE", {}, True, org.federation, org.settings)
    resp = client.get("/realms/r1/scim/v2/organizations/org-a/Users", headers=auth_headers["org-a"])
    assert resp.status_code == 503 and resp.get_json()["status"] == "503"
    assert resp.headers["Content-Type"].startswith("application/scim+json")
