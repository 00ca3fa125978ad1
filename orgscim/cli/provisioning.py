"""``orgscim outbox``, ``orgscim reconcile`` and ``orgscim drift``: changes on their way to Keycloak, and what
differs between SCIM and Keycloak."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from ..names import add_names
from .common import (
    configured_org,
    emit,
    json_option,
    org_cell,
    org_option,
    realm_option,
    resource_cell,
    services,
    table,
)

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # what click.progressbar returns


@click.command()
@realm_option
@org_option
@click.option("--all", "include_done", is_flag=True, help="include delivered entries")
@click.option("--retry", is_flag=True, help="make pending entries due now and deliver them")
@json_option
def outbox(realm_name: str | None, org_id: str | None, include_done: bool, retry: bool, as_json: bool) -> None:
    """Pending Keycloak changes (exit 1 when some are pending)."""
    svc = services()
    org_pk = None
    if org_id:
        if not realm_name:
            matches = [o for o in svc.orgs.orgs() if o.org_id == org_id]
            if len(matches) != 1:
                raise click.ClickException(f"org {org_id} is not configured (or in several realms: pass --realm)")
            org_pk = matches[0].pk
        else:
            org_pk = configured_org(svc, realm_name, org_id).pk
    if retry:
        n = svc.outbox.retry_now(org_pk)
        stats = svc.deliverer.deliver_all()
        click.echo(f"retried {n} entries: {stats.delivered} delivered, {stats.refused} refused"
                   + (", Keycloak still failing" if stats.failed else ""), err=as_json)
    items = svc.outbox.entries(org_pk, include_done)
    orgs = {o.pk: o for o in svc.orgs.orgs(realm_name)} if items else {}
    rows = add_names(svc.orgs, [{**i.public(), "realm": orgs[i.org_pk].realm, "orgId": orgs[i.org_pk].org_id}
                                for i in items if i.org_pk in orgs])
    emit(rows, as_json, table(("ID", "ORGANIZATION", "CHANGE", "RESOURCE", "ATTEMPTS", "DONE", "LAST ERROR"), [
        (r["id"], org_cell(r), r["action"], resource_cell(r), r["attempts"], r["done"] or "pending", r["lastError"])
        for r in rows], "outbox empty"))
    sys.exit(1 if any(r["done"] is None for r in rows) else 0)


@click.command()
@realm_option
@org_option
@click.option("--dry-run", "dry_run", is_flag=True, help="compare and print; write nothing anywhere")
@click.option("--repair", is_flag=True, help="make Keycloak match SCIM for what orgscim owns")
@json_option
def reconcile(realm_name: str | None, org_id: str | None, dry_run: bool, repair: bool, as_json: bool) -> None:
    """Compare SCIM state with Keycloak and record drift (exit 1 if drift remains)."""
    from ..provision.reconcile import Reconciler

    if dry_run and repair:
        raise click.UsageError("--dry-run and --repair exclude each other")
    svc = services()
    if not svc.keycloak_configured:
        raise click.ClickException("reconcile needs Keycloak: set ORGSCIM_KEYCLOAK_URL (see README, Configuration)")
    mode = "dry-run" if dry_run else "repair" if repair else "report"
    counts = {"members": 0, "orgs": 0}
    total = sum(1 for o in svc.orgs.orgs(realm_name) if org_id in (None, o.org_id) and o.vanished is None)
    show = sys.stderr.isatty() and not as_json  # progress on the terminal only; --json and pipes stay quiet
    with ExitStack() as stack:
        bar: ProgressBar[int] | None = stack.enter_context(click.progressbar(
            length=max(total, 1), label=f"{mode}: {total} orgs", file=sys.stderr, show_pos=True, show_eta=True,
            item_show_func=lambda _: f"{counts['members']} Keycloak members compared")) if show else None

        def progress(what: str, n: int) -> None:
            counts[what] = counts.get(what, 0) + n
            if bar is not None:
                bar.update(n if what == "orgs" else 0)

        summary = Reconciler(svc, mode, progress).run(realm_name, org_id)
    data = {"mode": mode, "orgs": summary.orgs, "users": summary.users, "groups": summary.groups,
            "keycloakMembers": counts["members"], "discovered": summary.discovered, "vanished": summary.vanished,
            "repaired": summary.repaired, "drift": summary.findings}
    add_names(svc.orgs, summary.findings)
    lines = [table(("ORGANIZATION", "RESOURCE", "KIND"), [(org_cell(d), resource_cell(d), d["kind"])
                                                         for d in summary.findings], "no differences")]
    lines.append(f"{mode}: {summary.orgs} orgs, {summary.users} users, {summary.groups} groups, "
                 f"{counts['members']} Keycloak members; {len(summary.findings)} differences"
                 + (f", {summary.repaired} repaired" if repair else "")
                 + (f"; {summary.discovered} organizations without SCIM config" if summary.discovered else ""))
    emit(data, as_json, "\n".join(lines))
    sys.exit(1 if summary.findings else 0)


@click.command()
@org_option
@click.option("--all", "include_resolved", is_flag=True, help="include resolved records")
@json_option
def drift(org_id: str | None, include_resolved: bool, as_json: bool) -> None:
    """Recorded differences between SCIM and Keycloak (exit 1 if any is open)."""
    svc = services()
    rows = [d.public() for o in svc.orgs.orgs() if org_id in (None, o.org_id)
            for d in svc.drift.records(o.pk, open_only=not include_resolved)]
    add_names(svc.orgs, rows)
    emit(rows, as_json, table(("ORGANIZATION", "RESOURCE", "KIND", "SINCE", "RESOLVED"), [
        (org_cell(d), resource_cell(d), d["kind"], d["firstSeen"], d["resolved"]) for d in rows], "no drift"))
    sys.exit(1 if any(d["resolved"] is None for d in rows) else 0)
