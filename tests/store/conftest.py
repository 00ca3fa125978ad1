"""The storage contract's test suite (docs/storage.md): every test here talks to a backend only through the
contract (:mod:`orgscim.model.contract`), so a second backend runs this suite unchanged by adding itself to
:data:`BACKENDS`. Tests of one backend's internals (SQLite query plans) live in a subfolder named after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orgscim.model.contract import Org, Storage
from orgscim.store.backend import SqliteStorage


def sqlite_backend(folder: Path) -> SqliteStorage:
    return SqliteStorage(folder / "store.sqlite3")


# name -> factory of a fresh, empty backend in a private folder. A PostgreSQL backend would add itself here
# (for instance when a test database URL is set) and every test below would run against it too.
BACKENDS: dict[str, Callable[[Path], Storage]] = {"sqlite": sqlite_backend}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh backend at the current schema."""
    backend = BACKENDS[request.param](tmp_path)
    backend.upgrade()
    yield backend
    backend.close()


@pytest.fixture
def org_a(storage: Storage) -> Org:
    storage.orgs.set_realm("r1", True)
    return storage.orgs.upsert_org("r1", "org-a", "EXTERNAL_SECRET", {})


@pytest.fixture
def org_b(storage: Storage, org_a: Org) -> Org:
    return storage.orgs.upsert_org("r1", "org-b", "EXTERNAL_SECRET", {})
