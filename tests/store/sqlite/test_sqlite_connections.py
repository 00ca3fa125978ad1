"""SQLite backend only: each thread's first connection to a new database file (a new instance's auth state, its
first requests served by many threads at once) must not fail while the threads race to put it in WAL mode."""

from __future__ import annotations

import threading
from pathlib import Path

from orgscim.store.db import Database


def first_connections(db: Database, threads: int) -> tuple[list[str], list[Exception]]:
    """The journal mode each of ``threads`` threads sees on its first connection, opened at the same moment."""
    barrier = threading.Barrier(threads)
    modes: list[str] = []
    errors: list[Exception] = []

    def first_connection() -> None:
        barrier.wait()
        try:
            modes.append(db.conn.execute("PRAGMA journal_mode").fetchone()[0])
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    started = [threading.Thread(target=first_connection) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return modes, errors


def test_threads_opening_a_new_database_at_once_all_get_a_wal_connection(tmp_path: Path) -> None:
    for round_ in range(20):  # the race was lost in about 1 round of 10 with 16 threads
        modes, errors = first_connections(Database(tmp_path / f"new-{round_}.sqlite3"), 16)
        assert errors == [] and modes == ["wal"] * 16
