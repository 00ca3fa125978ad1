"""Sorting (RFC 7644 §3.4.2.3) and 1-based paging (§3.4.2.4) with a published maximum."""

from __future__ import annotations

import random
from urllib.parse import quote

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK_REQ = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@pytest.fixture
def people(api):
    """25 users created in a shuffled order; every 5th has no familyName, emails with the primary one last."""
    names = [f"user{i:02d}" for i in range(25)]
    random.Random(7).shuffle(names)
    out = {}
    for n in names:
        i = int(n[4:])
        attrs = {"emails": [{"value": f"z-{n}@other.example", "type": "home"},
                            {"value": f"{chr(ord('a') + (24 - i))}-{n}@example.com", "type": "work",
                             "primary": True}]}
        if i % 5:
            attrs["name"] = {"familyName": f"Family{(i * 7) % 25:02d}"}
        out[n] = api.create_user(n.upper() if i % 2 else n, **attrs)
    return out


def names(resp):
    return [r["userName"].lower() for r in resp.get_json()["Resources"]]


def test_sort_by_userName(api, people):
    expected = sorted(people)
    assert names(api.get("/Users?sortBy=userName")) == expected
    assert names(api.get("/Users?sortBy=userName&sortOrder=ascending")) == expected
    assert names(api.get("/Users?sortBy=UserName&sortOrder=descending")) == expected[::-1]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "sortBy": "userName",
            "sortOrder": "descending", "count": 5}
    assert names(api.post("/Users/.search", body)) == expected[::-1][:5]


def test_sort_by_family_name_missing_values_last(api, people):
    with_name = sorted((u["name"]["familyName"], n) for n, u in people.items() if "name" in u)
    without = {n for n, u in people.items() if "name" not in u}
    assert len(without) == 5
    asc = names(api.get("/Users?sortBy=name.familyName"))
    assert asc[:20] == [n for _, n in with_name] and set(asc[20:]) == without
    desc = names(api.get("/Users?sortBy=name.familyName&sortOrder=descending"))
    assert desc[:20] == [n for _, n in with_name][::-1] and set(desc[20:]) == without


def test_sort_by_emails_uses_the_primary_value(api, people):
    # primary work emails start with a letter counting down from "y" as the number goes up
    expected = sorted(people, key=lambda n: -int(n[4:]))
    assert names(api.get("/Users?sortBy=emails")) == expected
    assert names(api.get("/Users?sortBy=emails.value&sortOrder=descending")) == expected[::-1]


def test_sort_by_unknown_attribute_is_400(api, people):
    api.error(api.get("/Users?sortBy=nosuch"), 400, "invalidFilter")
    api.error(api.get("/Users?sortBy=userName&sortOrder=sideways"), 400, "invalidValue")


@pytest.mark.parametrize("sort", ["", "&sortBy=userName", "&sortBy=name.familyName&sortOrder=descending",
                                  "&sortBy=emails"])
def test_paging_is_stable_and_complete(api, people, sort):
    all_ids = {u["id"] for u in people.values()}
    seen: list[str] = []
    sizes = []
    for n, start in enumerate((1, 8, 15, 22)):
        if n == 2:  # writes between pages do not move anything across page boundaries
            victim = next(iter(people.values()))
            api.patch(f"/Users/{victim['id']}", {"op": "replace", "path": "title", "value": "moved"})
        body = api.listing(api.get(f"/Users?startIndex={start}&count=7{sort}"))
        assert body["totalResults"] == 25 and body["startIndex"] == start
        sizes.append(body["itemsPerPage"])
        seen += [r["id"] for r in body["Resources"]]
    assert sizes == [7, 7, 7, 4]
    assert len(seen) == len(set(seen)) == 25 and set(seen) == all_ids


def test_start_index_below_one_is_one_and_beyond_the_end_is_empty(api, people):
    first = api.listing(api.get("/Users?count=3"))
    for start in (0, -5):
        body = api.listing(api.get(f"/Users?startIndex={start}&count=3"))
        assert body["startIndex"] == 1 and body["Resources"] == first["Resources"]
    body = api.listing(api.get("/Users?startIndex=26"))
    assert body["Resources"] == [] and body["totalResults"] == 25 and body["startIndex"] == 26


def test_count_zero_and_negative(api, people):
    for count in (0, -3):
        body = api.listing(api.get(f"/Users?count={count}"))
        assert body["Resources"] == [] and body["totalResults"] == 25 and body["itemsPerPage"] == 0


def test_filter_sort_and_page_together(api, people):
    f = quote('userName sw "user1"')
    body = api.listing(api.get(f"/Users?filter={f}&sortBy=userName&sortOrder=descending&startIndex=2&count=3"))
    assert body["totalResults"] == 10
    assert names_of(body) == ["user18", "user17", "user16"]


def names_of(body):
    return [r["userName"].lower() for r in body["Resources"]]


def test_count_above_max_is_clamped_to_published_max_results(api):
    max_results = api.get("/ServiceProviderConfig").get_json()["filter"]["maxResults"]
    assert max_results == 1000
    ops = [{"method": "POST", "path": "/Users", "bulkId": f"b{i}",
            "data": {"schemas": [USER], "userName": f"many{i:04d}"}} for i in range(max_results)]
    resp = api.post("/Bulk", {"schemas": [BULK_REQ], "Operations": ops})
    assert resp.status_code == 200 and all(r["status"] == "201" for r in resp.get_json()["Operations"])
    api.create_user("one-more")
    body = api.listing(api.get("/Users?count=5000&excludedAttributes=meta"))
    assert body["totalResults"] == max_results + 1 and body["itemsPerPage"] == max_results
    assert len(body["Resources"]) == max_results
    body = api.listing(api.get(f"/Users?startIndex={max_results + 1}&count=5000"))
    assert [r["userName"] for r in body["Resources"]] == ["one-more"]
    # the default page is smaller than the maximum but non-empty
    default = api.listing(api.get("/Users"))
    assert 0 < default["itemsPerPage"] <= max_results


def test_root_search_pages_across_types(api):
    ids = {api.create_user(f"root{i}")["id"] for i in range(3)} | {api.create_group(f"root{i}")["id"]
                                                                   for i in range(4)}
    seen = []
    for start in (1, 3, 5, 7, 9):
        body = api.listing(api.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                                 "startIndex": start, "count": 2}))
        assert body["totalResults"] == 7 and body["startIndex"] == start
        seen += [r["id"] for r in body["Resources"]]
    assert len(seen) == 7 and set(seen) == ids
