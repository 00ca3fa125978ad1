"""Wiring shared by the web app, the worker and the CLI: one place that builds stores and plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import plugins
from .auth import AuthContext
from .scim.service import ScimService
from .store.db import Database
from .store.orgs import Org, OrgStore
from .store.resources import ResourceStore


class ConfigError(ValueError):
    """An operator-facing configuration mistake; the message says what to do."""


@dataclass
class Services:
    db: Database
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.orgs = OrgStore(self.db)
        self.auth_ctx = AuthContext(self.orgs, cache_ttl=float(self.config.get("AUTH_CACHE_SECONDS", 60)))
        self._modes: dict[str, Any] = {}

    def auth_mode(self, name: str) -> Any:
        """The (per-process) instance of an auth-mode plugin."""
        if name not in self._modes:
            available = plugins.auth_modes()
            if name not in available:
                raise ConfigError(f"unknown auth mode {name!r}; installed: {', '.join(sorted(available))}")
            self._modes[name] = available[name](self.auth_ctx)
        return self._modes[name]

    def configure_org(self, realm: str, org_id: str, auth_mode: str, auth_config: dict[str, Any] | None = None,
                      enabled: bool = True, federation: str = "none",
                      federation_config: dict[str, Any] | None = None) -> Org:
        """Create or update an org's SCIM config, refusing a bad config here rather than at request time."""
        mode = self.auth_mode(auth_mode)
        try:
            cfg = mode.validate_config(dict(auth_config or {}))
        except ValueError as e:
            raise ConfigError(str(e)) from e
        feds = plugins.federation_plugins()
        if federation not in feds:
            raise ConfigError(f"unknown federation behaviour {federation!r}; installed: {', '.join(sorted(feds))}")
        try:
            fed_cfg = feds[federation]().validate_config(dict(federation_config or {}))
        except ValueError as e:
            raise ConfigError(str(e)) from e
        return self.orgs.upsert_org(realm, org_id, auth_mode, cfg, enabled, federation, {"federation": fed_cfg})

    def scim(self, org: Org, base_url: str) -> ScimService:
        mode = self.auth_mode(org.auth_mode)
        return ScimService(ResourceStore(self.db, org.pk), base_url, mode.schemes(org))
