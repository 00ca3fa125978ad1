"""Config changes made by a realm admin, through the config API or the admin pages (DESIGN §2).

No Flask here: the web layer turns a request body into a call of :class:`OrgAdmin` and its errors into HTTP
answers (:class:`~orgscim.services.ConfigError` → 400, :class:`ConfigConflict` → 409). Every change goes to
the audit events with who made it, never a secret.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from .auth import CredentialIssuer, IssuedCredential, Rotation, grace_hours
from .auth.caller import Caller
from .model.contract import Credential, Org
from .model.types import JSON, JSONValue
from .services import ConfigError, Services

audit_log = logging.getLogger("orgscim.audit")

#: fields of an org's config view that a client may send back in a ``PUT`` and that are ignored
READ_ONLY = frozenset({"realm", "orgId", "realmScimEnabled", "serving", "created", "updated", "vanished",
                       "scimBaseUrl", "resources", "status", "configured"})
WRITABLE = frozenset({"authMode", "authConfig", "enabled", "federation", "federationConfig", "options", "settings"})


class ConfigConflict(Exception):
    """The change conflicts with the org's current config (the web layer answers 409)."""


class OrgSpec(TypedDict):
    """Keyword arguments of :meth:`Services.configure_org`."""

    auth_mode: str
    auth_config: JSON
    enabled: bool
    federation: str
    federation_config: JSON
    options: JSON


def org_spec(data: JSONValue, current: Org | None) -> OrgSpec:
    """Keyword arguments for :meth:`Services.configure_org` from a request body (``authMode``, ``authConfig``,
    ``enabled``, ``federation``, ``federationConfig``, ``options``; ``settings`` as a view shows it works too).

    Fields left out keep ``current``'s values (or the defaults for a new config); ``authConfig`` and
    ``federationConfig`` only carry over while the mode/behaviour stays the same.
    """
    if not isinstance(data, dict):
        raise ConfigError("send a JSON object, e.g. {\"authMode\": \"EXTERNAL_SECRET\"}")
    unknown = set(data) - WRITABLE - READ_ONLY
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(WRITABLE))}")
    settings = data.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError("settings must be an object")
    settings = dict(settings or {})
    fed_from_settings = settings.pop("federation", None)
    auth_mode = data.get("authMode", current.auth_mode if current else None)
    if not isinstance(auth_mode, str) or not auth_mode:
        raise ConfigError("authMode is required, e.g. EXTERNAL_SECRET, EXTERNAL_BASIC, EXTERNAL_JWT or KEYCLOAK")
    federation = data.get("federation", current.federation if current else "none")
    if not isinstance(federation, str) or not federation:
        raise ConfigError("federation must be the name of a federation behaviour, e.g. none or link-org-idp")
    enabled = data.get("enabled", current.enabled if current else True)
    if not isinstance(enabled, bool):
        raise ConfigError("enabled must be true or false")
    same_mode = current is not None and current.auth_mode == auth_mode
    same_fed = current is not None and current.federation == federation
    auth_config = _object(data, "authConfig", current.auth_config if same_mode and current else {})
    fed_default = (fed_from_settings if fed_from_settings is not None
                   else current.settings.get("federation") if same_fed and current else {})
    fed_config = _object(data, "federationConfig", fed_default or {})
    options_default = settings if data.get("settings") is not None else (
        {k: v for k, v in current.settings.items() if k != "federation"} if current else {})
    options = _object(data, "options", options_default)
    return {"auth_mode": auth_mode, "auth_config": auth_config, "enabled": enabled, "federation": federation,
            "federation_config": fed_config, "options": options}


def _object(data: JSON, key: str, default: JSON) -> JSON:
    """``data[key]`` as a dict (``default`` when absent); :class:`ConfigError` otherwise."""
    value = data.get(key, default)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object")
    return dict(value)


class OrgAdmin:
    """Config changes made by a realm admin through the API (``via="api"``) or the admin pages (``"admin"``).

    Each calls the same :class:`Services` / auth-plugin methods as the CLI and writes one audit event
    (``config.*``) with the caller and no secret; the plugins write their own ``credential.*`` events too.
    """

    def __init__(self, services: Services, caller: Caller, via: str) -> None:
        self.services = services
        self.caller = caller
        self.via = via

    def audit(self, org_pk: int | None, kind: str, **detail: JSONValue) -> None:
        """One ``events`` row (and an audit log line) with the caller; ``detail`` must hold no secret."""
        self.services.orgs.event(org_pk, kind, {**detail, **self.caller.audit(), "via": self.via})
        audit_log.info("%s realm=%s org_pk=%s who=%s via=%s", kind, self.caller.realm, org_pk, self.caller.who,
                       self.via)

    def set_realm(self, realm: str, enabled: bool) -> None:
        """Turn the realm flag on or off."""
        self.services.orgs.set_realm(realm, enabled)
        self.audit(None, "config.realm", realm=realm, scimEnabled=enabled)

    def configure(self, realm: str, org_id: str, data: JSONValue, create_only: bool = False) -> tuple[Org, bool]:
        """Create or update from a request body; (org, created). :class:`ConfigError` for a bad config,
        :class:`ConfigConflict` when ``create_only`` and the org has a config already."""
        current = self.services.orgs.org(realm, org_id)
        if create_only and current is not None:
            raise ConfigConflict(f"org {org_id} already has a SCIM config: use PUT to change it")
        spec = org_spec(data, current)
        org = self.services.configure_org(realm, org_id, **spec)
        self.audit(org.pk, "config.org.created" if current is None else "config.org.updated", orgId=org_id,
                   authMode=org.auth_mode, enabled=org.enabled, federation=org.federation,
                   options={k: v for k, v in org.settings.items() if k != "federation"})
        return org, current is None

    def remove(self, org: Org, purge: bool) -> list[str]:
        """``DELETE``: see :meth:`Services.remove_org`."""
        revoked = self.services.remove_org(org, purge)
        self.audit(None if purge else org.pk, "config.org.purged" if purge else "config.org.removed",
                   realm=org.realm, orgId=org.org_id, revoked=revoked)
        return revoked

    def credential_issuer(self, org: Org) -> CredentialIssuer:
        """The org's credential-issuing auth plugin; :class:`ConfigConflict` for the token modes."""
        try:
            return self.services.credential_issuer(org)
        except ConfigError as e:
            raise ConfigConflict(str(e)) from None

    def issue(self, org: Org) -> IssuedCredential:
        """A new credential (the caller shows its secret once)."""
        issued = self.services.credential_issuer(org).issue(org)
        self.audit(org.pk, "config.credential.created", credential=issued.credential.cred_id)
        return issued

    def rotate(self, org: Org, hours: JSONValue = None) -> Rotation:
        """Rotate with ``hours`` of grace (validated: 0 … 720), or the org's default when None."""
        try:
            seconds = None if hours is None else grace_hours(hours) * 3600
        except ValueError as e:
            raise ConfigError(str(e)) from None
        rotation = self.services.credential_issuer(org).rotate(org, seconds)
        self.audit(org.pk, "config.credential.rotated", credential=rotation.issued.credential.cred_id,
                   superseded=[c.cred_id for c in rotation.superseded], deadline=rotation.deadline)
        return rotation

    def revoke(self, org: Org, cred_id: str) -> Credential | None:
        """Revoke now; None if the org has no such credential."""
        cred = self.services.auth_ctx.revoke(org, cred_id)
        if cred is not None:
            self.audit(org.pk, "config.credential.revoked", credential=cred_id)
        return cred
