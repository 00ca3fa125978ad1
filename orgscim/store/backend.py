"""The SQLite backend of the storage contract (:class:`orgscim.model.contract.Storage`).

One database file in WAL mode, shared by every process of the host; each process opens its own connections
(one per thread, see :mod:`.db`). The stores below are the only code that runs SQL against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .db import Database
from .drift import DriftStore
from .housekeeping import HousekeepingStore
from .jwks import JwksStore
from .leases import LeaseStore
from .links import LinkStore
from .orgs import OrgStore
from .outbox import OutboxStore
from .reconcile import ReconcileSchedule
from .resources import ResourceStore


class SqliteStorage:
    """The stores of one SQLite database, and its schema, backup and free-space checks."""

    def __init__(self, db: Database | str | Path) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        self.orgs = OrgStore(self.db)
        self.jwks = JwksStore(self.db)
        self.schedule = ReconcileSchedule(self.db)
        self.outbox = OutboxStore(self.db)
        self.links = LinkStore(self.db)
        self.leases = LeaseStore(self.db)
        self.drift = DriftStore(self.db)
        self.housekeeping = HousekeepingStore(self.db)

    def resources(self, org_pk: int) -> ResourceStore:
        return ResourceStore(self.db, org_pk)

    def upgrade(self) -> list[int]:
        return self.db.upgrade()

    def check_schema(self, upgrade_ok: bool = False) -> None:
        self.db.check_schema(upgrade_ok)

    def backup(self, target: str | Path) -> None:
        self.db.backup(target)

    def storage_problem(self, min_free_bytes: int, remember_seconds: float = 60) -> str | None:
        return self.db.storage_problem(min_free_bytes, remember_seconds)

    def close(self) -> None:
        self.db.close()


if TYPE_CHECKING:  # mypy checks here that the SQLite backend implements the whole contract
    from orgscim.model.contract import Storage

    def _implements_the_contract(storage: SqliteStorage) -> Storage:
        return storage
