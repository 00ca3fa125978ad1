"""Outbox delivery state, SCIM↔Keycloak links, leases and drift records (SQL for provisioning)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from orgscim.model.clock import epoch as _epoch
from orgscim.model.clock import later, now

from .db import Database


@dataclass
class OutboxItem:
    pk: int
    org_pk: int
    resource_type: str
    resource_id: str
    action: str
    payload: dict[str, Any]
    created: str
    attempts: int
    next_attempt: str
    last_error: str | None
    done: str | None

    @classmethod
    def from_sql(cls, r: sqlite3.Row) -> OutboxItem:
        d = dict(r)
        d["payload"] = json.loads(d["payload"])
        return cls(**d)

    def public(self) -> dict[str, Any]:
        return {"id": self.pk, "resourceType": self.resource_type, "resourceId": self.resource_id,
                "action": self.action, "created": self.created, "attempts": self.attempts,
                "nextAttempt": self.next_attempt, "lastError": self.last_error, "done": self.done}


@dataclass
class Link:
    org_pk: int
    resource_type: str
    resource_id: str
    kc_id: str
    origin: str  # "created" (orgscim made it) or "adopted" (existed before)
    state: dict[str, Any]


class SyncStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- outbox ---------------------------------------------------------------------------------
    def pending(self, org_pk: int, limit: int = 50) -> list[OutboxItem]:
        """Undelivered entries of one org, oldest first (delivery is in order, per org)."""
        rows = self.db.all("SELECT * FROM outbox WHERE org_pk = ? AND done IS NULL ORDER BY pk LIMIT ?",
                           (org_pk, limit))
        return [OutboxItem.from_sql(r) for r in rows]

    def resource_pending(self, org_pk: int, resource_id: str, limit: int = 20) -> list[OutboxItem]:
        """Undelivered entries of one resource, in commit order (the order they must reach Keycloak in)."""
        rows = self.db.all("SELECT * FROM outbox WHERE org_pk = ? AND resource_id = ? AND done IS NULL ORDER BY pk "
                           "LIMIT ?", (org_pk, resource_id, limit))
        return [OutboxItem.from_sql(r) for r in rows]

    def due_heads(self, org_pk: int, limit: int, skip: Iterable[str] = ()) -> list[OutboxItem]:
        """The oldest pending entry of each resource of the org that is due now, oldest first: what may be
        delivered in parallel. A group entry waits until no older User entry of the org is pending (its
        members must exist in Keycloak first)."""
        skip = list(skip)
        marks = ",".join("?" * len(skip))
        rows = self.db.all(
            "SELECT * FROM outbox o WHERE o.org_pk = ? AND o.done IS NULL AND o.next_attempt <= ? "
            + (f"AND o.resource_id NOT IN ({marks}) " if skip else "")
            + "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.org_pk = o.org_pk AND p.resource_id = o.resource_id "
            "AND p.done IS NULL AND p.pk < o.pk) "
            "AND (o.resource_type = 'User' OR NOT EXISTS (SELECT 1 FROM outbox u WHERE u.org_pk = o.org_pk "
            "AND u.resource_type = 'User' AND u.done IS NULL AND u.pk < o.pk)) "
            "ORDER BY o.pk LIMIT ?", [org_pk, now(), *skip, limit])
        return [OutboxItem.from_sql(r) for r in rows]

    def due_orgs(self, limit: int = 10000) -> list[int]:
        """Orgs with entries due now, the one waiting longest first."""
        rows = self.db.all("SELECT org_pk FROM outbox WHERE done IS NULL AND next_attempt <= ? GROUP BY org_pk "
                           "ORDER BY min(pk) LIMIT ?", (now(), limit))
        return [r[0] for r in rows]

    def older_users_pending(self, org_pk: int, pk: int) -> bool:
        """Whether a User entry of the org older than entry ``pk`` is still pending (groups wait for them)."""
        return self.db.one("SELECT 1 FROM outbox WHERE org_pk = ? AND resource_type = 'User' AND done IS NULL "
                           "AND pk < ? LIMIT 1", (org_pk, pk)) is not None

    def hold(self, org_pk: int, resource_ids: Sequence[str], seconds: float) -> None:
        """Keep these resources' fresh entries (never attempted) away from other deliverers for ``seconds``."""
        self._set_due(org_pk, resource_ids, later(seconds), "next_attempt < ?")

    def unhold(self, org_pk: int, resource_ids: Sequence[str]) -> None:
        """Make held entries of these resources due now (the request that held them is done with them); an
        entry Keycloak asked to retry later (it has an error) keeps its time."""
        self._set_due(org_pk, resource_ids, now(), "next_attempt > ?")

    def _set_due(self, org_pk: int, resource_ids: Sequence[str], when: str, cond: str) -> None:
        ids = list(dict.fromkeys(resource_ids))
        with self.db.transaction() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                conn.execute(f"UPDATE outbox SET next_attempt = ? WHERE org_pk = ? AND done IS NULL AND attempts = 0 "
                             f"AND last_error IS NULL AND {cond} AND resource_id IN ({','.join('?' * len(chunk))})",
                             [when, org_pk, when, *chunk])

    def cancel_pending(self, org_pk: int, reason: str, who: str = "orgscim") -> int:
        """Finish every pending entry of the org as cancelled, with one audit event (``outbox.cancelled``)
        listing what will not reach Keycloak. Pending entries are never deleted silently."""
        with self.db.transaction() as conn:
            return self._cancel(conn, org_pk, reason, who)

    def _cancel(self, conn: sqlite3.Connection, org_pk: int, reason: str, who: str) -> int:
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
            n = self._cancel(conn, org_pk, reason, who)
            conn.execute("DELETE FROM orgs WHERE pk = ?", (org_pk,))
        return n

    def orgs_with_pending(self, due_only: bool = True) -> list[int]:
        if due_only:
            rows = self.db.all("SELECT DISTINCT org_pk FROM outbox WHERE done IS NULL AND next_attempt <= ?",
                               (now(),))
        else:
            rows = self.db.all("SELECT DISTINCT org_pk FROM outbox WHERE done IS NULL")
        return [r[0] for r in rows]

    def finish(self, pk: int, error: str | None = None) -> bool:
        """Mark an entry delivered (or refused, with ``error``); False if it was finished already."""
        with self.db.transaction() as conn:
            return conn.execute("UPDATE outbox SET done = ?, last_error = ?, attempts = attempts + 1 WHERE pk = ? "
                                "AND done IS NULL", (now(), error, pk)).rowcount == 1

    def complete(self, item: OutboxItem, link: Link | None, lease: tuple[str, str]) -> bool:
        """Mark a delivered entry done together with what it leads to, in one transaction: the resource's
        ``link`` (when the entry changed it) and, when no entry of the resource is left, the release of its
        ``lease`` (name, holder). True when the lease was released (nothing of the resource is pending)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE outbox SET done = ?, last_error = NULL, attempts = attempts + 1 WHERE pk = ? "
                         "AND done IS NULL", (now(), item.pk))
            if link is not None:
                self._write_link(conn, link)
            if conn.execute("SELECT 1 FROM outbox WHERE org_pk = ? AND resource_id = ? AND done IS NULL LIMIT 1",
                            (item.org_pk, item.resource_id)).fetchone() is not None:
                return False
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", lease)
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
            return conn.execute("UPDATE outbox SET next_attempt = ? WHERE done IS NULL AND (? IS NULL OR org_pk = ?)",
                                (now(), org_pk, org_pk)).rowcount

    def outbox(self, org_pk: int | None = None, include_done: bool = False, limit: int = 1000) -> list[OutboxItem]:
        where = ["1"]
        params: list[Any] = []
        if org_pk is not None:
            where.append("org_pk = ?")
            params.append(org_pk)
        if not include_done:
            where.append("done IS NULL")
        rows = self.db.all(f"SELECT * FROM outbox WHERE {' AND '.join(where)} ORDER BY pk LIMIT ?", [*params, limit])
        return [OutboxItem.from_sql(r) for r in rows]

    def recent(self, org_pks: Sequence[int], limit: int = 100) -> list[OutboxItem]:
        """The most recent outbox entries (pending or delivered) of these orgs, newest first."""
        if not org_pks:
            return []
        rows = self.db.all(f"SELECT * FROM outbox WHERE org_pk IN ({','.join('?' * len(org_pks))}) "
                           "ORDER BY pk DESC LIMIT ?", [*org_pks, limit])
        return [OutboxItem.from_sql(r) for r in rows]

    def prune(self, days: int) -> dict[str, int]:
        """Delete delivered outbox entries, audit events, resolved drift and vanished orgs older than ``days``."""
        cutoff = later(-days * 86400)
        with self.db.transaction() as conn:
            gone = [r[0] for r in conn.execute("SELECT pk FROM orgs WHERE vanished IS NOT NULL AND vanished < ?",
                                               (cutoff,))]
            cancelled = sum(self._cancel(conn, pk, f"organization vanished from Keycloak more than {days} days ago",
                                         "housekeeping") for pk in gone)
            return {
                "outbox_cancelled": cancelled,
                "outbox": conn.execute("DELETE FROM outbox WHERE done IS NOT NULL AND done < ?", (cutoff,)).rowcount,
                "events": conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount,
                "drift": conn.execute("DELETE FROM drift WHERE resolved IS NOT NULL AND resolved < ?",
                                      (cutoff,)).rowcount,
                # organizations that vanished from Keycloak longer ago than the retention period, with all
                # their SCIM data (foreign keys cascade)
                "orgs": conn.execute("DELETE FROM orgs WHERE vanished IS NOT NULL AND vanished < ?",
                                     (cutoff,)).rowcount,
            }

    def metrics(self) -> list[tuple[str, str, list[tuple[dict[str, str], float]]]]:
        """(name, help, [(labels, value)]) gauges for ``/metrics``: aggregates only (no tenant identifiers), each
        read from an index or a maintained count, so a scrape costs the same whatever the number of orgs."""
        ts = time.time()
        pending = self.db.one("SELECT count(*), min(created) FROM outbox WHERE done IS NULL")
        drift = self.db.all("SELECT kind, count(*) FROM drift WHERE resolved IS NULL GROUP BY kind")
        orgs = self.db.one("SELECT (SELECT count(*) FROM orgs), (SELECT count(*) FROM orgs WHERE enabled = 1 AND "
                           "vanished IS NULL AND realm IN (SELECT name FROM realms WHERE scim_enabled = 1))")
        resources = self.db.all("SELECT type, n FROM resource_totals")
        jwks = self.db.one("SELECT count(*) FROM jwks WHERE error IS NOT NULL")
        oldest = _epoch(pending[1]) if pending and pending[1] else None
        return [
            ("outbox_pending", "Keycloak changes not delivered yet (all orgs)", [({}, pending[0] if pending else 0)]),
            ("outbox_oldest_age_seconds", "age of the oldest undelivered Keycloak change (0: none)",
             [({}, max(0.0, ts - oldest) if oldest else 0.0)]),
            ("drift_open", "open differences between SCIM state and Keycloak, by kind",
             [({"kind": r[0]}, r[1]) for r in drift]),
            ("orgs", "configured organizations", [({}, orgs[0] or 0 if orgs else 0)]),
            ("orgs_serving", "organizations whose SCIM endpoint is open", [({}, orgs[1] or 0 if orgs else 0)]),
            ("resources", "SCIM resources stored", [({"type": r[0]}, r[1]) for r in resources]),
            ("jwks_refresh_failing", "JWK Sets whose last refresh failed (last good keys in use; `orgscim jwks "
             "refresh` names them)", [({}, jwks[0] if jwks else 0)]),
        ]

    # -- links ----------------------------------------------------------------------------------
    def link(self, org_pk: int, resource_id: str) -> Link | None:
        r = self.db.one("SELECT * FROM kc_links WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))
        if r is None:
            return None
        return Link(r["org_pk"], r["resource_type"], r["resource_id"], r["kc_id"], r["origin"],
                    json.loads(r["state"]))

    def set_link(self, link: Link) -> None:
        with self.db.transaction() as conn:
            self._write_link(conn, link)

    @staticmethod
    def _write_link(conn: sqlite3.Connection, link: Link) -> None:
        conn.execute(
            "INSERT INTO kc_links (org_pk, resource_type, resource_id, kc_id, origin, state, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_pk, resource_id) DO UPDATE SET kc_id = excluded.kc_id, "
            "origin = excluded.origin, state = excluded.state, updated = excluded.updated",
            (link.org_pk, link.resource_type, link.resource_id, link.kc_id, link.origin,
             json.dumps(link.state), now()))

    def drop_link(self, org_pk: int, resource_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM kc_links WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))

    def group_member_kc_ids(self, org_pk: int, group_id: str) -> set[str]:
        """Keycloak ids of the group's SCIM members that are linked users and org members."""
        rows = self.db.all(
            "SELECT l.kc_id, l.state FROM resources g JOIN members m ON m.group_pk = g.pk "
            "JOIN resources u ON u.pk = m.member_pk AND u.type = 'User' "
            "JOIN kc_links l ON l.org_pk = g.org_pk AND l.resource_id = u.id "
            "WHERE g.org_pk = ? AND g.id = ?", (org_pk, group_id))
        return {r[0] for r in rows if json.loads(r[1]).get("member")}

    def owned_kc_ids(self, org_pk: int, kc_ids: Iterable[str]) -> set[str]:
        """Which of these Keycloak ids are users orgscim links to in this org."""
        ids = list(kc_ids)
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.all(f"SELECT kc_id FROM kc_links WHERE org_pk = ? AND kc_id IN ({marks})", [org_pk, *chunk])
            out.update(r[0] for r in rows)
        return out

    def linked_by_kc_id(self, kc_id: str) -> list[Link]:
        rows = self.db.all("SELECT * FROM kc_links WHERE kc_id = ?", (kc_id,))
        return [Link(r["org_pk"], r["resource_type"], r["resource_id"], r["kc_id"], r["origin"],
                     json.loads(r["state"])) for r in rows]

    # -- leases (one deliverer per resource, one job of a kind across processes) ------------------
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

    def renew(self, name: str, holder: str, ttl: float) -> bool:
        """Extend a lease ``holder`` still holds; False when it lost it (expired and taken over)."""
        with self.db.transaction() as conn:
            return conn.execute("UPDATE leases SET until = ? WHERE name = ? AND holder = ?",
                                (time.time() + ttl, name, holder)).rowcount == 1

    def release(self, name: str, holder: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    # -- drift ----------------------------------------------------------------------------------
    def report(self, org_pk: int, resource_type: str, resource_id: str, kind: str, expected: Any = None,
               actual: Any = None) -> None:
        """Record a difference; an open record of the same kind for the resource is refreshed."""
        ts = now()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO drift (org_pk, resource_type, resource_id, kind, expected, actual, first_seen, "
                "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_pk, resource_id, kind) "
                "WHERE resolved IS NULL DO UPDATE SET expected = excluded.expected, actual = excluded.actual, "
                "last_seen = excluded.last_seen",
                (org_pk, resource_type, resource_id, kind, json.dumps(expected), json.dumps(actual), ts, ts))

    def resolve(self, org_pk: int, resource_id: str, kinds: Sequence[str] | None = None) -> int:
        """Close open drift records of a resource (all kinds, or the given ones)."""
        sql = "UPDATE drift SET resolved = ? WHERE org_pk = ? AND resource_id = ? AND resolved IS NULL"
        params: list[Any] = [now(), org_pk, resource_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += list(kinds)
        with self.db.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def resolve_unseen(self, org_pk: int, since: str) -> int:
        """Resolve the org's open drift not reported again since ``since`` (the difference went away)."""
        with self.db.transaction() as conn:
            return conn.execute("UPDATE drift SET resolved = ? WHERE org_pk = ? AND resolved IS NULL AND last_seen < ?",
                                (now(), org_pk, since)).rowcount

    def enqueue(self, org_pk: int, entries: Sequence[Any]) -> None:
        """Outbox entries not tied to a SCIM write (reconcile repairs)."""
        ts = now()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO outbox (org_pk, resource_type, resource_id, action, payload, created, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(org_pk, e.resource_type, e.resource_id, e.action, json.dumps(e.payload), ts, ts) for e in entries])

    def drift(self, org_pk: int | None = None, open_only: bool = True) -> list[dict[str, Any]]:
        where = ["1"]
        params: list[Any] = []
        if org_pk is not None:
            where.append("d.org_pk = ?")
            params.append(org_pk)
        if open_only:
            where.append("d.resolved IS NULL")
        rows = self.db.all(
            f"SELECT d.*, o.realm, o.org_id FROM drift d JOIN orgs o ON o.pk = d.org_pk WHERE {' AND '.join(where)} "
            "ORDER BY d.pk", params)
        return [{"realm": r["realm"], "orgId": r["org_id"], "resourceType": r["resource_type"],
                 "resourceId": r["resource_id"], "kind": r["kind"], "expected": json.loads(r["expected"] or "null"),
                 "actual": json.loads(r["actual"] or "null"), "firstSeen": r["first_seen"],
                 "lastSeen": r["last_seen"], "resolved": r["resolved"]} for r in rows]


def holder_alive(holder: str) -> bool:
    """False when ``holder`` (``host:pid:token``) names a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
