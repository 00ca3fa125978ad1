"""``orgscim`` command line (click, DESIGN §8): one module per command group, all sharing
:mod:`orgscim.cli.common`. Listings take ``--json``; errors say what to do."""

from __future__ import annotations

import click

from .db import backup, db
from .jwks import jwks
from .keycloak import check, keycloak_group
from .org import org
from .provisioning import drift, outbox, reconcile
from .realm import realm
from .serve import serve, worker


@click.group()
@click.version_option(package_name="orgscim")
def main() -> None:
    """orgscim: per-organization SCIM 2.0 provisioning for Keycloak."""


for _command in (db, backup, realm, org, check, outbox, reconcile, drift, keycloak_group, jwks, worker, serve):
    main.add_command(_command)
