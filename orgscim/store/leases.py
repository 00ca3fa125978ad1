"""Leases: one deliverer per resource, one job of a kind across the processes of a host.

Holders are made and read by :mod:`orgscim.model.holders`: a lease whose holder is a dead process of this host
is taken over at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from orgscim.model.holders import holder_alive

from .db import Database


def release_in(conn: sqlite3.Connection, name: str, holder: str) -> None:
    """Release a lease inside the caller's transaction."""
    conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


class LeaseStore:
    """The ``leases`` table, as :class:`orgscim.model.contract.Leases`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take (or renew) lease ``name`` for ``holder`` for ``ttl`` seconds. A lease held by someone else is
        taken over when it expired, or at once when its holder is a process of this host that is gone."""
        t = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT holder, until FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > t and holder_alive(row[0]):
                return False
            conn.execute("INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                         "SET holder = excluded.holder, until = excluded.until", (name, holder, t + ttl))
        return True

    def holds(self, name: str, holder: str) -> bool:
        """Whether ``holder`` holds lease ``name`` and it has not expired (a read: no transaction)."""
        return self.db.one("SELECT 1 FROM leases WHERE name = ? AND holder = ? AND until > ?",
                           (name, holder, time.time())) is not None

    def renew(self, name: str, holder: str, ttl: float) -> bool:
        """Extend a lease ``holder`` still holds; False when it lost it (expired and taken over)."""
        with self.db.transaction() as conn:
            changed: int = conn.execute("UPDATE leases SET until = ? WHERE name = ? AND holder = ?",
                                        (time.time() + ttl, name, holder)).rowcount
        return changed == 1

    def release(self, name: str, holder: str) -> None:
        self.release_all([name], holder)

    def release_all(self, names: Iterable[str], holder: str) -> None:
        """Release every lease of ``names`` that ``holder`` holds, in one transaction."""
        with self.db.transaction() as conn:
            for name in names:
                release_in(conn, name, holder)
