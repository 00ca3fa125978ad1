"""Names beside ids: Keycloak organization names/aliases and SCIM userName/displayName for listings.

Admins match rows by name; ids stay in every row (``--json`` consumers key on them). Names come from SQLite only:
organizations as reconcile (or configuring) last saw them in Keycloak (``kc_orgs``), resources by their unique id
index, so naming a page of rows costs a few indexed lookups and never a Keycloak call.
"""

from __future__ import annotations

from collections import defaultdict

from .model.contract import Orgs
from .model.types import JSON


def org_label(name: str | None, alias: str | None, org_id: str) -> str:
    """``name (alias)``, or the id when Keycloak's name is not known (yet)."""
    if not name:
        return alias or org_id
    return f"{name} ({alias})" if alias and alias != name else name


def add_names(orgs: Orgs, rows: list[JSON]) -> list[JSON]:
    """Add ``orgName``, ``orgAlias`` and (rows with ``resourceId``) ``resourceName`` to rows that carry ``realm``
    and ``orgId``; changes the rows in place and returns them."""
    by_org: dict[tuple[str, str], list[JSON]] = defaultdict(list)
    for row in rows:
        by_org[(row["realm"], row["orgId"])].append(row)
    by_realm: dict[str, list[str]] = defaultdict(list)
    for realm, org_id in by_org:
        by_realm[realm].append(org_id)
    org_names = {(realm, oid): n for realm, ids in by_realm.items() for oid, n in orgs.org_names(realm, ids).items()}
    for key, group in by_org.items():
        names = org_names.get(key, {})
        org = orgs.org(*key)
        resources = orgs.resource_names(org.pk, [r["resourceId"] for r in group if r.get("resourceId")]) if org else {}
        for row in group:
            row["orgName"], row["orgAlias"] = names.get("name"), names.get("alias")
            if "resourceId" in row:
                row["resourceName"] = resources.get(row["resourceId"]) or _named_in(row)
    return rows


def _named_in(row: JSON) -> str | None:
    """A Keycloak username a drift record carries itself (e.g. an unmanaged member has no SCIM resource)."""
    for side in (row.get("actual"), row.get("expected")):
        name = side.get("username") if isinstance(side, dict) else None
        if isinstance(name, str):
            return name
    return None
