"""PATCH (RFC 7644 §3.5.2): every path form × add/replace/remove, and the errors with their scimType.

Each case compares the whole resulting resource (minus id/meta) with the expected one, in the PATCH answer and in
a later GET, so a change to anything besides the target fails the test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WORK = {"value": "w@example.com", "type": "work", "primary": True}
HOME = {"value": "h@example.com", "type": "home"}
BASE: dict[str, Any] = {
    "schemas": [USER, ENT], "userName": "patchy", "title": "T",
    "name": {"givenName": "G", "familyName": "F"},
    "emails": [WORK, HOME],
    ENT: {"employeeNumber": "1", "manager": {"value": "m1"}},
}


def change(fn: Callable[[dict[str, Any]], None]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        out = copy.deepcopy(BASE)
        fn(out)
        if ENT not in out:
            out["schemas"] = [USER]
        return out
    return build


def put(key, value):
    def fn(d):
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
    return fn


def ent(key, value):
    def fn(d):
        if value is None:
            d[ENT].pop(key)
        else:
            d[ENT][key] = value
    return fn


CASES = [
    # -- no path
    ("none", "add", None, {"nickName": "N", "name": {"middleName": "M"}},
     change(lambda d: (d.update(nickName="N"), d["name"].update(middleName="M")))),
    ("none", "replace", None, {"title": "T2", "name": {"givenName": "G2"}},
     change(lambda d: (d.update(title="T2"), d["name"].update(givenName="G2")))),
    # -- simple
    ("simple", "add", "nickName", "N", change(put("nickName", "N"))),
    ("simple", "add", "title", "T2", change(put("title", "T2"))),
    ("simple", "add", "emails", [{"value": "o@example.com", "type": "other"}],
     change(put("emails", [WORK, HOME, {"value": "o@example.com", "type": "other"}]))),
    ("simple", "add", "name", {"middleName": "M"}, change(lambda d: d["name"].update(middleName="M"))),
    ("simple", "replace", "title", "T2", change(put("title", "T2"))),
    ("simple", "replace", "emails", [{"value": "o@example.com"}], change(put("emails", [{"value": "o@example.com"}]))),
    ("simple", "replace", "name", {"givenName": "G2"}, change(lambda d: d["name"].update(givenName="G2"))),
    ("simple", "remove", "title", None, change(put("title", None))),
    ("simple", "remove", "emails", None, change(put("emails", None))),
    ("simple", "remove", "name", None, change(put("name", None))),
    ("simple", "remove", "nickName", None, change(lambda d: None)),  # absent already: a no-op, not noTarget
    # -- sub-attribute
    ("sub", "add", "name.middleName", "M", change(lambda d: d["name"].update(middleName="M"))),
    ("sub", "replace", "name.givenName", "G2", change(lambda d: d["name"].update(givenName="G2"))),
    ("sub", "remove", "name.familyName", None, change(lambda d: d["name"].pop("familyName"))),
    ("sub", "add", "addresses.locality", "Oslo", change(put("addresses", [{"locality": "Oslo"}]))),
    # -- value-path filter
    ("filter", "add", 'emails[type eq "work"]', {"display": "W"},
     change(put("emails", [{**WORK, "display": "W"}, HOME]))),
    ("filter", "replace", 'emails[type eq "work"]', {"value": "n@example.com"},
     change(put("emails", [{"type": "work", "value": "n@example.com"}, HOME]))),
    ("filter", "remove", 'emails[type eq "work"]', None, change(put("emails", [HOME]))),
    ("filter", "remove", 'emails[type eq "other"]', None, change(lambda d: None)),
    ("filter", "remove", 'emails[type eq "work" or type eq "home"]', None, change(put("emails", None))),
    # -- value-path filter + sub-attribute
    ("filter.sub", "add", 'emails[type eq "home"].display', "H",
     change(put("emails", [WORK, {**HOME, "display": "H"}]))),
    ("filter.sub", "replace", 'emails[type eq "work"].value', "z@example.com",
     change(put("emails", [{**WORK, "value": "z@example.com"}, HOME]))),
    ("filter.sub", "replace", 'emails[value eq "h@example.com"].primary', True,
     change(put("emails", [WORK, {**HOME, "primary": True}]))),
    ("filter.sub", "remove", 'emails[type eq "work"].primary', None,
     change(put("emails", [{"value": "w@example.com", "type": "work"}, HOME]))),
    # -- extension URN prefix: attribute
    ("urn:attr", "add", f"{ENT}:department", "D", change(ent("department", "D"))),
    ("urn:attr", "replace", f"{ENT}:employeeNumber", "2", change(ent("employeeNumber", "2"))),
    ("urn:attr", "remove", f"{ENT}:employeeNumber", None, change(ent("employeeNumber", None))),
    ("urn:attr", "add", f"{ENT}:manager", {"value": "m2", "$ref": "../Users/m2"},
     change(ent("manager", {"value": "m2", "$ref": "../Users/m2"}))),
    # -- extension URN prefix: sub-attribute
    ("urn:sub", "add", f"{ENT}:manager.$ref", "../Users/m1", change(ent("manager", {"value": "m1",
                                                                                  "$ref": "../Users/m1"}))),
    ("urn:sub", "replace", f"{ENT}:manager.value", "m2", change(ent("manager", {"value": "m2"}))),
    ("urn:sub", "remove", f"{ENT}:manager.value", None, change(ent("manager", None))),
    # -- whole extension
    ("urn", "add", ENT, {"schemas": [ENT], "department": "D"}, change(ent("department", "D"))),
    ("urn", "replace", ENT, {"employeeNumber": "9"}, change(ent("employeeNumber", "9"))),
    ("urn", "remove", ENT, None, change(put(ENT, None))),
]


@pytest.mark.parametrize(("form", "op", "path", "value", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_patch_path_forms(api, form, op, path, value, expected):
    created = api.create_user(**{k: v for k, v in copy.deepcopy(BASE).items() if k != "schemas"})
    operation: dict[str, Any] = {"op": op}
    if path is not None:
        operation["path"] = path
    if op != "remove":
        operation["value"] = value
    resp = api.patch(f"/Users/{created['id']}", operation)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    want = expected()
    for body in (resp.get_json(), api.read("Users", created["id"])):
        got = {k: v for k, v in body.items() if k not in ("id", "meta")}
        assert got == want


def test_group_member_path_forms(api):
    a, b, c = (api.create_user(f"gm-{i}")["id"] for i in range(3))
    g = api.create_group("paths")["id"]

    def members(resp):
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return sorted(m["value"] for m in resp.get_json().get("members", []))

    assert members(api.patch(f"/Groups/{g}", {"op": "add", "path": "members", "value": [{"value": a}]})) == [a]
    assert members(api.patch(f"/Groups/{g}", {"op": "add", "value": {"members": [{"value": b}]}})) == sorted([a, b])
    assert members(api.patch(f"/Groups/{g}", {"op": "replace", "path": "members",
                                              "value": [{"value": c}, {"value": a}]})) == sorted([a, c])
    assert members(api.patch(f"/Groups/{g}", {"op": "remove", "path": f'members[value eq "{c}"]'})) == [a]
    assert members(api.patch(f"/Groups/{g}", {"op": "replace", "value": {"members": [{"value": b}]}})) == [b]
    assert members(api.patch(f"/Groups/{g}", {"op": "remove", "path": "members"})) == []
    api.error(api.patch(f"/Groups/{g}", {"op": "add", "path": f'members[value eq "{a}"].display', "value": "x"}),
              400, "mutability")


def test_remove_without_path_is_400_noTarget(api):
    u = api.create_user("no-target", title="T")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "remove"}), 400, "noTarget")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "remove", "value": {"title": "T"}}), 400, "noTarget")
    assert api.read("Users", u["id"])["title"] == "T"


READ_ONLY = [("add", "id", "x"), ("replace", "id", "x"), ("remove", "id", None), ("replace", "meta", {}),
             ("replace", "meta.created", "2000-01-01T00:00:00Z"), ("remove", "meta", None),
             ("add", "groups", [{"value": "g"}]), ("replace", "groups", []), ("remove", "groups", None),
             ('remove', 'groups[value eq "g"]', None), ("replace", "schemas", [USER]),
             ("replace", f"{ENT}:manager.displayName", "Boss"), ("add", "manager.displayName", "Boss")]


@pytest.mark.parametrize(("op", "path", "value"), READ_ONLY, ids=[f"{o}-{p}" for o, p, _ in READ_ONLY])
def test_read_only_targets_are_400_mutability(api, op, path, value):
    u = api.create_user("ro", **{ENT: {"manager": {"value": "m"}}})
    operation = {"op": op, "path": path}
    if op != "remove":
        operation["value"] = value
    api.error(api.patch(f"/Users/{u['id']}", operation), 400, "mutability")
    after = api.read("Users", u["id"])
    assert after["id"] == u["id"] and after["meta"] == u["meta"]


@pytest.mark.parametrize("op", ["copy", "move", "", None, 5, "ad d", ["add"], "test"])
def test_bad_op_is_400_invalidSyntax(api, op):
    u = api.create_user("bad-op")
    operation = {"path": "title", "value": "x"}
    if op is not None:
        operation["op"] = op
    api.error(api.patch(f"/Users/{u['id']}", operation), 400, "invalidSyntax")


@pytest.mark.parametrize("body", [{}, {"Operations": []}, {"Operations": {"op": "add"}}, {"Operations": ["add"]},
                                  {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}, [], "add"])
def test_malformed_patch_bodies_are_400_invalidSyntax(api, body):
    u = api.create_user("bad-body")
    api.error(api.request("PATCH", f"/Users/{u['id']}", body), 400, "invalidSyntax")


MALFORMED = ['emails[type eq "work"', "emails]", "name..givenName", 'emails[type eq "work"]x', "nosuch",
             "urn:unknown:schema:2.0:User:attr", "name.nosuch", 'title[value eq "x"]',
             'emails[type eq "work"].value.x', f"{ENT}:nosuch", 'emails[type eq "work"].nosuch', 5, ["title"]]


@pytest.mark.parametrize("path", MALFORMED, ids=[str(p) for p in MALFORMED])
def test_malformed_paths_are_400_invalidPath(api, path):
    u = api.create_user("bad-path")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": path, "value": "x"}), 400, "invalidPath")


@pytest.mark.parametrize("path", ["emails[type eq]", 'emails[nosuch eq "x"]', "emails[]", 'emails[type xx "w"]'])
def test_bad_filter_in_path_is_400_invalidFilter(api, path):
    """RFC 7644 §3.12 table 9 lists invalidFilter for a PATCH path filter."""
    u = api.create_user("bad-path-filter")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": path, "value": "x"}), 400, "invalidFilter")


def test_missing_value_is_400(api):
    u = api.create_user("no-value")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title"}), 400, "invalidValue")


@pytest.mark.parametrize(("path", "value"), [("active", "maybe"), ("name", "x"), ("emails", 5),
                                             ("title", {"a": 1}), ("emails", [{"value": 5}]),
                                             ("userName", 123), ("userName", "")])
def test_wrong_types_are_400_invalidValue(api, path, value):
    u = api.create_user("typed")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": path, "value": value}), 400, "invalidValue")


def test_patch_is_atomic(api):
    u = api.create_user("atomic", title="T")
    api.error(api.patch(f"/Users/{u['id']}", {"op": "replace", "path": "title", "value": "changed"},
                        {"op": "replace", "path": "nosuch", "value": "x"}), 400, "invalidPath")
    after = api.read("Users", u["id"])
    assert after["title"] == "T" and after["meta"]["version"] == u["meta"]["version"]


def test_operations_apply_in_order(api):
    u = api.create_user("ordered")
    body = api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "one"},
                     {"op": "remove", "path": "title"}, {"op": "add", "path": "nickName", "value": "n"},
                     {"op": "replace", "path": "nickName", "value": "m"}).get_json()
    assert "title" not in body and body["nickName"] == "m"
