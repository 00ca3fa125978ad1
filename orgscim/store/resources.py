"""SCIM resources of one organization: rows, indexes, group membership and the outbox.

A :class:`ResourceStore` is bound to one org (``org_pk``) and every statement it runs is scoped to that
org, so nothing of another org can be read, counted, referenced or changed through it. A write and the
outbox rows describing it commit in one transaction (DESIGN §4, "an acknowledged write is never lost").
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence

from orgscim.model.clock import later, now
from orgscim.model.contract import Member, MemberChange, OutboxEntry, Page, Resource, lease_name
from orgscim.model.errors import Uniqueness
from orgscim.model.filter import AttrRef, Node
from orgscim.model.types import JSON

from .batch import chunks, marks
from .db import Database
from .sqlfilter import Compiler

_COLUMNS = "r.pk, r.type, r.id, r.external_id, r.data, r.version, r.created, r.modified"


def _resource(r: sqlite3.Row) -> Resource:
    return Resource(r["pk"], r["type"], r["id"], r["external_id"], json.loads(r["data"]), r["version"],
                    r["created"], r["modified"])


class ResourceStore:
    """Resources of one org; the only code that reads or writes the ``resources`` table."""

    def __init__(self, db: Database, org_pk: int) -> None:
        self.db = db
        self.org_pk = org_pk

    # -- reads ------------------------------------------------------------------------------------
    def get(self, rtype: str, rid: str) -> Resource | None:
        r = self.db.one(f"SELECT {_COLUMNS} FROM resources r WHERE r.org_pk = ? AND r.type = ? AND r.id = ?",
                        (self.org_pk, rtype, rid))
        return _resource(r) if r else None

    def search(self, rtype: str, where: Node | None, sort: AttrRef | None, descending: bool,
               start: int, count: int) -> Page:
        """Total matches and one page (``start`` is 0-based here), in a stable order."""
        comp = Compiler(rtype, self.org_pk)
        cond = comp.where(where) if where is not None else "1"
        params = [self.org_pk, rtype, *comp.params]
        base = f"FROM {comp.table} WHERE r.org_pk = ? AND r.type = ? AND {cond}"
        total = self.db.count(f"SELECT count(*) {base}", params)
        if count <= 0 or start >= total:
            return Page(total, [])
        order = "r.pk"
        if sort is not None:
            expr = comp.sort_expr(sort)
            order = f"({expr}) IS NULL, {expr} {'DESC' if descending else 'ASC'}, r.pk"
            params = [self.org_pk, rtype, *comp.params]
        rows = self.db.all(f"SELECT {_COLUMNS} {base} ORDER BY {order} LIMIT ? OFFSET ?",
                           [*params, count, start])
        return Page(total, [_resource(r) for r in rows])

    def members(self, group_pks: Sequence[int]) -> dict[int, list[Member]]:
        out: dict[int, list[Member]] = {pk: [] for pk in group_pks}
        for chunk in chunks(group_pks):
            for r in self.db.all(
                    f"SELECT m.group_pk, e.pk, e.id, e.type, m.attrs FROM members m JOIN resources e "
                    f"ON e.pk = m.member_pk WHERE m.group_pk IN ({marks(chunk)}) ORDER BY m.group_pk, e.pk", chunk):
                out[r[0]].append(Member(r[1], r[2], r[3], json.loads(r[4])))
        return out

    def member_counts(self, group_pks: Sequence[int]) -> dict[int, int]:
        """Number of members of each group pk (an index count, no rows loaded)."""
        out: dict[int, int] = {}
        for chunk in chunks(group_pks):
            for r in self.db.all(f"SELECT group_pk, COUNT(*) FROM members WHERE group_pk IN ({marks(chunk)}) "
                                 "GROUP BY group_pk", chunk):
                out[r[0]] = r[1]
        return out

    def groups_of(self, member_pks: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """For each member pk: (group id, group displayName) of the groups it is directly in."""
        out: dict[int, list[tuple[str, str]]] = {pk: [] for pk in member_pks}
        for chunk in chunks(member_pks):
            for r in self.db.all(
                    f"SELECT m.member_pk, g.id, g.data FROM members m JOIN resources g ON g.pk = m.group_pk "
                    f"WHERE m.member_pk IN ({marks(chunk)}) ORDER BY g.pk", chunk):
                out[r[0]].append((r[1], json.loads(r[2]).get("displayName", "")))
        return out

    def resolve(self, ids: Iterable[str]) -> dict[str, Member]:
        """Resources of this org with the given ids (unknown ids, and other orgs' ids, are absent)."""
        ids = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        out: dict[str, Member] = {}
        for chunk in chunks(ids):
            for r in self.db.all(f"SELECT pk, id, type FROM resources WHERE org_pk = ? AND id IN ({marks(chunk)})",
                                 [self.org_pk, *chunk]):
                out[r["id"]] = Member(r["pk"], r["id"], r["type"])
        return out

    # -- writes ---------------------------------------------------------------------------------
    def create(self, rtype: str, data: JSON, name: str, external_id: str | None,
               members: list[Member] | None = None, outbox: Sequence[OutboxEntry] = ()) -> Resource:
        rid = str(uuid.uuid4())
        ts = now()
        try:
            with self.db.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO resources (org_pk, type, id, external_id, name_lc, data, version, created, "
                    "modified) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (self.org_pk, rtype, rid, external_id, name.lower(), _dump(data), ts, ts))
                pk = _inserted(cur)
                self._index_emails(conn, pk, data)
                if members:
                    self._apply_members(conn, pk, MemberChange(replace=members), ts)
                self._outbox(conn, outbox, rid)
        except sqlite3.IntegrityError as e:
            raise Uniqueness(str(e)) from e
        return Resource(pk, rtype, rid, external_id, data, 1, ts, ts)

    def update(self, row: Resource, data: JSON, name: str, external_id: str | None,
               members: MemberChange | None = None, outbox: Sequence[OutboxEntry] = ()) -> Resource | None:
        """Write a new state for ``row`` if nobody changed it since it was read; ``None`` otherwise."""
        ts = now()
        try:
            with self.db.transaction() as conn:
                cur = conn.execute(
                    "UPDATE resources SET data = ?, name_lc = ?, external_id = ?, version = version + 1, "
                    "modified = ? WHERE pk = ? AND org_pk = ? AND version = ?",
                    (_dump(data), name.lower(), external_id, ts, row.pk, self.org_pk, row.version))
                if cur.rowcount != 1:
                    return None
                if row.type == "User":
                    conn.execute("DELETE FROM emails WHERE res_pk = ?", (row.pk,))
                    self._index_emails(conn, row.pk, data)
                elif data.get("displayName") != row.data.get("displayName"):
                    self._touch_members_of(conn, row.pk, ts)  # their groups[].display changed
                if members:
                    self._apply_members(conn, row.pk, members, ts)
                self._outbox(conn, outbox, row.id)
        except sqlite3.IntegrityError as e:
            raise Uniqueness(str(e)) from e
        return Resource(row.pk, row.type, row.id, external_id, data, row.version + 1, row.created, ts)

    def delete(self, row: Resource, outbox: Sequence[OutboxEntry] = ()) -> bool:
        ts = now()
        with self.db.transaction() as conn:  # holds the write lock: the version read here stays true
            current = conn.execute("SELECT version FROM resources WHERE pk = ? AND org_pk = ?",
                                   (row.pk, self.org_pk)).fetchone()
            if current is None or current[0] != row.version:
                return False
            # What lists this resource (groups' members) or shows it (members' groups) changes with it.
            self._touch(conn, [r[0] for r in conn.execute(
                "SELECT group_pk FROM members WHERE member_pk = ? UNION SELECT member_pk FROM members "
                "WHERE group_pk = ?", (row.pk, row.pk))], ts)
            conn.execute("DELETE FROM resources WHERE pk = ?", (row.pk,))
            self._outbox(conn, outbox, row.id)
        return True

    def _touch(self, conn: sqlite3.Connection, pks: Iterable[int], ts: str) -> None:
        """A resource whose representation changed because another one did (``groups``/``members`` are derived):
        new ``meta.version`` and ``lastModified``, so ETags never call a stale representation current (RFC 7644
        §3.14)."""
        for chunk in chunks(list(dict.fromkeys(pks))):
            conn.execute(f"UPDATE resources SET version = version + 1, modified = ? WHERE org_pk = ? AND pk IN "
                         f"({marks(chunk)})", [ts, self.org_pk, *chunk])

    def _touch_members_of(self, conn: sqlite3.Connection, group_pk: int, ts: str) -> None:
        conn.execute("UPDATE resources SET version = version + 1, modified = ? WHERE pk IN "
                     "(SELECT member_pk FROM members WHERE group_pk = ?)", (ts, group_pk))

    def _index_emails(self, conn: sqlite3.Connection, pk: int, data: JSON) -> None:
        rows = [(pk, self.org_pk, e["value"].lower(), (e.get("type") or "").lower() or None)
                for e in data.get("emails") or () if isinstance(e.get("value"), str)]
        if rows:
            conn.executemany("INSERT INTO emails (res_pk, org_pk, value_lc, type_lc) VALUES (?, ?, ?, ?)", rows)

    def _apply_members(self, conn: sqlite3.Connection, group_pk: int, change: MemberChange, ts: str) -> None:
        touched = {m.pk for m in change.add} | set(change.remove)
        if change.replace is not None:
            touched |= {r[0] for r in conn.execute("SELECT member_pk FROM members WHERE group_pk = ?", (group_pk,))}
            touched |= {m.pk for m in change.replace}
            conn.execute("DELETE FROM members WHERE group_pk = ?", (group_pk,))
            change = MemberChange(add=change.replace + change.add, remove=change.remove)
        self._touch(conn, touched - {group_pk}, ts)
        if change.remove:
            conn.executemany("DELETE FROM members WHERE group_pk = ? AND member_pk = ?",
                             [(group_pk, pk) for pk in change.remove])
        if change.add:
            # Only members of this org: the join makes a foreign pk insert nothing.
            conn.executemany(
                "INSERT INTO members (group_pk, member_pk, attrs) SELECT ?, pk, ? FROM resources "
                "WHERE pk = ? AND org_pk = ? ON CONFLICT (group_pk, member_pk) DO UPDATE SET attrs = excluded.attrs",
                [(group_pk, _dump(m.attrs), m.pk, self.org_pk) for m in change.add])

    def _outbox(self, conn: sqlite3.Connection, entries: Sequence[OutboxEntry], rid: str) -> None:
        ts = now()
        for e in entries:
            due = later(e.hold) if e.hold else ts
            conn.execute(
                "INSERT INTO outbox (org_pk, resource_type, resource_id, action, payload, created, "
                "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.org_pk, e.resource_type, e.resource_id or rid, e.action, _dump(e.payload), ts, due))
            if e.lease is not None:  # another holder's lease stays: the request then finds it held
                conn.execute("INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                             (lease_name(self.org_pk, e.resource_id or rid), e.lease, time.time() + e.hold))


def _inserted(cur: sqlite3.Cursor) -> int:
    """The rowid an INSERT just made."""
    if cur.lastrowid is None:
        raise sqlite3.InterfaceError("INSERT returned no rowid")
    return cur.lastrowid


def _dump(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
