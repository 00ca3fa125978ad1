"""Authentication state shared by every process of the host (DESIGN §5): verified-credential digests and the
failure throttle's token buckets.

They live in their own SQLite file beside the database (``<database>-auth.sqlite3``), not in it:

* the verified table is keyed by an HMAC whose key is in a separate file (:func:`auth_key`), so the database
  (or a backup of it) alone lets nobody test a secret, and the key alone matches nothing;
* a flood of failed logins writes here, never taking the write lock SCIM writes need.

Both tables are caches: deleting the file loses nothing but warm state (Argon2id is paid again).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from pathlib import Path

from .db import Database

SCHEMA = [
    # digest = HMAC(key, org pk, presented value); a row says "this value verified against cred_pk's hash"
    "CREATE TABLE IF NOT EXISTS verified (digest BLOB PRIMARY KEY, cred_pk INTEGER NOT NULL, used REAL NOT NULL)"
    " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS ix_verified_cred ON verified(cred_pk)",
    "CREATE INDEX IF NOT EXISTS ix_verified_used ON verified(used)",
    "CREATE TABLE IF NOT EXISTS throttle (key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL, "
    "announced INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS ix_throttle_at ON throttle(at)",
]
PRUNE_EVERY = 256  # new rows per process between two prunes


def state_path(database: str | Path) -> str:
    """``<database stem>-auth.sqlite3`` beside the database (a private temporary file for ``:memory:``)."""
    db = str(database)
    if db == ":memory:" or db.startswith("file:"):
        return ":memory:"
    p = Path(db)
    return str(p.with_name(f"{p.stem}-auth.sqlite3"))


def auth_key(database: str | Path) -> bytes:
    """The host's 32-byte HMAC key for verified digests: ``<database stem>-auth.key`` (0600), made on first use.

    Every process of the host reads the same key, so a credential verified by one worker is known to all.
    """
    db = str(database)
    if db == ":memory:" or db.startswith("file:"):
        return secrets.token_bytes(32)
    p = Path(db)
    path = p.with_name(f"{p.stem}-auth.key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process is writing it right now
            data = path.read_bytes()
            if len(data) == 32:
                return data
            threading.Event().wait(0.01)
        raise RuntimeError(f"{path} is not a 32-byte key: delete it (only warm auth state is lost)") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class AuthStateStore:
    """SQL of the shared auth state. Connections are opened lazily, per thread (so per process after a fork)."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        self._ready = False
        self._lock = threading.Lock()
        self._inserts = 0

    def _conn(self) -> sqlite3.Connection:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    with self.db.transaction() as conn:
                        for sql in SCHEMA:
                            conn.execute(sql)
                    self._ready = True
        return self.db.conn

    # -- verified credentials ---------------------------------------------------------------------
    def verified(self, digest: bytes) -> tuple[int, float] | None:
        """(credential pk, last use) recorded for a digest, or None."""
        r = self._conn().execute("SELECT cred_pk, used FROM verified WHERE digest = ?", (digest,)).fetchone()
        return (int(r[0]), float(r[1])) if r else None

    def remember(self, digest: bytes, cred_pk: int, at: float, idle_seconds: float) -> None:
        """Record a successful Argon2id verification (or a later use: ``used`` slides)."""
        self._conn()
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO verified (digest, cred_pk, used) VALUES (?, ?, ?) ON CONFLICT (digest) DO "
                         "UPDATE SET cred_pk = excluded.cred_pk, used = max(used, excluded.used)",
                         (digest, cred_pk, at))
            self._inserts += 1
            if self._inserts % PRUNE_EVERY == 0:
                conn.execute("DELETE FROM verified WHERE used < ?", (at - idle_seconds,))

    def forget(self, cred_pk: int | None = None) -> None:
        self._conn()
        with self.db.transaction() as conn:
            if cred_pk is None:
                conn.execute("DELETE FROM verified")
            else:
                conn.execute("DELETE FROM verified WHERE cred_pk = ?", (cred_pk,))

    # -- failure throttle (token buckets) ---------------------------------------------------------
    def bucket(self, key: str) -> tuple[float, float] | None:
        """(tokens, at) of a bucket, or None when it has none (a full bucket)."""
        r = self._conn().execute("SELECT tokens, at FROM throttle WHERE key = ?", (key,)).fetchone()
        return (float(r[0]), float(r[1])) if r else None

    def take(self, key: str, burst: int, refill_seconds: float, at: float, max_keys: int) -> float:
        """Take one token atomically: 0.0 when taken, else the seconds until one is available."""
        self._conn()
        with self.db.transaction() as conn:
            r = conn.execute("SELECT tokens, at FROM throttle WHERE key = ?", (key,)).fetchone()
            tokens = float(burst) if r is None else min(float(burst), r[0] + max(0.0, at - r[1]) / refill_seconds)
            if tokens < 1.0:
                return (1.0 - tokens) * refill_seconds
            conn.execute("INSERT INTO throttle (key, tokens, at, announced) VALUES (?, ?, ?, 0) ON CONFLICT (key) "
                         "DO UPDATE SET tokens = excluded.tokens, at = excluded.at, announced = 0",
                         (key, tokens - 1.0, at))
            if r is None:
                self._inserts += 1
                if self._inserts % PRUNE_EVERY == 0:
                    self._prune(conn, burst, refill_seconds, at, max_keys)
        return 0.0

    @staticmethod
    def _prune(conn: sqlite3.Connection, burst: int, refill_seconds: float, at: float, max_keys: int) -> None:
        """Drop buckets that have refilled (nothing to remember), then the least recently used past ``max_keys``."""
        conn.execute("DELETE FROM throttle WHERE tokens + (? - at) / ? >= ?", (at, refill_seconds, burst))
        conn.execute("DELETE FROM throttle WHERE key IN (SELECT key FROM throttle ORDER BY at DESC LIMIT -1 "
                     "OFFSET ?)", (max_keys,))

    def give_back(self, key: str, burst: int) -> None:
        self._conn()
        with self.db.transaction() as conn:
            conn.execute("UPDATE throttle SET tokens = min(?, tokens + 1.0) WHERE key = ?", (float(burst), key))
            conn.execute("DELETE FROM throttle WHERE key = ? AND tokens >= ?", (key, float(burst)))  # full: forget

    def announce(self, key: str) -> bool:
        """Mark a bucket's lockout as logged; True only for the first caller."""
        self._conn()
        with self.db.transaction() as conn:
            return conn.execute("UPDATE throttle SET announced = 1 WHERE key = ? AND announced = 0",
                                (key,)).rowcount == 1

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM throttle").fetchone()[0])
