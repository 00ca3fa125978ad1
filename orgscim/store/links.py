"""Links between SCIM resources and their Keycloak objects (``kc_links``), with what delivery last applied."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from orgscim.model.clock import now
from orgscim.model.delivery import Link

from .batch import chunks, marks
from .db import Database


def link_from_row(r: sqlite3.Row) -> Link:
    """A ``kc_links`` row as a :class:`Link` (the one place the columns are mapped)."""
    return Link(r["org_pk"], r["resource_type"], r["resource_id"], r["kc_id"], r["origin"], json.loads(r["state"]))


def write_link(conn: sqlite3.Connection, link: Link) -> None:
    """Insert or replace ``link`` inside the caller's transaction."""
    conn.execute(
        "INSERT INTO kc_links (org_pk, resource_type, resource_id, kc_id, origin, state, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_pk, resource_id) DO UPDATE SET kc_id = excluded.kc_id, "
        "origin = excluded.origin, state = excluded.state, updated = excluded.updated",
        (link.org_pk, link.resource_type, link.resource_id, link.kc_id, link.origin, json.dumps(link.state), now()))


class LinkStore:
    """The ``kc_links`` table, as :class:`orgscim.model.contract.Links`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, org_pk: int, resource_id: str) -> Link | None:
        r = self.db.one("SELECT * FROM kc_links WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))
        return None if r is None else link_from_row(r)

    def save(self, link: Link) -> None:
        with self.db.transaction() as conn:
            write_link(conn, link)

    def drop(self, org_pk: int, resource_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM kc_links WHERE org_pk = ? AND resource_id = ?", (org_pk, resource_id))

    def by_kc_id(self, kc_id: str) -> list[Link]:
        """Every link to this Keycloak object, in any org."""
        return [link_from_row(r) for r in self.db.all("SELECT * FROM kc_links WHERE kc_id = ?", (kc_id,))]

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
        out: set[str] = set()
        for chunk in chunks(list(kc_ids)):
            rows = self.db.all(f"SELECT kc_id FROM kc_links WHERE org_pk = ? AND kc_id IN ({marks(chunk)})",
                               [org_pk, *chunk])
            out.update(r[0] for r in rows)
        return out
