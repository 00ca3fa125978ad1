"""Keycloak admin endpoints about the realm itself: server version, the service account's roles, the user
profile, identity providers and clients.

Service-account roles (realm-management) in 26.7: the user profile PUT needs ``manage-realm``; identity
providers need ``view-identity-providers``; client lookup needs ``view-clients`` (``query-clients`` alone
answers an empty list).
"""

from __future__ import annotations

from collections.abc import Iterable

from orgscim.keycloak.base import AdminBase, seg
from orgscim.keycloak.errors import KeycloakError
from orgscim.keycloak.roles import required_roles
from orgscim.model.types import JSON


class RealmEndpoints(AdminBase):
    """``/admin/serverinfo``, role mappings, ``/users/profile``, ``/identity-provider``, ``/clients``."""

    _server_version: str | None = None

    # -- server and permissions -------------------------------------------------------------------

    def server_version(self) -> str:
        """Keycloak's version (``/admin/serverinfo``), cached."""
        if self._server_version is None:
            info: JSON = self.request("GET", f"{self.base_url}/admin/serverinfo").json()
            self._server_version = str(info.get("systemInfo", {}).get("version", ""))
        return self._server_version

    def service_account_roles(self) -> set[str]:
        """The effective realm-management roles of this client's service account.

        Read from the access token (``resource_access.realm-management.roles``, composites expanded).
        If the token carries no ``resource_access`` at all (the client's ``roles`` scope was removed),
        the role mappings are read through the admin API instead (needs ``view-clients``).
        """
        claims = self.token_claims()
        access = claims.get("resource_access")
        if isinstance(access, dict):
            return set(access.get("realm-management", {}).get("roles", []))
        me = self.find_client(self.client_id)
        rm = self.find_client("realm-management")
        if me is None or rm is None:
            raise KeycloakError(None, None, message="cannot resolve the service account's role mappings")
        sa = self._get_object(f"/clients/{me['id']}/service-account-user")
        comp = self._get_list(f"/users/{sa['id']}/role-mappings/clients/{rm['id']}/composite")
        return {r["name"] for r in comp}

    def check_permissions(self, required: Iterable[str] | None = None) -> list[str]:
        """Return the required realm-management roles the service account lacks ([] when all is well).

        *required* defaults to :func:`~orgscim.keycloak.roles.required_roles` for the server's version
        (``/admin/serverinfo``, newest assumed if it cannot be read). Order follows *required*.
        """
        if required is None:
            try:
                version: str | None = self.server_version()
            except KeycloakError:
                version = None
            required = required_roles(version)
        have = self.service_account_roles()
        return [r for r in required if r not in have]

    # -- user profile -----------------------------------------------------------------------------

    def get_user_profile(self) -> JSON:
        """The realm's user-profile configuration (``attributes``, ``groups``, ...)."""
        return self._get_object("/users/profile")

    def put_user_profile(self, config: JSON) -> JSON:
        """Replace the user-profile configuration (needs ``manage-realm``); return what Keycloak stored."""
        stored: JSON = self.request("PUT", "/users/profile", json_body=config, has_body=True).json()
        return stored

    def ensure_profile_attributes(
        self,
        names: Iterable[str],
        *,
        multivalued: Iterable[str] = (),
        group: str | None = None,
        attempts: int = 3,
    ) -> list[str]:
        """Declare the attributes *names* in the user profile, admin-only (view/edit ``admin``), unless
        they are declared already; existing declarations are left alone. Idempotent.

        Returns the names that were added. Re-reads after writing and tries again (up to *attempts*)
        if a concurrent writer replaced the profile in between.
        """
        return self.declare_profile_attributes(names, multivalued=multivalued, group=group, attempts=attempts)[0]

    def declare_profile_attributes(
        self,
        names: Iterable[str],
        *,
        multivalued: Iterable[str] = (),
        group: str | None = None,
        attempts: int = 3,
    ) -> tuple[list[str], JSON]:
        """:meth:`ensure_profile_attributes`, also returning the user-profile configuration in effect."""
        wanted = list(dict.fromkeys(names))
        multi = set(multivalued)
        added_total: list[str] = []
        for _ in range(attempts):
            config = self.get_user_profile()
            attrs: list[JSON] = config.setdefault("attributes", [])
            present = {a.get("name") for a in attrs}
            missing = [n for n in wanted if n not in present]
            if not missing:
                return added_total, config
            for n in missing:
                decl: JSON = {
                    "name": n,
                    "displayName": n,
                    "permissions": {"view": ["admin"], "edit": ["admin"]},
                    "multivalued": n in multi,
                    "validations": {},
                    "annotations": {},
                }
                if group:
                    decl["group"] = group
                attrs.append(decl)
            self.put_user_profile(config)
            added_total.extend(n for n in missing if n not in added_total)
        config = self.get_user_profile()
        still = [n for n in wanted if n not in {a.get("name") for a in config.get("attributes", [])}]
        if still:
            raise KeycloakError(None, None, message=f"user-profile attributes not kept: {still}")
        return added_total, config

    def get_realm(self) -> JSON:
        """The realm's representation (needs ``view-realm``)."""
        return self._get_object("")

    # -- identity providers and clients -----------------------------------------------------------

    def get_identity_provider(self, alias: str) -> JSON:
        """The identity provider (``organizationId`` tells the org it is linked to); :class:`NotFound`."""
        return self._get_object(f"/identity-provider/instances/{seg(alias)}")

    def find_client(self, client_id: str) -> JSON | None:
        """The client with this ``clientId`` (None if there is none; needs ``view-clients``)."""
        for client in self._get_list("/clients", {"clientId": client_id, "max": 2}):
            if client.get("clientId") == client_id:
                return client
        return None

    def get_client(self, client_uuid: str) -> JSON:
        """The client by internal id; :class:`NotFound` if missing."""
        return self._get_object(f"/clients/{seg(client_uuid)}")
