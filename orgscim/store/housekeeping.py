"""Retention (``orgscim worker`` housekeeping job) and the store's ``/metrics`` gauges."""

from __future__ import annotations

import time

from orgscim.model.clock import epoch, later
from orgscim.model.delivery import Gauge

from .db import Database
from .outbox import cancel_in


class HousekeepingStore:
    """As :class:`orgscim.model.contract.Housekeeping`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def prune(self, days: int) -> dict[str, int]:
        """Delete delivered outbox entries, audit events, resolved drift and vanished orgs older than ``days``."""
        cutoff = later(-days * 86400)
        with self.db.transaction() as conn:
            gone = [r[0] for r in conn.execute("SELECT pk FROM orgs WHERE vanished IS NOT NULL AND vanished < ?",
                                               (cutoff,))]
            cancelled = sum(cancel_in(conn, pk, f"organization vanished from Keycloak more than {days} days ago",
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

    def metrics(self) -> list[Gauge]:
        """(name, help, [(labels, value)]) gauges for ``/metrics``: aggregates only (no tenant identifiers), each
        read from an index or a maintained count, so a scrape costs the same whatever the number of orgs."""
        ts = time.time()
        pending = self.db.one("SELECT count(*), min(created) FROM outbox WHERE done IS NULL")
        drift = self.db.all("SELECT kind, count(*) FROM drift WHERE resolved IS NULL GROUP BY kind")
        orgs = self.db.one("SELECT (SELECT count(*) FROM orgs), (SELECT count(*) FROM orgs WHERE enabled = 1 AND "
                           "vanished IS NULL AND realm IN (SELECT name FROM realms WHERE scim_enabled = 1))")
        resources = self.db.all("SELECT type, n FROM resource_totals")
        jwks = self.db.one("SELECT count(*) FROM jwks WHERE error IS NOT NULL")
        oldest = epoch(pending[1]) if pending and pending[1] else None
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
