"""The whole filter grammar (RFC 7644 §3.4.2.2) over a small fixed dataset, with exact expected id sets."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def data(api):
    """u1..u4 and g1..g3; u2 is modified last (meta.lastModified tests)."""
    u = {}
    u["u1"] = api.create_user("alice", externalId="ext-1", title="Engineer", active=True, displayName="Alice Smith",
                              name={"givenName": "Alice", "familyName": "Smith"}, userType="Employee",
                              emails=[{"value": "alice@work.com", "type": "work", "primary": True},
                                      {"value": "alice@home.org", "type": "home"}],
                              **{ENT: {"employeeNumber": "100", "department": "R&D", "manager": {"value": "m-1"}}})
    u["u2"] = api.create_user("bob", externalId="ext-2", title="Manager", active=False,
                              name={"givenName": "Bob", "familyName": "Jones"},
                              emails=[{"value": "bob@work.com", "type": "work"}],
                              **{ENT: {"employeeNumber": "200", "department": "Sales"}})
    u["u3"] = api.create_user("carol", active=True, name={"givenName": "Carol", "familyName": "Smithson"},
                              emails=[{"value": "carol@home.org", "type": "home", "primary": True}],
                              **{ENT: {"employeeNumber": "300"}})
    u["u4"] = api.create_user("dave", title="engineer", phoneNumbers=[{"value": "+1 555 0100", "type": "mobile"}])
    g = {}
    g["g1"] = api.create_group("Engineering", members=[{"value": u["u1"]["id"]}, {"value": u["u4"]["id"]}])
    g["g2"] = api.create_group("Sales", members=[{"value": u["u2"]["id"]}])
    g["g3"] = api.create_group("Empty")
    time.sleep(0.01)
    # Joining groups changes members' representations (their groups) and lastModified; u4 is then modified on
    # its own so that the cut is u4's instant alone.
    resp = api.patch(f"/Users/{u['u4']['id']}", {"op": "replace", "path": "preferredLanguage", "value": "en"})
    assert resp.status_code == 200
    cut = resp.get_json()["meta"]["lastModified"]
    time.sleep(0.01)
    resp = api.patch(f"/Users/{u['u2']['id']}", {"op": "replace", "path": "nickName", "value": "bobby"})
    assert resp.status_code == 200
    ids = {k: v["id"] for k, v in {**u, **g}.items()}
    ids["cut"] = cut
    ids["u3_created"] = u["u3"]["meta"]["created"]
    return ids


USER_CASES = [
    ('userName eq "ALICE"', {"u1"}),
    ('userName ne "alice"', {"u2", "u3", "u4"}),
    ('userName co "o"', {"u2", "u3"}),
    ('userName sw "c"', {"u3"}),
    ('userName ew "E"', {"u1", "u4"}),
    ("title pr", {"u1", "u2", "u4"}),
    ('title eq "ENGINEER"', {"u1", "u4"}),
    ('title ne "engineer"', {"u2", "u3"}),
    ('name.familyName sw "smith"', {"u1", "u3"}),
    ('name.familyName co "SON"', {"u3"}),
    ('name.givenName ew "b"', {"u2"}),
    ('displayName eq "alice smith"', {"u1"}),
    ('userName gt "bob"', {"u3", "u4"}),
    ('userName ge "bob"', {"u2", "u3", "u4"}),
    ('userName lt "bob"', {"u1"}),
    ('userName le "bob"', {"u1", "u2"}),
    ('title eq "engineer" and name.familyName pr', {"u1"}),
    ('userName eq "alice" or userName eq "bob"', {"u1", "u2"}),
    ("not (title pr)", {"u3"}),
    ("not (active eq true)", {"u2", "u4"}),
    ('not (userName eq "alice" or userName eq "bob")', {"u3", "u4"}),
    # precedence: and binds tighter than or; parentheses override it
    ('userName eq "alice" or userName eq "bob" and active eq true', {"u1"}),
    ('(userName eq "alice" or userName eq "bob") and active eq false', {"u2"}),
    ('userName eq "dave" or title eq "manager" and not (active eq true)', {"u2", "u4"}),
    ('(userName eq "dave" or title eq "manager") and (not (active eq false))', {"u4"}),
    ('((userName eq "carol"))', {"u3"}),
    # value paths: every condition holds for ONE element
    ('emails[type eq "work" and value co "alice"]', {"u1"}),
    ('emails[type eq "home" and primary eq true]', {"u3"}),
    ('emails[type eq "home" or primary eq true]', {"u1", "u3"}),
    ('emails[type eq "work" and primary eq true]', {"u1"}),
    ('emails[not (type eq "work")]', {"u1", "u3"}),
    ('emails[type eq "work"] and emails[type eq "home"]', {"u1"}),
    ('emails[value ew "home.org"] or phoneNumbers[type eq "mobile"]', {"u1", "u3", "u4"}),
    ('emails[type eq "work"].value eq "BOB@work.com"', {"u2"}),
    ('emails.value ew "home.org"', {"u1", "u3"}),
    ('emails eq "bob@work.com"', {"u2"}),
    ('emails.type eq "home"', {"u1", "u3"}),
    ("emails pr", {"u1", "u2", "u3"}),
    ("not (emails pr)", {"u4"}),
    ("phoneNumbers pr", {"u4"}),
    # case-insensitive attribute names, operators and keywords
    ('USERNAME EQ "alice"', {"u1"}),
    ('Name.FamilyName SW "Smith"', {"u1", "u3"}),
    ('emails[TYPE Eq "work" AND Primary EQ TRUE]', {"u1"}),
    ("TITLE PR", {"u1", "u2", "u4"}),
    ('userName Eq "bob" OR userName eQ "carol"', {"u2", "u3"}),
    ("NOT (title pr)", {"u3"}),
    # extension attributes, with and without the URN
    (f'{ENT}:employeeNumber eq "200"', {"u2"}),
    (f'{ENT.upper()}:EMPLOYEENUMBER eq "200"', {"u2"}),
    (f'{ENT}:department sw "r"', {"u1"}),
    (f'{ENT}:manager.value eq "m-1"', {"u1"}),
    (f"{ENT}:manager pr", {"u1"}),
    ('employeeNumber gt "150"', {"u2", "u3"}),
    ("department pr", {"u1", "u2"}),
    # booleans (also as strings, QUIRKS #2)
    ("active eq true", {"u1", "u3"}),
    ("active eq false", {"u2"}),
    ('active eq "False"', {"u2"}),
    ("active ne true", {"u2", "u4"}),
    ("active pr", {"u1", "u2", "u3"}),
    # common attributes
    ('externalId eq "ext-1"', {"u1"}),
    ('externalId eq "EXT-1"', set()),
    ('externalId sw "ext"', {"u1", "u2"}),
    ("externalId pr", {"u1", "u2"}),
    ('meta.resourceType eq "User"', {"u1", "u2", "u3", "u4"}),
    ('userType eq "employee"', {"u1"}),
    # group membership seen from users
    ('groups.display eq "sales"', {"u2"}),
    ("groups pr", {"u1", "u2", "u4"}),
]


@pytest.mark.parametrize(("text", "expected"), USER_CASES, ids=[c[0] for c in USER_CASES])
def test_user_filters(api, data, text, expected):
    want = {data[k] for k in expected}
    assert api.ids("/Users?filter=" + quote(text)) == want
    body = api.listing(api.post("/Users/.search", {"schemas": [SEARCH], "filter": text}))
    assert {r["id"] for r in body["Resources"]} == want and body["totalResults"] == len(want)


def test_id_filters(api, data):
    assert api.ids("/Users?filter=" + quote(f'id eq "{data["u3"]}"')) == {data["u3"]}
    assert api.ids("/Users?filter=" + quote(f'id eq "{data["g1"]}"')) == set()  # a group id is no user
    assert api.ids("/Users?filter=" + quote(f'id ne "{data["u3"]}"')) == {data[k] for k in ("u1", "u2", "u4")}
    assert api.ids("/Users?filter=" + quote(f'groups[value eq "{data["g1"]}"]')) == {data["u1"], data["u4"]}


def test_meta_lastModified_and_created_comparisons(api, data):
    cut, everyone = data["cut"], {data[k] for k in ("u1", "u2", "u3", "u4")}
    assert api.ids("/Users?filter=" + quote(f'meta.lastModified gt "{cut}"')) == {data["u2"]}
    assert api.ids("/Users?filter=" + quote(f'meta.lastModified le "{cut}"')) == everyone - {data["u2"]}
    assert api.ids("/Users?filter=" + quote(f'meta.lastModified ge "{cut}"')) == {data["u2"], data["u4"]}
    assert api.ids("/Users?filter=" + quote(f'meta.lastModified lt "{cut}"')) == {data["u1"], data["u3"]}
    assert api.ids("/Users?filter=" + quote(f'meta.created ge "{data["u3_created"]}"')) == {data["u3"], data["u4"]}
    assert api.ids("/Users?filter=" + quote(f'meta.created gt "{data["u3_created"]}"')) == {data["u4"]}
    assert api.ids("/Users?filter=" + quote('meta.created gt "2000-01-01T00:00:00Z"')) == everyone
    assert api.ids("/Users?filter=" + quote('meta.lastModified gt "2999-01-01T00:00:00+05:30"')) == set()
    assert api.ids("/Users?filter=" + quote('META.LASTMODIFIED pr')) == everyone


GROUP_CASES = [
    ('displayName eq "engineering"', {"g1"}),
    ('displayName sw "E"', {"g1", "g3"}),
    ('displayName co "a"', {"g2"}),
    ("members pr", {"g1", "g2"}),
    ("not (members pr)", {"g3"}),
    ('displayName ne "Empty" and not (members pr)', set()),
]


@pytest.mark.parametrize(("text", "expected"), GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_group_filters(api, data, text, expected):
    assert api.ids("/Groups?filter=" + quote(text)) == {data[k] for k in expected}


def test_group_member_filters(api, data):
    assert api.ids("/Groups?filter=" + quote(f'members[value eq "{data["u1"]}"]')) == {data["g1"]}
    assert api.ids("/Groups?filter=" + quote(f'members.value eq "{data["u2"]}"')) == {data["g2"]}
    assert api.ids("/Groups?filter=" + quote(f'members[value eq "{data["u4"]}" or value eq "{data["u2"]}"]')) == {
        data["g1"], data["g2"]}


def test_root_search_spans_types(api, data):
    body = api.listing(api.post("/.search", {"schemas": [SEARCH], "filter": 'userName eq "alice"'}))
    assert [r["id"] for r in body["Resources"]] == [data["u1"]]
    body = api.listing(api.post("/.search", {"schemas": [SEARCH], "filter": 'displayName sw "e"'}))
    assert {r["id"] for r in body["Resources"]} == {data["g1"], data["g3"]}
    assert body["totalResults"] == 2


BAD_FILTERS = [
    "userName eq", 'userName xx "a"', '(userName eq "a"', 'userName eq "a")', 'emails[type eq "work"',
    '"foo"', "and", 'userName eq "a" and', 'not userName eq "a"', 'emails[type eq "work"][value eq "x"]',
    'userName eq "unterminated', 'userName eq "a" or or userName eq "b"', "userName pr pr", "()",
    'emails[type eq "work" and emails[value eq "x"]]', 'active co "t"', "userName co 1",
    'meta.created gt "yesterday"', 'meta.created gt 5', "active gt false", '.value eq "x"', "name eq 1",
    'emails[type eq "work"].nope eq "x"', "userName eq (", 'title eq "a" ' * 600, "(" * 200 + "title pr" + ")" * 200,
]


@pytest.mark.parametrize("text", BAD_FILTERS, ids=range(len(BAD_FILTERS)))
def test_unparseable_filters_are_400_invalidFilter(api, text):
    api.error(api.get("/Users?filter=" + quote(text)), 400, "invalidFilter")
    api.error(api.post("/Users/.search", {"schemas": [SEARCH], "filter": text}), 400, "invalidFilter")


UNKNOWN = ['nosuch eq "x"', 'name.nosuch eq "x"', 'urn:foo:bar:attr eq "x"', 'emails[nosuch eq "x"]',
           f'{ENT}:nosuch eq "x"', 'nosuch[type eq "x"]', 'meta.nosuch eq "x"', "password pr",
           'userName eq "a" or nosuch pr']


@pytest.mark.parametrize("text", UNKNOWN)
def test_unknown_attributes_are_400_invalidFilter(api, text):
    api.error(api.get("/Users?filter=" + quote(text)), 400, "invalidFilter")


def test_user_attribute_on_groups_is_400_invalidFilter(api):
    api.error(api.get("/Groups?filter=" + quote('userName eq "x"')), 400, "invalidFilter")
    api.error(api.get("/Groups?filter=" + quote(f'{ENT}:employeeNumber eq "1"')), 400, "invalidFilter")


def test_non_ascii_values_compare_case_insensitively(api):
    """Case folding is the same for stored keys, SQL filters and PATCH value filters, also beyond ASCII."""
    u = api.create_user("Ärger", name={"familyName": "MÜLLER", "givenName": "Jürgen"}, title="ÉQUIPE",
                        emails=[{"value": "JÜRGEN@example.de", "type": "work"}])
    other = api.create_user("plain", name={"familyName": "Muller"})
    for f in ('userName eq "ärger"', 'userName eq "ÄRGER"', 'name.familyName eq "müller"',
              'name.familyName eq "MÜLLER"', 'name.familyName sw "MÜ"', 'name.givenName co "ÜRG"',
              'title ew "équipe"', 'emails[type eq "work"].value eq "JÜRGEN@example.de"',
              'emails.value eq "jürgen@EXAMPLE.de"', 'emails[value co "jÜ"]'):
        assert api.ids("/Users?filter=" + quote(f)) == {u["id"]}, f
    assert api.ids("/Users?filter=" + quote('name.familyName eq "muller"')) == {other["id"]}
    resp = api.patch(f"/Users/{u['id']}", {"op": "replace", "path": 'emails[value eq "jürgen@example.DE"].type',
                                           "value": "home"})
    assert resp.status_code == 200 and resp.get_json()["emails"] == [{"value": "JÜRGEN@example.de", "type": "home"}]
