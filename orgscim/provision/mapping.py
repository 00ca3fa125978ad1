"""SCIM User → Keycloak user representation (DESIGN §4 table). Pure functions."""

from __future__ import annotations

from collections.abc import Callable

from orgscim.model.schemas import ENTERPRISE
from orgscim.model.types import JSON

# Admin-only user-profile attributes orgscim declares (Keycloak 26 drops undeclared attributes).
ATTR_ID = "orgscim_id"
ATTR_EXTERNAL_ID = "orgscim_external_id"
ATTR_ORG = "orgscim_org"
PROFILE_ATTRIBUTES = (ATTR_ID, ATTR_EXTERNAL_ID, ATTR_ORG)

USERNAME_POLICIES = ("userName", "email")
DELETE_POLICIES = ("delete", "disable")
ADOPT_POLICIES = ("never", "org-members")
ORG_SETTINGS = {"username_policy": USERNAME_POLICIES, "delete_policy": DELETE_POLICIES,
                "adopt_policy": ADOPT_POLICIES, "auto_repair": ("off", "on"), "domain_policy": ("on", "off")}
DEFAULT_SETTINGS = {"username_policy": "userName", "delete_policy": "delete", "adopt_policy": "never",
                    "auto_repair": "off", "domain_policy": "on"}


def setting(settings: JSON, key: str) -> str:
    return str(settings.get(key) or DEFAULT_SETTINGS[key])


def primary_email(data: JSON) -> str | None:
    """The primary email, else the work one, else the first (RFC 7643 §4.1.2)."""
    emails = [e for e in data.get("emails") or [] if isinstance(e.get("value"), str)]
    picks: list[Callable[[JSON], bool]] = [lambda e: e.get("primary") is True,
                                           lambda e: str(e.get("type", "")).lower() == "work",
                                           lambda e: True]
    for pick in picks:
        for e in emails:
            if pick(e):
                return str(e["value"])
    return None


def active(data: JSON | None) -> bool:
    """SCIM ``active`` defaults to true when absent (an IdP that never sends it provisions usable users)."""
    return bool(data is None or data.get("active", True))


def kc_username(data: JSON, policy: str = "userName") -> str:
    """Keycloak stores usernames in lower case."""
    if policy == "email":
        email = primary_email(data)
        if email:
            return email.lower()
    return str(data.get("userName", "")).lower()


def user_rep(org_id: str, rid: str, data: JSON, settings: JSON) -> JSON:
    """The Keycloak fields orgscim owns for this user (enabled is decided by the deliverer)."""
    name = data.get("name") or {}
    attrs: dict[str, list[str]] = {ATTR_ID: [rid], ATTR_ORG: [org_id]}
    if data.get("externalId"):
        attrs[ATTR_EXTERNAL_ID] = [data["externalId"]]
    return {
        "username": kc_username(data, setting(settings, "username_policy")),
        "email": primary_email(data) or "",
        "firstName": name.get("givenName") or "",
        "lastName": name.get("familyName") or "",
        "attributes": attrs,
    }


def scim_value(data: JSON, rid: str, path: str) -> str | None:
    """A string value of a SCIM user by a simple path: ``externalId``, ``userName``, ``id``, ``email``,
    ``name.givenName`` or an enterprise attribute (``urn:…:enterprise:2.0:User:employeeNumber``)."""
    low = path.lower()
    if low == "id":
        return rid
    if low in ("email", "emails", "emails.value"):
        return primary_email(data)
    if low.startswith(ENTERPRISE.lower() + ":"):
        value = (data.get(ENTERPRISE) or {}).get(path[len(ENTERPRISE) + 1:])
        return value if isinstance(value, str) and value else None
    head, _, sub = path.partition(".")
    value = next((v for k, v in data.items() if k.lower() == head.lower()), None)
    if sub and isinstance(value, dict):
        value = next((v for k, v in value.items() if k.lower() == sub.lower()), None)
    return value if isinstance(value, str) and value else None
