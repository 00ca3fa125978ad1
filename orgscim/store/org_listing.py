"""The operator's listing of organizations: keyset pages over configured orgs and the ones Keycloak lists without
a SCIM config, with their Keycloak names, open drift and delivery counts; and names for ids shown beside them."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable

from orgscim.model.contract import MAX_PAGE, ORG_STATUS_FILTERS, Org, OrgPage
from orgscim.model.types import JSON

from .batch import chunks, marks
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


def org_from_row(r: sqlite3.Row) -> Org:
    return Org(r["pk"], r["realm"], r["org_id"], bool(r["enabled"]), r["auth_mode"], json.loads(r["auth_config"]),
               r["federation"], json.loads(r["settings"]), bool(r["realm_enabled"]), r["created"], r["updated"],
               r["vanished"])



class OrgListing:
    """Listing reads of :class:`orgscim.store.orgs.OrgStore` (orgs with their Keycloak names, drift and outbox
    counts; names of resources)."""

    db: Database

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
        return {**org_from_row(r).public(), **names, "configured": True, "openDrift": r["open_drift"],
                "pendingChanges": r["pending"], "failingChanges": r["failing"]}

    def org_names(self, realm: str, org_ids: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """``{org id: {"name", "alias"}}`` as Keycloak last listed them (cached in ``kc_orgs``)."""
        ids = list(dict.fromkeys(org_ids))
        out: dict[str, dict[str, str | None]] = {}
        for chunk in chunks(ids):
            rows = self.db.all(f"SELECT org_id, name, alias FROM kc_orgs WHERE realm = ? AND org_id IN "
                               f"({marks(chunk)})", [realm, *chunk])
            out.update({r["org_id"]: {"name": r["name"], "alias": r["alias"]} for r in rows})
        return out

    def resource_names(self, org_pk: int, ids: Iterable[str]) -> dict[str, str]:
        """``{SCIM id: userName or group displayName}`` for the org's resources among ``ids`` (by the unique
        ``id`` index; ids of other orgs or deleted resources are left out)."""
        wanted = list(dict.fromkeys(i for i in ids if i))
        out: dict[str, str] = {}
        for chunk in chunks(wanted):
            rows = self.db.all(
                "SELECT id, COALESCE(json_extract(data, '$.userName'), json_extract(data, '$.displayName'), "
                f"name_lc) AS name FROM resources WHERE org_pk = ? AND id IN ({marks(chunk)})",
                [org_pk, *chunk])
            out.update({r["id"]: r["name"] for r in rows})
        return out
