"""SQLite backend only: the lookups IdPs make before every create are answered from an index, never by walking an
org (issue #2). A second backend brings its own plan checks beside these; the contract tests are one folder up.

Each filter is checked twice with ``EXPLAIN QUERY PLAN``: as the store's :class:`Compiler` builds it, and as the
statements :meth:`ResourceStore.search` actually runs (captured with the connection's trace callback). A plan
passes when no step scans ``resources`` and the step that reads ``resources`` narrows it by more than the
org/type prefix (``name_lc``, ``external_id``, ``id`` or rowid), i.e. it does not visit every row of the org.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orgscim.model import filter as flt
from orgscim.model.schemas import GROUP_TYPE, USER_TYPE
from orgscim.store.backend import SqliteStorage
from orgscim.store.db import Database
from orgscim.store.resources import ResourceStore
from orgscim.store.sqlfilter import Compiler

INDEXED = [
    (USER_TYPE, 'userName eq "alice@example.com"'),
    (USER_TYPE, 'USERNAME EQ "Alice@Example.com"'),
    (USER_TYPE, 'externalId eq "00u1abcd"'),
    (USER_TYPE, 'id eq "{id}"'),
    (USER_TYPE, 'emails.value eq "alice@example.com"'),
    (USER_TYPE, 'emails eq "alice@example.com"'),
    (USER_TYPE, 'emails[type eq "work"].value eq "alice@example.com"'),
    (USER_TYPE, 'emails[type eq "work" and value eq "alice@example.com"]'),
    (USER_TYPE, 'emails[value eq "alice@example.com"] and active eq true'),
    (GROUP_TYPE, 'displayName eq "Sales Team"'),
]

# A step that reads resources (alias r) through a selective key; the org/type prefix alone is not one.
SELECTIVE = re.compile(r"\b(name_lc=\?|external_id=\?|id=\?|rowid=\?)")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    storage = SqliteStorage(tmp_path / "plans.sqlite3")
    storage.upgrade()
    assert storage.orgs.upsert_org("r", "o", "X", {}).pk == 1
    return storage.db


def plan(db: Database, sql: str, params: list) -> list[str]:
    return [row["detail"] for row in db.all("EXPLAIN QUERY PLAN " + sql, params)]


def assert_indexed(steps: list[str], where: str) -> None:
    assert steps, where
    for step in steps:
        assert not re.match(r"SCAN (r|resources)\b", step), f"{where}: full scan in {steps}"
    reads = [s for s in steps if re.match(r"SEARCH (r|resources)\b", s)]
    assert reads, f"{where}: resources not read through an index: {steps}"
    for step in reads:
        assert SELECTIVE.search(step), f"{where}: walks the org's (org_pk, type) range: {steps}"


@pytest.mark.parametrize(("rtype", "text"), INDEXED, ids=[t for _, t in INDEXED])
def test_compiler_plan_uses_an_index(db: Database, rtype, text: str) -> None:
    comp = Compiler(rtype.name, 1)
    cond = comp.where(flt.resolve(flt.parse(text.format(id="2819c223-7f76-453a-919d-413861904646")), rtype))
    sql = f"SELECT r.pk FROM {comp.table} WHERE r.org_pk = ? AND r.type = ? AND {cond}"
    assert_indexed(plan(db, sql, [1, rtype.name, *comp.params]), text)


@pytest.mark.parametrize(("rtype", "text"), INDEXED, ids=[t for _, t in INDEXED])
def test_store_search_statements_use_an_index(db: Database, rtype, text: str) -> None:
    store = ResourceStore(db, 1)
    user = store.create("User", {"userName": "alice@example.com", "active": True, "emails": [
        {"value": "alice@example.com", "type": "work"}]}, "alice@example.com", "00u1abcd")
    store.create("Group", {"displayName": "Sales Team"}, "Sales Team", None)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)  # statements with their parameters expanded
    try:
        node = flt.resolve(flt.parse(text.format(id=user.id)), rtype)
        total, rows = store.search(rtype.name, node, None, False, 0, 10)
    finally:
        db.conn.set_trace_callback(None)
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, seen  # the count and the page
    for sql in selects:
        assert_indexed(plan(db, sql, []), f"{text}: {sql}")
    assert total == 1 and len(rows) == 1


def test_unindexed_attribute_is_reported_as_a_walk(db: Database) -> None:
    """The checker itself fails for a filter no index serves (so a passing plan above means something)."""
    comp = Compiler("User", 1)
    cond = comp.where(flt.resolve(flt.parse('title eq "x"'), USER_TYPE))
    steps = plan(db, f"SELECT r.pk FROM {comp.table} WHERE r.org_pk = ? AND r.type = ? AND {cond}",
                 [1, "User", *comp.params])
    with pytest.raises(AssertionError):
        assert_indexed(steps, "title")


def test_unfiltered_page_reads_in_pk_order_without_sorting_the_org(db: Database) -> None:
    """``GET /Users?startIndex=…`` pages in pk order straight from an index (no temp B-tree over the org)."""
    store = ResourceStore(db, 1)
    for i in range(3):
        store.create("User", {"userName": f"u{i}"}, f"u{i}", None)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        total, rows = store.search("User", None, None, False, 1, 1)
    finally:
        db.conn.set_trace_callback(None)
    assert total == 3 and [r.data["userName"] for r in rows] == ["u1"]
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "FROM resources" in s]
    assert len(selects) == 2, selects
    for sql in selects:
        steps = plan(db, sql, [])
        assert not any("TEMP B-TREE" in s or re.match(r"SCAN (r|resources)\b", s) for s in steps), (sql, steps)
