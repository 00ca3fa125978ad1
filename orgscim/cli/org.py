"""``orgscim org configure|list|show`` (and ``org credential …``, :mod:`orgscim.cli.credential`)."""

from __future__ import annotations

import json
import shlex

import click

from ..model.types import JSON
from ..names import org_label
from ..services import ConfigError, org_status
from .common import configured_org, emit, json_option, org_arguments, realm_option, services, table
from .credential import credential


@click.group()
def org() -> None:
    """Per-organization SCIM configuration."""


org.add_command(credential)


def _parse_settings(pairs: tuple[str, ...]) -> JSON:
    """``KEY=VALUE`` pairs as a settings object; a value is JSON when it parses as JSON, else the string."""
    out: JSON = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--set")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@org.command("configure")
@org_arguments
@click.option("--auth-mode", required=True, help="EXTERNAL_SECRET, or any installed auth-mode plugin")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="auth-mode setting (repeatable)")
@click.option("--federation", default="none", show_default=True, help="federation plugin: none, link-org-idp, …")
@click.option("--federation-set", "fed_settings", multiple=True, metavar="KEY=VALUE",
              help="federation setting, e.g. id_attribute=externalId (repeatable)")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="username_policy=userName|email, delete_policy=delete|disable, adopt_policy=never|org-members")
@click.option("--disable", is_flag=True, help="keep the config but close the endpoint")
@json_option
def org_configure(realm_name: str, org_id: str, auth_mode: str, settings: tuple[str, ...], federation: str,
                  fed_settings: tuple[str, ...], options: tuple[str, ...], disable: bool, as_json: bool) -> None:
    """Create or update ORG_ID's SCIM config (enabled unless --disable).

    With Keycloak configured, the organization must exist in the realm, and orgscim's user-profile
    attributes are declared there.
    """
    try:
        o = services().configure_org(realm_name, org_id, auth_mode, _parse_settings(settings), not disable,
                                     federation, _parse_settings(fed_settings), _parse_settings(options))
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    hint = "" if o.realm_enabled else f" (realm {realm_name} is off: run `orgscim realm enable {realm_name}`)"
    emit(o.public(), as_json, f"org {org_id} in realm {realm_name}: {auth_mode}, "
         f"{'enabled' if o.enabled else 'disabled'}{hint}")


@org.command("list")
@realm_option
@click.option("--search", help="part of the name, alias or id (case-insensitive)")
@click.option("--status", type=click.Choice(["configured", "not-configured", "drift", "failing"]),
              help="only configured orgs, organizations without SCIM config, orgs with open drift, or with failing "
                   "deliveries to Keycloak")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500), help="rows per page")
@click.option("--after", metavar="CURSOR", help="the page after this cursor (the `next` value of a page)")
@click.option("--json", "as_json", is_flag=True,
              help='{"orgs": [...], "next": CURSOR or null}; repeat with --after CURSOR until next is null')
def org_list(realm_name: str | None, search: str | None, status: str | None, limit: int, after: str | None,
             as_json: bool) -> None:
    """Configured orgs, and organizations Keycloak lists without a SCIM config, one page at a time (in realm
    and id order), with their Keycloak names."""
    try:
        page = services().orgs.org_page(realm_name, after=after, limit=limit, search=search, status=status)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--after") from None
    for row in page.rows:
        row["status"] = org_status(row)
    again = ["orgscim", "org", "list", *(("--realm", realm_name) if realm_name else ()),
             *(("--search", search) if search else ()), *(("--status", status) if status else ()),
             *(("--limit", str(limit)) if limit != 100 else ())]
    next_cmd = shlex.join([*again, "--after", page.next]) if page.next else None
    if as_json:
        emit({"orgs": page.rows, "next": page.next, "nextCommand": next_cmd and next_cmd + " --json"}, True, "")
        return
    click.echo(table(("ORGANIZATION", "ID", "REALM", "AUTH MODE", "SCIM", "DRIFT", "PENDING"), [
        (org_label(o.get("name"), o.get("alias"), o["orgId"]) if o.get("name") else "(name unknown)", o["orgId"],
         o["realm"], o.get("authMode"), o["status"], o.get("openDrift"), o.get("pendingChanges"))
        for o in page.rows], "no orgs" + (" match" if search or status else "")))
    if next_cmd:
        click.echo(f"more: {next_cmd}")


@org.command("show")
@org_arguments
@json_option
def org_show(realm_name: str, org_id: str, as_json: bool) -> None:
    svc = services()
    o = configured_org(svc, realm_name, org_id)
    data = {**o.public(), "resources": svc.orgs.org_counts(o.pk),
            "credentials": [c.public() for c in svc.orgs.credentials(o.pk)]}
    emit(data, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))
