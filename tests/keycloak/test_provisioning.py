"""SCIM writes shaped like Okta's and Entra ID's reach a real Keycloak (issue #3, DESIGN §4, §6).

Each test gets a fresh orgscim instance (SQLite) in front of the session's Keycloak; Keycloak objects get
unique names so tests never see each other's users.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scimkit import ENTERPRISE, PATCH, USER, Scim, kc_user, okta_user, uniq

from orgscim.keycloak.client import KeycloakAdmin, NotFound
from orgscim.provision.mapping import ATTR_EXTERNAL_ID, ATTR_ID, ATTR_ORG
from orgscim.provision.reconcile import Reconciler

pytestmark = pytest.mark.keycloak

def test_okta_lifecycle_with_idp_link(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, acme: dict[str, Any]
) -> None:
    scim = scim_for(acme["id"], federation="link-org-idp")
    name = uniq("okta")
    created = scim.call("POST", "/Users", okta_user(name), 201).get_json()
    user = kc_user(kc_admin, created["id"])
    assert user["username"] == f"{name}@acme.example" and user["email"] == f"{name}@acme.example"
    assert (user["firstName"], user["lastName"], user["enabled"]) == (name.title(), "Tester", True)
    attrs = user["attributes"]
    assert attrs[ATTR_ID] == [created["id"]] and attrs[ATTR_EXTERNAL_ID] == [f"00u{name}"]
    assert attrs[ATTR_ORG] == [acme["id"]]
    assert kc_admin.is_member(acme["id"], user["id"])
    links = kc_admin.list_federated_identities(user["id"])
    assert [(f["identityProvider"], f["userId"]) for f in links] == [("acme-idp", f"00u{name}")]

    # PUT (Okta profile push): new names and email, new externalId → IdP link follows.
    body = okta_user(name, externalId=f"00v{name}")
    body["name"] = {"givenName": "Renamed", "familyName": "Person"}
    body["emails"] = [{"primary": True, "value": f"new.{name}@acme.example", "type": "work"}]
    scim.call("PUT", f"/Users/{created['id']}", body, 200)
    user = kc_admin.get_user(user["id"])
    assert (user["firstName"], user["lastName"], user["email"]) == ("Renamed", "Person", f"new.{name}@acme.example")
    assert user["attributes"][ATTR_EXTERNAL_ID] == [f"00v{name}"]
    assert [f["userId"] for f in kc_admin.list_federated_identities(user["id"])] == [f"00v{name}"]

    # Okta deactivation: PATCH without path. Created by orgscim, in no other org → disabled and not a member.
    scim.call(
        "PATCH",
        f"/Users/{created['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
        200,
    )
    assert not kc_admin.is_member(acme["id"], user["id"])
    assert kc_admin.get_user(user["id"])["enabled"] is False
    assert (
        scim.call("GET", f'/Users?filter=userName eq "{name}@acme.example"', None, 200).get_json()["totalResults"] == 1
    )

    scim.call(
        "PATCH",
        f"/Users/{created['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]},
        200,
    )
    assert kc_admin.is_member(acme["id"], user["id"]) and kc_admin.get_user(user["id"])["enabled"] is True

    scim.call("DELETE", f"/Users/{created['id']}", None, 204)
    with pytest.raises(NotFound):
        kc_admin.get_user(user["id"])  # created by orgscim, in no other org, delete policy "delete"
    assert scim.pending() == 0 and scim.drift() == []


def test_entra_patch_paths_reach_keycloak(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any]
) -> None:
    scim = scim_for(temp_org["id"])
    name = uniq("entra")
    created = scim.call(
        "POST",
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "externalId": str(uuid.uuid4()),
            "userName": f"{name}@contoso.example",
            "active": "True",
            "displayName": "Entra User",
            "meta": {"resourceType": "User"},
            "roles": [],
            "emails": [{"primary": True, "type": "work", "value": f"{name}@contoso.example"}],
            "name": {"formatted": "g f", "familyName": "Fam", "givenName": "Giv"},
        },
        201,
    ).get_json()
    ops = [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"moved.{name}@contoso.example"},
        {"op": "Replace", "path": "name.givenName", "value": "NewGiven"},
        {"op": "Add", "path": "name.familyName", "value": "NewFamily"},
        {"op": "Replace", "path": "userName", "value": f"renamed.{name}@contoso.example"},
    ]
    scim.call("PATCH", f"/Users/{created['id']}", {"schemas": [PATCH], "Operations": ops}, 200)
    user = kc_user(kc_admin, created["id"])
    assert user["username"] == f"renamed.{name}@contoso.example"
    assert (user["email"], user["firstName"], user["lastName"]) == (
        f"moved.{name}@contoso.example",
        "NewGiven",
        "NewFamily",
    )
    scim.call(
        "PATCH",
        f"/Users/{created['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        200,
    )
    assert not kc_admin.is_member(temp_org["id"], user["id"])
    scim.call("DELETE", f"/Users/{created['id']}", None, 204)
    assert kc_admin.find_users_by_attribute(ATTR_ID, created["id"]) == []


def test_deactivation_keeps_access_to_other_orgs(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any], globex: dict[str, Any]
) -> None:
    scim = scim_for(temp_org["id"])
    name = uniq("multi")
    created = scim.call("POST", "/Users", okta_user(name), 201).get_json()
    kc_id = kc_user(kc_admin, created["id"])["id"]
    kc_admin.add_member(globex["id"], kc_id)  # the same person also works with globex
    try:
        scim.call(
            "PATCH",
            f"/Users/{created['id']}",
            {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]},
            200,
        )
        assert not kc_admin.is_member(temp_org["id"], kc_id)
        assert kc_admin.is_member(globex["id"], kc_id)
        assert kc_admin.get_user(kc_id)["enabled"] is True  # not locked out of globex
        scim.call("DELETE", f"/Users/{created['id']}", None, 204)
        assert kc_admin.is_member(globex["id"], kc_id)  # belongs to another org: not deleted
    finally:
        kc_admin.delete_user(kc_id)


def test_groups_follow_scim(scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any]) -> None:
    scim = scim_for(temp_org["id"])
    users = [scim.call("POST", "/Users", okta_user(uniq("g")), 201).get_json() for _ in range(3)]
    kc_ids = [kc_user(kc_admin, u["id"])["id"] for u in users]
    group = scim.call(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": users[0]["id"]}],
        },
        201,
    ).get_json()

    def kc_group() -> tuple[str, set[str]]:
        groups = [g for g in kc_admin.iter_org_groups(temp_org["id"])]
        assert len(groups) == 1, groups
        return groups[0]["name"], {m["id"] for m in kc_admin.iter_org_group_members(temp_org["id"], groups[0]["id"])}

    assert kc_group() == ("Engineering", {kc_ids[0]})
    scim.call(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": users[1]["id"]}, {"value": users[2]["id"]}]}
            ],
        },
        200,
    )
    assert kc_group() == ("Engineering", set(kc_ids))
    scim.call(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": [PATCH],
            "Operations": [  # Entra: remove by value list
                {"op": "Remove", "path": "members", "value": [{"value": users[0]["id"]}]}
            ],
        },
        200,
    )
    assert kc_group() == ("Engineering", {kc_ids[1], kc_ids[2]})
    scim.call(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": [PATCH],
            "Operations": [  # Okta rename
                {"op": "replace", "value": {"id": group["id"], "displayName": "Platform"}}
            ],
        },
        200,
    )
    assert kc_group() == ("Platform", {kc_ids[1], kc_ids[2]})
    scim.call(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "members", "value": [{"value": users[0]["id"]}]}],
        },
        200,
    )
    assert kc_group() == ("Platform", {kc_ids[0]})
    scim.call(
        "PUT",
        f"/Groups/{group['id']}",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Platform", "members": []},
        200,
    )
    assert kc_group() == ("Platform", set())
    scim.call("DELETE", f"/Groups/{group['id']}", None, 204)
    assert list(kc_admin.iter_org_groups(temp_org["id"])) == []


def test_username_or_email_of_outside_user_is_409(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any], make_user: Callable[..., str]
) -> None:
    scim = scim_for(temp_org["id"])
    name = uniq("taken")
    make_user(username=f"{name}@acme.example", email=f"{name}@other.example")
    resp = scim.call("POST", "/Users", okta_user(name), 409)
    assert resp.get_json()["scimType"] == "uniqueness"
    body = okta_user(uniq("free"))
    body["emails"] = [{"primary": True, "value": f"{name}@other.example", "type": "work"}]
    assert scim.call("POST", "/Users", body, 409).get_json()["scimType"] == "uniqueness"
    assert scim.call("GET", "/Users", None, 200).get_json()["totalResults"] == 0  # nothing was stored
    sa = kc_admin.find_user_by_username("service-account-orgscim")
    assert sa is not None
    scim_sa = okta_user("x")
    scim_sa["userName"] = "service-account-orgscim"
    assert scim.call("POST", "/Users", scim_sa, 409).status_code == 409  # never a service account


def test_adopt_policy_takes_over_existing_members(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any], make_user: Callable[..., str]
) -> None:
    scim = scim_for(temp_org["id"], adopt_policy="org-members")
    name = uniq("adopt")
    kc_id = make_user(username=f"{name}@acme.example", email=f"{name}@acme.example")
    kc_admin.add_member(temp_org["id"], kc_id)
    created = scim.call("POST", "/Users", okta_user(name), 201).get_json()
    assert kc_user(kc_admin, created["id"])["id"] == kc_id  # adopted, not duplicated
    scim.call("DELETE", f"/Users/{created['id']}", None, 204)
    assert kc_admin.get_user(kc_id)["enabled"] is True  # adopted users are never deleted or disabled
    assert not kc_admin.is_member(temp_org["id"], kc_id)


def test_changes_made_in_keycloak_are_reported_not_undone(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, temp_org: dict[str, Any]
) -> None:
    scim = scim_for(temp_org["id"])
    gone, disabled, removed = (scim.call("POST", "/Users", okta_user(uniq("d")), 201).get_json() for _ in range(3))
    kc_admin.delete_user(kc_user(kc_admin, gone["id"])["id"])
    dis_id = kc_user(kc_admin, disabled["id"])["id"]
    kc_admin.update_user(dis_id, {"enabled": False})
    rem_id = kc_user(kc_admin, removed["id"])["id"]
    kc_admin.remove_member(temp_org["id"], rem_id)

    for u in (gone, disabled, removed):  # unrelated writes
        scim.call(
            "PATCH",
            f"/Users/{u['id']}",
            {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Changed"}]},
            200,
        )
    assert kc_admin.find_users_by_attribute(ATTR_ID, gone["id"]) == []  # not re-created
    assert kc_admin.get_user(dis_id)["enabled"] is False  # not re-enabled
    assert not kc_admin.is_member(temp_org["id"], rem_id)  # not re-added
    # Delivery sends only what changed (a title is not in Keycloak: no call at all), so it does not read
    # the users back; reconcile is what finds an admin's changes.
    Reconciler(scim.services, "report").run()
    assert kc_admin.find_users_by_attribute(ATTR_ID, gone["id"]) == []
    assert kc_admin.get_user(dis_id)["enabled"] is False and not kc_admin.is_member(temp_org["id"], rem_id)
    kinds = {(d["resourceId"], d["kind"]) for d in scim.drift()}
    assert {
        (gone["id"], "missing_in_keycloak"),
        (disabled["id"], "disabled_in_keycloak"),
        (removed["id"], "removed_from_org"),
    } <= kinds


def test_writes_survive_keycloak_outage_exactly_once_in_order(
    scim_for: Callable[..., Scim], kc_admin: KeycloakAdmin, keycloak: Any, temp_org: dict[str, Any]
) -> None:
    """200 writes while Keycloak is stopped (SIGSTOP: it neither answers nor refuses); all land once, and the
    writes of one user in the order the IdP sent them (resources are delivered in parallel, DESIGN §4)."""
    scim = scim_for(temp_org["id"])
    kc_admin.token()  # warm the token so the test measures delivery, not login
    pgid = os.getpgid(int(keycloak.pid))  # kc.sh and its java child
    assert pgid != os.getpgid(0), "Keycloak must run in its own process group"
    prefix = uniq("out")
    ids: list[str] = []
    os.killpg(pgid, signal.SIGSTOP)
    try:
        for i in range(150):
            ids.append(scim.call("POST", "/Users", okta_user(f"{prefix}-{i:03d}"), 201).get_json()["id"])
        for i in range(0, 150, 3):  # 50 renames, each queued behind its user's create
            scim.call("PATCH", f"/Users/{ids[i]}", {"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "name.givenName", "value": f"Second{i}"}]}, 200)
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert scim.pending() > 0  # acknowledged to the IdP, waiting for Keycloak
    deadline = time.monotonic() + 180
    while scim.pending() and time.monotonic() < deadline:
        scim.services.outbox.retry_now()
        scim.services.deliverer.deliver_all()
    assert scim.pending() == 0, scim.services.outbox.entries()[:3]
    for i, scim_id in enumerate(ids):
        user = kc_user(kc_admin, scim_id)  # exactly one Keycloak user per SCIM user
        assert user["username"] == f"{prefix}-{i:03d}@acme.example"
        assert user["firstName"] == (f"Second{i}" if i % 3 == 0 else f"{prefix}-{i:03d}".title())
    assert kc_admin.count_members(temp_org["id"]) == 150
    assert scim.drift() == []


@pytest.fixture
def cleanup_users(kc_admin: KeycloakAdmin) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    for kc_id in ids:
        try:
            kc_admin.delete_user(kc_id)
        except NotFound:
            pass
