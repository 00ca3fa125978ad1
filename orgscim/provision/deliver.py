"""Outbox delivery: apply SCIM writes to Keycloak in order, idempotently, at least once (DESIGN §4, §7).

One deliverer at a time per org (a lease in SQLite), entries in commit order. A transient failure
(Keycloak down, slow, or refusing our credentials) stops the org's queue and retries it with backoff, so
order is kept; a permanent refusal finishes the entry with its error and records drift. Nothing is ever
re-created behind an admin's back: a linked user that vanished, was disabled or left the org in Keycloak
is reported as drift, and only an explicit SCIM change of ``active`` touches membership and enablement.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orgscim.keycloak.client import (
    BadRequest,
    Conflict,
    Forbidden,
    KeycloakAdmin,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    Unauthorized,
)
from orgscim.store.orgs import Org, OrgStore
from orgscim.store.resources import ResourceStore, now
from orgscim.store.sync import Link, OutboxItem, SyncStore

from .mapping import ATTR_EXTERNAL_ID, ATTR_ID, PROFILE_ATTRIBUTES, active, setting, user_rep
from .provisioner import adoptable

log = logging.getLogger("orgscim.deliver")

LEASE_TTL = 60.0
MAX_BACKOFF = 300.0


class Refused(Exception):
    """Keycloak (or a rule of orgscim) permanently refuses this change; it becomes drift."""

    def __init__(self, kind: str, detail: str, expected: Any = None, actual: Any = None) -> None:
        super().__init__(detail)
        self.kind, self.expected, self.actual = kind, expected, actual


@dataclass
class Stats:
    delivered: int = 0
    refused: int = 0
    deferred: bool = False  # entries are left for later
    failed: bool = False  # Keycloak did not answer (or refused our credentials)


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF, 2.0 ** min(attempts, 10))


class Deliverer:
    """Delivers outbox entries. ``admin_for(realm)`` gives the Keycloak client of a realm (or None)."""

    def __init__(self, orgs: OrgStore, sync: SyncStore, resources: Callable[[int], ResourceStore],
                 admin_for: Callable[[str], KeycloakAdmin | None], federation: Callable[[Org], Any]) -> None:
        self.orgs = orgs
        self.sync = sync
        self.resources = resources
        self.admin_for = admin_for
        self.federation = federation
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._profile_ok: set[str] = set()

    # -- queue ----------------------------------------------------------------------------------
    def deliver_all(self) -> Stats:
        total = Stats()
        for org_pk in self.sync.orgs_with_pending():
            org = self.orgs.org_by_pk(org_pk)
            if org is not None:
                s = self.deliver_org(org)
                total.delivered += s.delivered
                total.refused += s.refused
                total.deferred |= s.deferred
                total.failed |= s.failed
        return total

    def deliver_org(self, org: Org, budget: float | None = None) -> Stats:
        """Deliver due entries of one org, oldest first, until done, deferred, or out of ``budget`` seconds."""
        stats = Stats()
        admin = self.admin_for(org.realm)
        lease = f"outbox:{org.pk}"
        if admin is None or not self.sync.acquire(lease, self.holder, LEASE_TTL):
            return stats
        deadline = None if budget is None else time.monotonic() + budget
        try:
            while True:
                items = self.sync.pending(org.pk)
                if not items:
                    return stats
                for item in items:
                    if deadline is not None and time.monotonic() > deadline:
                        return stats
                    if item.next_attempt > now():
                        stats.deferred = True
                        return stats  # the head of the queue waits: order is kept
                    if not self.deliver_one(org, admin, item, stats):
                        stats.deferred = stats.failed = True
                        return stats
                self.sync.acquire(lease, self.holder, LEASE_TTL)
        finally:
            self.sync.release(lease, self.holder)

    def deliver_one(self, org: Org, admin: KeycloakAdmin, item: OutboxItem, stats: Stats) -> bool:
        """Apply one entry; False when delivery must pause (transient failure)."""
        try:
            self.ensure_profile(admin)
            handler = {"user.upsert": self.user_upsert, "user.delete": self.user_delete,
                       "group.upsert": self.group_upsert, "group.delete": self.group_delete}[item.action]
            handler(org, admin, item)
        except (KeycloakUnavailable, Unauthorized, Forbidden) as e:
            log.warning("outbox %s (%s %s) deferred: %s", item.pk, item.action, item.resource_id, e)
            self.sync.retry_later(item.pk, str(e), backoff(item.attempts))
            return False
        except Refused as e:
            log.warning("outbox %s (%s %s) refused: %s", item.pk, item.action, item.resource_id, e)
            self.sync.report(org.pk, item.resource_type, item.resource_id, e.kind, e.expected, e.actual)
            self.sync.finish(item.pk, f"{e.kind}: {e}")
            stats.refused += 1
            return True
        except KeycloakError as e:
            log.warning("outbox %s (%s %s) refused by Keycloak: %s", item.pk, item.action, item.resource_id, e)
            self.sync.report(org.pk, item.resource_type, item.resource_id, "keycloak_refused", item.action, str(e))
            self.sync.finish(item.pk, str(e))
            stats.refused += 1
            return True
        self.sync.finish(item.pk)
        stats.delivered += 1
        return True

    def ensure_profile(self, admin: KeycloakAdmin) -> None:
        """Declare orgscim's user-profile attributes once per realm per process (else Keycloak drops them)."""
        if admin.realm not in self._profile_ok:
            admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
            self._profile_ok.add(admin.realm)

    # -- users ----------------------------------------------------------------------------------
    def user_upsert(self, org: Org, admin: KeycloakAdmin, item: OutboxItem) -> None:
        data: dict[str, Any] = item.payload["data"]
        rid = item.resource_id
        rep = user_rep(org.org_id, rid, data, org.settings)
        want_active = active(data)
        link = self.sync.link(org.pk, rid)
        if link is None:
            link = self._create_or_adopt(org, admin, rid, rep, want_active)
            explicit = True
        else:
            explicit = bool(item.payload.get("active_changed"))
        try:
            user = admin.get_user(link.kc_id)
        except NotFound:
            raise Refused("missing_in_keycloak", "the Keycloak user linked to this SCIM user no longer exists; "
                          "not re-created (reconcile --repair decides)", link.kc_id, None) from None
        attrs = dict(user.get("attributes") or {})
        attrs.update(rep["attributes"])
        if ATTR_EXTERNAL_ID not in rep["attributes"]:
            attrs.pop(ATTR_EXTERNAL_ID, None)
        # Keycloak 26 wants the username in every PUT (user profile), even when it does not change. An org
        # member's email cannot be cleared ("Email not set"): without a SCIM email, Keycloak's is left alone.
        update: dict[str, Any] = {"username": rep["username"], "firstName": rep["firstName"],
                                  "lastName": rep["lastName"], "email": rep["email"] or None, "attributes": attrs}
        member = admin.is_member(org.org_id, link.kc_id)
        if explicit:
            update["enabled"] = self._enabled_after(org, admin, link, user, want_active)
        elif not user.get("enabled", True) and want_active and link.state.get("enabled", True):
            self.sync.report(org.pk, "User", rid, "disabled_in_keycloak", True, False)
        try:
            admin.update_user(link.kc_id, update)
        except Conflict as e:
            raise Refused("uniqueness", f"Keycloak refused the new username/email: {e}", rep["username"],
                          None) from None
        except BadRequest as e:
            if rep["username"] == user.get("username") or "read-only" not in str(e):
                raise
            # The realm forbids renames (editUsernameAllowed=false): apply the rest, report the rename.
            update["username"] = user.get("username")
            admin.update_user(link.kc_id, update)
            self.sync.report(org.pk, "User", rid, "username_not_editable", rep["username"], user.get("username"))
        kept = admin.get_user(link.kc_id).get("attributes") or {}
        if kept.get(ATTR_ID) != [rid]:
            raise Refused("attributes_dropped", "Keycloak dropped orgscim's user-profile attributes",
                          rep["attributes"], kept)
        if explicit:
            if want_active and not member:
                self._add_member(admin, org, link.kc_id)
            elif not want_active and member:
                self._remove_member(org, admin, link, rid)
            member = want_active
        elif member != want_active and link.state.get("member") == want_active:
            self.sync.report(org.pk, "User", rid, "removed_from_org" if want_active else "unexpected_member",
                             want_active, member)
        link.state.update(member=member, enabled=update.get("enabled", link.state.get("enabled", True)))
        self._federate(org, admin, link, rid, data)
        self.sync.set_link(link)

    def _create_or_adopt(self, org: Org, admin: KeycloakAdmin, rid: str, rep: dict[str, Any],
                         want_active: bool) -> Link:
        # Idempotent: a user carrying our id is one an earlier attempt created.
        found = admin.find_users_by_attribute(ATTR_ID, rid, max=2)
        if found:
            link = Link(org.pk, "User", rid, found[0]["id"], "created", {"member": False, "enabled": True})
        else:
            existing = admin.find_user_by_username(rep["username"]) or (
                admin.find_user_by_email(rep["email"]) if rep["email"] else None)
            if existing is not None:
                if not adoptable(org, admin, self.sync, existing, rid):
                    raise Refused("uniqueness", f"username/email of SCIM user {rid} belongs to another Keycloak "
                                  "user that may not be adopted", rep["username"], existing["id"])
                link = Link(org.pk, "User", rid, existing["id"], "adopted",
                            {"member": admin.is_member(org.org_id, existing["id"]),
                             "enabled": existing.get("enabled", True)})
            else:
                try:
                    kc_id = admin.create_user({**rep, "enabled": want_active})
                except Conflict as e:
                    raise Refused("uniqueness", f"Keycloak refused to create the user: {e}", rep["username"],
                                  None) from None
                link = Link(org.pk, "User", rid, kc_id, "created", {"member": False, "enabled": want_active})
        self.sync.set_link(link)
        return link

    def _enabled_after(self, org: Org, admin: KeycloakAdmin, link: Link, user: dict[str, Any], want: bool) -> bool:
        """``active=false`` disables only a user orgscim created who belongs to no other org; others keep
        their enabled flag (their access to this org ends with the membership)."""
        if want:
            return True if link.origin == "created" else bool(user.get("enabled", True))
        others = [o for o in admin.get_user_organizations(link.kc_id) if o.get("id") != org.org_id]
        if link.origin == "created" and not others:
            return False
        return bool(user.get("enabled", True))

    def _add_member(self, admin: KeycloakAdmin, org: Org, kc_id: str) -> None:
        try:
            admin.add_member(org.org_id, kc_id)
        except Conflict:
            pass  # already a member: the goal is reached

    def _remove_member(self, org: Org, admin: KeycloakAdmin, link: Link, rid: str) -> bool:
        """Remove membership unless the member is managed (created by IdP login): that would delete them."""
        try:
            member = admin.get_member(org.org_id, link.kc_id)
        except NotFound:
            return True
        if str(member.get("membershipType", "")).upper() == "MANAGED":
            self.sync.report(org.pk, "User", rid, "managed_member_kept", "not a member", "MANAGED member")
            return False
        try:
            admin.remove_member(org.org_id, link.kc_id)
        except NotFound:
            pass
        return True

    def user_delete(self, org: Org, admin: KeycloakAdmin, item: OutboxItem) -> None:
        rid = item.resource_id
        link = self.sync.link(org.pk, rid)
        if link is None:
            return
        try:
            user = admin.get_user(link.kc_id)
        except NotFound:
            self.sync.drop_link(org.pk, rid)
            return
        if not self._remove_member(org, admin, link, rid):
            self.sync.drop_link(org.pk, rid)
            return
        if link.origin == "created" and not admin.get_user_organizations(link.kc_id):
            if setting(org.settings, "delete_policy") == "delete":
                admin.delete_user(link.kc_id)
            elif user.get("enabled", True):
                admin.update_user(link.kc_id, {"enabled": False})
        self.sync.drop_link(org.pk, rid)
        self.sync.resolve(org.pk, rid)

    def _federate(self, org: Org, admin: KeycloakAdmin, link: Link, rid: str, data: dict[str, Any]) -> None:
        plugin, cfg = self.federation(org)
        want = plugin.link_for(org, cfg, admin, rid, data) if hasattr(plugin, "link_for") else None
        if want is None:
            return
        alias, idp_user_id, idp_username = want
        current = {f["identityProvider"]: f for f in admin.list_federated_identities(link.kc_id)}
        have = current.get(alias)
        if have is not None and have.get("userId") == idp_user_id:
            link.state["idp"] = {"alias": alias, "userId": idp_user_id}
            return
        if have is not None:
            admin.remove_federated_identity(link.kc_id, alias)
        try:
            admin.add_federated_identity(link.kc_id, alias, idp_user_id, idp_username)
        except Conflict:
            raise Refused("idp_link_conflict", f"another Keycloak user is already linked to {alias} as "
                          f"{idp_user_id}", idp_user_id, None) from None
        link.state["idp"] = {"alias": alias, "userId": idp_user_id}

    # -- groups ---------------------------------------------------------------------------------
    def group_upsert(self, org: Org, admin: KeycloakAdmin, item: OutboxItem) -> None:
        gid = item.resource_id
        row = self.resources(org.pk).get("Group", gid)
        if row is None:
            return  # deleted since; its group.delete entry follows
        name = row.data["displayName"]
        link = self.sync.link(org.pk, gid)
        if link is None:
            found = admin.find_org_group(org.org_id, name)
            if found is not None:
                link = Link(org.pk, "Group", gid, found["id"], "adopted", {})
            else:
                kc_gid = admin.create_org_group(org.org_id, name, {ATTR_ID: [gid]})
                link = Link(org.pk, "Group", gid, kc_gid, "created", {})
            self.sync.set_link(link)
        else:
            try:
                group = admin.get_org_group(org.org_id, link.kc_id)
            except NotFound:
                raise Refused("missing_in_keycloak", "the organization group linked to this SCIM group no longer "
                              "exists; not re-created", link.kc_id, None) from None
            if group.get("name") != name:
                try:
                    admin.rename_org_group(org.org_id, link.kc_id, name)
                except Conflict:
                    raise Refused("uniqueness", f"another organization group is named {name!r}", name,
                                  None) from None
        want = self.sync.group_member_kc_ids(org.pk, gid)
        have = {u["id"] for u in admin.iter_org_group_members(org.org_id, link.kc_id)}
        for kc_id in sorted(want - have):
            try:
                admin.add_org_group_member(org.org_id, link.kc_id, kc_id)
            except Conflict:
                pass
        for kc_id in sorted(self.sync.owned_kc_ids(org.pk, have - want)):
            admin.remove_org_group_member(org.org_id, link.kc_id, kc_id)

    def group_delete(self, org: Org, admin: KeycloakAdmin, item: OutboxItem) -> None:
        link = self.sync.link(org.pk, item.resource_id)
        if link is None:
            return
        if link.origin == "created":
            try:
                admin.delete_org_group(org.org_id, link.kc_id)
            except NotFound:
                pass
        self.sync.drop_link(org.pk, item.resource_id)
        self.sync.resolve(org.pk, item.resource_id)

