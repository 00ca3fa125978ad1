"""The storage contract's test suite (docs/storage.md): every test here talks to a backend only through the
contract (:mod:`orgscim.model.contract`), so a second backend runs this suite unchanged by adding itself to
:data:`BACKENDS`. Tests of one backend's internals (SQLite query plans) live in a subfolder named after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orgscim.model.contract import Org, Storage
from orgscim.store.backend import SqliteStorage


@dataclass(frozen=True)
class Backend:
    """How the suite gets stores of one backend."""

    fresh: Callable[[Path], Storage]  # a new, empty store (not migrated yet) private to this folder
    restore: Callable[[Path], Storage]  # the store a ``Storage.backup(path)`` wrote


# A PostgreSQL backend would add itself here (for instance when a test database URL is set, a fresh schema per
# folder), and every test of this folder except sqlite/ would run against it too.
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(fresh=lambda folder: SqliteStorage(folder / "store.sqlite3"), restore=SqliteStorage),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def storage(backend: Backend, tmp_path: Path) -> Iterator[Storage]:
    """A fresh store at the current schema."""
    store = backend.fresh(tmp_path)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def org_a(storage: Storage) -> Org:
    storage.orgs.set_realm("r1", True)
    return storage.orgs.upsert_org("r1", "org-a", "EXTERNAL_SECRET", {})


@pytest.fixture
def org_b(storage: Storage, org_a: Org) -> Org:
    return storage.orgs.upsert_org("r1", "org-b", "EXTERNAL_SECRET", {})
