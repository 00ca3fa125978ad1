"""The outbox: changes Keycloak must receive, and their delivery state (DESIGN §4, §7).

Entries are written by :class:`orgscim.store.resources.ResourceStore` in the SCIM write's transaction; this
module hands them to deliverers in commit order per resource, and records what became of each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from orgscim.model.clock import later, now
from orgscim.model.contract import OutboxEntry
from orgscim.model.delivery import Lease, Link, OutboxItem

from .batch import chunks, marks
from .db import Database
from .leases import release_in
from .links import write_link


def item_from_row(r: sqlite3.Row) -> OutboxItem:
    """An ``outbox`` row as an :class:`OutboxItem`."""
    return OutboxItem(r["pk"], r["org_pk"], r["resource_type"], r["resource_id"], r["action"],
                      json.loads(r["payload"]), r["created"], r["attempts"], r["next_attempt"], r["last_error"],
                      r["done"])


def cancel_in(conn: sqlite3.Connection, org_pk: int, reason: str, who: str) -> int:
    """Finish the org's pending entries as cancelled inside the caller's transaction, with one
    ``outbox.cancelled`` audit event listing what will not reach Keycloak; how many there were."""
    rows = conn.execute("SELECT pk, resource_type, resource_id, action FROM outbox WHERE org_pk = ? AND "
                        "done IS NULL ORDER BY pk", (org_pk,)).fetchall()
    if not rows:
        return 0
    ts = now()
    conn.execute("UPDATE outbox SET done = ?, last_error = ? WHERE org_pk = ? AND done IS NULL",
                 (ts, f"cancelled: {reason}"[:500], org_pk))
    org = conn.execute("SELECT realm, org_id FROM orgs WHERE pk = ?", (org_pk,)).fetchone()
    detail = {"realm": org[0] if org else None, "orgId": org[1] if org else None, "reason": reason, "who": who,
              "count": len(rows), "entries": [{"id": r[0], "resourceType": r[1], "resourceId": r[2],
                                               "action": r[3]} for r in rows[:1000]]}
    conn.execute("INSERT INTO events (at, org_pk, kind, detail) VALUES (?, ?, 'outbox.cancelled', ?)",
                 (ts, org_pk, json.dumps(detail)))
    return len(rows)


class OutboxStore:
    """The ``outbox`` table, as :class:`orgscim.model.contract.Outbox`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _items(self, sql: str, params: Sequence[object]) -> list[OutboxItem]:
        return [item_from_row(r) for r in self.db.all(sql, params)]

    # -- what is due --------------------------------------------------------------------------------
    def pending(self, org_pk: int, limit: int = 50) -> list[OutboxItem]:
        """Undelivered entries of one org, oldest first (delivery is in order, per org)."""
        return self._items("SELECT * FROM outbox WHERE org_pk = ? AND done IS NULL ORDER BY pk LIMIT ?",
                           (org_pk, limit))

    def resource_pending(self, org_pk: int, resource_id: str, limit: int = 20) -> list[OutboxItem]:
        """Undelivered entries of one resource, in commit order (the order they must reach Keycloak in)."""
        return self._items("SELECT * FROM outbox WHERE org_pk = ? AND resource_id = ? AND done IS NULL ORDER BY pk "
                           "LIMIT ?", (org_pk, resource_id, limit))

    def due_heads(self, org_pk: int, limit: int, skip: Iterable[str] = ()) -> list[OutboxItem]:
        """The oldest pending entry of each resource of the org that is due now, oldest first: what may be
        delivered in parallel. A group entry waits until no older User entry of the org is pending (its
        members must exist in Keycloak first)."""
        skip = list(skip)
        return self._items(
            "SELECT * FROM outbox o WHERE o.org_pk = ? AND o.done IS NULL AND o.next_attempt <= ? "
            + (f"AND o.resource_id NOT IN ({marks(skip)}) " if skip else "")
            + "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.org_pk = o.org_pk AND p.resource_id = o.resource_id "
            "AND p.done IS NULL AND p.pk < o.pk) "
            "AND (o.resource_type = 'User' OR NOT EXISTS (SELECT 1 FROM outbox u WHERE u.org_pk = o.org_pk "
            "AND u.resource_type = 'User' AND u.done IS NULL AND u.pk < o.pk)) "
            "ORDER BY o.pk LIMIT ?", [org_pk, now(), *skip, limit])

    def due_orgs(self, limit: int = 10000) -> list[int]:
        """Orgs with entries due now, the one waiting longest first."""
        rows = self.db.all("SELECT org_pk FROM outbox WHERE done IS NULL AND next_attempt <= ? GROUP BY org_pk "
                           "ORDER BY min(pk) LIMIT ?", (now(), limit))
        return [r[0] for r in rows]

    def older_users_pending(self, org_pk: int, pk: int) -> bool:
        """Whether a User entry of the org older than entry ``pk`` is still pending (groups wait for them)."""
        return self.db.one("SELECT 1 FROM outbox WHERE org_pk = ? AND resource_type = 'User' AND done IS NULL "
                           "AND pk < ? LIMIT 1", (org_pk, pk)) is not None

    def orgs_with_pending(self, due_only: bool = True) -> list[int]:
        if due_only:
            rows = self.db.all("SELECT DISTINCT org_pk FROM outbox WHERE done IS NULL AND next_attempt <= ?",
                               (now(),))
        else:
            rows = self.db.all("SELECT DISTINCT org_pk FROM outbox WHERE done IS NULL")
        return [r[0] for r in rows]

    # -- listings ---------------------------------------------------------------------------------
    def entries(self, org_pk: int | None = None, include_done: bool = False, limit: int = 1000) -> list[OutboxItem]:
        """Entries of one org or all, oldest first; pending only unless ``include_done``."""
        where = ["1"]
        params: list[int] = []
        if org_pk is not None:
            where.append("org_pk = ?")
            params.append(org_pk)
        if not include_done:
            where.append("done IS NULL")
        return self._items(f"SELECT * FROM outbox WHERE {' AND '.join(where)} ORDER BY pk LIMIT ?", [*params, limit])

    def recent(self, org_pks: Sequence[int], limit: int = 100) -> list[OutboxItem]:
        """The most recent outbox entries (pending or delivered) of these orgs, newest first."""
        if not org_pks:
            return []
        return self._items(f"SELECT * FROM outbox WHERE org_pk IN ({marks(org_pks)}) ORDER BY pk DESC LIMIT ?",
                           [*org_pks, limit])

    # -- writes -----------------------------------------------------------------------------------
    def enqueue(self, org_pk: int, entries: Sequence[OutboxEntry]) -> None:
        """Outbox entries not tied to a SCIM write (reconcile repairs)."""
        ts = now()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO outbox (org_pk, resource_type, resource_id, action, payload, created, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(org_pk, e.resource_type, e.resource_id, e.action, json.dumps(e.payload), ts, ts) for e in entries])

    def hold(self, org_pk: int, resource_ids: Sequence[str], seconds: float) -> None:
        """Keep these resources' fresh entries (never attempted) away from other deliverers for ``seconds``."""
        self._set_due(org_pk, resource_ids, later(seconds), "next_attempt < ?")

    def unhold(self, org_pk: int, resource_ids: Sequence[str]) -> None:
        """Make held entries of these resources due now (the request that held them is done with them); an
        entry Keycloak asked to retry later (it has an error) keeps its time."""
        self._set_due(org_pk, resource_ids, now(), "next_attempt > ?")

    def _set_due(self, org_pk: int, resource_ids: Sequence[str], when: str, cond: str) -> None:
        with self.db.transaction() as conn:
            for chunk in chunks(list(dict.fromkeys(resource_ids))):
                conn.execute(f"UPDATE outbox SET next_attempt = ? WHERE org_pk = ? AND done IS NULL AND attempts = 0 "
                             f"AND last_error IS NULL AND {cond} AND resource_id IN ({marks(chunk)})",
                             [when, org_pk, when, *chunk])

    def finish(self, pk: int, error: str | None = None) -> bool:
        """Mark an entry delivered (or refused, with ``error``); False if it was finished already."""
        with self.db.transaction() as conn:
            changed: int = conn.execute("UPDATE outbox SET done = ?, last_error = ?, attempts = attempts + 1 "
                                        "WHERE pk = ? AND done IS NULL", (now(), error, pk)).rowcount
        return changed == 1

    def complete(self, item: OutboxItem, link: Link | None, lease: Lease) -> bool:
        """Mark a delivered entry done together with what it leads to, in one transaction: the resource's
        ``link`` (when the entry changed it) and, when no entry of the resource is left, the release of its
        ``lease`` (name, holder). True when the lease was released (nothing of the resource is pending)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET done = ?, last_error = NULL, attempts = attempts + 1 WHERE pk = ? "
                         "AND done IS NULL", (now(), item.pk))
            if link is not None:
                write_link(conn, link)
            if conn.execute("SELECT 1 FROM outbox WHERE org_pk = ? AND resource_id = ? AND done IS NULL LIMIT 1",
                            (item.org_pk, item.resource_id)).fetchone() is not None:
                return False
            release_in(conn, *lease)
            return True

    def retry_later(self, pk: int, error: str, delay: float, attempted: bool = True) -> None:
        """Try the entry again in ``delay`` seconds. ``attempted``: it may have reached Keycloak (a retry must
        first look for what it made); False when Keycloak said it did not process it (429, no time left)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + ?, last_error = ?, next_attempt = ? WHERE pk = ? "
                         "AND done IS NULL", (int(attempted), error[:500], later(delay), pk))

    def retry_now(self, org_pk: int | None = None) -> int:
        """Make every pending entry due now (``orgscim outbox --retry``)."""
        with self.db.transaction() as conn:
            changed: int = conn.execute("UPDATE outbox SET next_attempt = ? WHERE done IS NULL AND "
                                        "(? IS NULL OR org_pk = ?)", (now(), org_pk, org_pk)).rowcount
        return changed

    # -- cancelling -------------------------------------------------------------------------------
    def cancel_pending(self, org_pk: int, reason: str, who: str = "orgscim") -> int:
        """Finish every pending entry of the org as cancelled, with one audit event (``outbox.cancelled``)
        listing what will not reach Keycloak. Pending entries are never deleted silently."""
        with self.db.transaction() as conn:
            return cancel_in(conn, org_pk, reason, who)

    def rollback_create(self, org_pk: int, resource_id: str, reason: str) -> bool:
        """Undo a SCIM create that was never acknowledged (Keycloak refused it while the request waited): the
        resource and its only outbox entry go in one transaction. False (nothing changed) when the resource
        changed since, or has other entries; then the refusal stays drift."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT pk FROM resources WHERE org_pk = ? AND id = ? AND version = 1",
                               (org_pk, resource_id)).fetchone()
            entries = conn.execute("SELECT count(*) FROM outbox WHERE org_pk = ? AND resource_id = ?",
                                   (org_pk, resource_id)).fetchone()[0]
            if row is None or entries != 1 or conn.execute("SELECT 1 FROM kc_links WHERE org_pk = ? AND "
                                                           "resource_id = ?", (org_pk, resource_id)).fetchone():
                return False
            conn.execute("DELETE FROM resources WHERE pk = ?", (row[0],))
            conn.execute("DELETE FROM outbox WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))
            # the resource never existed for the IdP: its refusal is an audit event, not drift
            conn.execute("DELETE FROM drift WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))
            conn.execute("INSERT INTO events (at, org_pk, kind, detail) VALUES (?, ?, 'scim.create_refused', ?)",
                         (now(), org_pk, json.dumps({"resourceId": resource_id, "reason": reason[:300]})))
        return True

    def purge_org(self, org_pk: int, reason: str, who: str = "orgscim") -> int:
        """Delete an org with all its SCIM data; its pending outbox entries are cancelled first (audit event).
        Returns how many were cancelled."""
        with self.db.transaction() as conn:
            n = cancel_in(conn, org_pk, reason, who)
            conn.execute("DELETE FROM orgs WHERE pk = ?", (org_pk,))
        return n
