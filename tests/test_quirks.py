"""One test per item of conformance/QUIRKS.md (what Okta, Entra ID, JumpCloud, OneLogin really send), plus its
Responses section. Input is lenient; output stays exactly in the shape ``/Schemas`` publishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_JSON = "application/scim+json"


def ok(resp, status=200):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:800])
    assert resp.mimetype == SCIM_JSON
    return resp.get_json()


def member_ids(group):
    return sorted(m["value"] for m in group.get("members", []))


# 1 -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["add", "Add", "ADD"])
def test_q01_patch_op_any_case(api, spelling):
    u = api.create_user("case-op")
    body = ok(api.patch(f"/Users/{u['id']}", {"op": spelling, "path": "title", "value": "Engineer"},
                        {"op": spelling.replace("dd", "DD") if spelling == "Add" else spelling, "path": "nickName",
                         "value": "nick"}))
    assert body["title"] == "Engineer" and body["nickName"] == "nick"
    body = ok(api.patch(f"/Users/{u['id']}", {"op": spelling.replace("add", "replace").replace("Add", "Replace")
                                              .replace("ADD", "REPLACE"), "path": "title", "value": "Lead"}))
    assert body["title"] == "Lead"
    body = ok(api.patch(f"/Users/{u['id']}", {"op": {"add": "remove", "Add": "Remove", "ADD": "REMOVE"}[spelling],
                                              "path": "title"}))
    assert "title" not in body and body["nickName"] == "nick"


def test_q01_attribute_names_any_case_in_bodies(api):
    r = api.post("/Users", {"schemas": [USER, ENT], "UserName": "MixedCase@Example.com",
                            "Name": {"FamilyName": "Jensen", "GIVENNAME": "Barbara"},
                            "Emails": [{"Value": "bjensen@example.com", "Type": "work", "Primary": "true"}],
                            "ACTIVE": True, ENT.upper(): {"Manager": {"Value": "mgr-1"}, "EmployeeNumber": "7"}})
    body = ok(r, 201)
    assert body["userName"] == "MixedCase@Example.com"
    assert body["name"] == {"familyName": "Jensen", "givenName": "Barbara"}
    assert body["emails"] == [{"value": "bjensen@example.com", "type": "work", "primary": True}]
    assert body["active"] is True
    assert body[ENT] == {"manager": {"value": "mgr-1"}, "employeeNumber": "7"}
    assert body["schemas"] == [USER, ENT]
    for key in ("UserName", "Name", "Emails", "ACTIVE", ENT.upper()):
        assert key not in body


def test_q01_attribute_names_any_case_in_paths(api):
    u = api.create_user("case-path", name={"familyName": "Old"},
                        emails=[{"value": "w@example.com", "type": "work"}, {"value": "h@example.com", "type": "home"}])
    body = ok(api.patch(f"/Users/{u['id']}",
                        {"op": "replace", "path": "name.FamilyName", "value": "New"},
                        {"op": "replace", "path": 'Emails[Type eq "work"].Value', "value": "w2@example.com"},
                        {"op": "add", "path": f"{ENT}:Manager", "value": {"Value": "mgr-2"}},
                        {"op": "add", "path": "DisplayName", "value": "Shown"}))
    assert body["name"] == {"familyName": "New"}
    assert body["emails"] == [{"value": "w2@example.com", "type": "work"}, {"value": "h@example.com", "type": "home"}]
    assert body[ENT] == {"manager": {"value": "mgr-2"}}
    assert body["displayName"] == "Shown"


def test_q01_attribute_names_any_case_in_filters(api):
    u = api.create_user("case-filter", name={"familyName": "Filtered"},
                        emails=[{"value": "cf@example.com", "type": "work"}])
    api.create_user("someone-else", name={"familyName": "Other"})
    for f in ['USERNAME EQ "case-filter"', 'name.FamilyName eq "filtered"', 'Emails.Value Eq "CF@example.com"',
              'emails[TYPE eq "work"]', 'NAME.familyname SW "fil"']:
        assert api.ids("/Users?filter=" + quote(f)) == {u["id"]}, f


# 2 -------------------------------------------------------------------------------------------------------------
def test_q02_strings_for_booleans(api):
    body = ok(api.post("/Users", {"schemas": [USER], "userName": "bool-str", "active": "True"}), 201)
    assert body["active"] is True
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "Replace", "path": "active", "value": "False"}))
    assert body["active"] is False
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "replace", "value": {"active": "true"}}))
    assert body["active"] is True
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "add", "path": "emails",
                                                 "value": [{"value": "b@example.com", "primary": "TRUE"}]}))
    assert body["emails"] == [{"value": "b@example.com", "primary": True}]
    assert api.ids("/Users?filter=" + quote('active eq "True"')) == {body["id"]}


# 3 -------------------------------------------------------------------------------------------------------------
def test_q03_value_path_patch_changes_only_the_matching_element(api):
    u = api.create_user("vp", emails=[{"value": "work@example.com", "type": "work", "primary": True},
                                      {"value": "home@example.com", "type": "home"}],
                        addresses=[{"type": "work", "formatted": "1 Old St"}, {"type": "home", "formatted": "Home"}],
                        phoneNumbers=[{"value": "111", "type": "mobile"}, {"value": "222", "type": "work"}])
    body = ok(api.patch(f"/Users/{u['id']}",
                        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"},
                        {"op": "replace", "path": 'addresses[type eq "work"].formatted', "value": "2 New St"},
                        {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "333"}))
    assert body["emails"] == [{"value": "new@example.com", "type": "work", "primary": True},
                              {"value": "home@example.com", "type": "home"}]
    assert body["addresses"] == [{"type": "work", "formatted": "2 New St"}, {"type": "home", "formatted": "Home"}]
    assert body["phoneNumbers"] == [{"value": "333", "type": "mobile"}, {"value": "222", "type": "work"}]
    assert api.read("Users", u["id"])["emails"] == body["emails"]


@pytest.mark.parametrize("op", ["add", "replace"])
def test_q03_value_path_without_match_creates_the_element(api, op):
    u = api.create_user(f"vp-create-{op}", emails=[{"value": "home@example.com", "type": "home"}])
    body = ok(api.patch(f"/Users/{u['id']}",
                        {"op": op, "path": 'emails[type eq "work"].value', "value": "work@example.com"},
                        {"op": op, "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"}))
    assert body["emails"] == [{"value": "home@example.com", "type": "home"},
                              {"type": "work", "value": "work@example.com"}]
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]


def test_q03_several_sub_attributes_for_one_filtered_element_make_one_element(api):
    u = api.create_user("vp-one")
    ops = [{"op": "add", "path": f'addresses[type eq "work"].{sub}', "value": v}
           for sub, v in [("streetAddress", "100 Universal City Plaza"), ("locality", "Hollywood"),
                          ("region", "CA"), ("postalCode", "91608"), ("country", "USA")]]
    ops.append({"op": "Replace", "path": 'addresses[type eq "work"].formatted', "value": "100 Universal…"})
    body = ok(api.patch(f"/Users/{u['id']}", *ops))
    assert body["addresses"] == [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                                  "region": "CA", "postalCode": "91608", "country": "USA",
                                  "formatted": "100 Universal…"}]
    # a second request with the same filter keeps updating that one element
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": 'addresses[type eq "work"].locality',
                                              "value": "Los Angeles"}))
    assert len(body["addresses"]) == 1 and body["addresses"][0]["locality"] == "Los Angeles"


# 4 / 5 ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def trio(api):
    users = [api.create_user(f"member-{i}") for i in range(3)]
    group = api.create_group("Trio", members=[{"value": u["id"]} for u in users])
    return group, [u["id"] for u in users]


def test_q04_member_removal_by_value_list(api, trio):
    group, (u0, u1, u2) = trio
    body = ok(api.patch(f"/Groups/{group['id']}", {"op": "Remove", "path": "members", "value": [{"value": u1}]}))
    assert member_ids(body) == sorted([u0, u2])
    body = ok(api.patch(f"/Groups/{group['id']}", {"op": "remove", "path": "members",
                                                   "value": [{"value": u0}, {"value": u2}]}))
    assert "members" not in body
    assert "members" not in api.read("Groups", group["id"])


def test_q05_member_removal_by_filter(api, trio):
    group, (u0, u1, u2) = trio
    body = ok(api.patch(f"/Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{u1}"]'}))
    assert member_ids(body) == sorted([u0, u2])
    version = body["meta"]["version"]
    body = ok(api.patch(f"/Groups/{group['id']}", {"op": "remove", "path": 'members[value eq "not-a-member"]'}))
    assert member_ids(body) == sorted([u0, u2])
    assert body["meta"]["version"] == version  # a no-op, not an error and not a write


# 6 -------------------------------------------------------------------------------------------------------------
def test_q06_okta_patch_without_path(api):
    u = api.create_user("okta-deactivate", active=True)
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "replace", "value": {"active": False}}))
    assert body["active"] is False and body["userName"] == "okta-deactivate"


def test_q06_okta_group_patch_without_path_carries_id(api):
    g = api.create_group("Before")
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "replace",
                                               "value": {"id": g["id"], "displayName": "After"}}))
    assert body["displayName"] == "After" and body["id"] == g["id"]
    # a different id in the value is ignored too (id is read-only), it never renames the resource
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "replace", "value": {"id": "other", "displayName": "Again"}}))
    assert body["id"] == g["id"] and body["displayName"] == "Again"


def test_q06_entra_dotted_and_urn_keys_without_path(api):
    u = api.create_user("entra-keys", name={"givenName": "Old", "familyName": "Name"})
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "Add", "value": {
        "name.givenName": "New",
        "name.familyName": "Person",
        f"{ENT}:employeeNumber": "42",
        f"{ENT}:manager": "mgr-9",
        "displayName": "New Person",
        'emails[type eq "work"].value': "np@example.com",
    }}))
    assert body["name"] == {"givenName": "New", "familyName": "Person"}
    assert body[ENT] == {"employeeNumber": "42", "manager": {"value": "mgr-9"}}
    assert body["displayName"] == "New Person"
    assert body["emails"] == [{"type": "work", "value": "np@example.com"}]
    assert ENT in body["schemas"]


# 7 -------------------------------------------------------------------------------------------------------------
def test_q07_manager_shapes(api):
    u = api.create_user("managed", **{ENT: {"manager": "271"}})
    assert u[ENT] == {"manager": {"value": "271"}}
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": f"{ENT}:manager", "value": "272"}))
    assert body[ENT]["manager"] == {"value": "272"}
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": "manager",
                                              "value": [{"value": "273", "$ref": "../Users/273"}]}))
    assert body[ENT]["manager"] == {"value": "273", "$ref": "../Users/273"}
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "remove", "path": 'manager[value eq "999"]'}))
    assert body[ENT]["manager"] == {"value": "273", "$ref": "../Users/273"}  # no match: untouched
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "remove", "path": 'manager[value eq "273"]'}))
    assert ENT not in body and ENT not in body["schemas"]
    assert ENT not in api.read("Users", u["id"])


# 8 -------------------------------------------------------------------------------------------------------------
def test_q08_okta_extras_on_create_and_put(api):
    sent_meta = {"resourceType": "User", "created": "2001-01-01T00:00:00Z", "location": "https://evil/x",
                 "version": 'W/"999"'}
    body = ok(api.post("/Users", {"schemas": [USER], "userName": "okta-extra", "password": "t1meMa$heen",
                                  "groups": [], "meta": sent_meta, "id": "client-chosen",
                                  "name": {"givenName": "O", "familyName": "K"}}), 201)
    assert "password" not in body and "groups" not in body
    assert body["id"] != "client-chosen"
    assert body["meta"]["created"] != "2001-01-01T00:00:00Z" and body["meta"]["version"] == 'W/"1"'
    assert body["meta"]["location"].endswith(f"/Users/{body['id']}")
    for resp in (api.get(f"/Users/{body['id']}"), api.get(f"/Users/{body['id']}?attributes=password"),
                 api.get("/Users?filter=" + quote('userName eq "okta-extra"'))):
        assert "password" not in resp.get_data(as_text=True)
    put = ok(api.put(f"/Users/{body['id']}", {"schemas": [USER], "id": body["id"], "userName": "okta-extra",
                                              "password": "other", "groups": [], "meta": sent_meta, "active": True}))
    assert "password" not in put and "groups" not in put and put["active"] is True
    assert put["meta"]["created"] == body["meta"]["created"]


def test_q08_entra_extras_on_create(api):
    body = ok(api.post("/Users", {
        "schemas": [USER, ENT], "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "userName": "entra-extra",
        "active": True, "displayName": None, "title": None, "roles": [], "meta": {"resourceType": "User"},
        "emails": [{"primary": True, "type": "work", "value": "entra@example.com"}],
        "name": {"formatted": None, "familyName": "E", "givenName": None},
        ENT: {"employeeNumber": None, "department": None, "manager": None}}), 201)
    assert body["name"] == {"familyName": "E"}
    for key in ("displayName", "title", "roles", ENT):
        assert key not in body, key
    assert body["schemas"] == [USER]
    assert body["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"


# 9 -------------------------------------------------------------------------------------------------------------
def test_q09_empty_string_and_null_mean_unassigned(api):
    body = ok(api.post("/Users", {"schemas": [USER], "userName": "onelogin-empty", "title": "", "nickName": None,
                                  "name": {"givenName": "", "familyName": "Kept"}, "emails": [], "phoneNumbers": "",
                                  "externalId": "", ENT: {"department": ""}}), 201)
    for key in ("title", "nickName", "emails", "phoneNumbers", "externalId", ENT):
        assert key not in body, key
    assert body["name"] == {"familyName": "Kept"}
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "add", "path": "title", "value": "T"},
                        {"op": "add", "path": "nickName", "value": "N"}))
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "replace", "path": "title", "value": ""},
                        {"op": "replace", "path": "nickName", "value": None},
                        {"op": "replace", "path": "name.familyName", "value": ""}))
    for key in ("title", "nickName", "name"):
        assert key not in body, key
    assert api.ids("/Users?filter=title+pr") == set()


# 10 ------------------------------------------------------------------------------------------------------------
def test_q10_foreign_schema_urns_are_tolerated(api):
    g = ok(api.post("/Groups", {"schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/"
                                                   "2.0/Group"], "displayName": "Entra Group"}), 201)
    assert g["schemas"] == [GROUP] and g["displayName"] == "Entra Group"
    u = ok(api.post("/Users", {"schemas": ["urn:scim:schemas:core:1.0"], "userName": "onelogin-v1"}), 201)
    assert u["schemas"] == [USER] and u["userName"] == "onelogin-v1"
    body = ok(api.request("PATCH", f"/Users/{u['id']}", {"schemas": ["urn:scim:schemas:core:1.0", "urn:foo"],
                                                         "Operations": [{"op": "add", "path": "title", "value": "x"}]}))
    assert body["title"] == "x"


# 11 ------------------------------------------------------------------------------------------------------------
def test_q11_unknown_attributes_are_ignored_never_500(api):
    body = ok(api.post("/Users", {"schemas": [USER], "userName": "typo", "titel": "x", "emial": ["a"],
                                  "name": {"givenNmae": "x", "familyName": "F"}, "urn:unknown:ext:1.0:User": {"a": 1},
                                  "emails": [{"value": "t@example.com", "tpye": "work"}]}), 201)
    assert set(body) == {"schemas", "id", "userName", "name", "emails", "meta"}
    assert body["name"] == {"familyName": "F"} and body["emails"] == [{"value": "t@example.com"}]
    body = ok(api.patch(f"/Users/{body['id']}", {"op": "replace", "value": {"titel": "x", "title": "real"}}))
    assert body["title"] == "real" and "titel" not in body
    resp = api.patch(f"/Users/{body['id']}", {"op": "replace", "path": "titel", "value": "x"})
    api.error(resp, 400, "invalidPath")
    api.error(api.get("/Users?filter=" + quote('titel eq "x"')), 400, "invalidFilter")
    assert ok(api.get(f"/Users/{body['id']}?attributes=titel,userName"))["userName"] == "typo"


# 12 ------------------------------------------------------------------------------------------------------------
@pytest.fixture
def matching(api):
    alice = api.create_user("Alice.Smith@Example.com", externalId="00uALICE", active=True,
                            emails=[{"value": "Alice.Smith@Example.com", "type": "work", "primary": True},
                                    {"value": "alice@home.example", "type": "home"}])
    bob = api.create_user("bob.jones@example.com", externalId="00uBOB",
                          emails=[{"value": "alice@home.example", "type": "work"}])
    team = api.create_group("Sales Team")
    api.create_group("Sales")
    return alice, bob, team


def test_q12_userName_eq_is_case_insensitive(api, matching):
    alice, _, _ = matching
    assert api.ids("/Users?filter=" + quote('userName eq "alice.smith@example.com"')) == {alice["id"]}
    assert api.ids("/Users?filter=" + quote('userName eq "ALICE.SMITH@EXAMPLE.COM"')) == {alice["id"]}


def test_q12_externalId_and_work_email(api, matching):
    alice, bob, _ = matching
    assert api.ids("/Users?filter=" + quote('externalId eq "00uALICE"')) == {alice["id"]}
    assert api.ids("/Users?filter=" + quote('externalId eq "00ualice"')) == set()  # caseExact (RFC 7643 §3.1)
    assert api.ids("/Users?filter=" + quote('emails[type eq "work"].value eq "alice@home.example"')) == {bob["id"]}
    assert api.ids("/Users?filter=" + quote('emails[type eq "work"].value eq "ALICE.smith@example.com"')) == {
        alice["id"]}
    assert api.ids("/Users?filter=" + quote('emails.value eq "alice@home.example"')) == {alice["id"], bob["id"]}


def test_q12_group_displayName_and_encodings(api, matching):
    _, _, team = matching
    for raw in ['displayName+eq+%22Sales+Team%22', 'displayName%20eq%20%22Sales%20Team%22',
                'displayName eq "sales team"', 'displayName+eq+"Sales%20Team"']:
        assert api.ids("/Groups?filter=" + raw) == {team["id"]}, raw


def test_q12_unquoted_values(api, matching):
    alice, _, _ = matching
    assert api.ids("/Users?filter=userName+eq+alice.smith@example.com") == {alice["id"]}
    assert api.ids("/Users?filter=" + quote("externalId eq 00uALICE")) == {alice["id"]}
    assert api.ids("/Users?filter=" + quote("active eq true and userName sw alice")) == {alice["id"]}


@pytest.mark.parametrize("offset", ["+05:30", "-03:30", "+14:00", "Z", "+00:00"])
def test_q12_entra_meta_created_with_odd_time_zones(api, matching, offset):
    created = datetime.fromisoformat(matching[0]["meta"]["created"].replace("Z", "+00:00"))
    zone = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
    before = (created - timedelta(minutes=5)).astimezone(zone)
    after = (created + timedelta(minutes=5)).astimezone(zone)

    def fmt(dt):
        text = dt.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z") if offset == "Z" else text

    everyone = api.ids("/Users")
    assert len(everyone) == 2
    assert api.ids("/Users?filter=" + quote(f'meta.created gt "{fmt(before)}"')) == everyone
    assert api.ids("/Users?filter=" + quote(f'meta.created gt "{fmt(after)}"')) == set()
    assert api.ids("/Users?filter=" + quote(f'meta.created lt "{fmt(after)}"')) == everyone
    # Entra writes the offset unencoded, so a "+" arrives as a space; accept it too
    raw = f'meta.created gt "{fmt(before)}"'.replace(" ", "+")
    assert api.ids("/Users?filter=" + raw) == everyone


# 13 ------------------------------------------------------------------------------------------------------------
def test_q13_groups_without_members(api, trio):
    group, users = trio
    listing = api.listing(api.get("/Groups?excludedAttributes=members&filter=" + quote('displayName eq "Trio"')))
    assert [g["id"] for g in listing["Resources"]] == [group["id"]]
    assert listing["Resources"][0]["displayName"] == "Trio" and "members" not in listing["Resources"][0]
    one = ok(api.get(f"/Groups/{group['id']}?excludedAttributes=members"))
    assert "members" not in one and one["displayName"] == "Trio" and one["id"] == group["id"] and "meta" in one
    assert member_ids(api.read("Groups", group["id"])) == sorted(users)


# 14 ------------------------------------------------------------------------------------------------------------
def test_q14_replace_members_with_empty_list(api, trio):
    group, _ = trio
    body = ok(api.patch(f"/Groups/{group['id']}", {"op": "replace", "path": "members", "value": []}))
    assert "members" not in body
    assert "members" not in api.read("Groups", group["id"])


# 15 ------------------------------------------------------------------------------------------------------------
def test_q15_rename_after_membership_change_and_put_whole_group(api):
    users = [api.create_user(f"okta-member-{i}") for i in range(3)]
    g = api.create_group("Okta Push")
    ok(api.patch(f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [{"value": users[0]["id"]},
                                                                                  {"value": users[1]["id"]}]}))
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "replace", "value": {"id": g["id"],
                                                                          "displayName": "Okta Push"}}))
    assert member_ids(body) == sorted([users[0]["id"], users[1]["id"]])
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "replace", "value": {"id": g["id"],
                                                                          "displayName": "Okta Push 2"}}))
    assert body["displayName"] == "Okta Push 2" and len(body["members"]) == 2
    put = ok(api.put(f"/Groups/{g['id']}", {"schemas": [GROUP], "id": g["id"], "displayName": "Okta AIW",
                                            "members": [{"value": users[2]["id"], "display": "okta-member-2"}]}))
    assert put["displayName"] == "Okta AIW"
    assert put["members"] == [{"value": users[2]["id"], "display": "okta-member-2"}]
    assert api.read("Groups", g["id"])["members"] == put["members"]
    # PUT without members empties the group (PUT replaces the whole resource)
    put = ok(api.put(f"/Groups/{g['id']}", {"schemas": [GROUP], "displayName": "Okta AIW"}))
    assert "members" not in put


# 16 ------------------------------------------------------------------------------------------------------------
def test_q16_soft_delete_keeps_the_user_readable_and_filterable(api):
    u = api.create_user("soft", active=True)
    ok(api.patch(f"/Users/{u['id']}", {"op": "replace", "value": {"active": False}}))
    assert api.read("Users", u["id"])["active"] is False
    assert api.ids("/Users?filter=active+eq+false") == {u["id"]}
    got = api.listing(api.get("/Users?filter=" + quote('userName eq "soft"')))
    assert got["Resources"][0]["active"] is False
    assert u["id"] in api.ids("/Users")


# 17 ------------------------------------------------------------------------------------------------------------
def test_q17_unknown_member_ids_are_skipped(api):
    u = api.create_user("known")
    g = api.create_group("Mixed", members=[{"value": "does-not-exist"}, {"value": u["id"]}])
    assert g["members"] == [{"value": u["id"]}]
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "add", "path": "members",
                                               "value": [{"value": "fake-member-id"}, {"value": "also-fake"}]}))
    assert body["members"] == [{"value": u["id"]}]
    body = ok(api.patch(f"/Groups/{g['id']}", {"op": "remove", "path": "members", "value": [{"value": "ghost"}]}))
    assert body["members"] == [{"value": u["id"]}]


# 18 ------------------------------------------------------------------------------------------------------------
def test_q18_stray_query_flag(api):
    body = ok(api.post("/Users?aadOptscim062020", {"schemas": [USER], "userName": "aad"}), 201)
    assert ok(api.get(f"/Users/{body['id']}?aadOptscim062020"))["userName"] == "aad"
    assert ok(api.patch(f"/Users/{body['id']}?aadOptscim062020",
                        {"op": "replace", "path": "title", "value": "t"}))["title"] == "t"
    assert api.listing(api.get("/Users?aadOptscim062020&filter=" + quote('userName eq "aad"')))["totalResults"] == 1
    assert ok(api.get("/ServiceProviderConfig?aadOptscim062020"))["patch"] == {"supported": True}
    assert api.delete(f"/Users/{body['id']}?aadOptscim062020").status_code == 204


# 19 ------------------------------------------------------------------------------------------------------------
def test_q19_duplicate_userName_is_409_uniqueness(api):
    first = api.create_user("retry@example.com")
    for name in ("retry@example.com", "RETRY@Example.com"):
        body = api.error(api.post("/Users", {"schemas": [USER], "userName": name}), 409, "uniqueness")
        assert "userName" in body["detail"]
    other = api.create_user("other@example.com")
    api.error(api.patch(f"/Users/{other['id']}", {"op": "replace", "path": "userName", "value": "Retry@example.com"}),
              409, "uniqueness")
    api.error(api.put(f"/Users/{other['id']}", {"schemas": [USER], "userName": "retry@EXAMPLE.com"}), 409,
              "uniqueness")
    api.create_group("Dup")
    api.error(api.post("/Groups", {"schemas": [GROUP], "displayName": "dup"}), 409, "uniqueness")
    # the IdP's follow-up lookup finds the one user
    assert api.ids("/Users?filter=" + quote('userName eq "retry@example.com"')) == {first["id"]}


# Responses -----------------------------------------------------------------------------------------------------
def test_r_content_type_is_scim_json_on_success_and_errors(api):
    u = api.create_user("ct")
    responses = [api.get("/Users"), api.get(f"/Users/{u['id']}"), api.get("/ServiceProviderConfig"),
                 api.get("/Schemas"), api.get("/ResourceTypes"),
                 api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "x"}),
                 api.put(f"/Users/{u['id']}", {"schemas": [USER], "userName": "ct"}),
                 api.post("/Users", {"schemas": [USER], "userName": "ct"}),  # 409
                 api.get("/Users/nope"), api.get("/Nope"), api.post("/Schemas"),
                 api.get("/Users?filter=bad"), api.get("/Users", headers={"Authorization": "Bearer x"})]
    for resp in responses:
        assert resp.mimetype == SCIM_JSON, (resp.status_code, resp.headers.get("Content-Type"))
        assert isinstance(resp.get_json(), dict)


@pytest.mark.parametrize("content_type", ["application/scim+json", "application/json",
                                          "application/scim+json; charset=utf-8", "application/json;charset=UTF-8"])
def test_r_accepts_json_and_scim_json_bodies(api, content_type):
    resp = api.post("/Users", raw=json.dumps({"schemas": [USER], "userName": f"ct-{content_type}"}),
                    headers={"Content-Type": content_type})
    assert ok(resp, 201)["userName"] == f"ct-{content_type}"


def test_r_201_location_equals_meta_location(api):
    for path, body in (("/Users", {"schemas": [USER], "userName": "loc"}),
                       ("/Groups", {"schemas": [GROUP], "displayName": "loc"})):
        resp = api.post(path, body)
        created = ok(resp, 201)
        assert resp.headers["Location"] == created["meta"]["location"]
        assert created["meta"]["location"] == f"http://localhost{api.base}{path}/{created['id']}"
        assert resp.headers["ETag"] == created["meta"]["version"]
        assert ok(api.get(f"{path}/{created['id']}")) == created


def test_r_patch_200_with_full_resource_and_delete_204_empty(api):
    u = api.create_user("full", name={"givenName": "F"})
    body = ok(api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "x"}))
    assert body["id"] == u["id"] and body["userName"] == "full" and body["name"] == {"givenName": "F"}
    assert body["meta"]["resourceType"] == "User" and body["schemas"] == [USER]
    resp = api.delete(f"/Users/{u['id']}")
    assert resp.status_code == 204 and resp.data == b"" and "Content-Type" not in resp.headers
    api.error(api.get(f"/Users/{u['id']}"), 404)
    api.error(api.delete(f"/Users/{u['id']}"), 404)


def test_r_error_bodies(api):
    body = api.error(api.get("/Users/nope"), 404)
    assert body["status"] == "404" and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    api.error(api.post("/Users", {"schemas": [USER]}), 400, "invalidValue")
    api.error(api.post("/Users", raw="{not json"), 400, "invalidSyntax")
    api.error(api.get("/Users?filter=" + quote('userName zz "x"')), 400, "invalidFilter")


@pytest.mark.parametrize("header", [None, "non-token", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer wrong",
                                    "Bearer osk_000000000000.wrong", "WRONG-SCHEME {secret}", "Bearer {secret}x",
                                    "Bearer {cred}.wrong-but-right-prefix"])
def test_r_401_for_missing_malformed_or_wrong_credentials(api, header):
    secret = api.secret
    if header is not None:
        header = header.format(secret=secret, cred=secret.split(".")[0])
    api.secret = None
    resp = api.get("/Users", headers={"Authorization": header} if header is not None else {})
    body = api.error(resp, 401)
    assert resp.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert body == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401",
                    "detail": "missing or invalid credentials for this SCIM endpoint"}
    api.secret = secret
    assert api.get("/Users").status_code == 200


@pytest.mark.parametrize("endpoint", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas", "/ResourceTypes/User",
                                      f"/Schemas/{USER}"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_r_405_on_discovery_writes(api, endpoint, method):
    resp = api.client.open(api.base + endpoint, method=method, headers=api.headers)  # no body, no content type
    api.error(resp, 405)
    assert resp.headers["Allow"] == "GET"
    resp = api.request(method, endpoint, {"schemas": [USER]})
    api.error(resp, 405)


def test_r_list_fields_are_integers_and_count_zero_gives_empty_resources(api):
    for i in range(3):
        api.create_user(f"list-{i}")
    body = api.listing(api.get("/Users?count=0"))
    assert body["Resources"] == [] and body["totalResults"] == 3 and body["itemsPerPage"] == 0
    body = api.listing(api.get("/Users?startIndex=2&count=1"))
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (3, 2, 1)
    body = api.listing(api.get("/Groups"))
    assert body["Resources"] == [] and body["totalResults"] == 0
    body = api.listing(api.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                                   "count": 0}))
    assert body["Resources"] == [] and body["totalResults"] == 3


def test_r_only_published_attributes_are_returned_in_their_published_shape(api):
    published = {s["id"]: {a["name"]: a for a in s["attributes"]}
                 for s in api.listing(api.get("/Schemas"))["Resources"]}
    rtypes = {t["name"]: t for t in api.listing(api.get("/ResourceTypes"))["Resources"]}
    boss = api.create_user("boss")
    user = api.create_user(
        "everything", externalId="e", name={"formatted": "F", "familyName": "F", "givenName": "G", "middleName": "M",
                                            "honorificPrefix": "Dr", "honorificSuffix": "III"},
        displayName="D", nickName="N", profileUrl="https://example.com/p", title="T", userType="U",
        preferredLanguage="en", locale="en-US", timezone="Europe/Oslo", active=True, password="never",
        emails=[{"value": "e@example.com", "display": "E", "type": "work", "primary": True}],
        phoneNumbers=[{"value": "1", "type": "mobile"}], ims=[{"value": "i", "type": "xmpp"}],
        photos=[{"value": "https://example.com/p.png", "type": "photo"}],
        addresses=[{"formatted": "A", "streetAddress": "S", "locality": "L", "region": "R", "postalCode": "P",
                    "country": "NO", "type": "work", "primary": True}],
        entitlements=[{"value": "x"}], roles=[{"value": "r", "display": "R", "type": "t", "primary": False}],
        x509Certificates=[{"value": "TUlJ"}],
        **{ENT: {"employeeNumber": "1", "costCenter": "c", "organization": "o", "division": "d", "department": "dp",
                 "manager": {"value": boss["id"], "$ref": boss["meta"]["location"]}}})
    group = api.create_group("shape", externalId="g", members=[{"value": user["id"], "type": "User",
                                                                "$ref": user["meta"]["location"], "display": "x"}])
    user = api.read("Users", user["id"])
    assert user["groups"] and user[ENT]["manager"] == {"value": boss["id"], "$ref": boss["meta"]["location"]}

    def check(resource, rtype):
        core = rtypes[rtype]["schema"]
        extensions = {e["schema"] for e in rtypes[rtype]["schemaExtensions"]}
        assert resource["schemas"][0] == core and set(resource["schemas"][1:]) <= extensions
        assert set(resource["meta"]) <= {"resourceType", "created", "lastModified", "location", "version"}
        for key, value in resource.items():
            if key in ("schemas", "id", "externalId", "meta"):
                continue
            if key in extensions:
                assert key in resource["schemas"]
                attrs = published[key]
                items = value.items()
            else:
                attrs = published[core]
                items = [(key, value)]
            for name, v in items:
                assert name in attrs, (rtype, name)
                a = attrs[name]
                assert a["returned"] != "never"
                for element in (v if a["multiValued"] else [v]):
                    if a["type"] == "complex":
                        subs = {s["name"] for s in a["subAttributes"]}
                        assert set(element) <= subs, (name, element)
                    elif a["type"] == "boolean":
                        assert isinstance(element, bool)
                    else:
                        assert isinstance(element, str)
                if a["multiValued"]:
                    assert isinstance(v, list) and v

    check(user, "User")
    check(api.read("Groups", group["id"]), "Group")
    for r in api.listing(api.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))[
            "Resources"]:
        check(r, r["meta"]["resourceType"])
    assert "password" not in json.dumps(user)
