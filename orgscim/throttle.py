"""Throttling of failed authentication per (org, client address), in memory, per process (DESIGN §5).

Each key has a token bucket of ``burst`` attempts that refills one attempt every ``refill_seconds``. A request
that presents a credential takes an attempt *before* it is checked and gives it back when the check succeeds,
so only failures use the bucket up, and concurrent requests cannot overdraw it. With the bucket empty the web
layer answers 429 with ``Retry-After`` before any Argon2id hashing: a flood of wrong secrets from one address
costs at most ``burst`` verifications, then one per ``refill_seconds``.

The table is bounded (``max_keys``): full buckets (nothing to remember) are dropped first, then the least
recently used ones. IPv6 clients are keyed by their /64, the block one subscriber usually gets.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


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


@dataclass
class _Bucket:
    tokens: float
    at: float
    announced: bool = False  # the first 429 of a lockout has been logged


class FailureThrottle:
    """Token buckets of authentication attempts keyed by anything hashable (here: org pk and client key)."""

    def __init__(self, burst: int = 10, refill_seconds: float = 6.0, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or refill_seconds <= 0:
            raise ValueError("burst must be >= 1 and refill_seconds > 0")
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: Hashable, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            self._make_room()
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) / self.refill_seconds)
            b.at = now
            self._buckets.move_to_end(key)
        return b

    def _make_room(self) -> None:
        if len(self._buckets) < self.max_keys:
            return
        now = self.clock()
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) / self.refill_seconds >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def acquire(self, key: Hashable) -> float:
        """Take one attempt: 0.0 when taken, else the seconds until one is available (nothing taken)."""
        with self._lock:
            now = self.clock()
            b = self._bucket(key, now)
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                b.announced = False
                return 0.0
            return (1.0 - b.tokens) * self.refill_seconds

    def refund(self, key: Hashable) -> None:
        """Give back the attempt a successful authentication took."""
        with self._lock:
            b = self._buckets.get(key)
            if b is not None:
                b.tokens = min(float(self.burst), b.tokens + 1.0)

    def first_refusal(self, key: Hashable) -> bool:
        """True once per lockout: lets the caller log the start of a lockout, not every refused request."""
        with self._lock:
            b = self._buckets.get(key)
            if b is None or b.announced:
                return False
            b.announced = True
            return True

    def __len__(self) -> int:
        return len(self._buckets)
