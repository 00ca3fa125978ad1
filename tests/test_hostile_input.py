"""Hostile input never reaches a 500, and one request cannot take unbounded CPU (issue 9).

Each case here answered 500 (or 201 for input that should be refused, or took minutes) on 84ab25c.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from conftest import ERROR_URN, GROUP_URN, PATCH_URN, USER_URN

from orgscim.model import filter as flt
from orgscim.scim import limits as scim_limits

BULK_REQ = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def count_users(api: Any) -> int:
    return api.listing(api.get("/Users?count=0"))["totalResults"]


class CallBudget:
    """Fails the code under it once it has made ``limit`` Python calls: a bound on work, not on time."""

    def __init__(self, limit: int) -> None:
        self.limit, self.calls = limit, 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            self.calls += 1
            if self.calls > self.limit:
                sys.setprofile(None)
                raise RuntimeError(f"more than {self.limit} calls")

    def __enter__(self) -> CallBudget:
        sys.setprofile(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(None)


# -- filters ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("joiner", [" or ", " and "])
def test_eighty_term_filter_is_answered(api: Any, joiner: str) -> None:
    """~80 terms overflowed SQLite's parser stack (nested parentheses per term): 500."""
    api.create_user("term-7@example.com")
    text = joiner.join(f'userName eq "term-{i}@example.com"' for i in range(80))
    assert len(text) < flt.MAX_FILTER_LENGTH
    body = api.listing(api.get("/Users", query_string={"filter": text}))
    assert body["totalResults"] == (1 if joiner == " or " else 0)


def test_too_many_terms_is_invalid_filter(api: Any) -> None:
    text = " or ".join("title pr" for _ in range(flt.MAX_TERMS + 1))
    assert len(text) < flt.MAX_FILTER_LENGTH
    api.error(api.get("/Users", query_string={"filter": text}), 400, "invalidFilter")
    nested = " or ".join("(title pr and (nickName pr or not (displayName pr)))" for _ in range(flt.MAX_TERMS // 3))
    api.listing(api.get("/Users", query_string={"filter": nested}))


# -- bodies -------------------------------------------------------------------------------------------
def test_nul_in_a_string_is_refused(api: Any) -> None:
    before = count_users(api)
    api.error(api.post("/Users", {"schemas": [USER_URN], "userName": "nul\u0000user"}), 400, "invalidSyntax")
    api.error(api.post("/Users", {"schemas": [USER_URN], "userName": "ok", "name": {"givenName": "a\u0000"}}),
              400, "invalidSyntax")
    assert count_users(api) == before


@pytest.mark.parametrize("number", ["1e999999", "-1e999999", "Infinity", "NaN"])
def test_numbers_out_of_range_are_refused(api: Any, number: str) -> None:
    before = count_users(api)
    raw = '{"schemas": ["' + USER_URN + '"], "userName": "num-user", "x": ' + number + "}"
    api.error(api.post("/Users", raw=raw), 400, "invalidSyntax")
    assert count_users(api) == before


def test_text_plain_is_unsupported_media_type(api: Any) -> None:
    raw = json.dumps({"schemas": [USER_URN], "userName": "plain-text-user"})
    resp = api.post("/Users", raw=raw, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and resp.get_json()["schemas"] == [ERROR_URN]
    assert count_users(api) == 0
    for ok in ("application/scim+json", "application/json; charset=utf-8", None):
        headers = {"Content-Type": ok} if ok else {"Content-Type": ""}
        assert api.post("/Users", raw=json.dumps({"schemas": [USER_URN], "userName": f"ct-{ok}"}),
                        headers=headers).status_code == 201


# -- bulk -----------------------------------------------------------------------------------------------
def test_bulk_reports_a_bad_version_per_operation_after_earlier_commits(api: Any) -> None:
    """A numeric version raised inside ETag matching: the whole Bulk answered 500 "not applied" although the
    first operation had been committed."""
    target = api.create_user("bulk-version-target")
    resp = api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER_URN], "userName": "bv-1"}},
        {"method": "PATCH", "path": f"/Users/{target['id']}", "version": 3,
         "data": {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}},
        {"method": "DELETE", "path": f"/Users/{target['id']}", "version": {"v": 1}},
    ]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ops = resp.get_json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "400", "400"]
    assert ops[1]["response"]["scimType"] == "invalidValue"
    assert api.read("Users", target["id"]).get("title") is None
    assert count_users(api) == 2


def test_bulk_resolution_is_linear(api: Any) -> None:
    """1,000 operations with 40 unresolved bulkId references each took 316 s (every reference re-scanned every
    operation). The work is bounded by a call budget, not a clock."""
    ops = [{"method": "POST", "path": "/Users", "bulkId": f"o{i}",
            "data": {"userName": f"u{i}", "x": [f"bulkId:r{i}_{j}" for j in range(40)]}} for i in range(1000)]
    raw = json.dumps({"schemas": [BULK_REQ], "Operations": ops}, separators=(",", ":"))
    assert len(raw) < 1_048_576
    with CallBudget(3_000_000):
        resp = api.post("/Bulk", raw=raw)
    assert resp.status_code == 200
    assert {o["status"] for o in resp.get_json()["Operations"]} == {"409"}


def test_bulk_forward_references_and_cycles_still_resolve(api: Any) -> None:
    resp = api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"schemas": [GROUP_URN], "displayName": "fwd", "members": [{"value": "bulkId:u"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"schemas": [USER_URN], "userName": "fwd-u"}},
        {"method": "POST", "path": "/Groups", "bulkId": "c1",
         "data": {"schemas": [GROUP_URN], "displayName": "c1", "members": [{"value": "bulkId:c2"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "c2",
         "data": {"schemas": [GROUP_URN], "displayName": "c2", "members": [{"value": "bulkId:c1"}]}},
    ]})
    ops = resp.get_json()["Operations"]
    assert [o["status"] for o in ops] == ["201", "201", "409", "409"]
    group = api.read("Groups", ops[0]["location"].rsplit("/", 1)[1])
    assert [m["value"] for m in group["members"]] == [ops[1]["location"].rsplit("/", 1)[1]]


def test_bulk_references_per_operation_are_capped(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scim_limits, "MAX_BULK_REFERENCES", 5)
    resp = api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
            "schemas": [GROUP_URN], "displayName": "many-refs",
            "members": [{"value": f"bulkId:x{i}"} for i in range(6)]}},
    ]})
    op = resp.get_json()["Operations"][0]
    assert op["status"] == "400" and "at most 5 bulkIds" in op["response"]["detail"]


# -- CPU per request -----------------------------------------------------------------------------------
def test_group_list_pages_stop_at_the_member_budget(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /Groups?count=1000 loaded every member of every group; a page now holds at most MAX_LISTED_MEMBERS
    member rows (at least one group), and paging on from itemsPerPage reaches every group."""
    monkeypatch.setattr(scim_limits, "MAX_LISTED_MEMBERS", 5)
    users = [api.create_user(f"lm-{i}")["id"] for i in range(3)]
    for i in range(4):
        api.create_group(f"lg-{i}", members=[{"value": u} for u in users])
    first = api.listing(api.get("/Groups?count=1000"))
    assert first["totalResults"] == 4 and first["itemsPerPage"] == 1 and len(first["Resources"][0]["members"]) == 3
    seen, start = [], 1
    while start <= 4:
        page = api.listing(api.get(f"/Groups?count=1000&startIndex={start}"))
        seen += [g["displayName"] for g in page["Resources"]]
        start += page["itemsPerPage"]
    assert sorted(seen) == [f"lg-{i}" for i in range(4)]
    assert api.listing(api.get("/Groups?count=1000&excludedAttributes=members"))["itemsPerPage"] == 4


def test_patch_member_filters_read_members_once_and_are_capped(api: Any, services: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    users = [api.create_user(f"pm-{i}")["id"] for i in range(3)]
    group = api.create_group("pm", members=[{"value": u} for u in users])
    loads = []
    store_cls = type(services.scim(services.orgs.org("r1", "org-a"), "http://x").store)
    real = store_cls.members
    monkeypatch.setattr(store_cls, "members", lambda self, pks: loads.append(pks) or real(self, pks))
    ops = [{"op": "remove", "path": f'members[display eq "nobody-{i}"]'} for i in range(10)]
    assert api.patch(f"/Groups/{group['id']}", *ops).status_code == 200
    assert len(loads) <= 2  # once for the filters, once to render the answer
    ops.append({"op": "remove", "path": 'members[display eq "one-too-many"]'})
    api.error(api.patch(f"/Groups/{group['id']}", *ops), 400, "invalidValue")


# -- disk full ----------------------------------------------------------------------------------------
def test_disk_full_is_507_and_not_ready(api: Any, services: Any, client: Any, app: Any) -> None:
    assert client.get("/readyz").status_code == 200
    conn = services.db.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # this connection may not grow the file: SQLITE_FULL
    statuses = set()
    for i in range(50):
        resp = api.post("/Users", {"schemas": [USER_URN], "userName": f"full-{i}", "title": "x" * 4000})
        statuses.add(resp.status_code)
        if resp.status_code == 507:
            body = resp.get_json()
            assert body["schemas"] == [ERROR_URN] and body["status"] == "507" and "not applied" in body["detail"]
            break
    assert 507 in statuses and 500 not in statuses
    app.extensions.pop("orgscim.readyz", None)  # the answer above is cached for a few seconds
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["storage"] == "disk full"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
