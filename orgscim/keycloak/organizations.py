"""Keycloak admin endpoints for organizations (Keycloak 26 native Organizations API): the organizations, their
members and the identity providers linked to them.

Service-account roles (realm-management) in 26.7: organization endpoints accept ``manage-organizations`` (or
``manage-realm``); member endpoints also need ``manage-users``; an org's IdP list needs
``view-identity-providers`` *and* ``view-organizations``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from orgscim.keycloak.base import AdminBase, flag, search_params, seg
from orgscim.keycloak.errors import NotFound
from orgscim.model.types import JSON, Scalar


def _members_params(brief: bool, search: str | None, exact: bool | None,
                    membership_type: str | None) -> dict[str, Scalar]:
    return {
        "briefRepresentation": flag(brief),
        "search": search,
        "exact": None if exact is None else flag(exact),
        "membershipType": membership_type,
    }


class OrganizationEndpoints(AdminBase):
    """``/organizations``: organizations, their members and identity providers."""

    def list_organizations(
        self,
        first: int = 0,
        max: int = 100,
        *,
        search: str | None = None,
        exact: bool | None = None,
        q: str | None = None,
        brief: bool = True,
    ) -> list[JSON]:
        """One page of organizations. *search* matches name or domain; *q* is ``attr:value``."""
        params = search_params(search, exact, brief, q)
        return self.list_page("/organizations", params, first=first, max=max)

    def iter_organizations(
        self,
        *,
        search: str | None = None,
        exact: bool | None = None,
        q: str | None = None,
        brief: bool = True,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All organizations (optionally filtered), page by page."""
        params = search_params(search, exact, brief, q)
        return self.paged("/organizations", params, page_size=page_size)

    def count_organizations(self) -> int:
        """Number of organizations in the realm."""
        return self._count("/organizations/count")

    def get_organization(self, org_id: str) -> JSON:
        """The organization; :class:`NotFound` if it does not exist."""
        return self._get_object(f"/organizations/{seg(org_id)}")

    def find_organization(self, *, name: str | None = None, alias: str | None = None) -> JSON | None:
        """The organization with exactly this *name* or *alias* (None if there is none)."""
        if not name and not alias:
            raise ValueError("give name or alias")
        needle = name or alias
        for org in self.iter_organizations(search=needle, exact=True, brief=False):
            if (name and org.get("name") == name) or (alias and org.get("alias") == alias):
                return org
        if alias and not name:
            # exact search matches names and domains; an alias that differs from the name needs a scan
            for org in self.iter_organizations(search=alias, brief=False):
                if org.get("alias") == alias:
                    return org
        return None

    def create_organization(self, rep: JSON) -> str:
        """Create an organization (``name``, ``alias``, ``domains``, ...); return its id."""
        return self._create("/organizations", rep)

    def delete_organization(self, org_id: str) -> None:
        """Delete an organization (its managed members are deleted by Keycloak)."""
        self._no_content("DELETE", f"/organizations/{seg(org_id)}")

    def list_organization_identity_providers(self, org_id: str) -> list[JSON]:
        """Identity providers linked to the organization (needs ``view-identity-providers``)."""
        return self._get_list(f"/organizations/{seg(org_id)}/identity-providers")

    def organization_domains(self, org_id: str, max_age: float = 300.0, *, fetch: bool = True) -> list[str] | None:
        """The organization's domain names in lower case, remembered for *max_age* seconds per client (a realm
        fact: asking on every SCIM write would add a call to each). ``fetch=False`` answers only from what is
        remembered (None when nothing is)."""
        cache: dict[str, tuple[float, list[str]]] = self.__dict__.setdefault("_org_domains", {})
        hit = cache.get(org_id)
        if hit is not None and (hit[0] > time.monotonic() or not fetch):
            return hit[1]
        if not fetch:
            return None
        domains = [str(d.get("name", "")).lower() for d in self.get_organization(org_id).get("domains") or []]
        cache[org_id] = (time.monotonic() + max_age, domains)
        return domains

    # -- members ----------------------------------------------------------------------------------

    def list_members(
        self,
        org_id: str,
        first: int = 0,
        max: int = 100,
        *,
        brief: bool = True,
        search: str | None = None,
        exact: bool | None = None,
        membership_type: str | None = None,
    ) -> list[JSON]:
        """One page of members. ``brief=False`` includes attributes (26.7 lists brief by default).

        *membership_type* filters ``MANAGED`` / ``UNMANAGED``; each member carries ``membershipType``.
        """
        params = _members_params(brief, search, exact, membership_type)
        return self.list_page(f"/organizations/{seg(org_id)}/members", params, first=first, max=max)

    def iter_members(
        self,
        org_id: str,
        *,
        brief: bool = True,
        search: str | None = None,
        exact: bool | None = None,
        membership_type: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All members of the organization, page by page."""
        params = _members_params(brief, search, exact, membership_type)
        return self.paged(f"/organizations/{seg(org_id)}/members", params, page_size=page_size)

    def count_members(self, org_id: str) -> int:
        """Number of members of the organization."""
        return self._count(f"/organizations/{seg(org_id)}/members/count")

    def get_member(self, org_id: str, user_id: str) -> JSON:
        """The member (with ``membershipType``); :class:`NotFound` if the user is not a member."""
        return self._get_object(f"/organizations/{seg(org_id)}/members/{seg(user_id)}")

    def is_member(self, org_id: str, user_id: str) -> bool:
        """Whether the user is a member of the organization."""
        try:
            self.get_member(org_id, user_id)
        except NotFound:
            return False
        return True

    def add_member(self, org_id: str, user_id: str) -> None:
        """Add an existing user as an (unmanaged) member. :class:`KeycloakConflict` if already a member,
        :class:`NotFound` if the user does not exist. The body is the bare JSON string id."""
        self.request(
            "POST",
            f"/organizations/{seg(org_id)}/members",
            json_body=user_id,
            has_body=True,
            expected=(201, 204),
        )

    def remove_member(self, org_id: str, user_id: str) -> None:
        """Remove the user from the organization. :class:`NotFound` if not a member.

        Careful: removing a *managed* member (created by IdP login) deletes the account.
        """
        self._no_content("DELETE", f"/organizations/{seg(org_id)}/members/{seg(user_id)}")

    def get_user_organizations(self, user_id: str, *, brief: bool = True) -> list[JSON]:
        """The organizations the user is a member of."""
        return self._get_list(f"/organizations/members/{seg(user_id)}/organizations",
                              {"briefRepresentation": flag(brief)})
