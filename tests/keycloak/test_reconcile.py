"""Reconcile against the real Keycloak: drift kinds, repair, dry-run, unmanaged members (issue #5)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from scimkit import PATCH, Scim, kc_user, okta_user, uniq

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.provision.reconcile import Reconciler

pytestmark = pytest.mark.keycloak


def kinds(scim: Scim) -> set[tuple[str, str]]:
    return {(d["resourceId"], d["kind"]) for d in scim.drift()}


def snapshot(scim: Scim, admin: KeycloakAdmin, org_id: str) -> tuple[Any, ...]:
    """Everything reconcile could change: the SQLite file's tables and the org as Keycloak shows it."""
    conn = sqlite3.connect(scim.services.db.path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    sql = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables if t != "leases"}
    conn.close()
    members = sorted((m["id"], m["username"], m.get("email"), m.get("enabled"), json.dumps(m.get("attributes"),
                     sort_keys=True)) for m in admin.iter_members(org_id, brief=False))
    groups = sorted((g["id"], g["name"], tuple(sorted(u["id"] for u in admin.iter_org_group_members(org_id, g["id"]))))
                    for g in admin.iter_org_groups(org_id))
    return sql, members, groups


def test_each_kind_of_drift_then_repair(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin,
                                        acme: dict[str, Any], make_user: Callable[..., str]) -> None:
    scim = scim_for(acme["id"], federation="link-org-idp")
    names = ("removed", "disabled", "deleted", "email", "linkless", "groupie")
    users = {n: scim.call("POST", "/Users", okta_user(uniq(n)), 201).get_json() for n in names}
    kc = {n: kc_user(kc_admin, u["id"])["id"] for n, u in users.items()}
    group = scim.call("POST", "/Groups", {"displayName": uniq("team"), "members": [
        {"value": users["groupie"]["id"]}]}, 201).get_json()
    ours = {u["id"] for u in users.values()} | {group["id"]}
    first = Reconciler(scim.services, "report").run(org_id=acme["id"]).findings
    assert [f for f in first if f["resourceId"] in ours] == []  # freshly provisioned: no drift of ours

    outsider = make_user(username=uniq("outsider"), email=f"{uniq('o')}@acme.example")
    kc_admin.add_member(acme["id"], outsider)  # created directly in Keycloak and added to the org
    kc_admin.remove_member(acme["id"], kc["removed"])
    kc_admin.update_user(kc["disabled"], {"username": kc_admin.get_user(kc["disabled"])["username"], "enabled": False})
    kc_admin.delete_user(kc["deleted"])
    u = kc_admin.get_user(kc["email"])
    kc_admin.update_user(kc["email"], {"username": u["username"], "email": f"{uniq('changed')}@elsewhere.example",
                                       "attributes": u["attributes"]})
    kc_admin.remove_federated_identity(kc["linkless"], "acme-idp")
    kc_group = next(g for g in kc_admin.iter_org_groups(acme["id"]) if g["name"] == group["displayName"])
    kc_admin.remove_org_group_member(acme["id"], kc_group["id"], kc["groupie"])

    summary = Reconciler(scim.services, "report").run(org_id=acme["id"])
    found = kinds(scim)
    expected = {(users["removed"]["id"], "removed_from_org"), (users["disabled"]["id"], "disabled_in_keycloak"),
                (users["deleted"]["id"], "missing_in_keycloak"), (users["email"]["id"], "email_changed"),
                (users["linkless"]["id"], "idp_link_missing"), (group["id"], "group_member_missing"),
                (outsider, "unmanaged_member")}
    assert expected <= found, (expected - found, summary.findings)

    Reconciler(scim.services, "repair").run(org_id=acme["id"])
    assert kc_admin.is_member(acme["id"], kc["removed"])
    assert kc_admin.get_user(kc["disabled"])["enabled"] is True
    assert kc_admin.get_user(kc["email"])["email"] == users["email"]["emails"][0]["value"]
    assert [f["identityProvider"] for f in kc_admin.list_federated_identities(kc["linkless"])] == ["acme-idp"]
    assert kc["groupie"] in {m["id"] for m in kc_admin.iter_org_group_members(acme["id"], kc_group["id"])}
    recreated = kc_user(kc_admin, users["deleted"]["id"])  # orgscim created it, so repair may re-create it
    assert recreated["id"] != kc["deleted"] and kc_admin.is_member(acme["id"], recreated["id"])
    left = {k for k in kinds(scim) if k[0] in ours | {outsider}}  # the shared org may hold others' members
    assert left == {(outsider, "unmanaged_member")}  # everything else resolved itself
    assert kc_admin.is_member(acme["id"], outsider) and kc_admin.get_user(outsider)["enabled"]  # left alone
    for u in users.values():
        scim.call("DELETE", f"/Users/{u['id']}", None, 204)


def test_dry_run_changes_nothing(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin,
                                 temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    a, b = (scim.call("POST", "/Users", okta_user(uniq("dry")), 201).get_json() for _ in range(2))
    scim.call("POST", "/Groups", {"displayName": uniq("g"), "members": [{"value": a["id"]}]}, 201)
    kc_admin.remove_member(temp_org["id"], kc_user(kc_admin, a["id"])["id"])
    kc_admin.delete_user(kc_user(kc_admin, b["id"])["id"])
    before = snapshot(scim, kc_admin, temp_org["id"])
    summary = Reconciler(scim.services, "dry-run").run(org_id=temp_org["id"])
    assert {(f["resourceId"], f["kind"]) for f in summary.findings} >= {(a["id"], "removed_from_org"),
                                                                         (b["id"], "missing_in_keycloak")}
    assert snapshot(scim, kc_admin, temp_org["id"]) == before


def test_org_deleted_in_keycloak_closes_endpoint_keeps_data(scim_for: Callable[..., Scim],
                                                            kc_admin: KeycloakAdmin) -> None:
    name = uniq("gone")
    org_id = kc_admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})
    scim = scim_for(org_id)
    user = scim.call("POST", "/Users", okta_user(uniq("u")), 201).get_json()
    kc_admin.delete_organization(org_id)
    Reconciler(scim.services, "report").run(realm="orgscim-test")
    assert (org_id, "org_deleted") in kinds(scim)
    resp = scim.call("GET", f"/Users/{user['id']}")
    assert resp.status_code == 404 and resp.get_json()["detail"]
    org = scim.services.orgs.org("orgscim-test", org_id)
    assert org is not None and org.vanished is not None
    assert scim.services.orgs.org_counts(org.pk) == {"User": 1}  # data kept for the retention period
    kc_admin.delete_user(kc_user(kc_admin, user["id"])["id"])


def test_discovered_orgs_are_listed_unconfigured(scim_for: Callable[..., Scim], temp_org: dict[str, Any],
                                                 acme: dict[str, Any]) -> None:
    scim = scim_for(acme["id"])
    Reconciler(scim.services, "report").run(realm="orgscim-test")
    listed = {o["orgId"]: o for o in scim.services.orgs.discovered("orgscim-test")}
    assert temp_org["id"] in listed and not listed[temp_org["id"]]["serving"]
    assert acme["id"] not in listed  # configured orgs are not "discovered"


def test_deactivated_user_still_member_is_reported(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin,
                                                   temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    user = scim.call("POST", "/Users", okta_user(uniq("inactive")), 201).get_json()
    scim.call("PATCH", f"/Users/{user['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}, 200)
    kc_admin.add_member(temp_org["id"], kc_user(kc_admin, user["id"])["id"])  # an admin re-adds them
    Reconciler(scim.services, "report").run(org_id=temp_org["id"])
    assert (user["id"], "unexpected_member") in kinds(scim)
    Reconciler(scim.services, "repair").run(org_id=temp_org["id"])
    assert not kc_admin.is_member(temp_org["id"], kc_user(kc_admin, user["id"])["id"])
    assert (user["id"], "unexpected_member") not in kinds(scim)


def test_auto_repair_policy_repairs_during_a_plain_reconcile(scim_for: Callable[..., Scim],
                                                             kc_admin: KeycloakAdmin,
                                                             temp_org: dict[str, Any]) -> None:
    """With the org option auto_repair=on, the worker's report-mode reconcile repairs what orgscim owns."""
    scim = scim_for(temp_org["id"], auto_repair="on")
    user = scim.call("POST", "/Users", okta_user(uniq("auto")), 201).get_json()
    kc_id = kc_user(kc_admin, user["id"])["id"]
    kc_admin.remove_member(temp_org["id"], kc_id)
    summary = Reconciler(scim.services, "report").run(org_id=temp_org["id"])
    assert summary.repaired == 1 and summary.findings == []
    assert kc_admin.is_member(temp_org["id"], kc_id)
    other = scim_for(temp_org["id"])  # same org, default policy (auto_repair off): reports only
    kc_admin.remove_member(temp_org["id"], kc_id)
    assert Reconciler(other.services, "report").run(org_id=temp_org["id"]).repaired == 0
    assert not kc_admin.is_member(temp_org["id"], kc_id)
