"""Versions and ETags (RFC 7644 §3.14): meta.version, If-None-Match, If-Match."""

from __future__ import annotations

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_meta_version_equals_etag_header(api):
    resp = api.post("/Users", {"schemas": [USER], "userName": "etag"})
    body = resp.get_json()
    assert resp.status_code == 201 and resp.headers["ETag"] == body["meta"]["version"]
    for r in (api.get(f"/Users/{body['id']}"),
              api.patch(f"/Users/{body['id']}", {"op": "add", "path": "title", "value": "x"}),
              api.put(f"/Users/{body['id']}", {"schemas": [USER], "userName": "etag"})):
        assert r.status_code == 200 and r.headers["ETag"] == r.get_json()["meta"]["version"]
    listed = api.listing(api.get("/Users"))["Resources"][0]
    assert listed["meta"]["version"] == api.get(f"/Users/{body['id']}").headers["ETag"]
    g = api.post("/Groups", {"schemas": [GROUP], "displayName": "etag"})
    assert g.headers["ETag"] == g.get_json()["meta"]["version"]


def test_if_none_match_gives_304(api):
    u = api.create_user("inm")
    version = u["meta"]["version"]
    resp = api.get(f"/Users/{u['id']}", headers={"If-None-Match": version})
    assert resp.status_code == 304 and resp.data == b"" and resp.headers["ETag"] == version
    assert api.get(f"/Users/{u['id']}", headers={"If-None-Match": f'W/"other", {version}'}).status_code == 304
    assert api.get(f"/Users/{u['id']}", headers={"If-None-Match": "*"}).status_code == 304
    resp = api.get(f"/Users/{u['id']}", headers={"If-None-Match": 'W/"999"'})
    assert resp.status_code == 200 and resp.get_json()["id"] == u["id"]
    api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "x"})
    resp = api.get(f"/Users/{u['id']}", headers={"If-None-Match": version})  # stale tag: full answer
    assert resp.status_code == 200 and resp.get_json()["title"] == "x"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_mismatch_is_412_and_changes_nothing(api, method):
    u = api.create_user("im", title="T")
    body = {"PUT": {"schemas": [USER], "userName": "im", "title": "changed"},
            "PATCH": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "title", "value": "changed"}]},
            "DELETE": None}[method]
    resp = api.request(method, f"/Users/{u['id']}", body, headers={"If-Match": 'W/"41"'})
    api.error(resp, 412)
    assert api.read("Users", u["id"]) == u


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("tag", ["current", "*", "list"])
def test_matching_if_match_succeeds(api, method, tag):
    g = api.create_group("im-ok")
    header = {"current": g["meta"]["version"], "*": "*", "list": f'W/"0", {g["meta"]["version"]}'}[tag]
    body = {"PUT": {"schemas": [GROUP], "displayName": "im-ok-2"},
            "PATCH": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "displayName", "value": "im-ok-2"}]},
            "DELETE": None}[method]
    resp = api.request(method, f"/Groups/{g['id']}", body, headers={"If-Match": header})
    if method == "DELETE":
        assert resp.status_code == 204
        api.error(api.get(f"/Groups/{g['id']}"), 404)
    else:
        assert resp.status_code == 200 and resp.get_json()["displayName"] == "im-ok-2"


def test_version_changes_after_each_effective_write(api):
    u = api.create_user("versions")
    g = api.create_group("versions")
    seen = {u["meta"]["version"]}

    def step(resp):
        assert resp.status_code == 200, resp.get_data(as_text=True)
        version = resp.get_json()["meta"]["version"]
        assert version not in seen and resp.headers["ETag"] == version
        seen.add(version)
        return resp.get_json()

    step(api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "a"}))
    step(api.put(f"/Users/{u['id']}", {"schemas": [USER], "userName": "versions", "title": "b"}))
    step(api.patch(f"/Users/{u['id']}", {"op": "replace", "value": {"active": False}}))
    last = step(api.patch(f"/Users/{u['id']}", {"op": "remove", "path": "title"}))
    # an old tag no longer matches
    api.error(api.patch(f"/Users/{u['id']}", {"op": "add", "path": "title", "value": "c"},
                        headers={"If-Match": u["meta"]["version"]}), 412)
    # a write that changes nothing keeps the version (the representation did not change)
    same = api.patch(f"/Users/{u['id']}", {"op": "replace", "path": "active", "value": False})
    assert same.status_code == 200 and same.get_json()["meta"]["version"] == last["meta"]["version"]
    # membership changes are writes of the group
    gv = {g["meta"]["version"]}
    for op in ({"op": "add", "path": "members", "value": [{"value": u["id"]}]},
               {"op": "remove", "path": f'members[value eq "{u["id"]}"]'}):
        resp = api.patch(f"/Groups/{g['id']}", op)
        assert resp.status_code == 200 and resp.get_json()["meta"]["version"] not in gv
        gv.add(resp.get_json()["meta"]["version"])


def test_derived_attributes_change_the_version(client, auth_headers) -> None:  # type: ignore[no-untyped-def]
    """``groups`` of a user and ``members`` of a group are part of their representations: a change to them gives
    a new ``meta.version``, so If-None-Match never gets 304 for a stale representation (RFC 7644 §3.14)."""
    h = {**auth_headers["org-a"], "Content-Type": "application/scim+json"}
    base = "/realms/r1/scim/v2/organizations/org-a"
    user = client.post(f"{base}/Users", headers=h, json={"userName": "derived@example.com"}).get_json()
    other = client.post(f"{base}/Users", headers=h, json={"userName": "other@example.com"}).get_json()
    group = client.post(f"{base}/Groups", headers=h, json={"displayName": "Derived"}).get_json()

    def etag(path: str) -> str:
        resp = client.get(path, headers=h)
        assert resp.status_code == 200
        return resp.headers["ETag"]

    def still_current(path: str, tag: str) -> bool:
        return client.get(path, headers={**h, "If-None-Match": tag}).status_code == 304

    u, g = f"{base}/Users/{user['id']}", f"{base}/Groups/{group['id']}"
    steps = [
        ("add member", lambda: client.patch(g, headers=h, json={"Operations": [
            {"op": "add", "path": "members", "value": [{"value": user["id"]}, {"value": other["id"]}]}]}), [u, g]),
        ("rename group", lambda: client.patch(g, headers=h, json={"Operations": [
            {"op": "replace", "path": "displayName", "value": "Renamed"}]}), [u, g]),
        ("delete a member", lambda: client.delete(f"{base}/Users/{other['id']}", headers=h), [g]),
        ("delete group", lambda: client.delete(g, headers=h), [u]),
    ]
    for name, action, changed in steps:
        before = {path: etag(path) for path in changed}
        assert action().status_code in (200, 204), name
        for path in changed:
            assert not still_current(path, before[path]), f"{name}: {path} kept its version"
    assert client.get(u, headers=h).get_json().get("groups") is None
