"""KeycloakAdmin against a real Keycloak 26.7 (see conftest.py: started once per session)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from orgscim.keycloak.client import (
    REQUIRED_ROLES,
    BadRequest,
    Forbidden,
    KeycloakAdmin,
    KeycloakConflict,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    Unauthorized,
    required_roles,
)

pytestmark = pytest.mark.keycloak

REALM = "orgscim-test"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------------
# server, token, permissions
# ------------------------------------------------------------------------------------------------


def test_server_is_26_7(kc_admin: KeycloakAdmin) -> None:
    assert kc_admin.server_version().startswith("26.7")


def test_token_is_cached_and_renewed_after_401(kc_admin: KeycloakAdmin) -> None:
    t1 = kc_admin.token()
    assert kc_admin.token() == t1  # cached
    claims = kc_admin.token_claims()
    assert claims["azp"] == "orgscim"
    assert claims["iss"].endswith(f"/realms/{REALM}")
    # a token Keycloak rejects -> 401 -> one renewal -> the call succeeds
    kc_admin._token = "not-a-valid-token"  # noqa: SLF001
    kc_admin._token_expires = time.monotonic() + 3600  # noqa: SLF001
    assert kc_admin.count_organizations() >= 2
    assert kc_admin.token() != "not-a-valid-token"


def test_wrong_secret_is_unauthorized(keycloak: Any) -> None:
    bad = KeycloakAdmin(keycloak.base_url, REALM, "orgscim", "wrong-secret")
    with pytest.raises(Unauthorized):
        bad.count_organizations()


def test_unreachable_server_is_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = KeycloakAdmin(f"http://127.0.0.1:{port}", REALM, "orgscim", "x", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(KeycloakUnavailable) as exc:
        dead.list_organizations()
    assert exc.value.status is None and exc.value.retryable


def test_check_permissions_orgscim_has_everything(kc_admin: KeycloakAdmin) -> None:
    assert kc_admin.check_permissions() == []
    assert set(REQUIRED_ROLES) <= kc_admin.service_account_roles()


def test_check_permissions_other_client_misses_roles(other_admin: KeycloakAdmin) -> None:
    missing = other_admin.check_permissions()
    for role in ("manage-users", "manage-realm", "manage-organizations", "view-organizations", "view-clients"):
        assert role in missing
    assert "view-users" not in missing  # it has view-users (and query-users via the composite)
    assert "query-users" not in missing
    assert other_admin.check_permissions(["view-users"]) == []


def test_other_client_is_forbidden(other_admin: KeycloakAdmin) -> None:
    with pytest.raises(Forbidden) as exc:
        other_admin.list_organizations()
    assert exc.value.status == 403
    with pytest.raises(Forbidden):
        other_admin.find_client("orgscim")


def test_required_roles_by_version() -> None:
    assert "manage-organizations" in required_roles("26.7.3")
    old = required_roles("26.6.2")
    assert "manage-organizations" not in old and "manage-realm" in old and "manage-users" in old


# ------------------------------------------------------------------------------------------------
# organizations
# ------------------------------------------------------------------------------------------------


def test_organizations_list_get_find(kc_admin: KeycloakAdmin, acme: dict, globex: dict) -> None:
    aliases = {o["alias"] for o in kc_admin.iter_organizations(page_size=1)}  # one per page
    assert {"acme", "globex"} <= aliases
    page = kc_admin.list_organizations(first=0, max=1)
    assert len(page) == 1
    assert kc_admin.count_organizations() >= 2

    got = kc_admin.get_organization(acme["id"])
    assert got["name"] == "acme"
    assert [d["name"] for d in got["domains"]] == ["acme.example"]
    assert kc_admin.find_organization(name="globex")["id"] == globex["id"]
    assert kc_admin.find_organization(alias="acme")["id"] == acme["id"]
    assert kc_admin.find_organization(name="no-such-org") is None
    with pytest.raises(NotFound):
        kc_admin.get_organization(str(uuid.uuid4()))


def test_find_organization_by_alias_different_from_name(kc_admin: KeycloakAdmin) -> None:
    name = unique("Org Name")
    alias = unique("alias")
    org_id = kc_admin.create_organization({"name": name, "alias": alias, "domains": [{"name": f"{alias}.example"}]})
    try:
        assert kc_admin.find_organization(alias=alias)["id"] == org_id
        assert kc_admin.find_organization(name=name)["id"] == org_id
    finally:
        kc_admin.delete_organization(org_id)
    with pytest.raises(NotFound):
        kc_admin.get_organization(org_id)


def test_org_identity_provider_link(kc_admin: KeycloakAdmin, acme: dict, globex: dict) -> None:
    idps = kc_admin.list_organization_identity_providers(acme["id"])
    assert [i["alias"] for i in idps] == ["acme-idp"]
    assert kc_admin.list_organization_identity_providers(globex["id"]) == []
    idp = kc_admin.get_identity_provider("acme-idp")
    assert idp["providerId"] == "oidc"
    assert idp["organizationId"] == acme["id"]
    with pytest.raises(NotFound):
        kc_admin.get_identity_provider("no-such-idp")


def test_find_client(kc_admin: KeycloakAdmin) -> None:
    client = kc_admin.find_client("orgscim")
    assert client is not None and client["clientId"] == "orgscim" and client["serviceAccountsEnabled"]
    assert kc_admin.get_client(client["id"])["clientId"] == "orgscim"
    assert kc_admin.find_client("no-such-client") is None


# ------------------------------------------------------------------------------------------------
# users
# ------------------------------------------------------------------------------------------------


def test_user_crud_and_lookups(kc_admin: KeycloakAdmin, make_user) -> None:
    username = unique("Alice")  # Keycloak stores usernames in lower case
    email = f"{username}@acme.example"
    uid = make_user(username=username, email=email, firstName="Alice", lastName="Liddell")
    user = kc_admin.get_user(uid)
    assert user["username"] == username.lower()
    assert user["email"] == email.lower()
    assert kc_admin.find_user_by_username(username)["id"] == uid
    assert kc_admin.find_user_by_username(username.lower())["id"] == uid
    assert kc_admin.find_user_by_email(email.upper())["id"] == uid
    assert kc_admin.find_user_by_username(username + "x") is None
    assert kc_admin.find_user_by_username(username[:-1]) is None  # exact, not prefix
    assert kc_admin.find_user_by_email("nobody@acme.example") is None

    kc_admin.update_user(uid, {"firstName": "Alicia", "enabled": False})
    user = kc_admin.get_user(uid)
    assert user["firstName"] == "Alicia" and user["enabled"] is False and user["lastName"] == "Liddell"

    kc_admin.delete_user(uid)
    with pytest.raises(NotFound):
        kc_admin.get_user(uid)
    with pytest.raises(NotFound):
        kc_admin.delete_user(uid)


def test_update_user_keeps_core_fields_whether_or_not_attributes_are_sent(kc_admin: KeycloakAdmin, make_user) -> None:
    attr = "orgscimTestUpd"
    kc_admin.ensure_profile_attributes([attr])
    username = unique("upd")
    uid = make_user(username=username, email=f"{username}@acme.example", firstName="F", lastName="L")

    def core() -> tuple:
        u = kc_admin.get_user(uid)
        return u["username"], u.get("email"), u.get("firstName"), u.get("lastName"), u.get("attributes")

    # raw Keycloak: a PUT with attributes but without the core fields is refused (username missing)
    with pytest.raises(BadRequest, match="(?i)user name"):
        kc_admin.request("PUT", f"/users/{uid}", json_body={"attributes": {attr: ["x"]}})
    kc_admin.update_user(uid, {"attributes": {attr: ["1"]}})
    assert core() == (username, f"{username}@acme.example", "F", "L", {attr: ["1"]})
    kc_admin.update_user(uid, {"lastName": "M", "email": None, "attributes": {attr: ["2"]}})
    assert core() == (username, f"{username}@acme.example", "F", "M", {attr: ["2"]})
    kc_admin.update_user(uid, {"firstName": ""})  # "" clears, with or without attributes
    assert core() == (username, f"{username}@acme.example", None, "M", {attr: ["2"]})
    kc_admin.update_user(uid, {"email": "", "attributes": {attr: ["3"]}})
    assert core() == (username, None, None, "M", {attr: ["3"]})


def test_duplicate_username_and_email_conflict(kc_admin: KeycloakAdmin, make_user) -> None:
    username = unique("dup")
    make_user(username=username, email=f"{username}@acme.example")
    with pytest.raises(KeycloakConflict) as exc:
        kc_admin.create_user({"username": username, "enabled": True})
    assert exc.value.status == 409 and "username" in exc.value.message
    with pytest.raises(KeycloakConflict) as exc:
        kc_admin.create_user({"username": unique("other"), "email": f"{username}@acme.example"})
    assert "email" in exc.value.message


def test_list_and_iter_users_page_by_page(kc_admin: KeycloakAdmin, make_user) -> None:
    prefix = unique("pg")
    ids = {make_user(username=f"{prefix}-{i:02d}") for i in range(12)}
    assert len(kc_admin.list_users(first=0, max=5, search=prefix)) == 5
    assert len(kc_admin.list_users(first=10, max=5, search=prefix)) == 2
    seen = [u["id"] for u in kc_admin.iter_users(search=prefix, page_size=5)]
    assert len(seen) == 12 and set(seen) == ids
    assert kc_admin.count_users(search=prefix) == 12


# ------------------------------------------------------------------------------------------------
# organization members
# ------------------------------------------------------------------------------------------------


def test_org_membership(kc_admin: KeycloakAdmin, make_user, acme: dict, globex: dict) -> None:
    uid = make_user(email=f"{unique('m')}@acme.example")
    assert not kc_admin.is_member(acme["id"], uid)
    kc_admin.add_member(acme["id"], uid)
    assert kc_admin.is_member(acme["id"], uid)
    assert not kc_admin.is_member(globex["id"], uid)
    member = kc_admin.get_member(acme["id"], uid)
    assert member["membershipType"] == "UNMANAGED"
    with pytest.raises(KeycloakConflict):
        kc_admin.add_member(acme["id"], uid)
    assert [o["id"] for o in kc_admin.get_user_organizations(uid)] == [acme["id"]]
    kc_admin.add_member(globex["id"], uid)
    assert {o["alias"] for o in kc_admin.get_user_organizations(uid, brief=False)} == {"acme", "globex"}

    kc_admin.remove_member(acme["id"], uid)
    assert not kc_admin.is_member(acme["id"], uid)
    with pytest.raises(NotFound):
        kc_admin.remove_member(acme["id"], uid)
    kc_admin.get_user(uid)  # removing an unmanaged member keeps the account
    assert [o["alias"] for o in kc_admin.get_user_organizations(uid)] == ["globex"]


def test_add_unknown_user_to_org_is_not_found(kc_admin: KeycloakAdmin, acme: dict) -> None:
    with pytest.raises(NotFound):
        kc_admin.add_member(acme["id"], str(uuid.uuid4()))


def test_member_paging_returns_everyone(kc_admin: KeycloakAdmin, make_user, temp_org: dict) -> None:
    org_id = temp_org["id"]
    ids = set()
    for i in range(23):
        uid = make_user(username=f"{temp_org['alias']}-u{i:02d}")
        kc_admin.add_member(org_id, uid)
        ids.add(uid)
    assert kc_admin.count_members(org_id) == 23
    # the server's own default page is 10: an unpaged call would silently lose members
    raw = kc_admin.request("GET", f"/organizations/{org_id}/members").json()
    assert len(raw) == 10
    assert len(kc_admin.list_members(org_id, first=20, max=10)) == 3
    seen = [m["id"] for m in kc_admin.iter_members(org_id, page_size=7)]
    assert len(seen) == 23 and set(seen) == ids
    seen_default = {m["id"] for m in kc_admin.iter_members(org_id)}
    assert seen_default == ids
    assert sum(1 for _ in kc_admin.iter_members(org_id, membership_type="UNMANAGED", page_size=10)) == 23


def test_member_list_full_representation_has_attributes(kc_admin: KeycloakAdmin, make_user, temp_org: dict) -> None:
    attr = "orgscimTestMember"
    kc_admin.ensure_profile_attributes([attr])
    uid = make_user(attributes={attr: ["v1"]})
    kc_admin.add_member(temp_org["id"], uid)
    full = kc_admin.list_members(temp_org["id"], brief=False)
    assert full[0]["attributes"][attr] == ["v1"]
    brief = kc_admin.list_members(temp_org["id"])
    assert "attributes" not in brief[0] or not brief[0]["attributes"]


# ------------------------------------------------------------------------------------------------
# organization groups (26.6+)
# ------------------------------------------------------------------------------------------------


def test_org_groups_lifecycle(kc_admin: KeycloakAdmin, make_user, temp_org: dict, globex: dict) -> None:
    org_id = temp_org["id"]
    gid = kc_admin.create_org_group(org_id, "Engineering", attributes={"scimId": ["g-1"]})
    with pytest.raises(KeycloakConflict):
        kc_admin.create_org_group(org_id, "Engineering")
    group = kc_admin.get_org_group(org_id, gid)
    assert group["name"] == "Engineering" and group["attributes"] == {"scimId": ["g-1"]}
    assert kc_admin.find_org_group(org_id, "Engineering")["id"] == gid
    assert kc_admin.find_org_group(org_id, "Engineer") is None
    # org groups are not realm groups, and belong to their org only
    assert gid not in {g["id"] for g in kc_admin.request("GET", "/groups", params={"max": 1000}).json()}
    with pytest.raises(BadRequest):
        kc_admin.get_org_group(globex["id"], gid)

    kc_admin.rename_org_group(org_id, gid, "Platform")
    group = kc_admin.get_org_group(org_id, gid)
    assert group["name"] == "Platform" and group["attributes"] == {"scimId": ["g-1"]}
    gid2 = kc_admin.create_org_group(org_id, "Sales")
    with pytest.raises(KeycloakConflict):
        kc_admin.rename_org_group(org_id, gid2, "Platform")
    assert {g["name"] for g in kc_admin.iter_org_groups(org_id, page_size=1)} == {"Platform", "Sales"}
    assert len(kc_admin.list_org_groups(org_id, first=0, max=1)) == 1

    member = make_user()
    outsider = make_user()
    kc_admin.add_member(org_id, member)
    kc_admin.add_org_group_member(org_id, gid, member)
    with pytest.raises(KeycloakConflict):
        kc_admin.add_org_group_member(org_id, gid, member)
    with pytest.raises(BadRequest):  # not a member of the organization
        kc_admin.add_org_group_member(org_id, gid, outsider)
    assert [m["id"] for m in kc_admin.list_org_group_members(org_id, gid)] == [member]
    assert [m["id"] for m in kc_admin.iter_org_group_members(org_id, gid, brief=False)] == [member]
    assert [g["id"] for g in kc_admin.get_member_org_groups(org_id, member)] == [gid]

    kc_admin.remove_org_group_member(org_id, gid, member)
    assert kc_admin.list_org_group_members(org_id, gid) == []
    kc_admin.remove_org_group_member(org_id, gid, member)  # idempotent: 204 again
    assert kc_admin.get_member_org_groups(org_id, member) == []

    kc_admin.delete_org_group(org_id, gid)
    with pytest.raises(NotFound):
        kc_admin.get_org_group(org_id, gid)
    with pytest.raises(NotFound):
        kc_admin.delete_org_group(org_id, gid)


def test_org_group_members_paging(kc_admin: KeycloakAdmin, make_user, temp_org: dict) -> None:
    org_id = temp_org["id"]
    gid = kc_admin.create_org_group(org_id, "Big")
    ids = set()
    for _ in range(12):
        uid = make_user()
        kc_admin.add_member(org_id, uid)
        kc_admin.add_org_group_member(org_id, gid, uid)
        ids.add(uid)
    assert {m["id"] for m in kc_admin.iter_org_group_members(org_id, gid, page_size=5)} == ids


# ------------------------------------------------------------------------------------------------
# federated identities
# ------------------------------------------------------------------------------------------------


def test_federated_identity_link(kc_admin: KeycloakAdmin, make_user, acme: dict) -> None:
    uid = make_user()
    kc_admin.add_member(acme["id"], uid)
    sub = unique("sub")
    kc_admin.add_federated_identity(uid, "acme-idp", sub, "alice@acme.example")
    assert kc_admin.list_federated_identities(uid) == [
        {"identityProvider": "acme-idp", "userId": sub, "userName": "alice@acme.example"}
    ]
    assert kc_admin.find_user_by_idp_link("acme-idp", sub)["id"] == uid
    assert kc_admin.find_user_by_idp_link("acme-idp", sub + "x") is None
    with pytest.raises(KeycloakConflict):
        kc_admin.add_federated_identity(uid, "acme-idp", sub, "alice@acme.example")
    # Keycloak 26.7 accepts the same IdP identity on a second user: callers must look first
    other = make_user()
    kc_admin.add_federated_identity(other, "acme-idp", sub, "alice@acme.example")
    assert {u["id"] for u in kc_admin.find_users_by_idp_link("acme-idp", sub)} == {uid, other}
    with pytest.raises(KeycloakError, match="ambiguous"):
        kc_admin.find_user_by_idp_link("acme-idp", sub)
    kc_admin.remove_federated_identity(other, "acme-idp")
    assert kc_admin.find_user_by_idp_link("acme-idp", sub)["id"] == uid

    kc_admin.remove_federated_identity(uid, "acme-idp")
    assert kc_admin.list_federated_identities(uid) == []
    with pytest.raises(NotFound):
        kc_admin.remove_federated_identity(uid, "acme-idp")


# ------------------------------------------------------------------------------------------------
# user profile and attributes
# ------------------------------------------------------------------------------------------------


def test_user_profile_declaration_keeps_attributes(kc_admin: KeycloakAdmin, make_user) -> None:
    a_id, a_ext = unique("orgscimId").replace("-", ""), unique("orgscimExt").replace("-", "")
    # undeclared attributes are dropped silently (2xx)
    uid = make_user(attributes={a_id: ["dropped"]})
    assert a_id not in (kc_admin.get_user(uid).get("attributes") or {})

    assert kc_admin.ensure_profile_attributes([a_id, a_ext]) == [a_id, a_ext]
    assert kc_admin.ensure_profile_attributes([a_id, a_ext]) == []  # idempotent
    decl = {a["name"]: a for a in kc_admin.get_user_profile()["attributes"]}
    assert decl[a_id]["permissions"] == {"view": ["admin"], "edit": ["admin"]}
    assert {"username", "email", "firstName", "lastName"} <= set(decl)  # nothing else was lost

    uid = make_user(attributes={a_id: ["scim-1"], a_ext: ["Ext 1"]})
    assert kc_admin.get_user(uid)["attributes"] == {a_id: ["scim-1"], a_ext: ["Ext 1"]}
    # a PUT without attributes keeps them
    kc_admin.update_user(uid, {"firstName": "Bob"})
    assert kc_admin.get_user(uid)["attributes"] == {a_id: ["scim-1"], a_ext: ["Ext 1"]}
    # merge keeps the others, None removes
    kc_admin.merge_user_attributes(uid, {a_ext: "Ext 2"})
    assert kc_admin.get_user(uid)["attributes"] == {a_id: ["scim-1"], a_ext: ["Ext 2"]}
    # a PUT with attributes replaces all of them (and keeps the core fields)
    kc_admin.update_user(uid, {"attributes": {a_ext: ["only"]}})
    user = kc_admin.get_user(uid)
    assert user["attributes"] == {a_ext: ["only"]} and user["firstName"] == "Bob"
    kc_admin.merge_user_attributes(uid, {a_ext: None, a_id: ["scim-1"]})
    assert kc_admin.get_user(uid)["attributes"] == {a_id: ["scim-1"]}

    # exact lookup by attribute (q=attr:value), case-sensitive after re-check, blanks quoted
    assert [u["id"] for u in kc_admin.find_users_by_attribute(a_id, "scim-1")] == [uid]
    assert kc_admin.find_users_by_attribute(a_id, "SCIM-1") == []
    assert kc_admin.find_users_by_attribute(a_id, "scim") == []
    kc_admin.merge_user_attributes(uid, {a_ext: "with blank: and colon"})
    assert [u["id"] for u in kc_admin.find_users_by_attribute(a_ext, "with blank: and colon")] == [uid]

    # the declaration survives later profile writes by ensure_profile_attributes
    a_more = unique("orgscimMore").replace("-", "")
    assert kc_admin.ensure_profile_attributes([a_id, a_more], multivalued=[a_more]) == [a_more]
    decl = {a["name"]: a for a in kc_admin.get_user_profile()["attributes"]}
    assert a_id in decl and a_ext in decl and decl[a_more]["multivalued"] is True
    assert kc_admin.get_user(uid)["attributes"][a_id] == ["scim-1"]


def test_profile_write_needs_manage_realm(other_admin: KeycloakAdmin) -> None:
    profile = other_admin.get_user_profile()  # view-users may read it
    with pytest.raises(Forbidden):
        other_admin.put_user_profile(profile)
