"""Malformed input is never a 5xx: every bad request gets a 4xx with a SCIM Error body."""

from __future__ import annotations

import json

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

NOT_JSON = [b"{", b"{'userName': 'x'}", b"nul", b"\x00", b"\xff\xfe{}", b"[1,]", b'{"userName": "x",}',
            b'{"userName": "x"} trailing', b"\xef\xbb\xbf", b'{"a":"\\ud800"', b"<xml/>", b"userName=x"]
NOT_OBJECTS = [b"[]", b"[{}]", b'"x"', b"5", b"null", b"true", b"-1.5e3"]
EMPTY = [b"", b"   ", b"\n\t"]

USER_BAD_TYPES = [
    {"userName": 123}, {"userName": []}, {"userName": {"value": "x"}}, {"userName": True}, {"userName": None},
    {"userName": ""}, {"userName": "   "}, {"userName": 1e400}, {"name": "x"}, {"name": [1]},
    {"name": {"givenName": 5}},
    {"active": "maybe"}, {"active": 1}, {"active": [True]}, {"emails": "x"}, {"emails": [1]},
    {"emails": [{"value": 1}]}, {"emails": [{"value": "a@b", "primary": "sometimes"}]}, {"emails": ["a@b"]},
    {"emails": {"value": 5}}, {ENT: "x"}, {ENT: [1]},
    {ENT: {"manager": 5}}, {ENT: {"employeeNumber": {"x": 1}}}, {"externalId": 5}, {"externalId": ["x"]},
    {"title": True}, {"addresses": [{"primary": "x"}]}, {"x509Certificates": [{"value": 7}]},
    {"name": {"givenName": {"a": {"b": {"c": 1}}}}},
]
GROUP_BAD_TYPES = [{"displayName": 5}, {"displayName": None}, {"displayName": ""}, {"displayName": ["x"]},
                   {"displayName": "g", "members": "x"}, {"displayName": "g", "members": [{"value": 5}]},
                   {"displayName": "g", "members": [5]}, {"displayName": "g", "members": [{"display": "no value"}]}]


def check_error(resp, status=None):
    assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert 400 <= resp.status_code, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(resp.status_code)
    if status is not None:
        assert resp.status_code == status, body
    return body


@pytest.fixture
def targets(api):
    u = api.create_user("target")
    g = api.create_group("target")
    return [("POST", "/Users"), ("POST", "/Groups"), ("PUT", f"/Users/{u['id']}"), ("PUT", f"/Groups/{g['id']}"),
            ("PATCH", f"/Users/{u['id']}"), ("PATCH", f"/Groups/{g['id']}"), ("POST", "/Users/.search"),
            ("POST", "/.search"), ("POST", "/Bulk")]


def test_invalid_json_non_objects_and_empty_bodies_are_400(api, targets):
    for method, path in targets:
        for raw in NOT_JSON + NOT_OBJECTS + EMPTY:
            for ctype in ("application/scim+json", "application/json", "application/json; charset=utf-8"):
                resp = api.request(method, path, raw=raw, headers={"Content-Type": ctype})
                body = check_error(resp, 400)
                assert body["scimType"] == "invalidSyntax", (method, path, raw, body)
    assert api.listing(api.get("/Users"))["totalResults"] == 1


def test_missing_body_entirely(api, targets):
    for method, path in targets:
        resp = api.client.open(api.base + path, method=method, headers=api.headers)
        check_error(resp, 400)


def test_wrong_types_are_400(api):
    u = api.create_user("typed")
    for bad in USER_BAD_TYPES:
        body = {"schemas": [USER], "userName": "fine", **bad}
        for resp in (api.post("/Users", body), api.put(f"/Users/{u['id']}", body)):
            check_error(resp, 400)
        if "userName" not in bad:
            patch = api.patch(f"/Users/{u['id']}", {"op": "replace", "value": bad})
            check_error(patch, 400)
    g = api.create_group("typed")
    for bad in GROUP_BAD_TYPES:
        body = {"schemas": [GROUP], **bad}
        for resp in (api.post("/Groups", body), api.put(f"/Groups/{g['id']}", body)):
            check_error(resp, 400)
    assert api.read("Users", u["id"]) == u
    assert api.read("Groups", g["id"]) == g
    assert api.listing(api.get("/Users"))["totalResults"] == 1


def test_huge_body_is_413(api, targets):
    huge = json.dumps({"schemas": [USER], "userName": "x" * (1 << 20)})
    for method, path in targets:
        body = check_error(api.request(method, path, raw=huge), 413)
        assert body["detail"]
    assert api.listing(api.get("/Users"))["totalResults"] == 1


def test_deeply_nested_json_is_400(api, targets):
    arrays = "[" * 100_000
    closed_arrays = "[" * 10_000 + "]" * 10_000
    objects = '{"a":' * 100 + "1" + "}" * 100
    in_attr = json.dumps({"schemas": [USER], "userName": "deep"})[:-1] + ', "name": ' + objects + "}"
    for method, path in targets:
        for raw in (arrays, closed_arrays, objects, in_attr):
            check_error(api.request(method, path, raw=raw), 400)


def test_unknown_paths_are_404(api):
    u = api.create_user("x")
    for method, path in [("GET", "/Foo"), ("GET", "/Users/x/y"), ("GET", f"/Users/{u['id']}/groups"),
                         ("POST", "/Userz"), ("GET", "/users"), ("DELETE", "/Users"),
                         ("GET", "/Groups/%00"), ("GET", "/Users/..%2F..%2Fetc"), ("GET", "/v2/Users"),
                         ("GET", "/Me"), ("PATCH", "/Groups"), ("GET", "/" + "a" * 5000)]:
        check_error(api.request(method, path), 404)


@pytest.mark.parametrize("query", ["startIndex=abc", "count=x", "count=1.5", "startIndex=1e3", "count=%00",
                                   "sortOrder=sideways", "startIndex=one&count=two", "count=--1"])
def test_bad_paging_values_are_400(api, query):
    check_error(api.get(f"/Users?{query}"), 400)
    check_error(api.get(f"/Groups?{query}"), 400)


@pytest.mark.parametrize("body", [{"startIndex": "abc"}, {"count": "x"}, {"count": [1]}, {"filter": 5},
                                  {"filter": ["userName pr"]}, {"attributes": 5}, {"sortBy": 5},
                                  {"sortOrder": "up"}, {"filter": "userName"}])
def test_bad_search_requests_are_400(api, body):
    check_error(api.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                            **body}), 400)


def test_odd_but_harmless_queries_do_not_fail(api):
    api.create_user("odd")
    for query in ("startIndex=" + "9" * 40, "count=" + "9" * 40, "count=&startIndex=", "attributes=,,",
                  "excludedAttributes=nosuch", "attributes=urn:nope:x", "filter=userName%20pr&filter=bad"):
        resp = api.get(f"/Users?{query}")
        assert resp.status_code in (200, 400), (query, resp.status_code)
        if resp.status_code == 400:
            check_error(resp)


def test_many_bad_requests_never_5xx(api):
    """A sweep over request shapes: nothing may answer 5xx, every error carries a SCIM Error body."""
    u = api.create_user("sweep")
    g = api.create_group("sweep", members=[{"value": u["id"]}])
    weird_values = [None, True, 0, -1, 1e308, "", "x" * 10_000, [], [None], {}, {"": None}, "\u0000", "\udcff",
                    ["\ud800"], {"value": None}]
    paths = [None, "", "title", "name", "name.givenName", "emails", 'emails[type eq "work"]',
             'emails[type eq "work"].value', "members", 'members[value eq "x"]', ENT, f"{ENT}:manager",
             f"{ENT}:manager.value", "meta", "id", "[", "]", ".", "a.b.c.d", "urn:", "emails[", '"', "\u0000"]
    count = 0
    for target in (f"/Users/{u['id']}", f"/Groups/{g['id']}"):
        for op in ("add", "replace", "remove", "ADD"):
            for path in paths:
                for value in weird_values:
                    operation = {"op": op, "value": value}
                    if path is not None:
                        operation["path"] = path
                    resp = api.patch(target, operation)
                    count += 1
                    assert resp.status_code < 500, (target, operation, resp.get_data(as_text=True)[:300])
                    if resp.status_code >= 400:
                        check_error(resp)
    for key in ("userName", "displayName", "name", "emails", "members", ENT, "active", "schemas", "meta", "id",
                "externalId", "groups", "password"):
        for value in weird_values:
            for path in ("/Users", "/Groups"):
                resp = api.post(path, {"schemas": [USER, GROUP], "userName": "s2", "displayName": "s2", key: value})
                count += 1
                assert resp.status_code < 500, (path, key, value, resp.get_data(as_text=True)[:300])
                if resp.status_code >= 400:
                    check_error(resp)
                elif resp.status_code == 201:
                    assert api.delete(f"{path}/{resp.get_json()['id']}").status_code == 204
    assert count > 1000
