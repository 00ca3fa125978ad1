"""Scratch storage for reconcile: Keycloak snapshots in a temporary SQLite file, compared with SCIM state
by SQL joins, so memory stays flat however large an org is (DESIGN §7).

The scratch file is attached to a connection of its own; nothing here writes to the main database, which
is what makes ``reconcile --dry-run`` change nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from .db import BUSY_TIMEOUT_MS, Database

_SCRATCH = [
    "CREATE TABLE scratch.members (kc_id TEXT PRIMARY KEY, username TEXT, email TEXT, first TEXT, last TEXT, "
    "enabled INTEGER, attrs TEXT, membership TEXT)",
    "CREATE TABLE scratch.groups (kc_id TEXT PRIMARY KEY, name TEXT)",
    "CREATE TABLE scratch.group_members (group_kc_id TEXT, user_kc_id TEXT, PRIMARY KEY (group_kc_id, user_kc_id))",
]


class ReconcileScratch:
    """One reconcile pass over one org. Use as a context manager; the scratch file is removed on exit."""

    def __init__(self, db: Database, org_pk: int) -> None:
        self.org_pk = org_pk
        fd, self.path = tempfile.mkstemp(prefix="orgscim-reconcile-", suffix=".sqlite3")
        os.close(fd)
        self.conn = sqlite3.connect(db.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("ATTACH DATABASE ? AS scratch", (self.path,))
        for sql in _SCRATCH:
            self.conn.execute(sql)

    def __enter__(self) -> ReconcileScratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
        os.unlink(self.path)

    # -- snapshots ------------------------------------------------------------------------------
    def add_members(self, members: Iterable[dict[str, Any]]) -> int:
        rows = [(m["id"], m.get("username"), m.get("email"), m.get("firstName"), m.get("lastName"),
                 int(bool(m.get("enabled", True))), json.dumps(m.get("attributes") or {}), m.get("membershipType"))
                for m in members]
        self.conn.executemany("INSERT OR REPLACE INTO scratch.members VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def add_groups(self, groups: Iterable[dict[str, Any]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO scratch.groups VALUES (?, ?)",
                              [(g["id"], g.get("name")) for g in groups])

    def add_group_members(self, group_kc_id: str, user_ids: Iterable[str]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO scratch.group_members VALUES (?, ?)",
                              [(group_kc_id, u) for u in user_ids])

    # -- comparisons (streamed) -----------------------------------------------------------------
    def users(self) -> Iterator[sqlite3.Row]:
        """Every SCIM user of the org with its link and Keycloak member row (NULLs where missing)."""
        yield from self.conn.execute(
            "SELECT r.id, r.data, l.kc_id, l.origin, l.state, s.kc_id AS s_id, s.username, s.email, s.first, "
            "s.last, s.enabled, s.attrs FROM main.resources r "
            "LEFT JOIN main.kc_links l ON l.org_pk = r.org_pk AND l.resource_id = r.id "
            "LEFT JOIN scratch.members s ON s.kc_id = l.kc_id WHERE r.org_pk = ? AND r.type = 'User' ORDER BY r.pk",
            (self.org_pk,))

    def unlinked_members(self) -> Iterator[sqlite3.Row]:
        """Keycloak members of the org that no SCIM user of the org is linked to."""
        yield from self.conn.execute(
            "SELECT s.* FROM scratch.members s WHERE NOT EXISTS (SELECT 1 FROM main.kc_links l "
            "WHERE l.org_pk = ? AND l.kc_id = s.kc_id) ORDER BY s.username", (self.org_pk,))

    def groups(self) -> Iterator[sqlite3.Row]:
        yield from self.conn.execute(
            "SELECT r.id, r.data, l.kc_id, l.origin, g.kc_id AS g_id, g.name FROM main.resources r "
            "LEFT JOIN main.kc_links l ON l.org_pk = r.org_pk AND l.resource_id = r.id "
            "LEFT JOIN scratch.groups g ON g.kc_id = l.kc_id WHERE r.org_pk = ? AND r.type = 'Group' ORDER BY r.pk",
            (self.org_pk,))

    def group_member_differences(self, group_id: str, group_kc_id: str) -> tuple[list[str], list[str]]:
        """(expected but missing, present but not expected and owned by orgscim) Keycloak user ids."""
        want = ("SELECT l.kc_id FROM main.resources g JOIN main.members m ON m.group_pk = g.pk "
                "JOIN main.resources u ON u.pk = m.member_pk AND u.type = 'User' "
                "JOIN main.kc_links l ON l.org_pk = g.org_pk AND l.resource_id = u.id "
                "WHERE g.org_pk = ? AND g.id = ? AND json_extract(l.state, '$.member')")
        missing = [r[0] for r in self.conn.execute(
            f"{want} AND l.kc_id NOT IN (SELECT user_kc_id FROM scratch.group_members WHERE group_kc_id = ?)",
            (self.org_pk, group_id, group_kc_id))]
        extra = [r[0] for r in self.conn.execute(
            f"SELECT gm.user_kc_id FROM scratch.group_members gm WHERE gm.group_kc_id = ? AND gm.user_kc_id IN "
            f"(SELECT kc_id FROM main.kc_links WHERE org_pk = ?) AND gm.user_kc_id NOT IN ({want})",
            (group_kc_id, self.org_pk, self.org_pk, group_id))]
        return missing, extra
