"""Scratch storage for reconcile: Keycloak snapshots in a temporary SQLite file, compared with SCIM state
by SQL joins, so memory stays flat however large an org is (DESIGN §7).

The scratch file is attached to a connection of its own; nothing here writes to the main database, which
is what makes ``reconcile --dry-run`` change nothing. It is throw-away, so it is written without a journal or
fsync: a crash loses nothing (the next run starts a new one), and each snapshot batch costs microseconds
instead of two disk flushes.

:class:`ReconcileSchedule` keeps when each org was last reconciled, in SQLite (one lease row per org), so the
worker can spread the orgs over its interval oldest first, across restarts and several worker processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator

from orgscim.model.types import JSON

from .db import BUSY_TIMEOUT_MS, Database

_SCRATCH = [
    "CREATE TABLE scratch.members (kc_id TEXT PRIMARY KEY, username TEXT, email TEXT, first TEXT, last TEXT, "
    "enabled INTEGER, attrs TEXT, membership TEXT)",
    "CREATE TABLE scratch.groups (kc_id TEXT PRIMARY KEY, name TEXT)",
    "CREATE TABLE scratch.group_members (group_kc_id TEXT, user_kc_id TEXT, PRIMARY KEY (group_kc_id, user_kc_id))",
    "CREATE TABLE scratch.idp_linked (kc_id TEXT PRIMARY KEY)",
]


# An outbox entry of the resource that was not delivered before the snapshot began: still pending, or delivered
# while Keycloak was being paged (the snapshot may predate it). Either way the outbox, not drift, speaks for it.
_PENDING = ("EXISTS (SELECT 1 FROM main.outbox x WHERE x.org_pk = r.org_pk AND x.resource_id = r.id "
            "AND (x.done IS NULL OR x.done >= :since))")


class ReconcileScratch:
    """One reconcile pass over one org. Use as a context manager; the scratch file is removed on exit."""

    def __init__(self, db: Database, org_pk: int, since: str) -> None:
        """``since``: when the Keycloak snapshot began (``now()`` format); entries delivered after it are in flight."""
        self.org_pk = org_pk
        self.since = since
        fd, self.path = tempfile.mkstemp(prefix="orgscim-reconcile-", suffix=".sqlite3")
        os.close(fd)
        self.conn = sqlite3.connect(db.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("ATTACH DATABASE ? AS scratch", (self.path,))
        self.conn.execute("PRAGMA scratch.journal_mode = OFF")
        self.conn.execute("PRAGMA scratch.synchronous = OFF")
        for sql in _SCRATCH:
            self.conn.execute(sql)

    def __enter__(self) -> ReconcileScratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
        os.unlink(self.path)

    # -- snapshots ------------------------------------------------------------------------------
    def add_members(self, members: Iterable[JSON]) -> int:
        rows = [(m["id"], m.get("username"), m.get("email"), m.get("firstName"), m.get("lastName"),
                 int(bool(m.get("enabled", True))), json.dumps(m.get("attributes") or {}), m.get("membershipType"))
                for m in members]
        self.conn.executemany("INSERT OR REPLACE INTO scratch.members VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def add_groups(self, groups: Iterable[JSON]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO scratch.groups VALUES (?, ?)",
                              [(g["id"], g.get("name")) for g in groups])

    def add_group_members(self, group_kc_id: str, user_ids: Iterable[str]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO scratch.group_members VALUES (?, ?)",
                              [(group_kc_id, u) for u in user_ids])

    def add_idp_linked(self, kc_ids: Iterable[str]) -> None:
        """Keycloak users that have a link to the org's identity provider."""
        self.conn.executemany("INSERT OR IGNORE INTO scratch.idp_linked VALUES (?)", [(k,) for k in kc_ids])

    # -- comparisons (streamed) -----------------------------------------------------------------
    def users(self) -> Iterator[sqlite3.Row]:
        """Every SCIM user of the org with its link, its Keycloak member row (NULLs where missing), whether
        it has an IdP link and whether an outbox entry of it is still pending (then it is not drift yet)."""
        yield from self.conn.execute(
            "SELECT r.id, r.data, l.kc_id, l.origin, l.state, s.kc_id AS s_id, s.username, s.email, s.first, "
            "s.last, s.enabled, s.attrs, EXISTS (SELECT 1 FROM scratch.idp_linked i WHERE i.kc_id = l.kc_id) "
            "AS idp_linked, " + _PENDING + " AS pending FROM main.resources r "
            "LEFT JOIN main.kc_links l ON l.org_pk = r.org_pk AND l.resource_id = r.id "
            "LEFT JOIN scratch.members s ON s.kc_id = l.kc_id WHERE r.org_pk = :org AND r.type = 'User' ORDER BY r.pk",
            {"org": self.org_pk, "since": self.since})

    def unlinked_members(self) -> Iterator[sqlite3.Row]:
        """Keycloak members of the org that no SCIM user of the org is linked to."""
        yield from self.conn.execute(
            "SELECT s.* FROM scratch.members s WHERE NOT EXISTS (SELECT 1 FROM main.kc_links l "
            "WHERE l.org_pk = ? AND l.kc_id = s.kc_id) ORDER BY s.username", (self.org_pk,))

    def groups(self) -> Iterator[sqlite3.Row]:
        yield from self.conn.execute(
            "SELECT r.id, r.data, l.kc_id, l.origin, g.kc_id AS g_id, g.name, " + _PENDING + " AS pending "
            "FROM main.resources r "
            "LEFT JOIN main.kc_links l ON l.org_pk = r.org_pk AND l.resource_id = r.id "
            "LEFT JOIN scratch.groups g ON g.kc_id = l.kc_id WHERE r.org_pk = :org AND r.type = 'Group' ORDER BY r.pk",
            {"org": self.org_pk, "since": self.since})

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


class ReconcileSchedule:
    """When each org is next due for reconcile, as one ``leases`` row per org (``reconcile:org:<pk>``), and the
    org lists reconcile walks (SQL only, so nothing holds every org in memory).

    ``until`` is the time the org is next due: a worker claims a due org for a short time, and when it has
    reconciled it, sets ``until`` to one interval after it started. Orgs never reconciled come first, then the
    one due longest ago. Several workers never take the same org, and a crashed worker's claim runs out.
    """

    PREFIX = "reconcile:"
    DONE = "reconciled"

    def __init__(self, db: Database) -> None:
        self.db = db

    def realms(self) -> list[str]:
        return [r[0] for r in self.db.all("SELECT DISTINCT realm FROM orgs ORDER BY realm")]

    def org_pks(self, realm: str, org_id: str | None = None) -> list[int]:
        """The org pks of a realm (or of the one org), in a stable order."""
        rows = self.db.all("SELECT pk FROM orgs WHERE realm = ? AND (? IS NULL OR org_id = ?) ORDER BY org_id",
                           (realm, org_id, org_id))
        return [r[0] for r in rows]

    def unconfigured(self, realm: str) -> int:
        """How many organizations Keycloak lists in the realm that have no SCIM config."""
        return self.db.count("SELECT count(*) FROM kc_orgs k LEFT JOIN orgs o ON o.realm = k.realm AND "
                             "o.org_id = k.org_id WHERE k.realm = ? AND o.pk IS NULL AND k.vanished IS NULL",
                             (realm,))

    def unseen(self, realm: str, since: str) -> list[int]:
        """Configured, not yet closed orgs that Keycloak has not listed since ``since``."""
        rows = self.db.all("SELECT o.pk FROM orgs o LEFT JOIN kc_orgs k ON k.realm = o.realm AND k.org_id = o.org_id "
                           "WHERE o.realm = ? AND o.vanished IS NULL AND (k.last_seen IS NULL OR k.last_seen < ?)",
                           (realm, since))
        return [r[0] for r in rows]

    def due(self, limit: int, at: float | None = None) -> list[int]:
        """Org pks due for reconcile now, oldest first (vanished orgs are not reconciled)."""
        t = time.time() if at is None else at
        rows = self.db.all(
            "SELECT o.pk FROM orgs o LEFT JOIN leases l ON l.name = ? || o.pk WHERE o.vanished IS NULL "
            "AND (l.until IS NULL OR l.until <= ?) ORDER BY COALESCE(l.until, 0), o.pk LIMIT ?",
            (f"{self.PREFIX}org:", t, limit))
        return [r[0] for r in rows]

    def total(self) -> int:
        """How many orgs take part in reconcile."""
        return self.db.count("SELECT count(*) FROM orgs WHERE vanished IS NULL")

    def claim(self, key: str, holder: str, seconds: float) -> bool:
        """Take ``key`` (``org:<pk>``, ``discover:<realm>``) for ``seconds`` if it is due; False when another
        worker has it or it is not due."""
        t = time.time()
        with self.db.transaction() as conn:
            return conn.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET holder = excluded.holder, until = excluded.until WHERE leases.until <= ? "
                "OR leases.holder = excluded.holder", (self.PREFIX + key, holder, t + seconds, t)).rowcount == 1

    def done(self, key: str, holder: str, next_due: float) -> None:
        """Record a finished (or failed) reconcile: ``key`` is due again at ``next_due`` (epoch seconds)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE leases SET holder = ?, until = ? WHERE name = ? AND holder = ?",
                         (self.DONE, next_due, self.PREFIX + key, holder))

    def next_due(self, key: str) -> float | None:
        row = self.db.one("SELECT until FROM leases WHERE name = ?", (self.PREFIX + key,))
        return None if row is None else float(row[0])
