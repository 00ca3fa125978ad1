"""Throttling of failed authentication per (org, client address), shared by every process of the host (DESIGN §5).

Each key has a token bucket of ``burst`` attempts that refills one attempt every ``refill_seconds``. Only work
that can fail costs an attempt: the auth path takes one right before Argon2id (given back when the check
succeeds) or after a failure that cost nothing; a request answered from the verified cache never touches the
throttle. With the bucket empty the web layer answers 429 with ``Retry-After`` before any Argon2id hashing: a
flood of wrong secrets from one address costs at most ``burst`` verifications, then one per ``refill_seconds``,
**for the whole host**: the buckets live in the shared auth-state file (:mod:`orgscim.store.authstate`), so N
gunicorn workers do not allow N times the burst.

The table is bounded (``max_keys``): refilled buckets (nothing to remember) are dropped first, then the least
recently used ones. IPv6 clients are keyed by their /64, the block one subscriber usually gets. The client
address is the TCP peer unless ``TRUSTED_PROXIES`` says how many reverse proxies to believe: behind a proxy left
at the default, every client shares the proxy's bucket.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable

from .store.authstate import AuthStateStore


@functools.lru_cache(maxsize=4096)  # every request computes it; an IdP sends from a few addresses
def client_key(addr: str) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64 (anything else verbatim)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def retry_after(wait: float) -> str:
    """``Retry-After`` value for a wait in seconds (RFC 9110 §10.2.3: delay-seconds, a whole number)."""
    return str(max(1, math.ceil(wait)))


class FailureThrottle:
    """Token buckets of authentication attempts keyed by a string (here: org pk and client key)."""

    def __init__(self, store: AuthStateStore, burst: int = 10, refill_seconds: float = 6.0,
                 max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if burst < 1 or refill_seconds <= 0:
            raise ValueError("burst must be >= 1 and refill_seconds > 0")
        self.store = store
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_keys = max_keys
        self.clock = clock  # wall clock: shared by processes (tests move it)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0.0: now). Reads only; creates nothing."""
        b = self.store.bucket(key)
        if b is None:
            return 0.0
        tokens = min(float(self.burst), b[0] + max(0.0, self.clock() - b[1]) / self.refill_seconds)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) * self.refill_seconds

    def acquire(self, key: str) -> float:
        """Take one attempt: 0.0 when taken, else the seconds until one is available (nothing taken)."""
        return self.store.take(key, self.burst, self.refill_seconds, self.clock(), self.max_keys)

    def refund(self, key: str) -> None:
        """Give back the attempt a successful authentication took."""
        self.store.give_back(key, self.burst)

    def first_refusal(self, key: str) -> bool:
        """True once per lockout (across processes): lets the caller log its start, not every refused request."""
        return self.store.announce(key)

    def __len__(self) -> int:
        return self.store.count()
