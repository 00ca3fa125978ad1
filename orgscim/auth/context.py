"""Per-process state shared by the auth plugins, and the one wrapper around every plugin call (DESIGN §5).

:meth:`AuthContext.authenticate` wraps every plugin call the same way: throttling per (org, client address)
before any hashing (:mod:`orgscim.throttle`), one audit log line per outcome (never the presented value), and
one ``events`` row per failed or throttled attempt that presented a credential (bounded by the throttle).
:meth:`AuthContext.verify` checks a presented secret against a credential row with Argon2id only when the
:class:`~orgscim.auth.cache.VerifiedCache` does not remember it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .. import metrics
from ..jwks import JwksCache, UrlPolicy
from ..model.clock import later, now
from ..model.contract import Credential, Org
from ..store.authstate import AuthStateStore, auth_key, state_path
from ..store.jwks import JwksStore
from ..store.orgs import OrgStore
from ..throttle import FailureThrottle, client_key
from .api import AuthFailed, AuthMode, AuthRequest, Outcome
from .cache import DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_SECONDS, VerifiedCache
from .hashing import HASHER, needs_rehash

audit_log = logging.getLogger("orgscim.audit")

TOUCH_SECONDS = 60  # last_used is written at most about this often per credential


def clean(text: str, limit: int = 120) -> str:
    """A log-safe rendering of text that may come from a client (no control characters, bounded)."""
    return re.sub(r"[^\x21-\x7e]", "?", text)[:limit]


@dataclass
class AuthContext:
    """Per-process state shared by auth plugins: stores, config, the Argon2id hasher, the verified cache, the
    failure throttle and the JWKS cache.

    The credential row is read for every request, so revocation, expiry and rotation deadlines written by any
    process apply at once whatever the caches hold.
    """

    orgs: OrgStore
    state: AuthStateStore
    throttle: FailureThrottle
    cache: VerifiedCache
    jwks: JwksCache = field(default_factory=JwksCache)
    hasher: PasswordHasher = HASHER
    config: dict[str, Any] = field(default_factory=dict)  # the app's settings (AUTH_*, JWKS_*, KEYCLOAK_* …)
    clock: Callable[[], float] = time.time  # wall clock for JWT exp/nbf/iat (RFC 7519 §4.1.4-6); tests move it

    @classmethod
    def from_config(cls, orgs: OrgStore, config: dict[str, Any]) -> AuthContext:
        """Build the context from app config (``AUTH_*`` and ``JWKS_*`` keys, all optional)."""
        state = AuthStateStore(state_path(orgs.db.path))
        cache = VerifiedCache(state, auth_key(orgs.db.path),
                              float(config.get("AUTH_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)),
                              int(config.get("AUTH_CACHE_ENTRIES", DEFAULT_CACHE_ENTRIES)))
        throttle = FailureThrottle(state, int(config.get("AUTH_THROTTLE_BURST", 10)),
                                   float(config.get("AUTH_THROTTLE_REFILL_SECONDS", 6)))
        jwks = JwksCache(ttl=float(config.get("JWKS_CACHE_SECONDS", 3600)),
                         timeout=float(config.get("JWKS_TIMEOUT", 5)),
                         max_bytes=int(config.get("JWKS_MAX_BYTES", 256 * 1024)), store=JwksStore(orgs.db),
                         policy=UrlPolicy.from_config(config))
        return cls(orgs, state, throttle, cache, jwks, config=dict(config))

    # -- the request path ----------------------------------------------------------------------
    def authenticate(self, mode: AuthMode, org: Org, req: AuthRequest) -> Outcome:
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
                           clean(principal.subject or "-"))
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
                       req.remote_addr, org.auth_mode, clean(reason))
        if presented:
            self.orgs.event(org.pk, "auth.failure", {"addr": req.remote_addr, "mode": org.auth_mode,
                                                     "reason": clean(reason)})
        return Outcome(None)

    # -- Argon2id and the verified cache -------------------------------------------------------
    def digest(self, org_pk: int, presented: str) -> bytes:
        """Keyed digest of a presented secret: what the caches are keyed by (never the secret itself)."""
        return self.cache.digest(org_pk, presented)

    def hash_secret(self, secret: str) -> str:
        """The Argon2id hash to store for a new secret."""
        return self.hasher.hash(secret)

    def verify(self, org: Org, cred: Credential | None, presented: str, req: AuthRequest | None = None) -> bool:
        """Check ``presented`` against ``cred`` (active, of this org); Argon2id only when neither this process
        nor the host remembers the verification.

        ``cred`` is the row as read for this request, so a revocation or expiry written by any process takes
        effect at once, warm cache or not. Before Argon2id an attempt is taken from the failure throttle
        (``req.spend``); a throttled client's cache miss is a failure without hashing.
        """
        if cred is None or cred.org_pk != org.pk or not cred.active(now()):
            return False
        key = self.cache.digest(org.pk, presented)
        at = self.clock()
        if self.cache.remembered(key, cred.pk, at):
            self._touch(cred)
            return True
        if not self.cache.claim(key):  # the same value was being verified by another thread: take its result
            ok = self.cache.remembered(key, cred.pk, self.clock())
            if ok:
                self._touch(cred)
            return ok
        try:
            return self._verify_slow(key, cred, presented, at, req)
        finally:
            self.cache.release(key)

    def _verify_slow(self, key: bytes, cred: Credential, presented: str, at: float, req: AuthRequest | None) -> bool:
        if req is not None and not req.spend():
            return False
        metrics.argon2_verification()
        try:
            self.hasher.verify(cred.hash, presented)
        except (VerificationError, InvalidHashError):
            return False
        if needs_rehash(self.hasher, cred.hash):
            self.orgs.update_credential(cred.pk, hash=self.hasher.hash(presented))
        self.cache.remember(key, cred.pk, at)
        self._touch(cred)
        return True

    def forget(self, cred_pk: int | None = None) -> None:
        """Drop remembered verifications (of one credential, or all), here and host-wide: on rotate and revoke."""
        self.cache.forget(cred_pk)

    def _touch(self, cred: Credential) -> None:
        """Record last use at most about once a minute per credential, host-wide: decided from the row read
        for this request, so no per-credential state is kept in memory."""
        if cred.last_used is None or cred.last_used < later(-TOUCH_SECONDS):
            self.orgs.update_credential(cred.pk, last_used=now())

    # -- credential lifecycle ------------------------------------------------------------------
    def revoke(self, org: Org, cred_id: str) -> Credential | None:
        """Revoke a credential of ``org`` now (any kind); None if it has no such credential."""
        cred = self.orgs.revoke_credential(org.pk, cred_id, now())
        if cred is not None:
            self.forget(cred.pk)
            self.orgs.event(org.pk, "credential.revoked", {"credential": cred_id})
        return cred
