"""The realm's drift and activity pages: open drift records, pending outbox entries, recent provisioning and
audit events, each row with its organization's and resource's names (:func:`orgscim.names.add_names`)."""

from __future__ import annotations

from flask import g, render_template, request

from ...model.delivery import OutboxItem
from ...model.types import JSON
from ...names import add_names
from ..current import services
from .blueprint import bp, settings

MAX_LISTED = 500  # rows on the drift and activity pages


@bp.get("/drift")
def drift() -> str:
    """Open drift records of the realm's orgs (``?org=ID``: one org), with user, group and org names."""
    s = settings()
    svc = services()
    only = request.args.get("org") or None
    org = svc.orgs.org(s.realm, only) if only else None
    rows = [d.public() for d in svc.drift.records(org.pk if org else None) if d.realm == s.realm][:MAX_LISTED]
    if only and org is None:
        rows = []
    add_names(svc.orgs, rows)
    groups: dict[str, list[JSON]] = {}
    for d in rows:
        groups.setdefault(d["orgId"], []).append(d)
    return render_template("drift.html", groups=list(groups.items()), realm=s.realm, user=g.admin_user,
                           configured=svc.orgs.org_page(s.realm, limit=1, status="configured").rows != [],
                           only=only, truncated=len(rows) >= MAX_LISTED)


@bp.get("/activity")
def activity() -> str:
    """Pending outbox entries, recent provisioning and audit events of the realm, with names."""
    s = settings()
    svc = services()
    orgs = {o.pk: o for o in svc.orgs.orgs(s.realm)}

    def named(items: list[OutboxItem]) -> list[JSON]:
        return add_names(svc.orgs, [{**i.public(), "realm": s.realm, "orgId": orgs[i.org_pk].org_id}
                                         for i in items if i.org_pk in orgs])

    pending = named([i for i in svc.outbox.entries(None, limit=MAX_LISTED) if i.org_pk in orgs])
    recent = named(svc.outbox.recent(list(orgs), 100))
    events = svc.orgs.events(s.realm, limit=200)
    names = svc.orgs.org_names(s.realm, [e["orgId"] for e in events if e["orgId"]])
    for e in events:
        e["orgName"] = (names.get(e["orgId"]) or {}).get("name") if e["orgId"] else None
    return render_template("activity.html", events=events, pending=pending, recent=recent, realm=s.realm,
                           user=g.admin_user)
