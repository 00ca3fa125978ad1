"""The verified-credential cache: Argon2id once per credential for the whole host, not per worker (DESIGN §5).

Two levels, both keyed by :meth:`VerifiedCache.digest` (HMAC of org and presented value under the host's key,
never the value itself): an LRU in this process (``AUTH_CACHE_ENTRIES``, oldest use evicted one at a time) in
front of the host-wide table of the auth-state file (:mod:`orgscim.store.authstate`). An entry is trusted
while it is used at least every ``AUTH_CACHE_SECONDS`` (sliding). The cache only says "this value matched
this credential row once"; whether the row is still active is read for every request by the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .. import metrics
from ..store.authstate import AuthStateStore

DEFAULT_CACHE_SECONDS = 86400.0  # idle time after which a remembered verification is paid again
DEFAULT_CACHE_ENTRIES = 20_000  # remembered verifications per process (about 200 bytes each)
VERIFY_WAIT_SECONDS = 30.0  # a request waits this long at most for the same value's Argon2id in another thread
SYNC_MAX_SECONDS = 3600.0  # the host-wide row's last use is moved forward at least this often while in use


@dataclass
class CachedVerification:
    """A remembered verification in this process."""

    cred_pk: int
    used: float  # last use (wall clock): entries idle longer than the TTL are not trusted
    synced: float  # when the host-wide row's ``used`` was last moved forward


class VerifiedCache:
    """Remembered Argon2id verifications: this process's LRU in front of the host-wide table in ``state``."""

    def __init__(self, state: AuthStateStore, key: bytes, ttl: float = DEFAULT_CACHE_SECONDS,
                 max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.state = state
        self.key = key  # the host's HMAC key (orgscim.store.authstate.auth_key)
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: OrderedDict[bytes, CachedVerification] = OrderedDict()
        self._lock = threading.Lock()
        self._running: dict[bytes, threading.Event] = {}  # Argon2id under way in this process, per digest

    def digest(self, org_pk: int, presented: str) -> bytes:
        """Keyed digest of a presented secret: what the caches are keyed by (never the secret itself)."""
        return hmac.new(self.key, f"{org_pk}\0{presented}".encode(), hashlib.sha256).digest()

    @property
    def _sync_every(self) -> float:
        return min(self.ttl / 4, SYNC_MAX_SECONDS)

    def remembered(self, key: bytes, cred_pk: int, at: float) -> bool:
        """A verification of ``key`` for ``cred_pk`` used within the idle limit, in this process or the host's
        table (then copied here). Slides the entry's expiry."""
        sync = False
        with self._lock:
            hit = self.entries.get(key)
            if hit is not None:
                if hit.cred_pk == cred_pk and at - hit.used <= self.ttl:
                    hit.used = at
                    self.entries.move_to_end(key)
                    sync = at - hit.synced > self._sync_every
                    if sync:
                        hit.synced = at
                else:
                    del self.entries[key]
                    hit = None
        if hit is not None:
            metrics.cache_hit("process")
            if sync:  # keep the host-wide entry alive for the other workers
                self.state.remember(key, cred_pk, at, self.ttl)
            return True
        row = self.state.verified(key)
        if row is None or row[0] != cred_pk or at - row[1] > self.ttl:
            return False
        if at - row[1] > self._sync_every:
            self.state.remember(key, cred_pk, at, self.ttl)
        self._keep(key, CachedVerification(cred_pk, at, at))
        metrics.cache_hit("host")
        return True

    def remember(self, key: bytes, cred_pk: int, at: float) -> None:
        """Remember a verification that just succeeded, host-wide and here."""
        self.state.remember(key, cred_pk, at, self.ttl)
        self._keep(key, CachedVerification(cred_pk, at, at))

    def _keep(self, key: bytes, entry: CachedVerification) -> None:
        """Remember in this process; past ``max_entries`` the least recently used entry goes (one at a time)."""
        with self._lock:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def forget(self, cred_pk: int | None = None) -> None:
        """Drop remembered verifications (of one credential, or all), here and host-wide: on rotate and revoke."""
        with self._lock:
            if cred_pk is None:
                self.entries.clear()
            else:
                for k in [k for k, v in self.entries.items() if v.cred_pk == cred_pk]:
                    del self.entries[k]
        self.state.forget(cred_pk)

    def claim(self, key: bytes) -> bool:
        """True: this thread is to verify ``key`` (call :meth:`release` after). False: another thread of this
        process was verifying the same value; returns once it is done (or after ``VERIFY_WAIT_SECONDS``)."""
        with self._lock:
            running = self._running.get(key)
            if running is None:
                self._running[key] = threading.Event()
                return True
        running.wait(VERIFY_WAIT_SECONDS)
        return False

    def release(self, key: bytes) -> None:
        """The verification :meth:`claim` gave this thread is over: wake the threads waiting for it."""
        with self._lock:
            self._running.pop(key).set()
