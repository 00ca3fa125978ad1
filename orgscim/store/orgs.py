"""Realms, organizations, credentials and audit events."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable

from orgscim.model.clock import now
from orgscim.model.contract import MAX_PAGE, ORG_STATUS_FILTERS, Credential, Org, OrgPage
from orgscim.model.types import JSON

from .db import Database


def encode_cursor(realm: str, org_id: str) -> str:
    """An opaque ``--after`` value: the (realm, org id) of the last row shown (base64url of JSON)."""
    return base64.urlsafe_b64encode(json.dumps([realm, org_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (realm, org id) in a cursor of :func:`encode_cursor`; ValueError if it is not one."""
    try:
        realm, org_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{cursor!r} is not a page cursor (use the value of `next`)") from e
    if not isinstance(realm, str) or not isinstance(org_id, str):
        raise ValueError(f"{cursor!r} is not a page cursor (use the value of `next`)")
    return realm, org_id


def _like(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere (``%``, ``_`` and ``\\`` taken literally)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _org(r: sqlite3.Row) -> Org:
    return Org(r["pk"], r["realm"], r["org_id"], bool(r["enabled"]), r["auth_mode"], json.loads(r["auth_config"]),
               r["federation"], json.loads(r["settings"]), bool(r["realm_enabled"]), r["created"], r["updated"],
               r["vanished"])


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

    def realms(self) -> list[JSON]:
        return [{"realm": r["name"], "scimEnabled": bool(r["scim_enabled"]), "updated": r["updated"]}
                for r in self.db.all("SELECT * FROM realms ORDER BY name")]

    # orgs
    def org(self, realm: str, org_id: str) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.realm = ? AND o.org_id = ?", (realm, org_id))
        return _org(row) if row else None

    def org_by_pk(self, pk: int) -> Org | None:
        row = self.db.one(f"{_ORG_SQL} WHERE o.pk = ?", (pk,))
        return _org(row) if row else None

    def orgs(self, realm: str | None = None) -> list[Org]:
        if realm:
            rows = self.db.all(f"{_ORG_SQL} WHERE o.realm = ? ORDER BY o.realm, o.org_id", (realm,))
        else:
            rows = self.db.all(f"{_ORG_SQL} ORDER BY o.realm, o.org_id")
        return [_org(r) for r in rows]

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

    def org_page(self, realm: str | None = None, *, after: str | None = None, limit: int = 100,
                 search: str | None = None, status: str | None = None) -> OrgPage:
        """One page of the listing of configured orgs and organizations Keycloak lists without a SCIM config,
        with their Keycloak name and alias (cached in ``kc_orgs``), open drift and delivery counts.

        Keyset paging in (realm, org id) order: each half of the union walks its unique (realm, org_id) index
        and stops after ``limit`` + 1 rows, so a page costs the same at the 2,000th org as at the first.
        ``search`` matches name, alias or id (case-insensitive substring); ``status`` is one of
        :data:`ORG_STATUS_FILTERS` (``drift``: open drift; ``failing``: pending outbox entries that failed at
        least once). ``after`` is the ``next`` cursor of the previous page.
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        if status is not None and status not in ORG_STATUS_FILTERS:
            raise ValueError(f"status must be one of {', '.join(ORG_STATUS_FILTERS)}")
        start = decode_cursor(after) if after else ("", "")
        term = (search or "").strip()
        if realm:  # one realm: equality on realm, range on org_id (the index serves both)
            if start[0] > realm:
                return OrgPage([], None, {"realm": realm, "search": term or None, "status": status, "limit": limit})
            keyset, key = "{t}.realm = ? AND {t}.org_id > ?", [realm, start[1] if start[0] == realm else ""]
        else:
            keyset, key = "({t}.realm, {t}.org_id) > (?, ?)", [*start]
        configured_where = [keyset.format(t="o")]
        discovered_where = ["k.vanished IS NULL", keyset.format(t="k"),
                            "NOT EXISTS (SELECT 1 FROM orgs x WHERE x.realm = k.realm AND x.org_id = k.org_id)"]
        cparams: list[object] = list(key)
        dparams: list[object] = list(key)
        if term:
            pattern = _like(term)
            configured_where.append("(o.org_id LIKE ? ESCAPE '\\' OR k.name LIKE ? ESCAPE '\\' "
                                    "OR k.alias LIKE ? ESCAPE '\\')")
            discovered_where.append("(k.org_id LIKE ? ESCAPE '\\' OR k.name LIKE ? ESCAPE '\\' "
                                    "OR k.alias LIKE ? ESCAPE '\\')")
            cparams += [pattern] * 3
            dparams += [pattern] * 3
        if status == "drift":
            configured_where.append("o.pk IN (SELECT org_pk FROM drift WHERE resolved IS NULL)")
        elif status == "failing":
            configured_where.append("o.pk IN (SELECT org_pk FROM outbox WHERE done IS NULL AND attempts > 0)")
        arms = []
        if status != "not-configured":
            arms.append((
                "(SELECT o.*, COALESCE(r.scim_enabled, 0) AS realm_enabled, k.name AS kc_name, "
                "k.alias AS kc_alias, NULL AS first_seen, "
                "(SELECT count(*) FROM drift d WHERE d.org_pk = o.pk AND d.resolved IS NULL) AS open_drift, "
                "(SELECT count(*) FROM outbox b WHERE b.org_pk = o.pk AND b.done IS NULL) AS pending, "
                "(SELECT count(*) FROM outbox b WHERE b.org_pk = o.pk AND b.done IS NULL AND b.attempts > 0) "
                "AS failing FROM orgs o LEFT JOIN realms r ON r.name = o.realm "
                "LEFT JOIN kc_orgs k ON k.realm = o.realm AND k.org_id = o.org_id "
                f"WHERE {' AND '.join(configured_where)} ORDER BY o.realm, o.org_id LIMIT ?)", [*cparams, limit + 1]))
        if status in (None, "not-configured"):
            arms.append((
                "(SELECT NULL AS pk, k.realm, k.org_id, 0 AS enabled, NULL AS auth_mode, "
                "'{}' AS auth_config, NULL AS federation, '{}' AS settings, NULL AS created, NULL AS updated, "
                "NULL AS vanished, 0 AS realm_enabled, k.name AS kc_name, k.alias AS kc_alias, k.first_seen, "
                "0 AS open_drift, 0 AS pending, 0 AS failing FROM kc_orgs k "
                f"WHERE {' AND '.join(discovered_where)} ORDER BY k.realm, k.org_id LIMIT ?)", [*dparams, limit + 1]))
        columns = ("pk, realm, org_id, enabled, auth_mode, auth_config, federation, settings, created, updated, "
                   "vanished, realm_enabled, kc_name, kc_alias, first_seen, open_drift, pending, failing")
        sql = " UNION ALL ".join(f"SELECT {columns} FROM {arm}" for arm, _ in arms)
        params = [p for _, ps in arms for p in ps]
        rows = self.db.all(f"{sql} ORDER BY realm, org_id LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        out = [self._listing_row(r) for r in rows[:limit]]
        nxt = encode_cursor(out[-1]["realm"], out[-1]["orgId"]) if more and out else None
        return OrgPage(out, nxt, {"realm": realm, "search": term or None, "status": status, "limit": limit})

    @staticmethod
    def _listing_row(r: sqlite3.Row) -> JSON:
        """A listing row: ``Org.public()`` plus names for configured orgs; the short form for discovered ones."""
        names = {"name": r["kc_name"], "alias": r["kc_alias"]}
        if r["pk"] is None:
            return {"realm": r["realm"], "orgId": r["org_id"], **names, "firstSeen": r["first_seen"],
                    "serving": False, "configured": False}
        return {**_org(r).public(), **names, "configured": True, "openDrift": r["open_drift"],
                "pendingChanges": r["pending"], "failingChanges": r["failing"]}

    def org_names(self, realm: str, org_ids: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """``{org id: {"name", "alias"}}`` as Keycloak last listed them (cached in ``kc_orgs``)."""
        ids = list(dict.fromkeys(org_ids))
        out: dict[str, dict[str, str | None]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.db.all(f"SELECT org_id, name, alias FROM kc_orgs WHERE realm = ? AND org_id IN "
                               f"({', '.join('?' * len(chunk))})", [realm, *chunk])
            out.update({r["org_id"]: {"name": r["name"], "alias": r["alias"]} for r in rows})
        return out

    def resource_names(self, org_pk: int, ids: Iterable[str]) -> dict[str, str]:
        """``{SCIM id: userName or group displayName}`` for the org's resources among ``ids`` (by the unique
        ``id`` index; ids of other orgs or deleted resources are left out)."""
        wanted = list(dict.fromkeys(i for i in ids if i))
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = self.db.all(
                "SELECT id, COALESCE(json_extract(data, '$.userName'), json_extract(data, '$.displayName'), "
                f"name_lc) AS name FROM resources WHERE org_pk = ? AND id IN ({', '.join('?' * len(chunk))})",
                [org_pk, *chunk])
            out.update({r["id"]: r["name"] for r in rows})
        return out

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

    def update_credential(self, pk: int, **fields: str | None) -> None:
        allowed = {"hash", "last_used", "expires", "revoked"}
        sets = [k for k in fields if k in allowed]
        if not sets:
            return
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE credentials SET {', '.join(f'{k} = ?' for k in sets)} WHERE pk = ?",
                         [*(fields[k] for k in sets), pk])

    # audit
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
