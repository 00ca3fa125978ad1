"""Who a realm admin is, from a verified Keycloak token: the caller of the config API and the admin pages."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.types import JSON

#: realm-management roles that may change SCIM config (any one of them)
ADMIN_ROLES = frozenset({"manage-organizations", "manage-realm", "realm-admin"})
REALM_MANAGEMENT = "realm-management"


@dataclass(frozen=True)
class Caller:
    """Who presented a verified realm token (or logged in to the admin pages)."""

    realm: str
    subject: str
    username: str | None
    client: str | None
    roles: frozenset[str]

    @property
    def who(self) -> str:
        """The name audit events record: ``preferred_username``, else ``sub``."""
        return self.username or self.subject

    @property
    def is_admin(self) -> bool:
        """Holds one of the realm-management roles that may change SCIM config."""
        return bool(self.roles & ADMIN_ROLES)

    def audit(self) -> dict[str, str | None]:
        """What audit events record about the caller."""
        return {"who": self.who, "sub": self.subject, "client": self.client}

    @classmethod
    def from_claims(cls, realm: str, claims: JSON) -> Caller:
        """From verified token claims (roles from ``resource_access["realm-management"]``)."""
        access = claims.get("resource_access")
        mgmt = access.get(REALM_MANAGEMENT) if isinstance(access, dict) else None
        roles = mgmt.get("roles") if isinstance(mgmt, dict) else None
        role_set = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
        username = claims.get("preferred_username")
        client = claims.get("azp", claims.get("client_id"))
        return cls(realm, str(claims.get("sub") or ""), username if isinstance(username, str) else None,
                   client if isinstance(client, str) else None, role_set)
