"""SQLite connection handling and versioned migrations: the SQLite backend's connection layer.

Every connection runs in WAL mode with a busy timeout and foreign keys on. Writes go through
:meth:`Database.transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so two writers
never deadlock on a lock upgrade. Migrations run in one transaction each and bump ``PRAGMA user_version``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from orgscim.model.contract import SchemaError

from .migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000

Params = Sequence[object] | Mapping[str, object]
"""Statement parameters: positional (``?``) or named (``:name``)."""


def _wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (it stays so: later connections only read that it is). Threads opening their
    first connection to a new file at once race to switch it, and SQLite answers the losers "database is locked"
    without waiting on the busy timeout; they try again within that timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Database:
    """A thin wrapper over one ``sqlite3`` connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self.full_at = -1e9  # time.monotonic() of the last write refused for lack of space (this process)

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # SQLite's lower() folds ASCII only; filters need the same folding as Python's str.lower()
            conn.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception. Not re-entrant."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def count(self, sql: str, params: Params = ()) -> int:
        """The integer in the first column of the first row (``SELECT count(*) …``); 0 when there is none."""
        row = self.one(sql, params)
        return int(row[0] or 0) if row is not None else 0

    def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def upgrade(self, progress: Callable[[int], None] | None = None) -> list[int]:
        """Apply pending migrations, each in its own transaction. Returns the versions applied."""
        applied = []
        for version, steps in enumerate(MIGRATIONS, start=1):
            if version <= self.schema_version():
                continue
            with self.transaction() as conn:
                if conn.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue  # another process migrated meanwhile
                for sql in steps:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {version}")
            applied.append(version)
            if progress:
                progress(version)
        return applied

    @property
    def latest_version(self) -> int:
        return len(MIGRATIONS)

    def check_schema(self, upgrade_ok: bool = False) -> None:
        """Refuse a database newer than this code (its migrations are unknown here, so writing to it could
        corrupt what a newer orgscim stored) and, unless ``upgrade_ok``, one that still needs migrating."""
        version = self.schema_version()
        if version > self.latest_version:
            raise SchemaError(f"database {self.path} is at schema version {version}, newer than this orgscim "
                              f"(it knows versions up to {self.latest_version}): run the orgscim release that "
                              "wrote it, or restore a backup taken before the upgrade")
        if version < self.latest_version and not upgrade_ok:
            raise SchemaError(f"database {self.path} is at schema version {version}, this orgscim needs "
                              f"{self.latest_version}: run `orgscim db upgrade`")

    def storage_problem(self, min_free_bytes: int, remember_seconds: float = 60) -> str | None:
        """None while writes can be stored; else why not (a fixed text: no paths or error messages)."""
        if time.monotonic() - self.full_at < remember_seconds:
            return "disk full"
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        except OSError:
            return "database folder unreadable"
        return "disk almost full" if free < min_free_bytes else None

    def backup(self, target: str | Path) -> None:
        """Online backup (SQLite backup API): consistent while the service keeps writing."""
        dst = sqlite3.connect(str(target))
        try:
            self.conn.backup(dst)
        finally:
            dst.close()


def _unicode_lower(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    return value.lower() if isinstance(value, str) else value


def is_disk_full(e: BaseException) -> bool:
    """True for SQLite's "database or disk is full" (SQLITE_FULL) and the OS's ENOSPC/EDQUOT/EFBIG."""
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e)
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
