"""Bulk (RFC 7644 §3.7): methods, bulkId references, failOnErrors, per-operation status, limits."""

from __future__ import annotations

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK_REQ = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESP = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def bulk(api, ops, **extra):
    resp = api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": ops, **extra})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body["schemas"] == [BULK_RESP]
    for op in body["Operations"]:
        assert isinstance(op["status"], str), op
    return body["Operations"]


def test_all_methods_with_status_strings(api):
    victim = api.create_user("bulk-victim")
    target = api.create_user("bulk-target")
    results = bulk(api, [
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": "bulk-1"}},
        {"method": "PUT", "path": f"/Users/{target['id']}", "version": target["meta"]["version"],
         "data": {"schemas": [USER], "userName": "bulk-target", "title": "put"}},
        {"method": "PATCH", "path": f"/Users/{target['id']}",
         "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "nickName", "value": "patched"}]}},
        {"method": "DELETE", "path": f"/Users/{victim['id']}"},
    ])
    assert [(r["method"], r["status"]) for r in results] == [("POST", "201"), ("PUT", "200"), ("PATCH", "200"),
                                                             ("DELETE", "204")]
    assert results[0]["bulkId"] == "u1"
    new_id = results[0]["location"].rsplit("/", 1)[1]
    assert results[0]["location"] == api.read("Users", new_id)["meta"]["location"]
    assert results[0]["version"] == 'W/"1"'
    after = api.read("Users", target["id"])
    assert after["title"] == "put" and after["nickName"] == "patched"
    assert results[2]["version"] == after["meta"]["version"]
    api.error(api.get(f"/Users/{victim['id']}"), 404)


def test_bulkid_references_including_forward_ones(api):
    results = bulk(api, [
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
            "schemas": [GROUP], "displayName": "Bulk Team",
            "members": [{"value": "bulkId:alice", "type": "User"}, {"value": "bulkId:bob", "type": "User"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "alice", "data": {"schemas": [USER], "userName": "b-alice"}},
        {"method": "PATCH", "path": "/Users/bulkId:bob", "data": {
            "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "late"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "bob", "data": {"schemas": [USER], "userName": "b-bob"}},
    ])
    by_id = {r.get("bulkId") or r["method"]: r for r in results}
    assert len(results) == 4 and all(r["status"] in ("200", "201") for r in results), results
    alice = by_id["alice"]["location"].rsplit("/", 1)[1]
    bob = by_id["bob"]["location"].rsplit("/", 1)[1]
    group = by_id["g"]["location"].rsplit("/", 1)[1]
    assert sorted(m["value"] for m in api.read("Groups", group)["members"]) == sorted([alice, bob])
    assert api.read("Users", bob)["title"] == "late"
    groups_of_alice = api.read("Users", alice)["groups"]
    assert [x["value"] for x in groups_of_alice] == [group]


def test_undefined_and_circular_bulkids_fail_per_operation(api):
    results = bulk(api, [
        {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {
            "schemas": [GROUP], "displayName": "A", "members": [{"value": "bulkId:b"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {
            "schemas": [GROUP], "displayName": "B", "members": [{"value": "bulkId:a"}]}},
        {"method": "PATCH", "path": "/Users/bulkId:nobody", "data": {
            "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "x"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "ok", "data": {"schemas": [USER], "userName": "fine"}},
    ])
    status = {r.get("bulkId", r["method"]): r["status"] for r in results}
    assert status["ok"] == "201"
    for key in ("a", "b", "PATCH"):
        assert int(status[key]) >= 400, results
    for r in results:
        if int(r["status"]) >= 400:
            assert r["response"]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert r["response"]["status"] == r["status"]
    assert api.ids("/Groups") == set()


def test_fail_on_errors_stops_after_n_errors(api):
    ops = [
        {"method": "POST", "path": "/Users", "bulkId": "bad1", "data": {"schemas": [USER]}},
        {"method": "POST", "path": "/Users", "bulkId": "good1", "data": {"schemas": [USER], "userName": "g1"}},
        {"method": "POST", "path": "/Users", "bulkId": "bad2", "data": {"schemas": [USER], "userName": "g1"}},
        {"method": "POST", "path": "/Users", "bulkId": "good2", "data": {"schemas": [USER], "userName": "g2"}},
    ]
    results = bulk(api, ops, failOnErrors=2)
    assert [(r["bulkId"], r["status"]) for r in results] == [("bad1", "400"), ("good1", "201"), ("bad2", "409")]
    assert results[2]["response"]["scimType"] == "uniqueness"
    names = {u["userName"] for u in api.listing(api.get("/Users"))["Resources"]}
    assert names == {"g1"}


def test_fail_on_errors_one_stops_at_the_first_error(api):
    results = bulk(api, [
        {"method": "DELETE", "path": "/Users/unknown-id"},
        {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": [USER], "userName": "never"}},
    ], failOnErrors=1)
    assert [(r["method"], r["status"]) for r in results] == [("DELETE", "404")]
    assert api.ids("/Users") == set()


def test_without_fail_on_errors_every_operation_runs(api):
    results = bulk(api, [
        {"method": "POST", "path": "/Users", "bulkId": "e1", "data": {"schemas": [USER], "userName": 5}},
        {"method": "POST", "path": "/Nowhere", "bulkId": "e2", "data": {"schemas": [USER], "userName": "n"}},
        {"method": "GET", "path": "/Users"},
        {"method": "POST", "path": "/Users", "data": {"schemas": [USER], "userName": "no-bulk-id"}},
        {"method": "POST", "path": "/Users", "bulkId": "fine", "data": {"schemas": [USER], "userName": "fine"}},
    ])
    assert [r["status"] for r in results] == ["400", "404", "400", "400", "201"]


def test_too_many_operations_is_413(api):
    ops = [{"method": "DELETE", "path": f"/Users/x{i}"} for i in range(1001)]
    body = api.error(api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": ops}), 413)
    assert "1000" in body["detail"]
    spc = api.get("/ServiceProviderConfig").get_json()
    assert spc["bulk"]["maxOperations"] == 1000 and spc["bulk"]["supported"] is True
    assert len(bulk(api, ops[:1000])) == 1000  # the published maximum itself is accepted


def test_malformed_bulk_requests(api):
    api.error(api.post("/Bulk", {"schemas": [BULK_REQ]}), 400, "invalidSyntax")
    api.error(api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": {}}), 400, "invalidSyntax")
    api.error(api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": [], "failOnErrors": "x"}), 400, "invalidValue")
    api.error(api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": [], "failOnErrors": 0}), 400, "invalidValue")
    results = bulk(api, ["not an object", {"method": "POST"}])
    assert [r["status"] for r in results] == ["400", "400"]
