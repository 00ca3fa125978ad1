"""Wiring shared by the web app, the worker and the CLI: one place that builds stores, clients and plugins."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plugins
from .auth import AuthContext
from .keycloak.client import KeycloakAdmin, KeycloakError, KeycloakUnavailable
from .provision.deliver import Deliverer, Stats
from .provision.mapping import ORG_SETTINGS, PROFILE_ATTRIBUTES
from .provision.provisioner import KeycloakProvisioner
from .scim.service import ScimService
from .store.db import Database
from .store.orgs import Org, OrgStore
from .store.resources import ResourceStore
from .store.sync import SyncStore

log = logging.getLogger("orgscim")


class ConfigError(ValueError):
    """An operator-facing configuration mistake; the message says what to do."""


@dataclass
class Services:
    db: Database
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.orgs = OrgStore(self.db)
        self.sync = SyncStore(self.db)
        self.auth_ctx = AuthContext(self.orgs, cache_ttl=float(self.config.get("AUTH_CACHE_SECONDS", 60)))
        self._modes: dict[str, Any] = {}
        self._admins: dict[str, KeycloakAdmin] = {}
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.deliverer = Deliverer(self.orgs, self.sync, lambda pk: ResourceStore(self.db, pk), self.keycloak,
                                   self.federation)

    # -- plugins --------------------------------------------------------------------------------
    def auth_mode(self, name: str) -> Any:
        """The (per-process) instance of an auth-mode plugin."""
        if name not in self._modes:
            available = plugins.auth_modes()
            if name not in available:
                raise ConfigError(f"unknown auth mode {name!r}; installed: {', '.join(sorted(available))}")
            self._modes[name] = available[name](self.auth_ctx)
        return self._modes[name]

    def federation(self, org: Org) -> tuple[Any, dict[str, Any]]:
        """The org's federation plugin instance and its settings."""
        return plugins.federation_plugins()[org.federation](), dict(org.settings.get("federation") or {})

    # -- Keycloak -------------------------------------------------------------------------------
    @property
    def keycloak_configured(self) -> bool:
        return bool(self.config.get("KEYCLOAK_URL"))

    def keycloak(self, realm: str) -> KeycloakAdmin | None:
        """The admin client for ``realm`` (one per process), or None when running standalone."""
        if not self.keycloak_configured:
            return None
        with self._lock:
            if realm not in self._admins:
                self._admins[realm] = KeycloakAdmin(
                    self.config["KEYCLOAK_URL"], realm, self.config.get("KEYCLOAK_CLIENT_ID") or "orgscim",
                    self.keycloak_secret(), timeout=float(self.config.get("KEYCLOAK_TIMEOUT", 5)))
            return self._admins[realm]

    def keycloak_secret(self) -> str:
        """The service-account secret: from KEYCLOAK_CLIENT_SECRET_FILE (preferred) or the environment."""
        path = self.config.get("KEYCLOAK_CLIENT_SECRET_FILE")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as e:
                raise ConfigError(f"cannot read KEYCLOAK_CLIENT_SECRET_FILE {path}: {e.strerror}") from None
        secret = self.config.get("KEYCLOAK_CLIENT_SECRET")
        if not secret:
            raise ConfigError("KEYCLOAK_URL is set but there is no service-account secret: "
                              "set ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE")
        return str(secret)

    def keycloak_up(self, realm: str) -> bool:
        """False for a few seconds after Keycloak failed to answer, so requests don't each wait on it."""
        return self._down_until.get(realm, 0.0) <= time.monotonic()

    def keycloak_failed(self, realm: str) -> None:
        self._down_until[realm] = time.monotonic() + float(self.config.get("KEYCLOAK_RETRY_SECONDS", 5))

    # -- orgs -----------------------------------------------------------------------------------
    def configure_org(self, realm: str, org_id: str, auth_mode: str, auth_config: dict[str, Any] | None = None,
                      enabled: bool = True, federation: str = "none",
                      federation_config: dict[str, Any] | None = None,
                      options: dict[str, Any] | None = None) -> Org:
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
        settings: dict[str, Any] = {"federation": fed_cfg}
        for key, value in (options or {}).items():
            if key not in ORG_SETTINGS:
                raise ConfigError(f"unknown org option {key!r}; known: {', '.join(ORG_SETTINGS)}")
            if value not in ORG_SETTINGS[key]:
                raise ConfigError(f"{key} must be one of {', '.join(ORG_SETTINGS[key])}")
            settings[key] = value
        admin = self.keycloak(realm)
        if admin is not None:
            try:
                admin.get_organization(org_id)
                admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
            except KeycloakUnavailable as e:
                raise ConfigError(f"Keycloak at {admin.base_url} is not reachable ({e}); start it or fix "
                                  "KEYCLOAK_URL, then retry") from None
            except KeycloakError as e:
                if e.status == 404:
                    raise ConfigError(f"realm {realm} of Keycloak has no organization with id {org_id}: use the "
                                      "organization's id (Keycloak admin console → Organizations)") from None
                raise ConfigError(f"Keycloak refused: {e}") from None
        return self.orgs.upsert_org(realm, org_id, auth_mode, cfg, enabled, federation, settings)

    def scim(self, org: Org, base_url: str) -> ScimService:
        mode = self.auth_mode(org.auth_mode)
        admin = self.keycloak(org.realm)
        provisioner = KeycloakProvisioner(org, admin, self.sync, self.keycloak_up(org.realm),
                                          lambda: self.keycloak_failed(org.realm)) if admin else None
        return ScimService(ResourceStore(self.db, org.pk), base_url, mode.schemes(org), provisioner)

    def deliver(self, org: Org, budget: float | None = None) -> Stats:
        """Push the org's pending outbox entries to Keycloak now (used right after a SCIM write)."""
        if not self.keycloak_configured or not self.keycloak_up(org.realm):
            return Stats(deferred=True)
        stats = self.deliverer.deliver_org(org, budget)
        if stats.failed:
            self.keycloak_failed(org.realm)
        return stats
