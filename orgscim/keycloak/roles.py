"""The realm-management roles orgscim's service account needs, per Keycloak version.

Used by :meth:`~orgscim.keycloak.realm.RealmEndpoints.check_permissions` (``orgscim check``) and by
``orgscim keycloak bootstrap`` (:mod:`orgscim.keycloak.bootstrap`), which grants exactly these.
"""

from __future__ import annotations

#: realm-management roles orgscim's service account needs (Keycloak 26.7+), and why.
REQUIRED_ROLES: dict[str, str] = {
    "manage-users": "create, update, disable and delete users; org membership; federated identity links",
    "view-users": "read users and organization members",
    "query-users": "search users",
    "manage-realm": "declare orgscim's attributes in the realm's user profile",
    "view-realm": "read the realm and its user profile",
    "manage-organizations": "organization members and organization groups",
    "view-organizations": "discover organizations and read their groups and identity providers",
    "view-identity-providers": "read the identity provider an organization's users are linked to",
    "view-clients": "resolve client ids (KEYCLOAK auth mode allow lists)",
}

# Before 26.7 the organization and identity-provider roles did not exist; manage-realm / view-realm
# covered them (DESIGN.md §4). Not verified live; 26.7.3 is.
_PRE_26_7_EQUIVALENT = {
    "manage-organizations": "manage-realm",
    "view-organizations": "view-realm",
    "view-identity-providers": "view-realm",
}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def required_roles(server_version: str | None = None) -> list[str]:
    """The realm-management roles orgscim needs on a server of *server_version* (None: newest)."""
    roles = list(REQUIRED_ROLES)
    if server_version and _version_tuple(server_version) < (26, 7):
        roles = list(dict.fromkeys(_PRE_26_7_EQUIVALENT.get(r, r) for r in roles))
    return roles
