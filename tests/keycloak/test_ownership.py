"""Ownership against the real Keycloak (issue #9): orgscim finds its own groups by its id, never adopts users
of other orgs or with roles, and never links an IdP subject another user holds or an IdP of another org."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from scimkit import REALM, Scim, kc_user, okta_user, uniq

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.model.contract import OutboxEntry
from orgscim.provision.mapping import ATTR_ID

pytestmark = pytest.mark.keycloak


def master_headers(keycloak: Any) -> dict[str, str]:
    """The bootstrap admin's token: orgscim's service account may not grant roles (nor should it)."""
    resp = requests.post(f"{keycloak.base_url}/realms/master/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "password", "client_id": "admin-cli", "username": keycloak.admin_user,
        "password": keycloak.admin_password})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def org_group_ids(admin: KeycloakAdmin, org_id: str) -> set[str]:
    return {g["id"] for g in admin.iter_org_groups(org_id)}


def test_retried_group_create_finds_its_own_group_and_delete_removes_it(
        scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    org = scim.services.orgs.org(REALM, temp_org["id"])
    assert org is not None
    group = scim.call("POST", "/Groups", {"displayName": uniq("team")}, 201).get_json()
    first = scim.services.links.get(org.pk, group["id"])
    assert first is not None and first.origin == "created"
    kc_group = kc_admin.get_org_group(temp_org["id"], first.kc_id)
    assert kc_group["attributes"][ATTR_ID] == [group["id"]]
    # the create reached Keycloak but the attempt died before recording it: the retry must find it as ours
    scim.services.links.drop(org.pk, group["id"])
    scim.services.outbox.enqueue(org.pk, [OutboxEntry("Group", group["id"], "group.upsert")])
    scim.services.deliverer.deliver_org(org)
    again = scim.services.links.get(org.pk, group["id"])
    assert again is not None and (again.kc_id, again.origin) == (first.kc_id, "created")
    assert org_group_ids(kc_admin, temp_org["id"]) == {first.kc_id}  # no second group either
    scim.call("DELETE", f"/Groups/{group['id']}", None, 204)
    assert first.kc_id not in org_group_ids(kc_admin, temp_org["id"])


def test_group_of_the_same_name_made_in_keycloak_is_adopted_and_kept(
        scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    name = uniq("legacy")
    existing = kc_admin.create_org_group(temp_org["id"], name)  # an admin made it, not orgscim
    group = scim.call("POST", "/Groups", {"displayName": name}, 201).get_json()
    org = scim.services.orgs.org(REALM, temp_org["id"])
    assert org is not None
    link = scim.services.links.get(org.pk, group["id"])
    assert link is not None and (link.kc_id, link.origin) == (existing, "adopted")
    scim.call("DELETE", f"/Groups/{group['id']}", None, 204)
    assert existing in org_group_ids(kc_admin, temp_org["id"])  # never deleted: orgscim did not create it


def test_adopt_policy_never_takes_users_of_other_orgs_with_roles_or_admins(
        scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any], globex: dict[str, Any],
        make_user: Callable[..., str], keycloak: Any) -> None:
    scim = scim_for(temp_org["id"], adopt_policy="org-members")
    headers = master_headers(keycloak)
    admin_url = f"{keycloak.base_url}/admin/realms/{REALM}"
    domain = temp_org["domains"][0]["name"]

    def member(tag: str) -> tuple[str, str]:
        name = f"{uniq(tag)}@{domain}"
        kc_id = make_user(username=name, email=name, firstName="Kept", lastName="AsIs")
        kc_admin.add_member(temp_org["id"], kc_id)
        return name, kc_id

    other_org = member("twoorgs")
    kc_admin.add_member(globex["id"], other_org[1])
    realm_role = member("realmrole")
    role = requests.get(f"{admin_url}/roles/offline_access", headers=headers, timeout=30).json()
    requests.post(f"{admin_url}/users/{realm_role[1]}/role-mappings/realm", headers=headers, json=[role],
                  timeout=30).raise_for_status()
    realm_admin = member("admin")
    rm = requests.get(f"{admin_url}/clients", params={"clientId": "realm-management"}, headers=headers,
                      timeout=30).json()[0]
    view = requests.get(f"{admin_url}/clients/{rm['id']}/roles/view-users", headers=headers, timeout=30).json()
    requests.post(f"{admin_url}/users/{realm_admin[1]}/role-mappings/clients/{rm['id']}", headers=headers,
                  json=[view], timeout=30).raise_for_status()
    plain = member("plain")

    for name, kc_id in (other_org, realm_role, realm_admin):
        resp = scim.call("POST", "/Users", {**okta_user(uniq("x")), "userName": name,
                                            "emails": [{"value": name, "primary": True}]})
        assert resp.status_code == 409, (name, resp.get_data(as_text=True))
        user = kc_admin.get_user(kc_id)
        assert (user["firstName"], user["lastName"]) == ("Kept", "AsIs")
        assert ATTR_ID not in (user.get("attributes") or {})  # not taken over
    adopted = scim.call("POST", "/Users", {**okta_user(uniq("x")), "userName": plain[0],
                                           "emails": [{"value": plain[0], "primary": True}]}, 201).get_json()
    assert kc_user(kc_admin, adopted["id"])["id"] == plain[1]  # an ordinary member of this org only: adopted
    kc_admin.remove_member(globex["id"], other_org[1])


def test_idp_link_never_takes_a_subject_another_user_holds(
        scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, acme: dict[str, Any],
        make_user: Callable[..., str]) -> None:
    scim = scim_for(acme["id"], federation="link-org-idp")
    subject = uniq("sub-")
    holder = make_user(username=uniq("holder"))
    kc_admin.add_federated_identity(holder, "acme-idp", subject, "holder")
    user = scim.call("POST", "/Users", okta_user(uniq("fed"), externalId=subject), 201).get_json()
    kc = kc_user(kc_admin, user["id"])
    assert kc_admin.list_federated_identities(kc["id"]) == []
    assert [f["userId"] for f in kc_admin.list_federated_identities(holder)] == [subject]
    assert [u["id"] for u in kc_admin.find_users_by_idp_link("acme-idp", subject)] == [holder]
    assert (user["id"], "idp_link_conflict") in {(d["resourceId"], d["kind"]) for d in scim.drift()}
    scim.call("DELETE", f"/Users/{user['id']}", None, 204)


def test_idp_link_only_to_an_idp_of_this_org(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin,
                                             temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"], federation="link-org-idp", fed={"alias": "acme-idp"})  # acme's IdP
    user = scim.call("POST", "/Users", okta_user(uniq("foreign")), 201).get_json()
    kc = kc_user(kc_admin, user["id"])
    assert kc_admin.list_federated_identities(kc["id"]) == []
    assert (user["id"], "idp_not_of_org") in {(d["resourceId"], d["kind"]) for d in scim.drift()}
    scim.call("DELETE", f"/Users/{user['id']}", None, 204)
