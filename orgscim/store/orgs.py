"""Realms, organizations, credentials and audit events."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .db import Database
from .resources import now


@dataclass
class Org:
    pk: int
    realm: str
    org_id: str
    enabled: bool
    auth_mode: str
    auth_config: dict[str, Any]
    federation: str
    settings: dict[str, Any]
    realm_enabled: bool
    created: str
    updated: str
    vanished: str | None = None

    @property
    def serving(self) -> bool:
        """SCIM answers only when the realm flag is on, the org is enabled and it still exists in Keycloak."""
        return self.realm_enabled and self.enabled and self.vanished is None

    @classmethod
    def from_sql(cls, r: sqlite3.Row) -> Org:
        return cls(r["pk"], r["realm"], r["org_id"], bool(r["enabled"]), r["auth_mode"],
                   json.loads(r["auth_config"]), r["federation"], json.loads(r["settings"]),
                   bool(r["realm_enabled"]), r["created"], r["updated"], r["vanished"])

    def public(self) -> dict[str, Any]:
        """What listings show: never credentials."""
        return {"realm": self.realm, "orgId": self.org_id, "enabled": self.enabled, "authMode": self.auth_mode,
                "authConfig": self.auth_config, "federation": self.federation, "settings": self.settings,
                "realmScimEnabled": self.realm_enabled, "serving": self.serving, "created": self.created,
                "updated": self.updated, "vanished": self.vanished}


@dataclass
class Credential:
    pk: int
    org_pk: int
    cred_id: str
    kind: str
    username: str | None
    hash: str
    created: str
    last_used: str | None
    expires: str | None
    revoked: str | None

    def active(self, at: str) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > at)

    def status(self, at: str | None = None) -> str:
        """``active``, ``expiring`` (rotated out, still valid until ``expires``), ``expired`` or ``revoked``."""
        at = at or now()
        if self.revoked is not None:
            return "revoked"
        if self.expires is None:
            return "active"
        return "expiring" if self.expires > at else "expired"

    def public(self) -> dict[str, Any]:
        """Listing form: never the secret, never the hash."""
        return {"id": self.cred_id, "kind": self.kind, "username": self.username, "created": self.created,
                "lastUsed": self.last_used, "expires": self.expires, "revoked": self.revoked,
                "status": self.status()}


_ORG_SQL = ("SELECT o.*, COALESCE(r.scim_enabled, 0) AS realm_enabled FROM orgs o "
            "LEFT JOIN realms r ON r.name = o.realm")


class OrgStore:
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

    def realms(self) -> list[dict[str, Any]]:
        return [{"realm": r["name"], "scimEnabled": bool(r["scim_enabled"]), "updated": r["updated"]}
                for r in self.db.all("SELECT * FROM realms ORDER BY name")]

    # orgs
    def org(self, realm: str, org_id: str) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.realm = ? AND o.org_id = ?", (realm, org_id))
        return Org.from_sql(row) if row else None

    def org_by_pk(self, pk: int) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.pk = ?", (pk,))
        return Org.from_sql(row) if row else None

    def orgs(self, realm: str | None = None) -> list[Org]:
        if realm:
            rows = self.db.all(f"{_ORG_SQL} WHERE o.realm = ? ORDER BY o.realm, o.org_id", (realm,))
        else:
            rows = self.db.all(f"{_ORG_SQL} ORDER BY o.realm, o.org_id")
        return [Org.from_sql(r) for r in rows]

    def upsert_org(self, realm: str, org_id: str, auth_mode: str, auth_config: dict[str, Any],
                   enabled: bool = True, federation: str = "none",
                   settings: dict[str, Any] | None = None) -> Org:
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

    def seen_in_keycloak(self, realm: str, orgs: list[dict[str, Any]]) -> None:
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

    def discovered(self, realm: str | None = None) -> list[dict[str, Any]]:
        """Organizations Keycloak lists that have no SCIM config (SCIM off until configured)."""
        rows = self.db.all(
            "SELECT k.* FROM kc_orgs k LEFT JOIN orgs o ON o.realm = k.realm AND o.org_id = k.org_id "
            "WHERE o.pk IS NULL AND k.vanished IS NULL AND (? IS NULL OR k.realm = ?) ORDER BY k.realm, k.name",
            (realm, realm))
        return [{"realm": r["realm"], "orgId": r["org_id"], "name": r["name"], "alias": r["alias"],
                 "firstSeen": r["first_seen"], "serving": False, "configured": False} for r in rows]

    # credentials
    def add_credential(self, org_pk: int, cred_id: str, kind: str, hash_: str, username: str | None = None,
                       expires: str | None = None) -> Credential:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO credentials (org_pk, cred_id, kind, username, hash, created, expires) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (org_pk, cred_id, kind, username, hash_, now(), expires))
        cred = self.credential(org_pk, cred_id)
        assert cred is not None
        return cred

    def credential(self, org_pk: int, cred_id: str) -> Credential | None:
        row = self.db.one("SELECT * FROM credentials WHERE org_pk = ? AND cred_id = ?", (org_pk, cred_id))
        return Credential(**dict(row)) if row else None

    def credential_by_pk(self, pk: int) -> Credential | None:
        row = self.db.one("SELECT * FROM credentials WHERE pk = ?", (pk,))
        return Credential(**dict(row)) if row else None

    def credentials(self, org_pk: int, active_only: bool = False) -> list[Credential]:
        creds = [Credential(**dict(r)) for r in
                 self.db.all("SELECT * FROM credentials WHERE org_pk = ? ORDER BY pk", (org_pk,))]
        ts = now()
        return [c for c in creds if c.active(ts)] if active_only else creds

    def active_credentials(self, org_pk: int, kind: str) -> list[Credential]:
        """The org's credentials of ``kind`` that are neither revoked nor past their expiry."""
        rows = self.db.all("SELECT * FROM credentials WHERE org_pk = ? AND kind = ? AND revoked IS NULL "
                           "AND (expires IS NULL OR expires > ?) ORDER BY pk", (org_pk, kind, now()))
        return [Credential(**dict(r)) for r in rows]

    def supersede_credentials(self, org_pk: int, kind: str, deadline: str, keep_pk: int) -> list[Credential]:
        """Rotation: every other active credential of ``kind`` expires at ``deadline`` (unless it expires
        sooner already). Returns the credentials changed, as they are now."""
        where = "org_pk = ? AND kind = ? AND pk != ? AND revoked IS NULL AND (expires IS NULL OR expires > ?)"
        params = (org_pk, kind, keep_pk, deadline)
        with self.db.transaction() as conn:
            pks = [r[0] for r in conn.execute(f"SELECT pk FROM credentials WHERE {where}", params)]
            conn.executemany("UPDATE credentials SET expires = ? WHERE pk = ?", [(deadline, pk) for pk in pks])
        return [c for c in (self.credential_by_pk(pk) for pk in pks) if c is not None]

    def revoke_credential(self, org_pk: int, cred_id: str, at: str) -> Credential | None:
        """Revoke now (a credential revoked earlier keeps its first revocation time)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE credentials SET revoked = COALESCE(revoked, ?) WHERE org_pk = ? AND cred_id = ?",
                         (at, org_pk, cred_id))
        return self.credential(org_pk, cred_id)

    def update_credential(self, pk: int, **fields: Any) -> None:
        allowed = {"hash", "last_used", "expires", "revoked"}
        sets = [k for k in fields if k in allowed]
        if not sets:
            return
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE credentials SET {', '.join(f'{k} = ?' for k in sets)} WHERE pk = ?",
                         [*(fields[k] for k in sets), pk])

    # audit
    def event(self, org_pk: int | None, kind: str, detail: dict[str, Any] | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO events (at, org_pk, kind, detail) VALUES (?, ?, ?, ?)",
                         (now(), org_pk, kind, json.dumps(detail or {})))

    def events(self, realm: str, org_pk: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The realm's most recent audit events, newest first: those of its orgs, and realm-wide ones (no org,
        ``detail.realm`` = ``realm``). With ``org_pk``, only that org's."""
        rows = self.db.all(
            "SELECT e.*, o.org_id FROM events e LEFT JOIN orgs o ON o.pk = e.org_pk "
            "WHERE ((o.realm = ? AND (? IS NULL OR e.org_pk = ?)) "
            "OR (? IS NULL AND e.org_pk IS NULL AND json_extract(e.detail, '$.realm') = ?)) "
            "ORDER BY e.pk DESC LIMIT ?", (realm, org_pk, org_pk, org_pk, realm, limit))
        return [{"at": r["at"], "orgId": r["org_id"], "kind": r["kind"], "detail": json.loads(r["detail"] or "{}")}
                for r in rows]
