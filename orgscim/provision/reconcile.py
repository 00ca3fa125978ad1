"""Reconcile: compare SCIM state with Keycloak, record drift, optionally repair (DESIGN §7, issue #5).

Per realm, organizations are discovered (new ones listed, SCIM off until configured) and vanished ones
closed (their data kept). Per org, Keycloak is snapshotted page by page into a scratch database and
compared with SQLite by joins, so memory does not grow with the org. Each difference is a drift record;
one that is not seen again resolves itself. ``repair`` makes Keycloak match SCIM for what orgscim owns,
through the same outbox and deliverer as SCIM writes; unmanaged members are reported and left alone.

Cost: the Keycloak calls of one org are its member pages, one page of org groups, one member listing per
group and, with an IdP link, the pages of users linked to that IdP: no call per member. The next page is
fetched while the current one is written to the scratch file, so an org costs about what paging its members
costs. The worker (:meth:`Reconciler.run_due`) spreads the orgs over its interval, oldest first, a bounded
number per tick, through a client of its own whose calls per second are capped (:class:`Pacer`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import zip_longest
from typing import Any, Protocol

from orgscim.keycloak.client import KeycloakAdmin, KeycloakError, KeycloakUnavailable, NotFound
from orgscim.model.clock import now
from orgscim.model.contract import Org, Orgs, OutboxEntry
from orgscim.model.delivery import Drift, Link, Links, Outbox
from orgscim.model.holders import new_holder
from orgscim.model.types import JSON, JSONValue
from orgscim.store.db import Database
from orgscim.store.reconcile import ReconcileSchedule, ReconcileScratch
from orgscim.store.resources import ResourceStore

from .deliver import Deliverer
from .federation import FederationPlugin, idp_link
from .mapping import ATTR_EXTERNAL_ID, ATTR_ID, active, setting, user_rep

log = logging.getLogger("orgscim.reconcile")

# Kinds repair can fix by re-applying SCIM state (explicitly, as if `active` had just been set).
USER_REPAIRABLE = {"missing_in_keycloak", "removed_from_org", "disabled_in_keycloak", "unexpected_member",
                   "username_changed", "email_changed", "name_changed", "attributes_changed", "idp_link_missing",
                   "idp_link_changed", "not_provisioned"}
GROUP_REPAIRABLE = {"missing_in_keycloak", "name_changed", "group_member_missing", "group_member_extra",
                    "not_provisioned"}


@dataclass
class Finding:
    resource_type: str
    resource_id: str
    kind: str
    expected: JSONValue = None
    actual: JSONValue = None

    def public(self, org: Org) -> JSON:
        return {"realm": org.realm, "orgId": org.org_id, "resourceType": self.resource_type,
                "resourceId": self.resource_id, "kind": self.kind, "expected": self.expected, "actual": self.actual}


@dataclass
class Summary:
    orgs: int = 0
    users: int = 0
    groups: int = 0
    findings: list[JSON] = field(default_factory=list)
    repaired: int = 0
    discovered: int = 0
    vanished: int = 0
    calls: int = 0  # Keycloak calls, when the client is paced (worker)
    due: int = 0  # orgs still due after this run (worker)


PAGE = 200  # members (and linked users) per Keycloak page
SPREAD = 0.8  # the worker reconciles every org within this share of its interval, leaving slack for retries


class Pacer:
    """A hook of the admin client's transport (:class:`orgscim.keycloak.transport.Transport`) that counts one
    client's Keycloak calls and keeps them at or below ``rate`` per second (after a burst of ``rate`` calls), so
    reconcile's load on Keycloak is bounded."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.calls = 0
        self._lock = threading.Lock()
        self._tat = time.monotonic()  # theoretical arrival time of the next call (GCRA)

    def __call__(self, exchange: object) -> None:
        with self._lock:
            self.calls += 1
            if self.rate <= 0:
                return
            t = time.monotonic()
            self._tat = max(self._tat, t) + 1 / self.rate
            wait = self._tat - t - 1.0  # one second's worth of calls may go at once
        if wait > 0:
            time.sleep(wait)


def paged(fetch: Callable[[int, int], list[JSON]], pool: ThreadPoolExecutor, size: int = PAGE) -> Iterator[list[JSON]]:
    """The pages of a Keycloak list endpoint; the next page is fetched while the caller works on this one,
    so at most two pages are in memory. Two of these on one pool of two threads fetch side by side."""
    first = 0
    future = pool.submit(fetch, first, size)
    while True:
        page = future.result()
        if len(page) < size:
            yield page
            return
        first += size
        future = pool.submit(fetch, first, size)
        yield page


class Wiring(Protocol):
    """What reconcile uses of :class:`orgscim.services.Services` (a layer above, so not imported here)."""

    @property
    def db(self) -> Database: ...
    @property
    def orgs(self) -> Orgs: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def links(self) -> Links: ...
    @property
    def drift(self) -> Drift: ...
    @property
    def deliverer(self) -> Deliverer: ...
    def keycloak(self, realm: str) -> KeycloakAdmin | None: ...
    def federation(self, org: Org) -> tuple[FederationPlugin, JSON]: ...


class Reconciler:
    """``mode`` is ``dry-run`` (report only, write nothing), ``report`` (record drift) or ``repair``."""

    def __init__(self, services: Wiring, mode: str = "report", progress: Callable[[str, int], None] | None = None,
                 admin_for: Callable[[str], KeycloakAdmin | None] | None = None) -> None:
        self.services = services
        self.mode = mode
        self.progress = progress or (lambda what, n: None)
        self.admin_for = admin_for or services.keycloak
        self.schedule = ReconcileSchedule(services.db)
        self.pool: ThreadPoolExecutor | None = None

    # -- realms ---------------------------------------------------------------------------------
    def run(self, realm: str | None = None, org_id: str | None = None) -> Summary:
        """Reconcile every org (of ``realm``; or the one ``org_id``) now; discover orgs unless one is named."""
        summary = Summary()
        with ThreadPoolExecutor(2, thread_name_prefix="reconcile-page") as self.pool:
            for name in [realm] if realm else self.schedule.realms():
                admin = self.admin_for(name)
                if admin is None:
                    continue
                if org_id is None:
                    self.discover(name, admin, summary)
                for pk in self.schedule.org_pks(name, org_id):
                    org = self.services.orgs.org_by_pk(pk)
                    if org is not None and org.vanished is None:
                        self.reconcile_org(org, admin, summary)
        return summary

    def run_due(self, interval: float, tick: float, holder: str | None = None) -> Summary:
        """One worker tick: reconcile the orgs that are due, oldest first, at most as many as keep every org
        within ``SPREAD`` of ``interval`` when this runs every ``tick`` seconds; discover each realm's orgs
        once per interval. Each org is due again ``interval`` after its reconcile started."""
        holder = holder or new_holder()
        summary = Summary()
        total = self.schedule.total()
        budget = max(1, math.ceil(total * tick / (interval * SPREAD))) if total else 0
        claim_for = max(600.0, 5 * tick)  # a crashed worker's claim runs out after this
        with ThreadPoolExecutor(2, thread_name_prefix="reconcile-page") as self.pool:
            for realm in self.schedule.realms():
                admin = self.admin_for(realm)
                if admin is not None and self.schedule.claim(f"discover:{realm}", holder, interval * SPREAD):
                    self.discover(realm, admin, summary)
            for pk in self.schedule.due(budget):
                if not self.schedule.claim(f"org:{pk}", holder, claim_for):
                    continue  # another worker took it
                started = time.time()
                org = self.services.orgs.org_by_pk(pk)
                admin = self.admin_for(org.realm) if org is not None else None
                if org is None or admin is None:
                    continue
                try:
                    self.reconcile_org(org, admin, summary)
                except KeycloakUnavailable as e:
                    log.warning("reconcile of org %s stopped, Keycloak unavailable: %s", org.org_id, e)
                    self.schedule.done(f"org:{pk}", holder, time.time() + min(interval, claim_for))
                    break
                except KeycloakError as e:
                    log.warning("reconcile of org %s failed: %s", org.org_id, e)
                    self.schedule.done(f"org:{pk}", holder, time.time() + min(interval, claim_for))
                    continue
                self.schedule.done(f"org:{pk}", holder, started + interval)
        summary.due = len(self.schedule.due(budget))
        return summary

    def discover(self, realm: str, admin: KeycloakAdmin, summary: Summary) -> None:
        """List organizations that appeared; close the endpoints of configured ones that vanished.

        Organizations are recorded page by page and compared in SQL; only ``dry-run``, which writes nothing,
        keeps the listed ids in memory."""
        start = now()
        listed: set[str] | None = set() if self.mode == "dry-run" else None
        assert self.pool is not None
        for page in paged(lambda first, size: admin.list_organizations(first, size), self.pool, 100):
            if listed is not None:
                listed.update(o["id"] for o in page)
            self._seen(realm, page)
        if listed is None:
            self.services.orgs.close_unseen(realm, start)
            summary.discovered = self.schedule.unconfigured(realm)
            gone = self.schedule.unseen(realm, start)
        else:
            known = {o.org_id for o in self.services.orgs.orgs(realm)}
            summary.discovered = len(listed - known)
            gone = [o.pk for o in self.services.orgs.orgs(realm) if o.org_id not in listed and o.vanished is None]
        for pk in gone:
            org = self.services.orgs.org_by_pk(pk)
            if org is not None:
                summary.vanished += 1
                finding = Finding("Organization", org.org_id, "org_deleted", "exists", "missing")
                summary.findings.append(finding.public(org))
                if self.mode != "dry-run":
                    self.services.orgs.set_vanished(org.pk, now())
                    self.services.drift.report(org.pk, "Organization", org.org_id, "org_deleted", "exists", "missing")
                    log.warning("organization %s vanished from realm %s: SCIM endpoint closed, data kept",
                                org.org_id, realm)

    def _seen(self, realm: str, page: list[JSON]) -> None:
        if page and self.mode != "dry-run":
            self.services.orgs.seen_in_keycloak(realm, page)

    # -- one org --------------------------------------------------------------------------------
    def reconcile_org(self, org: Org, admin: KeycloakAdmin, summary: Summary) -> list[Finding]:
        summary.orgs += 1
        start = now()
        findings = self.compare(org, admin, summary, start)
        repair = self.mode == "repair" or (self.mode == "report" and setting(org.settings, "auto_repair") == "on")
        if repair and findings:
            summary.repaired += self.repair(org, findings)
            self.services.deliverer.deliver_org(org)
            start = now()
            findings = self.compare(org, admin, Summary(), start)
        summary.findings += [f.public(org) for f in findings]
        if self.mode != "dry-run":
            for f in findings:
                self.services.drift.report(org.pk, f.resource_type, f.resource_id, f.kind, f.expected, f.actual)
            self.services.drift.resolve_unseen(org.pk, start)
        self.progress("orgs", 1)
        return findings

    def compare(self, org: Org, admin: KeycloakAdmin, summary: Summary, since: str) -> list[Finding]:
        """Snapshot the org in Keycloak (taken from ``since`` on) and compare it with SCIM state."""
        findings: list[Finding] = []
        pool = self.pool or ThreadPoolExecutor(2)
        with ReconcileScratch(self.services.db, org.pk, since) as scratch:
            plugin, fed_cfg = self.services.federation(org)
            if hasattr(plugin, "link_for") and fed_cfg and not fed_cfg.get("alias"):
                idps = admin.list_organization_identity_providers(org.org_id)
                fed_cfg = {**fed_cfg, "alias": idps[0]["alias"]} if idps else {}
            alias = fed_cfg.get("alias")
            members = paged(lambda first, size: admin.list_members(org.org_id, first, size, brief=False), pool)
            # who has a link to the org's IdP: pages of users (not one call per member), fetched beside the members
            linked = paged(lambda first, size: admin.list_users(first, size, brief=True, idpAlias=alias),
                           pool) if alias else iter(())
            for page, linked_page in zip_longest(members, linked):
                if page:
                    self.progress("members", scratch.add_members(page))
                if linked_page:
                    scratch.add_idp_linked(u["id"] for u in linked_page)
            for row in scratch.users():
                summary.users += 1
                if row["pending"]:
                    continue  # not delivered yet: the outbox, not drift
                findings += self.compare_user(org, admin, row, plugin, fed_cfg)
            for member in scratch.unlinked_members():
                findings.append(Finding("KeycloakUser", member["kc_id"], "unmanaged_member", None,
                                        {"username": member["username"], "membershipType": member["membership"]}))
            for page in paged(lambda first, size: admin.list_org_groups(org.org_id, first, size), pool):
                scratch.add_groups(page)
            for row in scratch.groups():
                summary.groups += 1
                if row["pending"]:
                    continue
                if row["kc_id"] is None:
                    findings.append(Finding("Group", row["id"], "not_provisioned"))
                    continue
                name = json.loads(row["data"]).get("displayName")
                if row["g_id"] is None:
                    findings.append(Finding("Group", row["id"], "missing_in_keycloak", name, None))
                    continue
                if row["name"] != name:
                    findings.append(Finding("Group", row["id"], "name_changed", name, row["name"]))
                gid = row["kc_id"]
                for page in paged(partial(admin.list_org_group_members, org.org_id, gid), pool):
                    scratch.add_group_members(gid, (u["id"] for u in page))
                missing, extra = scratch.group_member_differences(row["id"], gid)
                if missing:
                    findings.append(Finding("Group", row["id"], "group_member_missing", missing, None))
                if extra:
                    findings.append(Finding("Group", row["id"], "group_member_extra", None, extra))
        if pool is not self.pool:
            pool.shutdown()
        return findings

    def compare_user(self, org: Org, admin: KeycloakAdmin, row: Any, plugin: FederationPlugin,
                     fed_cfg: JSON) -> list[Finding]:
        rid = row["id"]
        data = json.loads(row["data"])
        if row["kc_id"] is None:
            return [Finding("User", rid, "not_provisioned")]
        want_member = active(data)
        out: list[Finding] = []
        if row["s_id"] is None:  # not a member of the org in Keycloak
            try:
                user = admin.get_user(row["kc_id"])
            except NotFound:
                return [Finding("User", rid, "missing_in_keycloak", row["kc_id"], None)]
            if want_member:
                out.append(Finding("User", rid, "removed_from_org", True, False))
            current = {"username": user.get("username"), "email": user.get("email"), "first": user.get("firstName"),
                       "last": user.get("lastName"), "enabled": user.get("enabled", True),
                       "attrs": user.get("attributes") or {}}
        else:
            if not want_member:
                out.append(Finding("User", rid, "unexpected_member", False, True))
            current = {"username": row["username"], "email": row["email"], "first": row["first"],
                       "last": row["last"], "enabled": bool(row["enabled"]), "attrs": json.loads(row["attrs"])}
        rep = user_rep(org.org_id, rid, data, org.settings)
        state = json.loads(row["state"] or "{}")
        if want_member and not current["enabled"] and state.get("enabled", True):
            out.append(Finding("User", rid, "disabled_in_keycloak", True, False))
        for kind, key, want in (("username_changed", "username", rep["username"]),
                                ("email_changed", "email", rep["email"]),
                                ("name_changed", "first", rep["firstName"]), ("name_changed", "last", rep["lastName"])):
            if key == "email" and not want:
                continue  # no SCIM email: Keycloak keeps its own (an org member's email cannot be cleared)
            if (current[key] or "") != (want or "") and not any(f.kind == kind for f in out):
                out.append(Finding("User", rid, kind, want, current[key]))
        attrs = current["attrs"]
        expected_attrs = {k: rep["attributes"].get(k) for k in (ATTR_ID, ATTR_EXTERNAL_ID)}
        actual_attrs = {k: attrs.get(k) for k in (ATTR_ID, ATTR_EXTERNAL_ID)}
        if expected_attrs != actual_attrs:
            out.append(Finding("User", rid, "attributes_changed", expected_attrs, actual_attrs))
        if fed_cfg.get("alias"):
            want_link = idp_link(plugin, org, fed_cfg, admin, rid, data)
            if want_link is not None:
                alias, idp_user_id, _ = want_link
                if not row["idp_linked"]:
                    out.append(Finding("User", rid, "idp_link_missing", {alias: idp_user_id}, None))
                elif state.get("idp") != {"alias": alias, "userId": idp_user_id}:
                    # linked, but not (known to be) to this subject: only then ask Keycloak which one
                    have = {f["identityProvider"]: f.get("userId")
                            for f in admin.list_federated_identities(row["kc_id"])}
                    if have.get(alias) != idp_user_id:
                        out.append(Finding("User", rid, "idp_link_changed", {alias: idp_user_id},
                                           {alias: have.get(alias)}))
        return out

    # -- repair ---------------------------------------------------------------------------------
    def repair(self, org: Org, findings: list[Finding]) -> int:
        """Queue outbox entries that make Keycloak match SCIM for what orgscim owns; returns how many."""
        store = ResourceStore(self.services.db, org.pk)
        links, outbox = self.services.links, self.services.outbox
        done: set[str] = set()
        queued = 0
        for f in findings:
            if f.resource_id in done or f.resource_type not in ("User", "Group"):
                continue
            if f.kind not in (USER_REPAIRABLE if f.resource_type == "User" else GROUP_REPAIRABLE):
                continue
            row = store.get(f.resource_type, f.resource_id)
            if row is None:
                continue
            link: Link | None = links.get(org.pk, f.resource_id)
            if f.kind == "missing_in_keycloak":
                if link is not None and link.origin != "created":
                    continue  # never re-create what orgscim did not create
                links.drop(org.pk, f.resource_id)
            elif link is not None and f.resource_type == "User":
                # Keycloak changed behind the deliverer's back: it must read the user again rather than trust
                # what it remembers having applied (fields, membership, IdP link)
                link.state.update(applied=None, member=None)
                link.state.pop("idp", None)
                links.save(link)
            if f.resource_type == "User":
                entry = OutboxEntry("User", f.resource_id, "user.upsert", {"data": row.data, "active_changed": True})
            else:
                entry = OutboxEntry("Group", f.resource_id, "group.upsert")
            outbox.enqueue(org.pk, [entry])
            done.add(f.resource_id)
            queued += 1
        return queued
