"""The audit log: events of organizations and realm-wide ones, kept after an org is deleted."""

from __future__ import annotations

import json

from orgscim.model.clock import now
from orgscim.model.types import JSON

from .db import Database


class AuditLog:
    """The ``events`` table, for :class:`orgscim.store.orgs.OrgStore`."""

    db: Database

    def event(self, org_pk: int | None, kind: str, detail: JSON | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO events (at, org_pk, kind, detail) VALUES (?, ?, ?, ?)",
                         (now(), org_pk, kind, json.dumps(detail or {})))

    def events(self, realm: str, org_pk: int | None = None, limit: int = 100) -> list[JSON]:
        """The realm's most recent audit events, newest first: those of its orgs, and realm-wide ones (no org,
        ``detail.realm`` = ``realm``). With ``org_pk``, only that org's."""
        rows = self.db.all(
            "SELECT e.*, o.org_id FROM events e LEFT JOIN orgs o ON o.pk = e.org_pk "
            "WHERE ((o.realm = ? AND (? IS NULL OR e.org_pk = ?)) "
            "OR (? IS NULL AND e.org_pk IS NULL AND json_extract(e.detail, '$.realm') = ?)) "
            "ORDER BY e.pk DESC LIMIT ?", (realm, org_pk, org_pk, org_pk, realm, limit))
        return [{"at": r["at"], "orgId": r["org_id"], "kind": r["kind"], "detail": json.loads(r["detail"] or "{}")}
                for r in rows]
