"""What every auth-mode plugin implements, and the shared machinery they use (DESIGN §5).

A plugin is a class registered under the ``orgscim.auth_modes`` entry-point group. It is constructed
once per process with an :class:`AuthContext` and asked to :meth:`AuthMode.authenticate` each request.

:meth:`AuthContext.authenticate` wraps every plugin call the same way: throttling per (org, client address)
before any hashing (:mod:`orgscim.throttle`), one audit log line per outcome (never the presented value), and
one ``events`` row per failed or throttled attempt that presented a credential (bounded by the throttle).

Credentials orgscim issues itself (``EXTERNAL_SECRET``, ``EXTERNAL_BASIC``) share :class:`IssuingMode`:
generated values, Argon2id hashes (RFC 9106), several per org, rotation with a grace deadline, revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from .jwks import JwksCache
from .store.jwks import JwksStore
from .store.orgs import Credential, Org, OrgStore
from .store.resources import now as _now
from .store.sync import later
from .throttle import FailureThrottle, client_key

audit_log = logging.getLogger("orgscim.audit")

DEFAULT_CHALLENGE = 'Bearer realm="orgscim"'
DEFAULT_GRACE_HOURS = 24.0
MAX_GRACE_HOURS = 24.0 * 30


@dataclass
class AuthRequest:
    """The parts of an HTTP request an auth mode may look at.

    ``cheap_only`` is set for a client that is being throttled: the mode may accept what it can check
    without expensive work (a verified-cache hit, a signature against cached keys) but must not run
    Argon2id or fetch anything.
    """

    authorization: str | None
    remote_addr: str
    cheap_only: bool = False


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

    def public(self) -> dict[str, Any]:
        """The one time a credential is shown with its secret (and username for Basic): its listing form plus
        those. Callers show this once and never store it."""
        data = {**self.credential.public(), "secret": self.secret}
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class Rotation:
    """A rotation's new credential and the ones that now expire at ``deadline``."""

    issued: IssuedCredential
    superseded: list[Credential]
    deadline: str


@dataclass
class Outcome:
    """Result of :meth:`AuthContext.authenticate`: a principal, or a failure (``retry_after`` > 0: throttled)."""

    principal: Principal | None = None
    retry_after: float = 0.0


class AuthFailed(Exception):
    """A plugin may raise this instead of returning None, to put ``reason`` into the audit log.

    The reason is never shown to the client (every failure answers the same 401), and must not contain any
    part of the presented credential.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthMode(Protocol):
    name: ClassVar[str]

    def __init__(self, ctx: AuthContext) -> None: ...

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the normalised config or raise ``ValueError`` with a message for the operator."""

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        """A principal, or None (or :class:`AuthFailed`) for any failure; callers answer the same 401 for all."""

    def schemes(self, org: Org) -> list[dict[str, Any]]:
        """``authenticationSchemes`` entries for ServiceProviderConfig (RFC 7643 §5)."""


def challenge(mode: Any, org: Org) -> str:
    """``WWW-Authenticate`` for a 401 (RFC 9110 §11.6.1); a mode may define ``challenge(org)``."""
    fn = getattr(mode, "challenge", None)
    return fn(org) if fn is not None else DEFAULT_CHALLENGE


# RFC 9106 §4 second recommended option: t=3, m=64 MiB, p=4 (above OWASP's minimums: m=19 MiB, t=2, p=1).
HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@dataclass
class _Cached:
    cred_pk: int
    until: float


def _clean(text: str, limit: int = 120) -> str:
    """A log-safe rendering of text that may come from a client (no control characters, bounded)."""
    return re.sub(r"[^\x21-\x7e]", "?", text)[:limit]


@dataclass
class AuthContext:
    """Per-process state shared by auth plugins: stores, config, the Argon2id hasher, the verified cache, the
    failure throttle and the JWKS cache."""

    orgs: OrgStore
    cache_ttl: float = 60.0
    hasher: PasswordHasher = HASHER
    config: dict[str, Any] = field(default_factory=dict)
    throttle: FailureThrottle = field(default_factory=FailureThrottle)
    jwks: JwksCache = field(default_factory=JwksCache)
    clock: Any = time.time  # wall clock for JWT exp/nbf/iat (RFC 7519 §4.1.4-6); tests move it
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _cache: dict[bytes, _Cached] = field(default_factory=dict)
    _touched: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, orgs: OrgStore, config: dict[str, Any]) -> AuthContext:
        """Build the context from app config (``AUTH_*`` and ``JWKS_*`` keys, all optional)."""
        return cls(
            orgs, cache_ttl=float(config.get("AUTH_CACHE_SECONDS", 60)), config=dict(config),
            throttle=FailureThrottle(int(config.get("AUTH_THROTTLE_BURST", 10)),
                                     float(config.get("AUTH_THROTTLE_REFILL_SECONDS", 6))),
            jwks=JwksCache(ttl=float(config.get("JWKS_CACHE_SECONDS", 3600)),
                           timeout=float(config.get("JWKS_TIMEOUT", 5)),
                           max_bytes=int(config.get("JWKS_MAX_BYTES", 256 * 1024)), store=JwksStore(orgs.db)))

    # -- the request path ----------------------------------------------------------------------
    def authenticate(self, mode: Any, org: Org, req: AuthRequest) -> Outcome:
        """Throttle, call ``mode``, audit. Throttled clients get only the cheap check (DESIGN §5)."""
        key = (org.pk, client_key(req.remote_addr))
        presented = bool(req.authorization and req.authorization.strip())
        wait = self.throttle.acquire(key) if presented else 0.0
        req.cheap_only = wait > 0
        reason = "no credentials" if not presented else "rejected"
        try:
            principal = mode.authenticate(org, req)
        except AuthFailed as e:
            principal, reason = None, e.reason
        if principal is not None:
            if presented and not wait:
                self.throttle.refund(key)
            audit_log.info("auth ok realm=%s org=%s addr=%s mode=%s credential=%s subject=%s", org.realm,
                           org.org_id, req.remote_addr, principal.mode, principal.credential_id,
                           _clean(principal.subject or "-"))
            return Outcome(principal)
        if wait:
            if self.throttle.first_refusal(key):
                audit_log.warning("auth throttled realm=%s org=%s addr=%s retry_after=%.0fs", org.realm,
                                  org.org_id, req.remote_addr, wait)
                self.orgs.event(org.pk, "auth.throttled", {"addr": req.remote_addr, "retryAfter": round(wait)})
            return Outcome(None, wait)
        audit_log.info("auth failure realm=%s org=%s addr=%s mode=%s reason=%s", org.realm, org.org_id,
                       req.remote_addr, org.auth_mode, _clean(reason))
        if presented:
            self.orgs.event(org.pk, "auth.failure", {"addr": req.remote_addr, "mode": org.auth_mode,
                                                     "reason": _clean(reason)})
        return Outcome(None)

    # -- Argon2id and the verified cache -------------------------------------------------------
    def digest(self, org_pk: int, presented: str) -> bytes:
        """Keyed digest of a presented secret: what the cache is keyed by (never the secret itself)."""
        return hmac.new(self._key, f"{org_pk}\0{presented}".encode(), hashlib.sha256).digest()

    def hash_secret(self, secret: str) -> str:
        return self.hasher.hash(secret)

    def needs_rehash(self, hash_: str) -> bool:
        """True when ``hash_`` was made with weaker parameters than the current ones (RFC 9106 §4).

        Only ever upwards: a hash made with stronger parameters than today's is kept.
        """
        try:
            p = extract_parameters(hash_)
        except InvalidHashError:
            return False
        cur = self.hasher
        return p.type is not Type.ID or any(
            have < want for have, want in ((p.time_cost, cur.time_cost), (p.memory_cost, cur.memory_cost),
                                           (p.parallelism, cur.parallelism), (p.hash_len, cur.hash_len),
                                           (p.salt_len, cur.salt_len)))

    def verify(self, org: Org, cred: Credential | None, presented: str, cheap_only: bool = False) -> bool:
        """Check ``presented`` against ``cred`` (active, of this org); Argon2id only on a cache miss.

        ``cred`` is the row as read for this request, so a revocation or expiry written by any process takes
        effect at once, warm cache or not. With ``cheap_only`` a cache miss is a failure (no hashing).
        """
        ts = _now()
        if cred is None or cred.org_pk != org.pk or not cred.active(ts):
            return False
        key = self.digest(org.pk, presented)
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit.cred_pk == cred.pk and hit.until > time.monotonic():
            self._touch(cred)
            return True
        if cheap_only:
            return False
        try:
            self.hasher.verify(cred.hash, presented)
        except (VerificationError, InvalidHashError):
            return False
        if self.needs_rehash(cred.hash):
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

    # -- credential lifecycle ------------------------------------------------------------------
    def revoke(self, org: Org, cred_id: str) -> Credential | None:
        """Revoke a credential of ``org`` now (any kind); None if it has no such credential."""
        cred = self.orgs.revoke_credential(org.pk, cred_id, _now())
        if cred is not None:
            self.forget(cred.pk)
            self.orgs.event(org.pk, "credential.revoked", {"credential": cred_id})
        return cred


class IssuingMode:
    """Base of the modes whose credentials orgscim generates (DESIGN §5): ``EXTERNAL_SECRET``, ``EXTERNAL_BASIC``.

    Subclasses set ``name`` and ``kind`` and implement :meth:`generate`, :meth:`authenticate` and
    :meth:`schemes`. The only setting is ``grace_hours``: how long a rotated-out credential keeps working.
    """

    name: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = set(config) - {"grace_hours"}
        if unknown:
            raise ValueError(f"{self.name} takes no settings named {', '.join(sorted(unknown))}; "
                             "it knows grace_hours")
        out = dict(config)
        if "grace_hours" in out:
            out["grace_hours"] = grace_hours(out["grace_hours"])
        return out

    def generate(self, cred_id: str) -> tuple[str | None, str, str]:
        """(username or None, the secret to show once, the value to hash) for a new credential."""
        raise NotImplementedError

    def issue(self, org: Org, expires: str | None = None) -> IssuedCredential:
        """Create a credential; the returned secret exists nowhere else (only its Argon2id hash is stored)."""
        cred_id = new_credential_id()
        username, secret, hashed = self.generate(cred_id)
        cred = self.ctx.orgs.add_credential(org.pk, cred_id, self.kind, self.ctx.hash_secret(hashed),
                                            username=username, expires=expires)
        self.ctx.orgs.event(org.pk, "credential.created", {"credential": cred_id, "kind": self.kind})
        return IssuedCredential(cred, secret, username)

    def rotate(self, org: Org, grace_seconds: float | None = None) -> Rotation:
        """Issue a new credential; the org's other active ones of this kind expire at now + grace.

        Default grace: the org's ``grace_hours`` setting, else 24 h. A credential that already expires
        earlier keeps its earlier deadline.
        """
        if grace_seconds is None:
            grace_seconds = float(org.auth_config.get("grace_hours", DEFAULT_GRACE_HOURS)) * 3600
        issued = self.issue(org)
        deadline = later(grace_seconds)
        superseded = self.ctx.orgs.supersede_credentials(org.pk, self.kind, deadline, issued.credential.pk)
        for cred in superseded:
            self.ctx.forget(cred.pk)
        self.ctx.orgs.event(org.pk, "credential.rotated", {
            "credential": issued.credential.cred_id, "superseded": [c.cred_id for c in superseded],
            "deadline": deadline})
        return Rotation(issued, superseded, deadline)


def grace_hours(value: Any) -> float:
    """A validated grace period in hours (0 … 720)."""
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"grace_hours must be a number of hours, not {value!r}") from None
    if not 0 <= hours <= MAX_GRACE_HOURS:
        raise ValueError(f"grace_hours must be between 0 and {MAX_GRACE_HOURS:g}")
    return hours


def new_credential_id() -> str:
    return secrets.token_hex(6)


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe (no '.', so it can follow a credential id)."""
    return secrets.token_urlsafe(32)


def credential_parts(header: str | None, scheme: str) -> str | None:
    """The credentials after ``scheme`` in an ``Authorization`` header (scheme case-insensitive, RFC 9110 §11.1)."""
    if not header:
        return None
    got, _, value = header.strip().partition(" ")
    if got.lower() != scheme or not value.strip():
        return None
    return value.strip()


def bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), or None."""
    return credential_parts(header, "bearer")
