"""Reconcile: compare SCIM state with Keycloak, record drift, optionally repair (DESIGN §7, issue #5).

Per realm, organizations are discovered (new ones listed, SCIM off until configured) and vanished ones
closed (their data kept). Per org, Keycloak is snapshotted page by page into a scratch database and
compared with SQLite by joins, so memory does not grow with the org. Each difference is a drift record;
one that is not seen again resolves itself. ``repair`` makes Keycloak match SCIM for what orgscim owns,
through the same outbox and deliverer as SCIM writes; unmanaged members are reported and left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orgscim.keycloak.client import KeycloakAdmin, NotFound
from orgscim.store.orgs import Org
from orgscim.store.reconcile import ReconcileScratch
from orgscim.store.resources import OutboxEntry, ResourceStore, now
from orgscim.store.sync import Link

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
    expected: Any = None
    actual: Any = None

    def public(self, org: Org) -> dict[str, Any]:
        return {"realm": org.realm, "orgId": org.org_id, "resourceType": self.resource_type,
                "resourceId": self.resource_id, "kind": self.kind, "expected": self.expected, "actual": self.actual}


@dataclass
class Summary:
    orgs: int = 0
    users: int = 0
    groups: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    repaired: int = 0
    discovered: int = 0
    vanished: int = 0


class Reconciler:
    """``mode`` is ``dry-run`` (report only, write nothing), ``report`` (record drift) or ``repair``."""

    def __init__(self, services: Any, mode: str = "report", progress: Callable[[str, int], None] | None = None) -> None:
        self.services = services
        self.mode = mode
        self.progress = progress or (lambda what, n: None)

    # -- realms ---------------------------------------------------------------------------------
    def run(self, realm: str | None = None, org_id: str | None = None) -> Summary:
        summary = Summary()
        realms = [realm] if realm else sorted({o.realm for o in self.services.orgs.orgs()})
        for name in realms:
            admin = self.services.keycloak(name)
            if admin is None:
                continue
            if org_id is None:
                self.discover(name, admin, summary)
            for org in self.services.orgs.orgs(name):
                if org_id is not None and org.org_id != org_id:
                    continue
                if org.vanished is None:
                    self.reconcile_org(org, admin, summary)
        return summary

    def discover(self, realm: str, admin: KeycloakAdmin, summary: Summary) -> None:
        """List organizations that appeared; close the endpoints of configured ones that vanished."""
        start = now()
        listed: set[str] = set()
        page: list[dict[str, Any]] = []
        for org in admin.iter_organizations():
            listed.add(org["id"])
            page.append(org)
            if len(page) == 100:
                self._seen(realm, page)
                page = []
        self._seen(realm, page)
        known = {o.org_id for o in self.services.orgs.orgs(realm)}
        summary.discovered = len(listed - known)
        if self.mode != "dry-run":
            self.services.orgs.close_unseen(realm, start)
        for org in self.services.orgs.orgs(realm):
            if org.org_id not in listed and org.vanished is None:
                summary.vanished += 1
                finding = Finding("Organization", org.org_id, "org_deleted", "exists", "missing")
                summary.findings.append(finding.public(org))
                if self.mode != "dry-run":
                    self.services.orgs.set_vanished(org.pk, now())
                    self.services.sync.report(org.pk, "Organization", org.org_id, "org_deleted", "exists", "missing")
                    log.warning("organization %s vanished from realm %s: SCIM endpoint closed, data kept",
                                org.org_id, realm)

    def _seen(self, realm: str, page: list[dict[str, Any]]) -> None:
        if page and self.mode != "dry-run":
            self.services.orgs.seen_in_keycloak(realm, page)

    # -- one org --------------------------------------------------------------------------------
    def reconcile_org(self, org: Org, admin: KeycloakAdmin, summary: Summary) -> list[Finding]:
        summary.orgs += 1
        start = now()
        findings = self.compare(org, admin, summary)
        repair = self.mode == "repair" or (self.mode == "report" and setting(org.settings, "auto_repair") == "on")
        if repair and findings:
            summary.repaired += self.repair(org, findings)
            self.services.deliverer.deliver_org(org)
            start = now()
            findings = self.compare(org, admin, Summary())
        summary.findings += [f.public(org) for f in findings]
        if self.mode != "dry-run":
            for f in findings:
                self.services.sync.report(org.pk, f.resource_type, f.resource_id, f.kind, f.expected, f.actual)
            self.services.sync.resolve_unseen(org.pk, start)
        return findings

    def compare(self, org: Org, admin: KeycloakAdmin, summary: Summary) -> list[Finding]:
        findings: list[Finding] = []
        pending = {i.resource_id for i in self.services.sync.outbox(org.pk)}
        with ReconcileScratch(self.services.db, org.pk) as scratch:
            batch: list[dict[str, Any]] = []
            for member in admin.iter_members(org.org_id, brief=False, page_size=200):
                batch.append(member)
                if len(batch) == 200:
                    self.progress("members", scratch.add_members(batch))
                    batch = []
            self.progress("members", scratch.add_members(batch))
            plugin, fed_cfg = self.services.federation(org)
            if hasattr(plugin, "link_for") and fed_cfg and not fed_cfg.get("alias"):
                idps = admin.list_organization_identity_providers(org.org_id)
                fed_cfg = {**fed_cfg, "alias": idps[0]["alias"]} if idps else {}
            for row in scratch.users():
                summary.users += 1
                if row["id"] in pending:
                    continue  # not delivered yet: the outbox, not drift
                findings += self.compare_user(org, admin, row, plugin, fed_cfg)
            for member in scratch.unlinked_members():
                findings.append(Finding("KeycloakUser", member["kc_id"], "unmanaged_member", None,
                                        {"username": member["username"], "membershipType": member["membership"]}))
            scratch.add_groups(admin.iter_org_groups(org.org_id))
            for row in scratch.groups():
                summary.groups += 1
                if row["id"] in pending:
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
                scratch.add_group_members(row["kc_id"], (u["id"] for u in admin.iter_org_group_members(
                    org.org_id, row["kc_id"])))
                missing, extra = scratch.group_member_differences(row["id"], row["kc_id"])
                if missing:
                    findings.append(Finding("Group", row["id"], "group_member_missing", missing, None))
                if extra:
                    findings.append(Finding("Group", row["id"], "group_member_extra", None, extra))
        return findings

    def compare_user(self, org: Org, admin: KeycloakAdmin, row: Any, plugin: Any,
                     fed_cfg: dict[str, Any]) -> list[Finding]:
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
            want_link = plugin.link_for(org, fed_cfg, admin, rid, data)
            if want_link is not None:
                alias, idp_user_id, _ = want_link
                have = {f["identityProvider"]: f.get("userId") for f in admin.list_federated_identities(row["kc_id"])}
                if alias not in have:
                    out.append(Finding("User", rid, "idp_link_missing", {alias: idp_user_id}, None))
                elif have[alias] != idp_user_id:
                    out.append(Finding("User", rid, "idp_link_changed", {alias: idp_user_id}, {alias: have[alias]}))
        return out

    # -- repair ---------------------------------------------------------------------------------
    def repair(self, org: Org, findings: list[Finding]) -> int:
        """Queue outbox entries that make Keycloak match SCIM for what orgscim owns; returns how many."""
        store = ResourceStore(self.services.db, org.pk)
        sync = self.services.sync
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
            link: Link | None = sync.link(org.pk, f.resource_id)
            if f.kind == "missing_in_keycloak":
                if link is not None and link.origin != "created":
                    continue  # never re-create what orgscim did not create
                sync.drop_link(org.pk, f.resource_id)
            if f.resource_type == "User":
                entry = OutboxEntry("User", f.resource_id, "user.upsert", {"data": row.data, "active_changed": True})
            else:
                entry = OutboxEntry("Group", f.resource_id, "group.upsert")
            sync.enqueue(org.pk, [entry])
            done.add(f.resource_id)
            queued += 1
        return queued
