"""Outbox delivery: apply SCIM writes to Keycloak in order per resource, idempotently, at least once, with as
few Keycloak calls as the change needs (DESIGN §4 "Speed", §7).

A created user is one ``POST /users`` carrying username, names, email, enabled and orgscim's attributes, plus
one membership call (and the IdP link when federation is on); nothing is read back. An update sends only the
fields that differ from what was last applied (kept in the link's state): one partial ``PUT``, plus a
membership call when ``active`` changed. Lookups happen only where they decide something: a retried create
(it may have landed before) first looks for the user by its ``orgscim_id`` attribute, and a ``409`` from
Keycloak looks for the user by id, then by username/email to decide about adoption.

Failures: Keycloak down, slow, rate limiting (429, honouring ``Retry-After``) or refusing our credentials
defers the entry (nothing acknowledged is dropped or finished unapplied); a permanent refusal finishes the
entry with its error and records drift. Nothing is ever re-created behind an admin's back: a linked user that
vanished is reported as drift, and only an explicit SCIM change of ``active`` touches membership and
enablement. Differences an admin made in Keycloak are found by reconcile, not by reading before each write.
Scheduling, leases and parallelism live in :mod:`orgscim.provision.scheduler`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from orgscim.keycloak.client import (
    BadRequest,
    BudgetSpent,
    Forbidden,
    KeycloakAdmin,
    KeycloakConflict,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
)
from orgscim.model.clock import now
from orgscim.model.contract import Org
from orgscim.store.orgs import OrgStore
from orgscim.store.resources import ResourceStore
from orgscim.store.sync import Link, OutboxItem, SyncStore

from .mapping import ATTR_EXTERNAL_ID, ATTR_ID, PROFILE_ATTRIBUTES, active, setting, user_rep
from .provisioner import adoptable
from .scheduler import DEFAULT_PER_ORG, DEFAULT_WORKERS, LEASE_TTL, Scheduler, Stats, holder, lease_name

log = logging.getLogger("orgscim.deliver")

__all__ = ["Deliverer", "Refused", "Stats", "backoff"]

MAX_BACKOFF = 300.0
FACTS_TTL = 300.0  # seconds realm facts (user-profile declaration, org IdPs) are trusted per process
APPLIED = ("username", "email", "firstName", "lastName")
NEXT = object()  # deliver_one: the entry is done, the resource may have more
RELEASED = object()  # deliver_one: the entry is done and was the resource's last: its lease is released


class Refused(Exception):
    """Keycloak (or a rule of orgscim) permanently refuses this change; it becomes drift."""

    def __init__(self, kind: str, detail: str, expected: Any = None, actual: Any = None,
                 on_create: bool = False) -> None:
        super().__init__(detail)
        self.kind, self.expected, self.actual, self.on_create = kind, expected, actual, on_create


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF, 2.0 ** min(attempts, 10))


class Facts:
    """Realm facts cached per process for :data:`FACTS_TTL`: they change rarely and asking each time would
    double the calls per user."""

    def __init__(self) -> None:
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value = load()
        with self._lock:
            self._values[key] = (time.monotonic() + FACTS_TTL, value)
        return value


class EntryAdmin:
    """The realm's client as one entry sees it: realm facts come from :class:`Facts`, and a user created by
    this entry has no federated identities yet (no need to ask)."""

    def __init__(self, admin: KeycloakAdmin, facts: Facts) -> None:
        self._admin = admin
        self._facts = facts
        self.fresh: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._admin, name)

    def list_organization_identity_providers(self, org_id: str) -> list[dict[str, Any]]:
        return self._facts.get((self._admin.realm, "org-idps", org_id),
                               lambda: self._admin.list_organization_identity_providers(org_id))

    def get_identity_provider(self, alias: str) -> dict[str, Any]:
        return self._facts.get((self._admin.realm, "idp", alias), lambda: self._admin.get_identity_provider(alias))

    def list_federated_identities(self, user_id: str) -> list[dict[str, Any]]:
        return [] if user_id in self.fresh else self._admin.list_federated_identities(user_id)


class Deliverer:
    """Delivers outbox entries. ``admin_for(realm)`` gives the Keycloak client of a realm (or None)."""

    def __init__(self, orgs: OrgStore, sync: SyncStore, resources: Callable[[int], ResourceStore],
                 admin_for: Callable[[str], KeycloakAdmin | None], federation: Callable[[Org], Any],
                 workers: int = DEFAULT_WORKERS, per_org: int = DEFAULT_PER_ORG,
                 realm_ok: Callable[[str], bool] = lambda realm: True) -> None:
        self.orgs = orgs
        self.sync = sync
        self.resources = resources
        self.admin_for = admin_for
        self.federation = federation
        self.facts = Facts()
        self.scheduler = Scheduler(orgs, sync, self.deliver_resource, workers, per_org, realm_ok)

    # -- queue ----------------------------------------------------------------------------------
    def deliver_all(self, seconds: float | None = None) -> Stats:
        """Deliver every due entry of every org (worker, ``orgscim outbox --retry``), in parallel and fairly."""
        return self.scheduler.run(seconds)

    def deliver_org(self, org: Org, budget: float | None = None) -> Stats:
        """Deliver the due entries of one org (reconcile repairs), for at most ``budget`` seconds."""
        return self.scheduler.run(budget, [org.pk])

    def deliver_resources(self, org: Org, resource_ids: Iterable[str], budget: float) -> Stats:
        """Deliver what one SCIM request wrote, in this thread, within ``budget`` seconds in total (request
        timeouts are cut to what is left). Entries the request held for itself are due for it at once."""
        admin = self.admin_for(org.realm)
        stats = Stats()
        if admin is None:
            return Stats(deferred=True)
        with admin.deadline(budget):
            for rid in dict.fromkeys(resource_ids):
                left = admin.remaining()
                if left is not None and left <= 0:
                    stats.deferred = True
                    break
                s = self.deliver_resource(org, rid, inline=True)
                stats.add(s)
                if s.failed:
                    break
        return stats

    def deliver_resource(self, org: Org, rid: str, inline: bool = False) -> Stats:
        """Deliver the pending entries of one resource in commit order, holding its lease (renewed and
        checked before each entry). ``inline``: entries never attempted are due even when held."""
        stats = Stats()
        admin = self.admin_for(org.realm)
        if admin is None:
            return Stats(deferred=True)
        name, me = lease_name(org.pk, rid), holder()
        if not self.sync.acquire(name, me, LEASE_TTL):
            return Stats(deferred=True, contended=True)
        renew = False  # just acquired: the first entry needs no renewal
        released = False
        try:
            while True:
                items = self.sync.resource_pending(org.pk, rid)
                if not items:
                    return stats
                for item in items:
                    if renew and not self.sync.renew(name, me, LEASE_TTL):
                        log.warning("lease %s lost; leaving %s to its new holder", name, item.pk)
                        stats.contended = stats.deferred = True
                        return stats
                    if item.next_attempt > now() and not (inline and item.attempts == 0):
                        stats.deferred = True
                        return stats  # the head of the resource's queue waits: order is kept
                    if item.resource_type == "Group" and self.sync.older_users_pending(org.pk, item.pk):
                        stats.deferred = True
                        return stats  # its members first
                    outcome = self.deliver_one(org, admin, item, stats, (name, me))
                    if outcome is None:
                        stats.deferred = True
                        return stats
                    if outcome is RELEASED:
                        released = True
                        return stats
                    renew = True
        finally:
            if not released:
                self.sync.release(name, me)

    def deliver_one(self, org: Org, admin: KeycloakAdmin, item: OutboxItem, stats: Stats,
                    lease: tuple[str, str]) -> object | None:
        """Apply one entry. None when delivery of this resource must pause (transient failure); otherwise
        :data:`RELEASED` when this was the resource's last pending entry (its ``lease`` is released in the
        transaction that marks the entry done), else :data:`NEXT`."""
        entry_admin = EntryAdmin(admin, self.facts)
        try:
            self.ensure_profile(admin)
            handler = {"user.upsert": self.user_upsert, "user.delete": self.user_delete,
                       "group.upsert": self.group_upsert, "group.delete": self.group_delete}[item.action]
            link = handler(org, entry_admin, item)  # type: ignore[operator]
        except BudgetSpent as e:
            # the request's time is up, Keycloak is fine: the worker goes on at once (the entry may have
            # landed, so the next attempt looks first)
            self.sync.retry_later(item.pk, str(e), 0)
            return None
        except RateLimited as e:
            wait = e.retry_after if e.retry_after is not None else backoff(item.attempts)
            log.info("outbox %s (%s %s): Keycloak asks to slow down for %.1fs", item.pk, item.action,
                     item.resource_id, wait)
            self.sync.retry_later(item.pk, str(e), wait, attempted=False)
            stats.failed, stats.retry_after = True, wait
            return None
        except (KeycloakUnavailable, Unauthorized, Forbidden) as e:
            log.warning("outbox %s (%s %s) deferred: %s", item.pk, item.action, item.resource_id, e)
            self.sync.retry_later(item.pk, str(e), backoff(item.attempts))
            stats.failed = True
            return None
        except Refused as e:
            log.warning("outbox %s (%s %s) refused: %s", item.pk, item.action, item.resource_id, e)
            self.sync.report(org.pk, item.resource_type, item.resource_id, e.kind, e.expected, e.actual)
            self.sync.finish(item.pk, f"{e.kind}: {e}")
            stats.refused += 1
            stats.refusals.append((item.resource_id, e.kind, e.on_create))
            return NEXT
        except KeycloakError as e:
            log.warning("outbox %s (%s %s) refused by Keycloak: %s", item.pk, item.action, item.resource_id, e)
            self.sync.report(org.pk, item.resource_type, item.resource_id, "keycloak_refused", item.action, str(e))
            self.sync.finish(item.pk, str(e))
            stats.refused += 1
            stats.refusals.append((item.resource_id, "keycloak_refused", False))
            return NEXT
        stats.delivered += 1
        return RELEASED if self.sync.complete(item, link, lease) else NEXT

    def ensure_profile(self, admin: KeycloakAdmin) -> None:
        """Declare orgscim's user-profile attributes (else Keycloak drops them); checked once per realm per
        :data:`FACTS_TTL` per process."""
        self.facts.get((admin.realm, "profile"), lambda: admin.ensure_profile_attributes(PROFILE_ATTRIBUTES))

    # -- users ----------------------------------------------------------------------------------
    def user_upsert(self, org: Org, admin: EntryAdmin, item: OutboxItem) -> Link:
        data: dict[str, Any] = item.payload["data"]
        rid = item.resource_id
        rep = user_rep(org.org_id, rid, data, org.settings)
        want_active = active(data)
        link = self.sync.link(org.pk, rid)
        if link is None:
            link = self._create_or_adopt(org, admin, item, rep, want_active)
            explicit = link.origin != "created" or not link.state.get("applied")
        else:
            explicit = bool(item.payload.get("active_changed"))
        if link.state.get("applied") is None or self._attributes_changed(link, rep):
            self._full_update(org, admin, link, rep, want_active, explicit)
        else:
            self._changed_fields(org, admin, link, rep, want_active, explicit)
        member = link.state.get("member")
        if explicit and want_active and not member:
            self._add_member(admin, org, link.kc_id)
        elif explicit and not want_active and member is not False:
            self._remove_member(org, admin, link, rid)
        if explicit:
            link.state["member"] = want_active
        plugin, cfg = self.federation(org)
        want = plugin.link_for(org, cfg, admin, rid, data) if hasattr(plugin, "link_for") else None
        have = link.state.get("idp")
        if want is not None and (have is None or [have.get("alias"), have.get("userId")] != list(want[:2])):
            self.sync.set_link(link)  # what is applied so far, should the IdP link fail
            self._federate(org, admin, link, rid, data)
        return link  # written with the entry's completion

    def _create_or_adopt(self, org: Org, admin: EntryAdmin, item: OutboxItem, rep: dict[str, Any],
                         want_active: bool) -> Link:
        rid = item.resource_id
        applied = {k: rep[k] for k in APPLIED} | {"externalId": rep["attributes"].get(ATTR_EXTERNAL_ID)}
        if item.attempts:  # an earlier attempt may have created the user before it failed
            link = self._ours(org, admin, rid, applied)
            if link is not None:
                return link
        try:
            kc_id = admin.create_user({**rep, "enabled": want_active})
        except KeycloakConflict as e:
            link = self._ours(org, admin, rid, applied) or self._adopt(org, admin, rid, rep, str(e))
        else:
            admin.fresh.add(kc_id)
            # Written when the entry completes. Should the member call fail, the next attempt finds the user by
            # its orgscim id (attempts > 0, or Keycloak's 409 for a repeated create) and adopts it as ours.
            link = Link(org.pk, "User", rid, kc_id, "created",
                        {"member": False, "enabled": want_active, "applied": applied})
            if want_active:
                self._add_member(admin, org, kc_id)
                link.state["member"] = True
        return link

    def _ours(self, org: Org, admin: EntryAdmin, rid: str, applied: dict[str, Any]) -> Link | None:
        """The user an earlier attempt created (found by our id attribute); membership is then unknown."""
        found = admin.find_users_by_attribute(ATTR_ID, rid, max=2)
        if not found:
            return None
        link = Link(org.pk, "User", rid, found[0]["id"], "created",
                    {"member": None, "enabled": found[0].get("enabled", True), "applied": None})
        self.sync.set_link(link)
        return link

    def _adopt(self, org: Org, admin: EntryAdmin, rid: str, rep: dict[str, Any], why: str) -> Link:
        existing = admin.find_user_by_username(rep["username"]) or (
            admin.find_user_by_email(rep["email"]) if rep["email"] else None)
        if existing is None:
            raise Refused("uniqueness", f"Keycloak refused to create the user: {why}", rep["username"], None,
                          on_create=True)
        if not adoptable(org, admin, self.sync, existing, rid):  # type: ignore[arg-type]
            raise Refused("uniqueness", f"username/email of SCIM user {rid} belongs to another Keycloak user "
                          "that may not be adopted", rep["username"], existing["id"], on_create=True)
        link = Link(org.pk, "User", rid, existing["id"], "adopted",
                    {"member": admin.is_member(org.org_id, existing["id"]),
                     "enabled": existing.get("enabled", True), "applied": None})
        self.sync.set_link(link)
        return link

    @staticmethod
    def _attributes_changed(link: Link, rep: dict[str, Any]) -> bool:
        return link.state["applied"].get("externalId") != rep["attributes"].get(ATTR_EXTERNAL_ID)

    def _full_update(self, org: Org, admin: EntryAdmin, link: Link, rep: dict[str, Any], want_active: bool,
                     explicit: bool) -> None:
        """Read the user and write every field orgscim owns (adopted users, changed attributes: a PUT with
        attributes replaces all of them, so the others are read and kept)."""
        try:
            user = admin.get_user(link.kc_id)
        except NotFound:
            raise Refused("missing_in_keycloak", "the Keycloak user linked to this SCIM user no longer exists; "
                          "not re-created (reconcile --repair decides)", link.kc_id, None) from None
        attrs = dict(user.get("attributes") or {})
        attrs.update(rep["attributes"])
        if ATTR_EXTERNAL_ID not in rep["attributes"]:
            attrs.pop(ATTR_EXTERNAL_ID, None)
        # An org member's email cannot be cleared ("Email not set"): without a SCIM email, Keycloak's is kept.
        update: dict[str, Any] = {"username": rep["username"], "firstName": rep["firstName"],
                                  "lastName": rep["lastName"], "email": rep["email"] or None, "attributes": attrs}
        if explicit:
            update["enabled"] = self._enabled_after(org, admin, link, user, want_active)
        self._put(org, admin, link, update, user.get("username"), user)
        if link.state.get("member") is None:
            link.state["member"] = admin.is_member(org.org_id, link.kc_id)

    def _changed_fields(self, org: Org, admin: EntryAdmin, link: Link, rep: dict[str, Any], want_active: bool,
                        explicit: bool) -> None:
        """One partial PUT with the fields that differ from what was last applied (none: no call)."""
        applied = link.state["applied"]
        update = {k: rep[k] for k in APPLIED if rep[k] != applied.get(k) and (k != "email" or rep[k])}
        if explicit:
            enabled = self._enabled_after(org, admin, link, {"enabled": link.state.get("enabled", True)},
                                          want_active)
            if enabled != link.state.get("enabled", True):
                update["enabled"] = enabled
        if update:
            self._put(org, admin, link, update, applied.get("username"), None)

    def _put(self, org: Org, admin: EntryAdmin, link: Link, update: dict[str, Any], current_username: Any,
             current: dict[str, Any] | None) -> None:
        try:
            admin.update_user(link.kc_id, update, current=current)
        except NotFound:
            raise Refused("missing_in_keycloak", "the Keycloak user linked to this SCIM user no longer exists; "
                          "not re-created (reconcile --repair decides)", link.kc_id, None) from None
        except KeycloakConflict as e:
            raise Refused("uniqueness", f"Keycloak refused the new username/email: {e}", update.get("username"),
                          None) from None
        except BadRequest as e:
            if "username" not in update or update["username"] == current_username or "read-only" not in str(e):
                raise
            # The realm forbids renames (editUsernameAllowed=false): apply the rest, report the rename.
            wanted = update["username"]
            update["username"] = current_username
            if current is None:
                update.pop("username")
            if update:
                admin.update_user(link.kc_id, update, current=current)
            self.sync.report(org.pk, "User", link.resource_id, "username_not_editable", wanted, current_username)
            update["username"] = current_username
        applied = dict(link.state.get("applied") or {})
        applied.update({k: update[k] for k in APPLIED if k in update})
        if "attributes" in update:
            applied["externalId"] = (update["attributes"].get(ATTR_EXTERNAL_ID) or [None])[0]
        link.state["applied"] = applied
        if "enabled" in update:
            link.state["enabled"] = update["enabled"]

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
        except KeycloakConflict:
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
        # Only the org's own IdP, and never a subject another user holds: Keycloak accepts both through the
        # admin API, and either would let one tenant's SCIM decide who logs in as whom.
        owner = admin.get_identity_provider(alias).get("organizationId")
        if owner != org.org_id:
            raise Refused("idp_not_of_org", f"identity provider {alias!r} is not linked to this organization; "
                          "link it to the organization in Keycloak or set the federation alias", alias, owner)
        holders = [u["id"] for u in admin.find_users_by_idp_link(alias, idp_user_id) if u["id"] != link.kc_id]
        if holders:
            raise Refused("idp_link_conflict", f"another Keycloak user is already linked to {alias} as "
                          f"{idp_user_id}", idp_user_id, holders[0])
        if have is not None:
            admin.remove_federated_identity(link.kc_id, alias)
        try:
            admin.add_federated_identity(link.kc_id, alias, idp_user_id, idp_username)
        except KeycloakConflict:
            raise Refused("idp_link_conflict", f"another Keycloak user is already linked to {alias} as "
                          f"{idp_user_id}", idp_user_id, None) from None
        link.state["idp"] = {"alias": alias, "userId": idp_user_id}

    # -- groups ---------------------------------------------------------------------------------
    # -- groups ---------------------------------------------------------------------------------
    def group_upsert(self, org: Org, admin: KeycloakAdmin, item: OutboxItem) -> None:
        gid = item.resource_id
        row = self.resources(org.pk).get("Group", gid)
        if row is None:
            return  # deleted since; its group.delete entry follows
        name = row.data["displayName"]
        link = self.sync.link(org.pk, gid)
        fresh = False  # created by this call: it has no members yet (no need to list them)
        if link is None:
            # Groups orgscim creates carry its id, so a retry finds its own group (created) whatever it is named
            # now; a group of that name without our id existed before (adopted: never deleted by orgscim).
            kc_gid, origin = None, "created"
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
                except KeycloakConflict:
                    raise Refused("uniqueness", f"another organization group is named {name!r}", name,
                                  None) from None
        want = self.sync.group_member_kc_ids(org.pk, gid)
        have = set() if fresh else {u["id"] for u in admin.iter_org_group_members(org.org_id, link.kc_id)}
        for kc_id in sorted(want - have):
            try:
                admin.add_org_group_member(org.org_id, link.kc_id, kc_id)
            except KeycloakConflict:
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

