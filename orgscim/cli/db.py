"""``orgscim db upgrade`` and ``orgscim backup``: the SQLite database."""

from __future__ import annotations

import click

from .common import services


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the SQLite database (each migration in one transaction)."""
    svc = services(upgrade_ok=True)
    applied = svc.db.upgrade()
    click.echo(f"database {svc.db.path} at schema version {svc.db.schema_version()}"
               + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
def backup(path: str) -> None:
    """Online backup of the SQLite database to PATH (safe while the service runs)."""
    svc = services()
    svc.db.backup(path)
    click.echo(f"backed up {svc.db.path} to {path}")
