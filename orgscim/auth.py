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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from . import metrics
from .jwks import JwksCache, UrlPolicy
from .model.contract import Credential, Org
from .store.authstate import AuthStateStore, auth_key, state_path
from .store.jwks import JwksStore
from .store.orgs import OrgStore
from .store.resources import now as _now
from .store.sync import later
from .throttle import FailureThrottle, client_key

audit_log = logging.getLogger("orgscim.audit")

DEFAULT_CHALLENGE = 'Bearer realm="orgscim"'
DEFAULT_GRACE_HOURS = 24.0
MAX_GRACE_HOURS = 24.0 * 30
DEFAULT_CACHE_SECONDS = 86400.0  # idle time after which a remembered verification is paid again
DEFAULT_CACHE_ENTRIES = 20_000  # remembered verifications per process (about 200 bytes each)
TOUCH_SECONDS = 60  # last_used is written at most about this often per credential
VERIFY_WAIT_SECONDS = 30.0  # a request waits this long at most for the same value's Argon2id in another thread


@dataclass
class AuthRequest:
    """The parts of an HTTP request an auth mode may look at, and its hooks into the failure throttle.

    ``cheap_only`` is true for a client that is being throttled: the mode may accept what it can check
    without expensive work (a remembered verification, a signature against cached keys) but must not run
    Argon2id or fetch anything. It is read from the shared throttle on first use only, so a request served
    from the verified cache never reads it. :meth:`spend` takes an attempt before expensive work.
    """

    authorization: str | None
    remote_addr: str
    throttle_wait: Callable[[], float] = field(default=lambda: 0.0, repr=False)
    throttle_take: Callable[[], float] = field(default=lambda: 0.0, repr=False)
    spent: bool = False  # an attempt was taken for expensive work (given back on success)
    retry_after: float = 0.0  # > 0: the client is throttled
    _wait: float | None = field(default=None, repr=False)

    @property
    def cheap_only(self) -> bool:
        if self._wait is None:
            self._wait = self.throttle_wait()
        return self._wait > 0

    def spend(self) -> bool:
        """Take one attempt before Argon2id; False (and ``retry_after`` set) when the client is throttled."""
        if self.cheap_only:
            self.retry_after = self._wait or 0.0
            return False
        wait = self.throttle_take()
        if wait > 0:
            self.retry_after = wait
            return False
        self.spent = True
        return True


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
    used: float  # last use (wall clock): entries idle longer than AUTH_CACHE_SECONDS are not trusted
    synced: float  # when the host-wide row's ``used`` was last moved forward


def _clean(text: str, limit: int = 120) -> str:
    """A log-safe rendering of text that may come from a client (no control characters, bounded)."""
    return re.sub(r"[^\x21-\x7e]", "?", text)[:limit]


@dataclass
class AuthContext:
    """Per-process state shared by auth plugins: stores, config, the Argon2id hasher, the verified cache, the
    failure throttle and the JWKS cache.

    The verified cache has two levels, both keyed by :meth:`digest` (HMAC of org and presented value under the
    host's key, never the value itself): an LRU in this process (``AUTH_CACHE_ENTRIES``, oldest use evicted
    one at a time) in front of the host-wide table of the auth-state file, so Argon2id runs once per
    credential for the whole host, not per worker. An entry is trusted while it is used at least every
    ``AUTH_CACHE_SECONDS`` (sliding). The credential row is read for every request, so revocation, expiry
    and rotation deadlines written by any process apply at once whatever the caches hold.
    """

    orgs: OrgStore
    cache_ttl: float = DEFAULT_CACHE_SECONDS
    hasher: PasswordHasher = HASHER
    config: dict[str, Any] = field(default_factory=dict)
    state: AuthStateStore | None = None
    throttle: FailureThrottle = None  # type: ignore[assignment]  # default: on ``state``
    jwks: JwksCache = field(default_factory=JwksCache)
    clock: Any = time.time  # wall clock for JWT exp/nbf/iat (RFC 7519 §4.1.4-6); tests move it
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    _key: bytes = b""
    _cache: OrderedDict[bytes, _Cached] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: dict[bytes, threading.Event] = field(default_factory=dict)  # Argon2id under way, per digest

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = AuthStateStore(state_path(self.orgs.db.path))
        if not self._key:
            self._key = auth_key(self.orgs.db.path)
        if self.throttle is None:
            self.throttle = FailureThrottle(self.state)

    @classmethod
    def from_config(cls, orgs: OrgStore, config: dict[str, Any]) -> AuthContext:
        """Build the context from app config (``AUTH_*`` and ``JWKS_*`` keys, all optional)."""
        state = AuthStateStore(state_path(orgs.db.path))
        return cls(
            orgs, cache_ttl=float(config.get("AUTH_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)), config=dict(config),
            state=state, cache_entries=int(config.get("AUTH_CACHE_ENTRIES", DEFAULT_CACHE_ENTRIES)),
            throttle=FailureThrottle(state, int(config.get("AUTH_THROTTLE_BURST", 10)),
                                     float(config.get("AUTH_THROTTLE_REFILL_SECONDS", 6))),
            jwks=JwksCache(ttl=float(config.get("JWKS_CACHE_SECONDS", 3600)),
                           timeout=float(config.get("JWKS_TIMEOUT", 5)),
                           max_bytes=int(config.get("JWKS_MAX_BYTES", 256 * 1024)), store=JwksStore(orgs.db),
                           policy=UrlPolicy.from_config(config)))

    # -- the request path ----------------------------------------------------------------------
    def authenticate(self, mode: Any, org: Org, req: AuthRequest) -> Outcome:
        """Call ``mode`` with the throttle hooked in, audit, count. Throttled clients get only the cheap check
        (DESIGN §5); a success served from the verified cache touches no throttle state at all."""
        presented = bool(req.authorization and req.authorization.strip())
        key = f"{org.pk}|{client_key(req.remote_addr)}"
        if presented:
            req.throttle_wait = lambda: self.throttle.wait(key)
            req.throttle_take = lambda: self.throttle.acquire(key)
        reason = "no credentials" if not presented else "rejected"
        try:
            principal = mode.authenticate(org, req)
        except AuthFailed as e:
            principal, reason = None, e.reason
        if principal is not None:
            if req.spent:
                self.throttle.refund(key)
            audit_log.info("auth ok realm=%s org=%s addr=%s mode=%s credential=%s subject=%s", org.realm,
                           org.org_id, req.remote_addr, principal.mode, principal.credential_id,
                           _clean(principal.subject or "-"))
            return Outcome(principal)
        wait = req.retry_after
        if presented and not wait and not req.spent:
            wait = self.throttle.acquire(key)  # a failure that cost nothing still uses an attempt
        if wait:
            metrics.auth_failure(org.auth_mode, "throttled")
            if self.throttle.first_refusal(key):
                audit_log.warning("auth throttled realm=%s org=%s addr=%s retry_after=%.0fs", org.realm,
                                  org.org_id, req.remote_addr, wait)
                self.orgs.event(org.pk, "auth.throttled", {"addr": req.remote_addr, "retryAfter": round(wait)})
            return Outcome(None, wait)
        metrics.auth_failure(org.auth_mode, "rejected" if presented else "missing")
        audit_log.info("auth failure realm=%s org=%s addr=%s mode=%s reason=%s", org.realm, org.org_id,
                       req.remote_addr, org.auth_mode, _clean(reason))
        if presented:
            self.orgs.event(org.pk, "auth.failure", {"addr": req.remote_addr, "mode": org.auth_mode,
                                                     "reason": _clean(reason)})
        return Outcome(None)

    # -- Argon2id and the verified cache -------------------------------------------------------
    def digest(self, org_pk: int, presented: str) -> bytes:
        """Keyed digest of a presented secret: what the caches are keyed by (never the secret itself)."""
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

    def verify(self, org: Org, cred: Credential | None, presented: str, req: AuthRequest | None = None) -> bool:
        """Check ``presented`` against ``cred`` (active, of this org); Argon2id only when neither this process
        nor the host remembers the verification.

        ``cred`` is the row as read for this request, so a revocation or expiry written by any process takes
        effect at once, warm cache or not. Before Argon2id an attempt is taken from the failure throttle
        (``req.spend``); a throttled client's cache miss is a failure without hashing.
        """
        if cred is None or cred.org_pk != org.pk or not cred.active(_now()):
            return False
        key = self.digest(org.pk, presented)
        at = self.clock()
        if self._remembered(key, cred.pk, at):
            self._touch(cred)
            return True
        with self._lock:  # one Argon2id per value at a time in this process; the others wait for its result
            running = self._running.get(key)
            if running is None:
                self._running[key] = threading.Event()
        if running is not None:
            running.wait(VERIFY_WAIT_SECONDS)
            ok = self._remembered(key, cred.pk, self.clock())
            if ok:
                self._touch(cred)
            return ok
        try:
            return self._verify_slow(key, cred, presented, at, req)
        finally:
            with self._lock:
                self._running.pop(key).set()

    def _verify_slow(self, key: bytes, cred: Credential, presented: str, at: float, req: AuthRequest | None) -> bool:
        if req is not None and not req.spend():
            return False
        metrics.argon2_verification()
        try:
            self.hasher.verify(cred.hash, presented)
        except (VerificationError, InvalidHashError):
            return False
        if self.needs_rehash(cred.hash):
            self.orgs.update_credential(cred.pk, hash=self.hasher.hash(presented))
        assert self.state is not None
        self.state.remember(key, cred.pk, at, self.cache_ttl)
        self._keep(key, _Cached(cred.pk, at, at))
        self._touch(cred)
        return True

    def _remembered(self, key: bytes, cred_pk: int, at: float) -> bool:
        """A verification of ``key`` for ``cred_pk`` used within the idle limit, in this process or the host's
        table (then copied here). Slides the entry's expiry."""
        sync = False
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                if hit.cred_pk == cred_pk and at - hit.used <= self.cache_ttl:
                    hit.used = at
                    self._cache.move_to_end(key)
                    sync = at - hit.synced > min(self.cache_ttl / 4, 3600.0)
                    if sync:
                        hit.synced = at
                else:
                    del self._cache[key]
                    hit = None
        assert self.state is not None
        if hit is not None:
            metrics.cache_hit("process")
            if sync:  # keep the host-wide entry alive for the other workers
                self.state.remember(key, cred_pk, at, self.cache_ttl)
            return True
        row = self.state.verified(key)
        if row is None or row[0] != cred_pk or at - row[1] > self.cache_ttl:
            return False
        if at - row[1] > min(self.cache_ttl / 4, 3600.0):
            self.state.remember(key, cred_pk, at, self.cache_ttl)
        self._keep(key, _Cached(cred_pk, at, at))
        metrics.cache_hit("host")
        return True

    def _keep(self, key: bytes, entry: _Cached) -> None:
        """Remember in this process; past ``cache_entries`` the least recently used entry goes (one at a time)."""
        with self._lock:
            self._cache[key] = entry
            if hasattr(self._cache, "move_to_end"):
                self._cache.move_to_end(key)
            while len(self._cache) > self.cache_entries:
                self._cache.pop(next(iter(self._cache)))

    def forget(self, cred_pk: int | None = None) -> None:
        """Drop remembered verifications (of one credential, or all), here and host-wide: on rotate and revoke."""
        with self._lock:
            if cred_pk is None:
                self._cache.clear()
            else:
                for k in [k for k, v in self._cache.items() if v.cred_pk == cred_pk]:
                    del self._cache[k]
        assert self.state is not None
        self.state.forget(cred_pk)

    def _touch(self, cred: Credential) -> None:
        """Record last use at most about once a minute per credential, host-wide: decided from the row read
        for this request, so no per-credential state is kept in memory."""
        if cred.last_used is None or cred.last_used < later(-TOUCH_SECONDS):
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
