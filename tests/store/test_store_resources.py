"""``Resources``: one org's SCIM resources — reads, optimistic writes, uniqueness, the outbox in the write's
transaction, derived versions, members, search and paging, isolation by org (docs/storage.md)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from orgscim.model import filter as flt
from orgscim.model.contract import Member, MemberChange, Org, OutboxEntry, Resource, Resources, Storage, lease_name
from orgscim.model.errors import Uniqueness
from orgscim.model.filter import AttrRef, Node
from orgscim.model.holders import new_holder
from orgscim.model.schemas import GROUP_TYPE, USER_TYPE


@pytest.fixture
def res(storage: Storage, org_a: Org) -> Resources:
    return storage.resources(org_a.pk)


@pytest.fixture
def res_b(storage: Storage, org_b: Org) -> Resources:
    return storage.resources(org_b.pk)


def where(text: str, rtype: str = "User") -> Node:
    return flt.resolve(flt.parse(text), USER_TYPE if rtype == "User" else GROUP_TYPE)


def sort_by(path: str) -> AttrRef:
    node = flt.resolve(flt.Present(flt.parse_attr_path(path)), USER_TYPE)
    assert isinstance(node, flt.Present)
    return node.path


# -- create, get, optimistic update and delete ---------------------------------------------------------------
def test_create_then_get_returns_the_stored_resource(res: Resources) -> None:
    row = res.create("User", {"userName": "Alice", "active": True}, "Alice", "ext-1")
    assert uuid.UUID(row.id) and row.type == "User" and row.version == 1 and row.created == row.modified
    got = res.get("User", row.id)
    assert got == row and got.data == {"userName": "Alice", "active": True} and got.external_id == "ext-1"
    assert res.get("Group", row.id) is None and res.get("User", str(uuid.uuid4())) is None


def test_update_needs_the_version_it_read(res: Resources) -> None:
    row = res.create("User", {"userName": "a"}, "a", None)
    new = res.update(row, {"userName": "a", "title": "x"}, "a", "e")
    assert new is not None and new.version == 2 and new.modified >= row.modified and new.external_id == "e"
    assert res.update(row, {"userName": "a", "title": "stale"}, "a", None) is None  # row is version 1: stale
    assert res.delete(row) is False
    current = res.get("User", row.id)
    assert current == new and current.data["title"] == "x"
    assert res.delete(new) is True and res.get("User", row.id) is None
    assert res.delete(new) is False  # already gone


# -- uniqueness -----------------------------------------------------------------------------------------------
def test_names_are_unique_per_org_and_type_case_insensitively(res: Resources, res_b: Resources) -> None:
    res.create("User", {"userName": "Bob@Example.com"}, "Bob@Example.com", None)
    with pytest.raises(Uniqueness):
        res.create("User", {"userName": "bob@example.COM"}, "bob@example.COM", None)
    res.create("Group", {"displayName": "bob@example.com"}, "bob@example.com", None)  # another type
    res_b.create("User", {"userName": "bob@example.com"}, "bob@example.com", None)  # another org
    other = res.create("User", {"userName": "carol"}, "carol", None)
    with pytest.raises(Uniqueness):
        res.update(other, {"userName": "BOB@example.com"}, "BOB@example.com", None)
    assert res.get("User", other.id) == other  # the refused update changed nothing


def test_a_refused_create_leaves_no_row_and_no_outbox_entry(storage: Storage, org_a: Org, res: Resources) -> None:
    res.create("User", {"userName": "dup"}, "dup", None)
    before = res.search("User", None, None, False, 0, 10).total
    with pytest.raises(Uniqueness):
        res.create("User", {"userName": "DUP"}, "DUP", None, outbox=[OutboxEntry("User", "", "user.upsert")])
    assert res.search("User", None, None, False, 0, 10).total == before
    assert storage.outbox.entries(org_a.pk) == []


# -- the outbox commits with the write -----------------------------------------------------------------------
def test_each_write_commits_its_outbox_entries_in_order(storage: Storage, org_a: Org, res: Resources) -> None:
    row = res.create("User", {"userName": "o"}, "o", None,
                     outbox=[OutboxEntry("User", "", "user.upsert", {"n": 1})])
    new = res.update(row, {"userName": "o", "title": "t"}, "o", None,
                     outbox=[OutboxEntry("User", row.id, "user.upsert", {"n": 2})])
    assert new is not None
    assert res.update(row, {"userName": "o"}, "o", None, outbox=[OutboxEntry("User", row.id, "lost")]) is None
    assert res.delete(new, outbox=[OutboxEntry("User", row.id, "user.delete", {"n": 3})])
    entries = storage.outbox.entries(org_a.pk)
    assert [(e.resource_id, e.action, e.payload) for e in entries] == [
        (row.id, "user.upsert", {"n": 1}), (row.id, "user.upsert", {"n": 2}), (row.id, "user.delete", {"n": 3})]


def test_a_write_takes_its_resources_lease_in_the_same_transaction_unless_another_holds_it(
        storage: Storage, org_a: Org, res: Resources) -> None:
    me, other = new_holder(), new_holder()
    row = res.create("User", {"userName": "l"}, "l", None,
                     outbox=[OutboxEntry("User", "", "user.upsert", hold=15, lease=me)])
    name = lease_name(org_a.pk, row.id)
    assert storage.leases.holds(name, me) and not storage.leases.holds(name, other)
    assert not storage.leases.acquire(name, other, 30)  # held: the request delivers it
    storage.leases.release(name, me)
    assert storage.leases.acquire(name, other, 30)
    assert res.update(row, {"userName": "l", "title": "t"}, "l", None,
                      outbox=[OutboxEntry("User", row.id, "user.upsert", hold=15, lease=me)]) is not None
    assert storage.leases.holds(name, other) and not storage.leases.holds(name, me)  # the other holder keeps it
    with pytest.raises(Uniqueness):  # a refused write takes no lease
        res.create("User", {"userName": "L"}, "L", None, outbox=[OutboxEntry("User", "", "user.upsert", lease=me)])
    assert len(storage.outbox.entries(org_a.pk)) == 2
    two = [res.create("User", {"userName": n}, n, None, outbox=[OutboxEntry("User", "", "user.upsert", hold=15,
                                                                          lease=me)]) for n in ("m1", "m2")]
    storage.leases.release_all([lease_name(org_a.pk, r.id) for r in two] + [name], me)  # one transaction
    assert not any(storage.leases.holds(lease_name(org_a.pk, r.id), me) for r in two)
    assert storage.leases.holds(name, other)  # only the holder's own leases go


# -- members and derived versions (RFC 7644 §3.14: the version changes with what the representation shows) ---
def test_members_keep_the_attributes_sent_and_count(res: Resources) -> None:
    u1, u2 = (res.create("User", {"userName": n}, n, None) for n in ("m1", "m2"))
    g = res.create("Group", {"displayName": "G"}, "G", None,
                   members=[Member(u1.pk, u1.id, "User", {"display": "One"}), Member(u2.pk, u2.id, "User")])
    assert [(m.id, m.attrs) for m in res.members([g.pk])[g.pk]] == [(u1.id, {"display": "One"}), (u2.id, {})]
    assert res.member_counts([g.pk]) == {g.pk: 2}
    assert res.groups_of([u1.pk, u2.pk]) == {u1.pk: [(g.id, "G")], u2.pk: [(g.id, "G")]}
    g2 = res.update(g, {"displayName": "G"}, "G", None, MemberChange(remove={u1.pk}))
    assert g2 is not None and [m.id for m in res.members([g.pk])[g.pk]] == [u2.id]
    g3 = res.update(g2, {"displayName": "G"}, "G", None, MemberChange(replace=[Member(u1.pk, u1.id, "User")]))
    assert g3 is not None and [m.id for m in res.members([g.pk])[g.pk]] == [u1.id]
    assert not MemberChange() and MemberChange(add=[Member(u1.pk, u1.id, "User")])


def test_membership_changes_move_the_versions_of_both_sides(res: Resources) -> None:
    u = res.create("User", {"userName": "v"}, "v", None)
    g = res.create("Group", {"displayName": "Team"}, "Team", None, members=[Member(u.pk, u.id, "User")])
    u1 = res.get("User", u.id)
    assert u1 is not None and u1.version == 2  # its groups[] changed
    renamed = res.update(g, {"displayName": "Team 2"}, "Team 2", None)
    u2 = res.get("User", u.id)
    assert renamed is not None and u2 is not None and u2.version == 3  # groups[].display changed
    assert res.delete(u2)
    g_after = res.get("Group", g.id)
    assert g_after is not None and g_after.version == renamed.version + 1 and res.members([g.pk])[g.pk] == []


def test_members_and_ids_of_another_org_are_never_reached(res: Resources, res_b: Resources) -> None:
    mine = res.create("User", {"userName": "x"}, "x", None)
    theirs = res_b.create("User", {"userName": "x"}, "x", None)
    assert set(res.resolve([mine.id, theirs.id, "nope"])) == {mine.id}
    g = res.create("Group", {"displayName": "G"}, "G", None, members=[Member(theirs.pk, theirs.id, "User")])
    assert res.members([g.pk])[g.pk] == [] and res_b.groups_of([theirs.pk]) == {theirs.pk: []}
    assert res_b.get("User", mine.id) is None
    assert res_b.update(mine, {"userName": "hijack"}, "hijack", None) is None and res_b.delete(mine) is False
    assert res.get("User", mine.id) == mine


# -- search: filters, totals, stable order, pages -------------------------------------------------------------
def test_search_counts_every_match_and_pages_in_creation_order(res: Resources, res_b: Resources) -> None:
    ids = [res.create("User", {"userName": f"u{i}"}, f"u{i}", None).id for i in range(7)]
    res_b.create("User", {"userName": "u0"}, "u0", None)
    pages = [res.search("User", None, None, False, start, 3) for start in (0, 3, 6)]
    assert [p.total for p in pages] == [7, 7, 7]
    assert [r.id for p in pages for r in p.rows] == ids
    total, rows = res.search("User", None, None, False, 7, 3)  # a Page unpacks like (total, rows)
    assert (total, rows) == (7, [])
    assert res.search("User", None, None, False, 0, 0) == (7, [])
    assert res.search("Group", None, None, False, 0, 10) == (0, [])


def test_search_filters_inside_the_org(res: Resources, res_b: Resources) -> None:
    a = res.create("User", {"userName": "Alice", "emails": [{"value": "Same@Example.com", "type": "work"}],
                            "active": True}, "Alice", "ext-a")
    res.create("User", {"userName": "bob", "active": False}, "bob", None)
    res_b.create("User", {"userName": "alice", "emails": [{"value": "same@example.com", "type": "work"}]},
                 "alice", "ext-a")
    for text in ('userName eq "ALICE"', 'externalId eq "ext-a"', f'id eq "{a.id}"',
                 'emails[type eq "work"].value eq "same@example.com"', 'active eq true and userName sw "al"'):
        page = res.search("User", where(text), None, False, 0, 10)
        assert (page.total, [r.id for r in page.rows]) == (1, [a.id]), text


def test_sort_puts_missing_values_last_both_ways(res: Resources) -> None:
    for name, title in (("a", "m"), ("b", None), ("c", "b"), ("d", "z")):
        res.create("User", {"userName": name, **({"title": title} if title else {})}, name, None)
    asc = res.search("User", None, sort_by("title"), False, 0, 10)
    desc = res.search("User", None, sort_by("title"), True, 0, 10)
    assert [r.data["userName"] for r in asc.rows] == ["c", "a", "d", "b"]
    assert [r.data["userName"] for r in desc.rows] == ["d", "a", "c", "b"]
    by_name = res.search("User", None, sort_by("userName"), True, 1, 2)
    assert by_name.total == 4 and [r.data["userName"] for r in by_name.rows] == ["c", "b"]


# -- concurrent writers (each thread has its own connection) --------------------------------------------------
def race(n: int, attempt: Callable[[int], object]) -> list[object]:
    """Run ``attempt(i)`` in ``n`` threads released at once; each result or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except Exception as e:  # noqa: BLE001 - the race's outcome is what is checked
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_creates_of_one_name_store_exactly_one(storage: Storage, org_a: Org, res: Resources) -> None:
    results = race(8, lambda i: res.create("User", {"userName": "race"}, "RACE" if i % 2 else "race", None,
                                           outbox=[OutboxEntry("User", "", "user.upsert")]))
    created = [r for r in results if isinstance(r, Resource)]
    assert len(created) == 1 and all(isinstance(r, Uniqueness) for r in results if r is not created[0]), results
    assert res.search("User", None, None, False, 0, 10).total == 1
    assert [e.resource_id for e in storage.outbox.entries(org_a.pk)] == [created[0].id]


def test_concurrent_updates_of_one_version_let_exactly_one_win(res: Resources) -> None:
    row = res.create("User", {"userName": "w"}, "w", None)
    results = race(8, lambda i: res.update(row, {"userName": "w", "title": str(i)}, "w", None))
    winners = [r for r in results if isinstance(r, Resource)]
    assert len(winners) == 1 and results.count(None) == 7, results
    assert res.get("User", row.id) == winners[0] and winners[0].version == 2
