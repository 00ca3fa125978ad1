"""Delivering SCIM Groups to Keycloak as organization groups: create or adopt, rename, members, delete.

Groups orgscim creates carry its id (``orgscim_id``), so a retry finds its own group whatever it is named now;
a group of that name without our id existed before (adopted: never deleted by orgscim).
"""

from __future__ import annotations

from collections.abc import Callable

from orgscim.keycloak.errors import KeycloakConflict, NotFound
from orgscim.model.contract import Org, Resources
from orgscim.model.delivery import Drift, Link, Links, OutboxItem

from .errors import Refused
from .facts import EntryAdmin
from .mapping import ATTR_ID


class GroupDelivery:
    """``group.upsert`` and ``group.delete`` entries; ``resources(org_pk)`` reads the group's SCIM state."""

    def __init__(self, links: Links, drift: Drift, resources: Callable[[int], Resources]) -> None:
        self.links = links
        self.drift = drift
        self.resources = resources

    def upsert(self, org: Org, admin: EntryAdmin, item: OutboxItem) -> None:
        gid = item.resource_id
        row = self.resources(org.pk).get("Group", gid)
        if row is None:
            return  # deleted since; its group.delete entry follows
        name: str = row.data["displayName"]
        link = self.links.get(org.pk, gid)
        fresh = False  # created by this call: it has no members yet (no need to list them)
        if link is None:
            link, fresh = self._create_or_adopt(org, admin, item, name)
        else:
            self._rename(org, admin, link, name)
        want = self.links.group_member_kc_ids(org.pk, gid)
        have = set() if fresh else {u["id"] for u in admin.iter_org_group_members(org.org_id, link.kc_id)}
        for kc_id in sorted(want - have):
            try:
                admin.add_org_group_member(org.org_id, link.kc_id, kc_id)
            except KeycloakConflict:
                pass
        for kc_id in sorted(self.links.owned_kc_ids(org.pk, have - want)):
            admin.remove_org_group_member(org.org_id, link.kc_id, kc_id)

    def delete(self, org: Org, admin: EntryAdmin, item: OutboxItem) -> None:
        link = self.links.get(org.pk, item.resource_id)
        if link is None:
            return
        if link.origin == "created":
            try:
                admin.delete_org_group(org.org_id, link.kc_id)
            except NotFound:
                pass
        self.links.drop(org.pk, item.resource_id)
        self.drift.resolve(org.pk, item.resource_id)

    def _create_or_adopt(self, org: Org, admin: EntryAdmin, item: OutboxItem, name: str) -> tuple[Link, bool]:
        """The group's link (saved), and whether this call created the group."""
        gid = item.resource_id
        kc_gid, origin, fresh = None, "created", False
        if not item.attempts:
            try:
                kc_gid = admin.create_org_group(org.org_id, name, {ATTR_ID: [gid]})
                fresh = True
            except KeycloakConflict:
                pass  # the name is taken: maybe by our own earlier attempt
        if kc_gid is None:
            ours = admin.find_org_groups_by_attribute(org.org_id, ATTR_ID, gid)
            same = None if ours else next((g for g in admin.iter_org_groups(
                org.org_id, search=name, exact=True, brief=False) if g.get("name") == name), None)
            if ours:
                kc_gid = ours[0]["id"]
            elif same is None:
                try:
                    kc_gid = admin.create_org_group(org.org_id, name, {ATTR_ID: [gid]})
                except KeycloakConflict:
                    raise Refused("uniqueness", f"another organization group is named {name!r}", name,
                                  None) from None
            elif (same.get("attributes") or {}).get(ATTR_ID):
                raise Refused("uniqueness", f"organization group {name!r} belongs to another SCIM group",
                              name, same["id"])
            else:
                kc_gid, origin = same["id"], "adopted"
        link = Link(org.pk, "Group", gid, kc_gid, origin, {})
        self.links.save(link)
        return link, fresh

    @staticmethod
    def _rename(org: Org, admin: EntryAdmin, link: Link, name: str) -> None:
        try:
            group = admin.get_org_group(org.org_id, link.kc_id)
        except NotFound:
            raise Refused("missing_in_keycloak", "the organization group linked to this SCIM group no longer "
                          "exists; not re-created", link.kc_id, None) from None
        if group.get("name") != name:
            try:
                admin.rename_org_group(org.org_id, link.kc_id, name)
            except KeycloakConflict:
                raise Refused("uniqueness", f"another organization group is named {name!r}", name, None) from None
