"""What every auth-mode plugin implements, and the shared machinery they use (DESIGN §5).

A plugin is a class registered under the ``orgscim.auth_modes`` entry-point group. It is constructed
once per process with an :class:`AuthContext` and asked to :meth:`AuthMode.authenticate` each request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from .store.orgs import Credential, Org, OrgStore


@dataclass
class AuthRequest:
    """The parts of an HTTP request an auth mode may look at."""

    authorization: str | None
    remote_addr: str


@dataclass
class Principal:
    """Who was authenticated: for audit only."""

    mode: str
    credential_id: str | None = None
    subject: str | None = None


@dataclass
class IssuedCredential:
    credential: Credential
    secret: str
    username: str | None = None


class AuthMode(Protocol):
    name: ClassVar[str]

    def __init__(self, ctx: AuthContext) -> None: ...

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the normalised config or raise ``ValueError`` with a message for the operator."""

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        """A principal, or None for any failure (callers answer the same 401 for every failure)."""

    def schemes(self, org: Org) -> list[dict[str, Any]]:
        """``authenticationSchemes`` entries for ServiceProviderConfig (RFC 7643 §5)."""


# RFC 9106 §4 second recommended option: t=3, m=64 MiB, p=4 (above OWASP's minimums).
HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@dataclass
class _Cached:
    cred_pk: int
    until: float


@dataclass
class AuthContext:
    """Per-process state shared by auth plugins: stores, the Argon2id hasher and the verified cache."""

    orgs: OrgStore
    cache_ttl: float = 60.0
    hasher: PasswordHasher = HASHER
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _cache: dict[bytes, _Cached] = field(default_factory=dict)
    _touched: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def digest(self, org_pk: int, presented: str) -> bytes:
        """Keyed digest of a presented secret: what the cache is keyed by (never the secret itself)."""
        return hmac.new(self._key, f"{org_pk}\0{presented}".encode(), hashlib.sha256).digest()

    def hash_secret(self, secret: str) -> str:
        return self.hasher.hash(secret)

    def verify(self, org: Org, cred: Credential | None, presented: str) -> bool:
        """Check ``presented`` against ``cred`` (active, of this org); Argon2id only on a cache miss."""
        ts = _now()
        if cred is None or cred.org_pk != org.pk or not cred.active(ts):
            return False
        key = self.digest(org.pk, presented)
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit.cred_pk == cred.pk and hit.until > time.monotonic():
            self._touch(cred)
            return True
        try:
            self.hasher.verify(cred.hash, presented)
        except (VerificationError, InvalidHashError):
            return False
        if self.hasher.check_needs_rehash(cred.hash):
            self.orgs.update_credential(cred.pk, hash=self.hasher.hash(presented))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = _Cached(cred.pk, time.monotonic() + self.cache_ttl)
        self._touch(cred)
        return True

    def forget(self, cred_pk: int | None = None) -> None:
        """Drop cached verifications (of one credential, or all): on rotate and revoke."""
        with self._lock:
            if cred_pk is None:
                self._cache.clear()
            else:
                self._cache = {k: v for k, v in self._cache.items() if v.cred_pk != cred_pk}

    def _touch(self, cred: Credential) -> None:
        """Record last use, at most once a minute per credential (keeps the write lock free)."""
        mono = time.monotonic()
        if mono - self._touched.get(cred.pk, -1e9) < 60:
            return
        self._touched[cred.pk] = mono
        self.orgs.update_credential(cred.pk, last_used=_now())


def _now() -> str:
    from .store.resources import now

    return now()


def new_credential_id() -> str:
    return secrets.token_hex(6)


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe (no '.', so it can follow a credential id)."""
    return secrets.token_urlsafe(32)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
