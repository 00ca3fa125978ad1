"""Wiring shared by the web app, the worker and the CLI: one place that builds stores, clients and plugins."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from . import metrics, plugins
from .auth import AuthContext, AuthMode, CredentialIssuer
from .jwks import JwksError
from .keycloak.client import KeycloakAdmin, KeycloakError, KeycloakUnavailable
from .model.contract import Org
from .model.types import JSON
from .provision.deliver import Deliverer, Stats
from .provision.federation import FederationPlugin
from .provision.mapping import ORG_SETTINGS, PROFILE_ATTRIBUTES
from .provision.provisioner import KeycloakProvisioner
from .scim.service import ScimService
from .store.backend import SqliteStorage
from .store.db import Database

log = logging.getLogger("orgscim")

INLINE_HOLD_MARGIN = 5.0  # seconds past the delivery budget before the worker may take a request's entries
REQUEST_THREADS = 16  # `orgscim serve --threads` default: requests that may deliver inline at once per process


class ConfigError(ValueError):
    """An operator-facing configuration mistake; the message says what to do."""


@dataclass
class Services:
    db: Database
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the stores of the storage contract (orgscim.model.contract), on this process's SQLite database
        self.storage = SqliteStorage(self.db)
        self.orgs = self.storage.orgs
        self.outbox = self.storage.outbox
        self.links = self.storage.links
        self.leases = self.storage.leases
        self.drift = self.storage.drift
        self.housekeeping = self.storage.housekeeping
        self.auth_ctx = AuthContext.from_config(self.orgs, self.config)
        self._modes: dict[str, AuthMode] = {}
        self._admins: dict[str, KeycloakAdmin] = {}
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.deliverer = Deliverer(self.storage, self.keycloak, self.federation, workers=self.delivery_workers,
                                   per_org=int(self.config.get("DELIVERY_PER_ORG", 4)),
                                   create_batch=int(self.config.get("KEYCLOAK_CREATE_BATCH", 50)))

    # -- plugins --------------------------------------------------------------------------------
    def auth_mode(self, name: str) -> AuthMode:
        """The (per-process) instance of an auth-mode plugin."""
        if name not in self._modes:
            available = plugins.auth_modes()
            if name not in available:
                raise ConfigError(f"unknown auth mode {name!r}; installed: {', '.join(sorted(available))}")
            self._modes[name] = available[name](self.auth_ctx)
        return self._modes[name]

    def federation(self, org: Org) -> tuple[FederationPlugin, JSON]:
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
                    self.keycloak_secret(), timeout=float(self.config.get("KEYCLOAK_TIMEOUT", 5)),
                    # delivery threads + request threads (serve --threads) of this process share its connections
                    pool_size=self.delivery_workers + REQUEST_THREADS)
                metrics.instrument_session(self._admins[realm].session)  # Keycloak latency and errors
            return self._admins[realm]

    def keycloak_secret(self) -> str:
        """The service-account secret: from KEYCLOAK_CLIENT_SECRET_FILE (preferred) or the environment."""
        secret = self.secret_setting("KEYCLOAK_CLIENT_SECRET")
        if not secret:
            raise ConfigError("KEYCLOAK_URL is set but there is no service-account secret: "
                              "set ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE")
        return secret

    def secret_setting(self, key: str) -> str | None:
        """A secret from the file named by ``{key}_FILE`` (preferred: never on argv or in the environment) or
        from ``key`` itself; None when neither is set. An unreadable file is a :class:`ConfigError`."""
        path = self.config.get(f"{key}_FILE")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as e:
                raise ConfigError(f"cannot read {key}_FILE {path}: {e.strerror}") from None
        secret = self.config.get(key)
        return str(secret) if secret else None

    def keycloak_up(self, realm: str) -> bool:
        """False for a few seconds after Keycloak failed to answer, so requests don't each wait on it."""
        return self._down_until.get(realm, 0.0) <= time.monotonic()

    def keycloak_failed(self, realm: str, seconds: float | None = None) -> None:
        """Requests stop delivering inline to ``realm`` for a while (Keycloak down, or asking to slow down for
        ``seconds``); the worker delivers meanwhile."""
        pause = float(self.config.get("KEYCLOAK_RETRY_SECONDS", 5)) if seconds is None else seconds
        self._down_until[realm] = max(self._down_until.get(realm, 0.0), time.monotonic() + pause)

    @property
    def delivery_workers(self) -> int:
        """Delivery threads per process (``DELIVERY_WORKERS``)."""
        return max(1, int(self.config.get("DELIVERY_WORKERS", 8)))

    @property
    def delivery_budget(self) -> float:
        """Seconds a SCIM request may spend delivering its writes before it answers (hard bound)."""
        return float(self.config.get("KEYCLOAK_DELIVERY_BUDGET", 10))

    # -- orgs -----------------------------------------------------------------------------------
    def configure_org(self, realm: str, org_id: str, auth_mode: str, auth_config: JSON | None = None,
                      enabled: bool = True, federation: str = "none",
                      federation_config: JSON | None = None,
                      options: JSON | None = None) -> Org:
        """Create or update an org's SCIM config, refusing a bad config here rather than at request time.
        With Keycloak, the organization must exist there before anything of the config (a ``jwks_uri``) is
        fetched."""
        mode = self.auth_mode(auth_mode)
        admin = self.keycloak(realm)
        kc_org = None
        if admin is not None:
            with _keycloak_refusals(admin, realm, org_id):
                kc_org = admin.get_organization(org_id)
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
        settings: JSON = {"federation": fed_cfg}
        for key, value in (options or {}).items():
            if key not in ORG_SETTINGS:
                raise ConfigError(f"unknown org option {key!r}; known: {', '.join(ORG_SETTINGS)}")
            if value not in ORG_SETTINGS[key]:
                raise ConfigError(f"{key} must be one of {', '.join(ORG_SETTINGS[key])}")
            settings[key] = value
        if admin is not None:
            with _keycloak_refusals(admin, realm, org_id):
                if hasattr(mode, "check_in_keycloak"):  # e.g. KEYCLOAK mode: its allowed_clients exist there
                    try:
                        mode.check_in_keycloak(admin, cfg)
                    except ValueError as e:
                        raise ConfigError(str(e)) from e
                admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
        org = self.orgs.upsert_org(realm, org_id, auth_mode, cfg, enabled, federation, settings)
        if isinstance(kc_org, dict) and kc_org.get("id") == org_id:  # its name for the listings
            self.orgs.seen_in_keycloak(realm, [kc_org])
        return org

    def credential_issuer(self, org: Org) -> CredentialIssuer:
        """The org's auth-mode plugin when orgscim issues its credentials (``EXTERNAL_SECRET``,
        ``EXTERNAL_BASIC``: it has ``issue``/``rotate``); :class:`ConfigError` for the token modes."""
        mode = self.auth_mode(org.auth_mode)
        if not hasattr(mode, "issue"):
            raise ConfigError(f"auth mode {org.auth_mode} does not use credentials issued by orgscim; the "
                              "IdP authenticates with its own tokens")
        return cast(CredentialIssuer, mode)

    def remove_org(self, org: Org, purge: bool = False) -> list[str]:
        """Take an org's SCIM config away: every credential not yet revoked is revoked now, and the endpoint
        closes (``enabled`` off; its SCIM data is kept, so configuring it again resumes where it was). With
        ``purge`` the config and all the org's SCIM data are deleted. Keycloak users and memberships are left
        as they are either way. Returns the ids of the credentials revoked."""
        revoked = [c.cred_id for c in self.orgs.credentials(org.pk) if c.revoked is None]
        for cred_id in revoked:
            self.auth_ctx.revoke(org, cred_id)
        if purge:
            # acknowledged writes still queued are delivered if Keycloak takes them now, the rest is cancelled
            # with an audit event: never dropped silently with the org's rows
            if self.keycloak_configured and self.outbox.entries(org.pk, limit=1):
                try:
                    self.deliver(org, budget=self.delivery_budget)
                except (KeycloakError, ConfigError) as e:
                    log.warning("org %s/%s: delivery before purge failed: %s", org.realm, org.org_id, e)
            self.outbox.purge_org(org.pk, "organization purged")
        else:
            self.orgs.upsert_org(org.realm, org.org_id, org.auth_mode, org.auth_config, False, org.federation,
                                 org.settings)
        return revoked

    def org_overview(self, realm: str | None = None) -> list[JSON]:
        """Configured orgs (``Org.public()``) and organizations reconcile found in Keycloak without a SCIM config,
        each with ``configured`` and ``status``: serving, closed, vanished or not configured."""
        rows = [{**o.public(), "configured": True} for o in self.orgs.orgs(realm)] + self.orgs.discovered(realm)
        for row in rows:
            row["status"] = org_status(row)
        return rows

    def refresh_jwks(self) -> dict[str, str]:
        """Fetch the JWK Set of every org whose mode verifies JWTs (KEYCLOAK, EXTERNAL_JWT), each URI once.

        The sets land in SQLite, where every web process picks them up; a failing set keeps the last good
        keys and is reported (log, audit event, ``/metrics``, ``orgscim jwks refresh`` exit code).
        Returns ``{uri: "ok" | error}``.
        """
        uris: dict[str, list[Org]] = {}
        for org in self.orgs.orgs():
            mode = self.auth_mode(org.auth_mode) if org.auth_mode in plugins.auth_modes() else None
            if mode is not None and hasattr(mode, "rules") and org.vanished is None:
                try:
                    uris.setdefault(mode.rules(org).jwks_uri, []).append(org)
                except (ValueError, KeyError, ConfigError) as e:
                    log.warning("org %s/%s: no JWKS to refresh: %s", org.realm, org.org_id, e)
        results: dict[str, str] = {}
        for uri, orgs in uris.items():
            try:
                self.auth_ctx.jwks.refresh(uri)
                results[uri] = "ok"
            except JwksError as e:
                results[uri] = str(e)
                log.warning("JWKS refresh of %s failed (last good keys kept): %s", uri, e)
                for org in orgs:
                    self.orgs.event(org.pk, "jwks.refresh_failed", {"uri": uri, "error": str(e)[:300]})
        return results

    def scim(self, org: Org, base_url: str) -> ScimService:
        mode = self.auth_mode(org.auth_mode)
        admin = self.keycloak(org.realm)
        # while Keycloak answers, the request's entries are held for it (delivered inline, then released)
        provisioner = KeycloakProvisioner(org, admin, self.links, self.keycloak_up(org.realm),
                                          lambda: self.keycloak_failed(org.realm),
                                          hold=self.delivery_budget + INLINE_HOLD_MARGIN) if admin else None
        return ScimService(self.storage.resources(org.pk), base_url, mode.schemes(org), provisioner)

    def deliver(self, org: Org, budget: float | None = None) -> Stats:
        """Push the org's due outbox entries to Keycloak now, for at most ``budget`` seconds."""
        if not self.keycloak_configured or not self.keycloak_up(org.realm):
            return Stats(deferred=True)
        stats = self.deliverer.deliver_org(org, budget)
        if stats.failed:
            self.keycloak_failed(org.realm, stats.retry_after)
        return stats

    def deliver_request(self, org: Org, provisioner: KeycloakProvisioner | None,
                        single_create: bool = False) -> str | None:
        """Deliver what one SCIM request committed before it answers, within ``KEYCLOAK_DELIVERY_BUDGET``
        (what is left goes to the worker at once). When the request was one create and Keycloak refused it as
        a duplicate of a user orgscim may not adopt, the never-acknowledged write is undone and the reason is
        returned: the IdP gets ``409 uniqueness`` (RFC 7644 §3.3) instead of a 201 followed by drift."""
        written = provisioner.written if provisioner is not None else None
        if not written or provisioner is None:
            return None
        rids = [rid for _, _, rid in written]
        if not provisioner.hold:
            return None  # Keycloak was down when the request came: the worker delivers
        stats = Stats(deferred=True)
        try:
            if self.keycloak_up(org.realm):
                stats = self.deliverer.deliver_resources(org, rids, self.delivery_budget)
        finally:
            if stats.deferred or stats.failed:
                self.deliverer.release_leases(org, rids)
                self.outbox.unhold(org.pk, rids)
        if stats.failed:
            self.keycloak_failed(org.realm, stats.retry_after)
        if single_create and written[0][1] == "User":
            for rid, kind, on_create in stats.refusals:
                if rid == rids[0] and on_create and kind == "uniqueness" and self.outbox.rollback_create(
                        org.pk, rid, "Keycloak: username or email of another user"):
                    return f"userName or email already belongs to another user of realm {org.realm}"
        return None


@contextmanager
def _keycloak_refusals(admin: KeycloakAdmin, realm: str, org_id: str) -> Iterator[None]:
    """Keycloak errors while configuring an org, as :class:`ConfigError` saying what to do."""
    try:
        yield
    except KeycloakUnavailable as e:
        raise ConfigError(f"Keycloak at {admin.base_url} is not reachable ({e}); start it or fix "
                          "KEYCLOAK_URL, then retry") from None
    except KeycloakError as e:
        if e.status == 404:
            raise ConfigError(f"realm {realm} of Keycloak has no organization with id {org_id}: use the "
                              "organization's id (Keycloak admin console → Organizations)") from None
        raise ConfigError(f"Keycloak refused: {e}") from None


def org_status(row: JSON) -> str:
    """``serving``, ``closed`` (realm flag off or org disabled), ``vanished`` (gone from Keycloak) or
    ``not configured``, for a row of :meth:`Services.org_overview` or an ``Org.public()``."""
    if row.get("configured") is False:
        return "not configured"
    if row.get("serving"):
        return "serving"
    return "vanished" if row.get("vanished") else "closed"
