"""Keycloak admin endpoints for organization groups (Keycloak 26.6+).

Facts verified against Keycloak 26.7.3 (``tests/keycloak/test_client.py``): ``/organizations/{org}/groups``
(GET list, POST create -> 201), ``/organizations/{org}/groups/{group}`` (GET, PUT rename -> 204, DELETE -> 204),
``/organizations/{org}/groups/{group}/members`` (GET), ``.../members/{user}`` (PUT add -> 204, 409 if already in;
DELETE -> 204, also when not in), ``/organizations/{org}/members/{user}/groups`` (GET). Adding a user who is not a
member of the organization answers 400.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orgscim.keycloak.base import AdminBase, flag, search_params, seg
from orgscim.model.types import JSON


def _groups(org_id: str) -> str:
    return f"/organizations/{seg(org_id)}/groups"


def _group(org_id: str, group_id: str) -> str:
    return f"{_groups(org_id)}/{seg(group_id)}"


class OrgGroupEndpoints(AdminBase):
    """``/organizations/{org}/groups``: an organization's groups and their members."""

    def list_org_groups(
        self,
        org_id: str,
        first: int = 0,
        max: int = 100,
        *,
        search: str | None = None,
        exact: bool | None = None,
        brief: bool = True,
    ) -> list[JSON]:
        """One page of the organization's top-level groups."""
        params = search_params(search, exact, brief)
        return self.list_page(_groups(org_id), params, first=first, max=max)

    def iter_org_groups(
        self,
        org_id: str,
        *,
        search: str | None = None,
        exact: bool | None = None,
        brief: bool = True,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All top-level groups of the organization, page by page."""
        params = search_params(search, exact, brief)
        return self.paged(_groups(org_id), params, page_size=page_size)

    def get_org_group(self, org_id: str, group_id: str) -> JSON:
        """The group; :class:`NotFound` if it does not exist (a group of another org answers 400)."""
        return self._get_object(_group(org_id, group_id))

    def find_org_group(self, org_id: str, name: str) -> JSON | None:
        """The organization's top-level group named exactly *name* (None if there is none)."""
        for group in self.iter_org_groups(org_id, search=name, exact=True):
            if group.get("name") == name:
                return group
        return None

    def find_org_groups_by_attribute(self, org_id: str, name: str, value: str) -> list[JSON]:
        """The organization's groups whose attribute *name* holds *value* (``q=name:value``), with attributes."""
        found = self._get_list(_groups(org_id), {"q": f"{name}:{value}", "briefRepresentation": "false", "max": 10})
        return [g for g in found if value in ((g.get("attributes") or {}).get(name) or [])]

    def create_org_group(self, org_id: str, name: str, attributes: Mapping[str, list[str]] | None = None) -> str:
        """Create a top-level organization group; return its id. :class:`KeycloakConflict` on a duplicate name."""
        body: JSON = {"name": name}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        return self._create(_groups(org_id), body)

    def update_org_group(self, org_id: str, group_id: str, rep: JSON) -> None:
        """PUT the group representation."""
        self._no_content("PUT", _group(org_id, group_id), rep, True)

    def rename_org_group(self, org_id: str, group_id: str, name: str) -> None:
        """Rename the group (keeps its attributes). :class:`KeycloakConflict` if the name is taken."""
        rep = self.get_org_group(org_id, group_id)
        body = {k: v for k, v in rep.items() if k in ("id", "name", "attributes", "description")}
        body["name"] = name
        self.update_org_group(org_id, group_id, body)

    def delete_org_group(self, org_id: str, group_id: str) -> None:
        """Delete the group. :class:`NotFound` if it does not exist."""
        self._no_content("DELETE", _group(org_id, group_id))

    def list_org_group_members(
        self, org_id: str, group_id: str, first: int = 0, max: int = 100, *, brief: bool = True
    ) -> list[JSON]:
        """One page of the group's members."""
        path = f"{_group(org_id, group_id)}/members"
        return self.list_page(path, {"briefRepresentation": flag(brief)}, first=first, max=max)

    def iter_org_group_members(
        self, org_id: str, group_id: str, *, brief: bool = True, page_size: int | None = None
    ) -> Iterator[JSON]:
        """All members of the group, page by page."""
        path = f"{_group(org_id, group_id)}/members"
        return self.paged(path, {"briefRepresentation": flag(brief)}, page_size=page_size)

    def add_org_group_member(self, org_id: str, group_id: str, user_id: str) -> None:
        """Put an organization member into the group. :class:`KeycloakConflict` if already in;
        :class:`BadRequest` if the user is not a member of the organization."""
        self._no_content("PUT", f"{_group(org_id, group_id)}/members/{seg(user_id)}")

    def remove_org_group_member(self, org_id: str, group_id: str, user_id: str) -> None:
        """Take the user out of the group (204 also when the user was not in it)."""
        self._no_content("DELETE", f"{_group(org_id, group_id)}/members/{seg(user_id)}")

    def get_member_org_groups(self, org_id: str, user_id: str, *, brief: bool = True) -> list[JSON]:
        """The organization groups the member belongs to (all pages)."""
        path = f"/organizations/{seg(org_id)}/members/{seg(user_id)}/groups"
        return list(self.paged(path, {"briefRepresentation": flag(brief)}))
