"""The organizations page: the realm's organizations a page at a time, with their Keycloak names, and the
realm's SCIM flag."""

from __future__ import annotations

import time

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ...keycloak.client import KeycloakError
from ...model.contract import ORG_STATUS_FILTERS
from ...model.types import JSON
from ...services import ConfigError, org_status
from ..current import services
from .blueprint import Page, bp, keycloak_trouble, org_admin, settings

NAMES_REFRESH_SECONDS = 300.0  # how often (per process) the orgs page asks Keycloak for new organization names
NAMES_BATCH = 100  # organizations stored per write while Keycloak's list is paged
PAGE_SIZE = 50
_names_refreshed: dict[str, float] = {}


def _refresh_names(realm: str) -> str | None:
    """Cache the names of the realm's Keycloak organizations (``kc_orgs``), at most every NAMES_REFRESH_SECONDS
    per process, page by page; None, or a warning when Keycloak did not answer (the cached names stay)."""
    svc = services()
    if time.monotonic() - _names_refreshed.get(realm, -NAMES_REFRESH_SECONDS) < NAMES_REFRESH_SECONDS:
        return None
    fallback = "names and organizations without a SCIM config are as the last reconcile saw them."
    if not svc.keycloak_up(realm):
        return f"Keycloak failed moments ago; {fallback}"
    try:
        admin = svc.keycloak(realm)
        if admin is None:
            return "Keycloak is not configured (KEYCLOAK_URL): only configured orgs are listed, without names."
        page: list[JSON] = []  # Keycloak's organization representations
        for kc_org in admin.iter_organizations():
            page.append(kc_org)
            if len(page) == NAMES_BATCH:
                svc.orgs.seen_in_keycloak(realm, page)
                page = []
        svc.orgs.seen_in_keycloak(realm, page)
    except (KeycloakError, ConfigError) as e:
        return f"Keycloak did not list its organizations ({keycloak_trouble(e, realm)}); {fallback}"
    _names_refreshed[realm] = time.monotonic()
    return None


@bp.get("/")
def orgs() -> str:
    """The realm's organizations, a page at a time: search by name, alias or id; filter by status."""
    s = settings()
    svc = services()
    warning = _refresh_names(s.realm)
    q = request.args.get("q", "").strip()[:200]
    status = request.args.get("status") or None
    if status not in (None, *ORG_STATUS_FILTERS):
        status = None
    after = request.args.get("after") or None
    try:
        page = svc.orgs.org_page(s.realm, after=after, limit=PAGE_SIZE, search=q or None, status=status)
    except ValueError:
        raise Page(400, "No such page", "The page link is not valid (any more); start from the first page.") from None
    for row in page.rows:
        row["status"] = org_status(row)
    return render_template("orgs.html", rows=page.rows, next=page.next, first=after is not None, q=q, status=status,
                           statuses=ORG_STATUS_FILTERS, warning=warning, realm=s.realm,
                           realm_enabled=svc.orgs.realm_enabled(s.realm), user=g.admin_user)


@bp.post("/realm")
def realm_flag() -> Response:
    """Turn SCIM on or off for the realm."""
    s = settings()
    enabled = request.form.get("scimEnabled") == "on"
    org_admin().set_realm(s.realm, enabled)
    flash(f"SCIM is now {'on' if enabled else 'off'} for realm {s.realm}"
          + ("." if enabled else ": every organization's SCIM endpoint answers 404."), "ok")
    return redirect(url_for("admin.orgs"))
