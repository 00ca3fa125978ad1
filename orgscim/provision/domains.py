"""Per-org domain policy: the usernames and emails an org's SCIM client gives to Keycloak must lie within the
org's Keycloak domains (DESIGN §4, "Many tenants": no org may squat another org's names).

Keycloak usernames and emails are unique per realm, so without it org A could create users with org B's
addresses first and make B's creates fail with 409. The policy is ``domain_policy=on`` by default and applies
when the organization has domains in Keycloak; ``off`` turns it off for one org. Domains match exactly
(``a.example`` does not cover ``x.a.example``: that may be another org's domain). They are a realm fact,
cached per process by the Keycloak client; while Keycloak cannot be asked and nothing is cached, the write is
accepted (an acknowledged write is never held hostage to Keycloak) and logged.
"""

from __future__ import annotations

import logging

from orgscim.keycloak.client import KeycloakAdmin, KeycloakError
from orgscim.model.contract import Org
from orgscim.model.errors import InvalidValue
from orgscim.model.types import JSON

from .mapping import kc_username, primary_email, setting

log = logging.getLogger("orgscim.provision")


def domain_of(value: str) -> str | None:
    """The domain of an email-shaped value, lower case (None when it has no ``@``)."""
    local, at, domain = value.rpartition("@")
    return domain.lower() if at and local and domain else None


def check_domains(org: Org, admin: KeycloakAdmin, before: JSON | None, after: JSON,
                  ask_keycloak: bool = True) -> None:
    """Raise :class:`~orgscim.model.errors.InvalidValue` (SCIM ``invalidValue``) when a new username or email
    of the user is outside the org's domains. Values that do not change are not checked (users from before the
    policy keep working)."""
    if setting(org.settings, "domain_policy") == "off":
        return
    policy = setting(org.settings, "username_policy")
    values = []
    username = kc_username(after, policy)
    if before is None or username != kc_username(before, policy):
        values.append(("userName" if policy == "userName" else "username (the email)", username))
    email = primary_email(after)
    if email and (before is None or email.lower() != (primary_email(before) or "").lower()):
        values.append(("email", email))
    if not values:
        return
    try:
        domains = admin.organization_domains(org.org_id, fetch=ask_keycloak)
    except KeycloakError as e:
        log.warning("domain policy of org %s not checked (Keycloak: %s)", org.org_id, e)
        return
    if not domains:
        return  # an org without domains has nothing to keep its names within
    for what, value in values:
        if domain_of(value) not in domains:
            raise _outside(what, value, domains)


def _outside(what: str, value: str, domains: list[str]) -> InvalidValue:
    listed = ", ".join(sorted(domains))
    return InvalidValue(
        f"{what} {value!r} is outside this organization's domains ({listed}). Use a name or address in one of "
        "them; to allow others, add the domain to the organization in Keycloak, or have the operator set the "
        "org option domain_policy=off.")
