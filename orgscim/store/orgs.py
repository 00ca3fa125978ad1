"""Realms and organizations: the realm flag, SCIM configurations, and organizations as Keycloak lists them.

:class:`OrgStore` also carries the listing (:mod:`.org_listing`), credentials (:mod:`.credentials`) and the audit
log (:mod:`.audit`), one module each, so callers keep one ``Orgs`` object (``orgscim.model.contract.Orgs``).
"""

from __future__ import annotations

import json

from orgscim.model.clock import now
from orgscim.model.contract import Org
from orgscim.model.types import JSON

from .audit import AuditLog
from .credentials import CredentialRows
from .db import Database
from .org_listing import OrgListing, org_from_row

_ORG_SQL = ("SELECT o.*, COALESCE(r.scim_enabled, 0) AS realm_enabled FROM orgs o "
            "LEFT JOIN realms r ON r.name = o.realm")


class OrgStore(OrgListing, CredentialRows, AuditLog):
    def __init__(self, db: Database) -> None:
        self.db = db

    # realms
    def set_realm(self, realm: str, enabled: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO realms (name, scim_enabled, updated) VALUES (?, ?, ?) ON CONFLICT (name) "
                         "DO UPDATE SET scim_enabled = excluded.scim_enabled, updated = excluded.updated",
                         (realm, int(enabled), now()))

    def realm_enabled(self, realm: str) -> bool:
        row = self.db.one("SELECT scim_enabled FROM realms WHERE name = ?", (realm,))
        return bool(row and row[0])

    def realms(self) -> list[JSON]:
        return [{"realm": r["name"], "scimEnabled": bool(r["scim_enabled"]), "updated": r["updated"]}
                for r in self.db.all("SELECT * FROM realms ORDER BY name")]

    # orgs
    def org(self, realm: str, org_id: str) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.realm = ? AND o.org_id = ?", (realm, org_id))
        return org_from_row(row) if row else None

    def org_by_pk(self, pk: int) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.pk = ?", (pk,))
        return org_from_row(row) if row else None

    def orgs(self, realm: str | None = None) -> list[Org]:
        if realm:
            rows = self.db.all(f"{_ORG_SQL} WHERE o.realm = ? ORDER BY o.realm, o.org_id", (realm,))
        else:
            rows = self.db.all(f"{_ORG_SQL} ORDER BY o.realm, o.org_id")
        return [org_from_row(r) for r in rows]

    def upsert_org(self, realm: str, org_id: str, auth_mode: str, auth_config: JSON,
                   enabled: bool = True, federation: str = "none",
                   settings: JSON | None = None) -> Org:
        ts = now()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO orgs (realm, org_id, enabled, auth_mode, auth_config, federation, settings, created, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, org_id) DO UPDATE SET "
                "enabled = excluded.enabled, auth_mode = excluded.auth_mode, auth_config = excluded.auth_config, "
                "federation = excluded.federation, settings = excluded.settings, updated = excluded.updated",
                (realm, org_id, int(enabled), auth_mode, json.dumps(auth_config), federation,
                 json.dumps(settings or {}), ts, ts))
        org = self.org(realm, org_id)
        assert org is not None
        return org

    def org_counts(self, org_pk: int) -> dict[str, int]:
        rows = self.db.all("SELECT type, count(*) FROM resources WHERE org_pk = ? GROUP BY type", (org_pk,))
        return {r[0]: r[1] for r in rows}

    def delete_org(self, org_pk: int) -> None:
        """Delete an org's SCIM config with all its SCIM data (resources, credentials, links, outbox, drift:
        foreign keys cascade). Audit events are kept."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM orgs WHERE pk = ?", (org_pk,))

    def set_vanished(self, org_pk: int, when: str | None) -> None:
        """Close (or reopen) an org whose Keycloak organization disappeared; its data is kept."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE orgs SET vanished = ? WHERE pk = ?", (when, org_pk))

    def seen_in_keycloak(self, realm: str, orgs: list[JSON]) -> None:
        """Record organizations Keycloak lists now (see :meth:`close_unseen` for the ones it stopped listing)."""
        ts = now()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO kc_orgs (realm, org_id, name, alias, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (realm, org_id) DO UPDATE SET name = excluded.name, alias = excluded.alias, "
                "last_seen = excluded.last_seen, vanished = NULL",
                [(realm, o["id"], o.get("name"), o.get("alias"), ts, ts) for o in orgs])

    def close_unseen(self, realm: str, run_start: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE kc_orgs SET vanished = ? WHERE realm = ? AND last_seen < ? AND vanished IS NULL",
                         (now(), realm, run_start))

    def discovered(self, realm: str | None = None) -> list[JSON]:
        """Organizations Keycloak lists that have no SCIM config (SCIM off until configured)."""
        rows = self.db.all(
            "SELECT k.* FROM kc_orgs k LEFT JOIN orgs o ON o.realm = k.realm AND o.org_id = k.org_id "
            "WHERE o.pk IS NULL AND k.vanished IS NULL AND (? IS NULL OR k.realm = ?) ORDER BY k.realm, k.name",
            (realm, realm))
        return [{"realm": r["realm"], "orgId": r["org_id"], "name": r["name"], "alias": r["alias"],
                 "firstSeen": r["first_seen"], "serving": False, "configured": False} for r in rows]
