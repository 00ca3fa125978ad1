"""Drift records: differences between SCIM state and Keycloak that delivery or reconcile found (DESIGN §7)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from orgscim.model.clock import now
from orgscim.model.delivery import DriftRecord
from orgscim.model.types import JSONValue

from .batch import marks
from .db import Database


class DriftStore:
    """The ``drift`` table, as :class:`orgscim.model.contract.Drift`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def report(self, org_pk: int, resource_type: str, resource_id: str, kind: str, expected: JSONValue = None,
               actual: JSONValue = None) -> None:
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
        params: list[str | int] = [now(), org_pk, resource_id]
        if kinds:
            sql += f" AND kind IN ({marks(kinds)})"
            params += list(kinds)
        with self.db.transaction() as conn:
            closed: int = conn.execute(sql, params).rowcount
        return closed

    def resolve_unseen(self, org_pk: int, since: str) -> int:
        """Resolve the org's open drift not reported again since ``since`` (the difference went away)."""
        with self.db.transaction() as conn:
            closed: int = conn.execute("UPDATE drift SET resolved = ? WHERE org_pk = ? AND resolved IS NULL "
                                       "AND last_seen < ?", (now(), org_pk, since)).rowcount
        return closed

    def records(self, org_pk: int | None = None, open_only: bool = True) -> list[DriftRecord]:
        """Drift of one org or all, oldest first, with the org's realm and id."""
        where = ["1"]
        params: list[int] = []
        if org_pk is not None:
            where.append("d.org_pk = ?")
            params.append(org_pk)
        if open_only:
            where.append("d.resolved IS NULL")
        rows = self.db.all(
            f"SELECT d.*, o.realm, o.org_id FROM drift d JOIN orgs o ON o.pk = d.org_pk WHERE {' AND '.join(where)} "
            "ORDER BY d.pk", params)
        return [DriftRecord(r["realm"], r["org_id"], r["resource_type"], r["resource_id"], r["kind"],
                            json.loads(r["expected"] or "null"), json.loads(r["actual"] or "null"), r["first_seen"],
                            r["last_seen"], r["resolved"]) for r in rows]
