"""JWK Set fetching and caching for the JWT auth modes (RFC 7517; DESIGN §5, §7).

* A fetch is bounded in time (connect/read timeouts and an overall deadline, so a server that drips bytes
  cannot hold a request) and in size (``max_bytes``, ``MAX_KEYS``); redirects are not followed.
* Key sets are cached per URI for ``ttl`` seconds. When a refresh fails the previous keys stay in use for up
  to ``max_stale`` seconds, and the URI is not tried again for ``min_interval`` seconds.
* A token whose ``kid`` is not in the cached set may force a re-fetch, at most once per ``min_interval``
  (one minute) per owner (the org), so forged ``kid`` values cannot turn orgscim into a JWKS hammer.
* Only public signature keys are kept: ``use: enc`` keys, symmetric (``oct``) keys and anything carrying
  private members are dropped; keys without a ``kid`` cannot be matched and are dropped too.
* :meth:`JwksCache.key` returns a verification key for one (``kid``, ``alg``) pair only when the key's type,
  curve and size fit the algorithm (RFC 7518 §3.3: RSA at least 2048 bits; §3.4: the curve of each ES alg)
  and its own ``alg`` member, if any, is the same. Constructed keys are cached with the set.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JOSEError

MAX_KEYS = 100
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
#: Asymmetric JWS algorithms python-jose verifies (RFC 7518 §3.1); never ``none``, never ``HS*``.
SIGNATURE_ALGORITHMS = tuple(sorted(RSA_ALGORITHMS | set(EC_CURVES)))
MIN_RSA_BITS = 2048


class JwksError(Exception):
    """The JWK Set could not be fetched or is not one (message is safe to show to an operator)."""


def _b64_bits(value: Any) -> int:
    try:
        raw = base64.urlsafe_b64decode(str(value) + "=" * (-len(str(value)) % 4))
    except (ValueError, TypeError):
        return 0
    return int.from_bytes(raw, "big").bit_length()


def usable(key: dict[str, Any], alg: str) -> bool:
    """Whether JWK ``key`` may verify signatures made with ``alg`` (type, curve, size and ``alg`` member)."""
    if key.get("alg") not in (None, alg):
        return False
    if alg in RSA_ALGORITHMS:
        return key.get("kty") == "RSA" and _b64_bits(key.get("n")) >= MIN_RSA_BITS
    if alg in EC_CURVES:
        return key.get("kty") == "EC" and key.get("crv") == EC_CURVES[alg]
    return False


def parse_jwks(raw: bytes) -> dict[str, dict[str, Any]]:
    """``kid`` → public signature JWK, from the bytes of a JWK Set document."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise JwksError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('not a JWK Set: expected an object with a "keys" array (RFC 7517 §5)')
    if len(doc["keys"]) > MAX_KEYS:
        raise JwksError(f"JWK Set holds {len(doc['keys'])} keys, more than {MAX_KEYS}")
    keys: dict[str, dict[str, Any]] = {}
    for k in doc["keys"]:
        if not isinstance(k, dict) or not isinstance(k.get("kid"), str) or k.get("kty") not in ("RSA", "EC"):
            continue
        if k.get("use", "sig") != "sig" or PRIVATE_MEMBERS & set(k):
            continue
        ops = k.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        keys[k["kid"]] = k
    return keys


def fetch(uri: str, timeout: float = 5.0, max_bytes: int = 256 * 1024,
          session: requests.Session | None = None) -> dict[str, dict[str, Any]]:
    """GET ``uri`` and parse it as a JWK Set, within ``timeout`` seconds overall and ``max_bytes``."""
    deadline = time.monotonic() + timeout
    getter = session.get if session is not None else requests.get
    try:
        with getter(uri, timeout=(timeout, timeout), stream=True, allow_redirects=False,
                    headers={"Accept": "application/jwk-set+json, application/json",
                             "Accept-Encoding": "identity"}) as resp:
            if resp.status_code != 200:
                raise JwksError(f"HTTP {resp.status_code} from {uri}")
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise JwksError(f"JWK Set larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            # read1: whatever one recv brings, so the deadline is checked while a slow server drips bytes
            while chunk := resp.raw.read1(16384, decode_content=False):
                size += len(chunk)
                if size > max_bytes:
                    raise JwksError(f"JWK Set larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise JwksError(f"JWK Set not received within {timeout:g} s")
                chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        raise JwksError(f"cannot fetch {uri}: {type(e).__name__}") from None
    return parse_jwks(b"".join(chunks))


@dataclass
class _Entry:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched: float | None = None  # monotonic time of the last successful fetch
    attempted: float | None = None  # monotonic time of the last attempt
    error: str | None = None
    built: dict[tuple[str, str], Key] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """Per-process cache of JWK Sets (one entry per URI, shared by the orgs that use it)."""

    def __init__(self, ttl: float = 3600.0, min_interval: float = 60.0, max_stale: float = 86400.0,
                 timeout: float = 5.0, max_bytes: int = 256 * 1024,
                 clock: Callable[[], float] = time.monotonic,
                 fetcher: Callable[[str], dict[str, dict[str, Any]]] | None = None,
                 store: Any = None) -> None:
        self.store = store  # orgscim.store.jwks.JwksStore: sets shared with the other processes
        self.ttl = ttl
        self.min_interval = min_interval
        self.max_stale = max_stale
        self.clock = clock
        self.fetcher = fetcher or (lambda uri: fetch(uri, timeout, max_bytes))
        self._entries: dict[str, _Entry] = {}
        self._forced: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def _entry(self, uri: str) -> _Entry:
        with self._lock:
            return self._entries.setdefault(uri, _Entry())

    def refresh(self, uri: str) -> dict[str, dict[str, Any]]:
        """Fetch ``uri`` now (raises :class:`JwksError`); on success the cached set is replaced."""
        entry = self._entry(uri)
        with entry.lock:
            return self._refresh_locked(uri, entry)

    def _refresh_locked(self, uri: str, entry: _Entry) -> dict[str, dict[str, Any]]:
        entry.attempted = self.clock()
        try:
            keys = self.fetcher(uri)
        except JwksError as e:
            entry.error = str(e)
            if entry.fetched is not None and entry.attempted - entry.fetched > self.max_stale:
                entry.keys, entry.built = {}, {}
            if self.store is not None:
                self.store.failed(uri, str(e))
            raise
        entry.keys, entry.built, entry.fetched, entry.error = keys, {}, entry.attempted, None
        if self.store is not None:
            self.store.saved(uri, keys)
        return keys

    def _adopt_stored(self, uri: str, entry: _Entry, now: float) -> None:
        """Take a fresher set another process (the worker's refresh) saved, instead of fetching it again."""
        stored = self.store.load(uri) if self.store is not None else None
        if stored is None or stored.age is None:
            return
        if entry.fetched is None or now - entry.fetched > stored.age:
            entry.keys, entry.built, entry.fetched = stored.keys, {}, now - stored.age

    def _may_try(self, entry: _Entry, now: float) -> bool:
        return entry.attempted is None or now - entry.attempted >= self.min_interval

    def key(self, owner: Hashable, uri: str, kid: str, alg: str, allow_fetch: bool = True) -> Key | None:
        """The key to verify a token signed with ``alg`` under ``kid``, or None (unknown, unusable, unreachable).

        Fetches when the set was never fetched or is older than ``ttl`` (respecting ``min_interval`` between
        attempts), and once per ``min_interval`` per ``owner`` when ``kid`` is unknown. ``allow_fetch=False``
        (a throttled client) only looks at what is cached.
        """
        entry = self._entry(uri)
        with entry.lock:
            now = self.clock()
            stale = entry.fetched is None or now - entry.fetched >= self.ttl
            if stale or kid not in entry.keys:
                self._adopt_stored(uri, entry, now)
                stale = entry.fetched is None or now - entry.fetched >= self.ttl
            if allow_fetch and ((stale and self._may_try(entry, now))
                                or (kid not in entry.keys and self._force_allowed(owner, now))):
                try:
                    self._refresh_locked(uri, entry)
                except JwksError:
                    pass
            jwk_dict = entry.keys.get(kid)
            if jwk_dict is None or not usable(jwk_dict, alg):
                return None
            built = entry.built.get((kid, alg))
            if built is None:
                try:
                    built = entry.built[(kid, alg)] = jwk.construct(jwk_dict, alg)
                except (JOSEError, ValueError, TypeError):
                    return None
            return built

    def _force_allowed(self, owner: Hashable, now: float) -> bool:
        with self._lock:
            last = self._forced.get(owner)
            if last is not None and now - last < self.min_interval:
                return False
            self._forced[owner] = now
            return True

    def status(self, uri: str) -> dict[str, Any]:
        """What is cached for ``uri`` (for ``check``-style commands and tests): kids, age, last error."""
        entry = self._entry(uri)
        now = self.clock()
        return {"uri": uri, "kids": sorted(entry.keys),
                "age": None if entry.fetched is None else now - entry.fetched, "error": entry.error}
