"""What every command shares: the settings, the database, the services, and printing (``--json`` or a table)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

from ..config import Settings, load_config
from ..model.contract import Org, SchemaError
from ..model.types import JSON, JSONValue
from ..names import org_label
from ..services import Services
from ..store.db import Database

Command = TypeVar("Command", bound=Callable[..., None])

#: ``--json``: print the listing or result as JSON (every listing has it, DESIGN §8)
json_option = click.option("--json", "as_json", is_flag=True)
#: ``--realm`` / ``--org``: limit a command to one realm or one organization
realm_option = click.option("--realm", "realm_name")
org_option = click.option("--org", "org_id")


def org_arguments(command: Command) -> Command:
    """The ``REALM_NAME ORG_ID`` arguments of a command about one organization."""
    return click.argument("realm_name")(click.argument("org_id")(command))


def config() -> Settings:
    """The settings (:func:`orgscim.config.load_config`: the same ones the web app and the worker read)."""
    return load_config()


def database(settings: Settings, upgrade_ok: bool = False) -> Database:
    """The database, refused (with what to do) when it needs migrating or is newer than this code."""
    db = Database(settings["DATABASE"])
    try:
        db.check_schema(upgrade_ok)
    except SchemaError as e:
        raise click.ClickException(str(e)) from None
    return db


def services(upgrade_ok: bool = False) -> Services:
    settings = config()
    return Services(database(settings, upgrade_ok), settings)


def configured_org(services: Services, realm_name: str, org_id: str) -> Org:
    """The org's SCIM config, or an error that says how to create it."""
    o = services.orgs.org(realm_name, org_id)
    if o is None:
        raise click.ClickException(f"org {org_id} of realm {realm_name} is not configured: run "
                                   f"`orgscim org configure {realm_name} {org_id} --auth-mode EXTERNAL_SECRET`")
    return o


def emit(data: JSONValue, as_json: bool, human: str) -> None:
    """``data`` as JSON (``--json``), else the human text. ``data`` is whatever JSON the listing prints."""
    click.echo(json.dumps(data, indent=2) if as_json else human)


def table(headers: tuple[str, ...], rows: list[tuple[object, ...]], empty: str) -> str:
    """Rows as aligned columns under a header (the last column is not padded), or ``empty``."""
    if not rows:
        return empty
    cells = [tuple("-" if v is None or v == "" else str(v) for v in row) for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
                     for r in cells)


def resource_cell(row: JSON) -> str:
    """``User alice@example.com (id)`` for a row with names (see :func:`orgscim.names.add_names`)."""
    name = row.get("resourceName")
    return f"{row['resourceType']} {name} ({row['resourceId']})" if name else f"{row['resourceType']} " \
        f"{row['resourceId']}"


def org_cell(row: JSON) -> str:
    """The organization of a named row (see :func:`orgscim.names.add_names`)."""
    return org_label(row.get("orgName"), row.get("orgAlias"), row["orgId"])
