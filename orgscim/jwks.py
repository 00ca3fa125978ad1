"""JWK Set fetching and caching for the JWT auth modes (RFC 7517; DESIGN §5, §7).

* A fetch is bounded in time (connect/read timeouts and an overall deadline, so a server that drips bytes
  cannot hold a request) and in size (``max_bytes``, ``MAX_KEYS``); redirects are not followed.
* Key sets are cached per URI for ``ttl`` seconds. When a refresh fails the previous keys stay in use for up
  to ``max_stale`` seconds, and the URI is not tried again for ``min_interval`` seconds.
* A token whose ``kid`` is not in the cached set may force a re-fetch, at most once per ``min_interval``
  (one minute) per owner (the org), so forged ``kid`` values cannot turn orgscim into a JWKS hammer.
* Only URLs that resolve to public addresses are fetched (:class:`UrlPolicy`): loopback, private, link-local,
  multicast, unspecified and reserved addresses are refused unless the operator allows them
  (``ALLOW_LOOPBACK_URLS``, ``ALLOW_PRIVATE_URLS``; the Keycloak URL orgscim is configured with is always
  trusted), and the connection goes to the address that was checked (DNS cannot switch it afterwards).
  Callers get a fixed message; the reason is logged.
* Only public signature keys are kept: ``use: enc`` keys, symmetric (``oct``) keys and anything carrying
  private members are dropped; keys without a ``kid`` cannot be matched and are dropped too.
* :meth:`JwksCache.key` returns a verification key for one (``kid``, ``alg``) pair only when the key's type,
  curve and size fit the algorithm (RFC 7518 §3.3: RSA at least 2048 bits; §3.4: the curve of each ES alg)
  and its own ``alg`` member, if any, is the same. Constructed keys are cached with the set.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import urllib3
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JOSEError
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .model.contract import JwksSets
from .model.types import JSON

MAX_KEYS = 100
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
#: Asymmetric JWS algorithms python-jose verifies (RFC 7518 §3.1); never ``none``, never ``HS*``.
SIGNATURE_ALGORITHMS = tuple(sorted(RSA_ALGORITHMS | set(EC_CURVES)))
MIN_RSA_BITS = 2048
MAX_ENTRIES = 10_000  # JWK Sets cached per process (least recently used dropped first)
FETCH_FAILED = "no JWK Set could be fetched from this URL (it must be a public https URL serving a JWK Set)"

log = logging.getLogger("orgscim.jwks")

JWK = JSON
"""One JSON Web Key (RFC 7517 §4): untyped JSON members."""
KeySet = dict[str, JWK]
"""``kid`` → public signature JWK."""


class Resolver(Protocol):
    """``socket.getaddrinfo`` or a stand-in: (family, type, proto, canonname, sockaddr) per address."""

    def __call__(self, host: str, port: int, *, type: int) -> Sequence[tuple[object, object, object, object,
                                                                           tuple[object, ...]]]: ...


class JwksError(Exception):
    """The JWK Set could not be fetched or is not one (message is safe to show to an operator)."""


def _b64_bits(value: object) -> int:
    try:
        raw = base64.urlsafe_b64decode(str(value) + "=" * (-len(str(value)) % 4))
    except (ValueError, TypeError):
        return 0
    return int.from_bytes(raw, "big").bit_length()


def usable(key: JWK, alg: str) -> bool:
    """Whether JWK ``key`` may verify signatures made with ``alg`` (type, curve, size and ``alg`` member)."""
    if key.get("alg") not in (None, alg):
        return False
    if alg in RSA_ALGORITHMS:
        return key.get("kty") == "RSA" and _b64_bits(key.get("n")) >= MIN_RSA_BITS
    if alg in EC_CURVES:
        return key.get("kty") == "EC" and key.get("crv") == EC_CURVES[alg]
    return False


def parse_jwks(raw: bytes) -> KeySet:
    """``kid`` → public signature JWK, from the bytes of a JWK Set document."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise JwksError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('not a JWK Set: expected an object with a "keys" array (RFC 7517 §5)')
    if len(doc["keys"]) > MAX_KEYS:
        raise JwksError(f"JWK Set holds {len(doc['keys'])} keys, more than {MAX_KEYS}")
    keys: KeySet = {}
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


class UnsafeUrl(JwksError):
    """The URL is not one orgscim may fetch (scheme, credentials, or an address it refuses)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``ip`` (the address that passed the check), speak to ``host``."""

    scheme: str
    host: str
    port: int
    ip: str
    path: str


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs a tenant may make orgscim fetch (SSRF guard)."""

    allow_loopback: bool = False
    allow_private: bool = False
    trusted: tuple[str, ...] = ()  # URL prefixes the operator configured (KEYCLOAK_URL): any address
    resolver: Resolver = socket.getaddrinfo

    @classmethod
    def from_config(cls, config: dict[str, object]) -> UrlPolicy:
        trusted = tuple(str(config[k]).rstrip("/") + "/" for k in ("KEYCLOAK_URL", "KEYCLOAK_FRONTEND_URL")
                        if config.get(k))
        return cls(_flag(config.get("ALLOW_LOOPBACK_URLS")), _flag(config.get("ALLOW_PRIVATE_URLS")), trusted)

    def check(self, uri: str) -> Target:
        """Resolve ``uri`` and return where to connect; :class:`UnsafeUrl` (with the reason, for the log)."""
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
            raise UnsafeUrl("not an absolute http(s) URL without credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeUrl("bad port") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        trusted = any(uri.startswith(t) for t in self.trusted)
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise UnsafeUrl(f"cannot resolve {host}: {e}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise UnsafeUrl(f"{host} has no address")
        if not trusted:
            for ip in addresses:  # every address: a name with one private address is refused as a whole
                reason = self.refused(ip)
                if reason:
                    raise UnsafeUrl(f"{host} resolves to {reason} address {ip}")
            if parts.scheme != "https" and not all(ip.is_loopback for ip in addresses):
                raise UnsafeUrl("http is accepted for loopback addresses only")
        return Target(parts.scheme, host, port, str(addresses[0]), path)

    def refused(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if ip.is_loopback:
            return None if self.allow_loopback else "a loopback"
        if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
            return "a link-local, multicast, unspecified or reserved"
        if ip.is_private or not ip.is_global:
            return None if self.allow_private else "a private"
        return None


def _flag(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


STRICT = UrlPolicy()


def fetch(uri: str, timeout: float = 5.0, max_bytes: int = 256 * 1024,
          policy: UrlPolicy = STRICT) -> KeySet:
    """GET ``uri`` (checked by ``policy``, connecting to the address checked) and parse it as a JWK Set, within
    ``timeout`` seconds overall and ``max_bytes``."""
    target = policy.check(uri)
    deadline = time.monotonic() + timeout
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":  # TLS to the pinned address, certificate checked for the host name
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.ip, target.port, server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=DEFAULT_CA_BUNDLE_PATH, timeout=limits, retries=False, maxsize=1)
    else:
        pool = urllib3.HTTPConnectionPool(target.ip, target.port, timeout=limits, retries=False, maxsize=1)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:
        host_header = f"[{target.host}]" + ("" if target.port == default_port else f":{target.port}")
    try:
        with pool:
            resp = pool.urlopen("GET", target.path, redirect=False, preload_content=False,
                                assert_same_host=False, headers={
                                    "Host": host_header, "Accept": "application/jwk-set+json, application/json",
                                    "Accept-Encoding": "identity", "User-Agent": "orgscim"})
            try:
                if resp.status != 200:
                    raise JwksError(f"HTTP {resp.status} from {uri}")
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise JwksError(f"JWK Set larger than {max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                # read1: whatever one recv brings, so the deadline is checked while a slow server drips bytes
                while chunk := resp.read1(16384):
                    size += len(chunk)
                    if size > max_bytes:
                        raise JwksError(f"JWK Set larger than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise JwksError(f"JWK Set not received within {timeout:g} s")
                    chunks.append(chunk)
            finally:
                resp.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise JwksError(f"cannot fetch {uri}: {type(e).__name__}") from None
    return parse_jwks(b"".join(chunks))


@dataclass
class _Entry:
    keys: KeySet = field(default_factory=dict)
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
                 fetcher: Callable[[str], KeySet] | None = None,
                 store: JwksSets | None = None, policy: UrlPolicy = STRICT, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store  # sets shared with the other processes
        self.ttl = ttl
        self.min_interval = min_interval
        self.max_stale = max_stale
        self.clock = clock
        self.policy = policy
        self.fetcher = fetcher or (lambda uri: fetch(uri, timeout, max_bytes, self.policy))
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._forced: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, uri: str) -> _Entry:
        """The entry of ``uri``, most recently used; the least recently used beyond ``max_entries`` go."""
        with self._lock:
            entry = self._entries.get(uri)
            if entry is None:
                entry = self._entries[uri] = _Entry()
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(uri)
            return entry

    def refresh(self, uri: str) -> KeySet:
        """Fetch ``uri`` now (raises :class:`JwksError`); on success the cached set is replaced."""
        entry = self._entry(uri)
        with entry.lock:
            return self._refresh_locked(uri, entry)

    def _refresh_locked(self, uri: str, entry: _Entry) -> KeySet:
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
            self._forced.move_to_end(owner)
            while len(self._forced) > self.max_entries:
                self._forced.popitem(last=False)
            return True

    def status(self, uri: str) -> JSON:
        """What is cached for ``uri`` (for ``check``-style commands and tests): kids, age, last error."""
        entry = self._entry(uri)
        now = self.clock()
        return {"uri": uri, "kids": sorted(entry.keys),
                "age": None if entry.fetched is None else now - entry.fetched, "error": entry.error}
