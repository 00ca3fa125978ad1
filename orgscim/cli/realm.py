"""``orgscim realm enable|disable|show``: the per-realm SCIM flag."""

from __future__ import annotations

import click

from .common import emit, json_option, services


@click.group()
def realm() -> None:
    """The per-realm SCIM flag: off closes every org's SCIM endpoint of the realm."""


@realm.command("enable")
@click.argument("realm_name")
def realm_enable(realm_name: str) -> None:
    services().orgs.set_realm(realm_name, True)
    click.echo(f"SCIM enabled for realm {realm_name}")


@realm.command("disable")
@click.argument("realm_name")
def realm_disable(realm_name: str) -> None:
    services().orgs.set_realm(realm_name, False)
    click.echo(f"SCIM disabled for realm {realm_name}: every org endpoint of it now answers 404")


@realm.command("show")
@click.argument("realm_name", required=False)
@json_option
def realm_show(realm_name: str | None, as_json: bool) -> None:
    rows = [r for r in services().orgs.realms() if realm_name in (None, r["realm"])]
    emit(rows, as_json, "\n".join(f"{r['realm']}\tscim={'on' if r['scimEnabled'] else 'off'}" for r in rows)
         or "no realms configured")
