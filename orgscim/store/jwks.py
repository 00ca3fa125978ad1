"""JWK Sets persisted in SQLite, so a refresh by the worker reaches every web process (DESIGN §7)."""

from __future__ import annotations

import json
import sqlite3
import time

from orgscim.model.contract import StoredJwks
from orgscim.model.types import JSON

from .db import Database


def _jwks(r: sqlite3.Row) -> StoredJwks:
    return StoredJwks(r["uri"], json.loads(r["keys"]), r["fetched"], r["attempted"], r["error"])


class JwksStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, uri: str) -> StoredJwks | None:
        r = self.db.one("SELECT * FROM jwks WHERE uri = ?", (uri,))
        return _jwks(r) if r else None

    def all(self) -> list[StoredJwks]:
        return [_jwks(r) for r in self.db.all("SELECT * FROM jwks ORDER BY uri")]

    def saved(self, uri: str, keys: dict[str, JSON]) -> None:
        """A successful fetch: replace the keys."""
        t = time.time()
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO jwks (uri, keys, fetched, attempted, error) VALUES (?, ?, ?, ?, NULL) "
                         "ON CONFLICT (uri) DO UPDATE SET keys = excluded.keys, fetched = excluded.fetched, "
                         "attempted = excluded.attempted, error = NULL", (uri, json.dumps(keys), t, t))

    def failed(self, uri: str, error: str) -> None:
        """A failed fetch: the last good keys stay; the error is recorded."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO jwks (uri, attempted, error) VALUES (?, ?, ?) ON CONFLICT (uri) DO UPDATE "
                         "SET attempted = excluded.attempted, error = excluded.error", (uri, time.time(), error[:500]))
