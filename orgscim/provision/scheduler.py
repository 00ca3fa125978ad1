"""Which outbox entries are delivered when, by whom, and how many at once (DESIGN §4 "in commit order per
resource, concurrently across resources, fairly across orgs"; §7 outbox job).

* **Per resource, in order**: a resource's entries are delivered one after the other by whoever holds the
  lease ``res:{org}:{resource id}``. Holders are unique per process *and* thread (:func:`holder`, made after
  a fork), so gunicorn workers, their threads and the worker process never deliver the same entry twice. The
  lease is short (:data:`LEASE_TTL`), renewed before each entry, and taken over at once when its holder is a
  process of this host that died.
* **Across resources, in parallel**: a bounded thread pool per process (``DELIVERY_WORKERS``) and at most
  ``DELIVERY_PER_ORG`` resources of one org at a time.
* **Fair across orgs**: each dispatch round takes one resource per org, orgs waiting longest first, so an
  org importing 10,000 users shares the pool with an org changing one.
* **Back-pressure**: a 429/503/timeout halves the realm's concurrency and pauses it for ``Retry-After``
  (or a short backoff); successes grow it back one at a time (AIMD).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from orgscim.model.contract import Org, Orgs
from orgscim.model.delivery import Outbox, OutboxItem
from orgscim.model.holders import new_holder

log = logging.getLogger("orgscim.deliver")

LEASE_TTL = 30.0
REFRESH_SECONDS = 0.5
DEFAULT_WORKERS = 8
DEFAULT_PER_ORG = 4

_local = threading.local()


def holder() -> str:
    """This thread's lease-holder token: ``host:pid:random``, new in every process and thread."""
    token: tuple[int, str] | None = getattr(_local, "holder", None)
    if token is None or token[0] != os.getpid():
        token = (os.getpid(), new_holder())
        _local.holder = token
    return token[1]


@dataclass
class Stats:
    delivered: int = 0
    refused: int = 0
    deferred: bool = False  # entries are left for later
    failed: bool = False  # Keycloak did not answer (or refused our credentials)
    retry_after: float | None = None  # Keycloak asked us to slow down for this long
    contended: bool = False  # another deliverer holds the resource's lease
    refusals: list[tuple[str, str, bool]] = field(default_factory=list)  # (resource id, kind, on create)

    def add(self, other: Stats) -> None:
        self.delivered += other.delivered
        self.refused += other.refused
        self.deferred |= other.deferred
        self.failed |= other.failed
        self.contended |= other.contended
        if other.retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, other.retry_after)
        self.refusals += other.refusals


class Throttle:
    """Adaptive concurrency for one realm: additive increase, multiplicative decrease, pause on Retry-After."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.paused_until = 0.0
        self._lock = threading.Lock()

    def allowed(self) -> int:
        return 0 if time.monotonic() < self.paused_until else max(1, int(self.limit))

    def record(self, stats: Stats) -> None:
        with self._lock:
            if stats.failed:
                self.limit = max(1.0, self.limit / 2)
                pause = stats.retry_after if stats.retry_after is not None else 1.0
                self.paused_until = max(self.paused_until, time.monotonic() + pause)
            elif stats.delivered:
                self.limit = min(float(self.ceiling), self.limit + 1.0 / max(1.0, self.limit))


class Scheduler:
    """Runs ``deliver(org, resource_id) -> Stats`` for due resources across orgs with bounded parallelism."""

    def __init__(self, orgs: Orgs, outbox: Outbox, deliver: Callable[[Org, str], Stats],
                 workers: int = DEFAULT_WORKERS, per_org: int = DEFAULT_PER_ORG,
                 realm_ok: Callable[[str], bool] = lambda realm: True) -> None:
        self.orgs = orgs
        self.outbox = outbox
        self.deliver = deliver
        self.workers = max(1, workers)
        self.per_org = max(1, per_org)
        self.realm_ok = realm_ok
        self._throttles: dict[str, Throttle] = {}
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._lock = threading.Lock()

    def throttle(self, realm: str) -> Throttle:
        with self._lock:
            return self._throttles.setdefault(realm, Throttle(self.workers))

    def pool(self) -> ThreadPoolExecutor:
        """This process's delivery threads (made after a fork, never inherited)."""
        with self._lock:
            if self._pool is None or self._pool[0] != os.getpid():
                self._pool = (os.getpid(), ThreadPoolExecutor(self.workers, thread_name_prefix="orgscim-deliver"))
            return self._pool[1]

    def run(self, seconds: float | None = None, org_pks: list[int] | None = None) -> Stats:
        """Deliver due entries (of all orgs, or of ``org_pks``) until none is due, or for ``seconds``."""
        end = None if seconds is None else time.monotonic() + seconds
        total = Stats()
        running: dict[Future[Stats], tuple[Org, str]] = {}
        busy: dict[int, set[str]] = {}  # resources being delivered (or held by another deliverer), per org
        rotation: deque[Org] = deque()
        queues: dict[int, deque[OutboxItem]] = {}
        pool = self.pool()
        refreshed = 0.0
        try:
            while end is None or time.monotonic() < end or running:
                if time.monotonic() - refreshed > REFRESH_SECONDS or not (running or rotation):
                    # orgs that became due meanwhile join the rotation: a single change in org B does not wait
                    # for org A's import to drain
                    refreshed = time.monotonic()
                    present = {o.pk for o in rotation}
                    rotation.extend(o for o in self._due_orgs(org_pks) if o.pk not in present)
                    if not (running or rotation):
                        break
                if end is None or time.monotonic() < end:
                    self._dispatch(pool, running, busy, rotation, queues)
                if not running:
                    if not rotation or not any(self.throttle(o.realm).allowed() for o in rotation):
                        break  # everything left is paused (Retry-After), held elsewhere or not due: later
                    time.sleep(0.05)
                    continue
                done, _ = wait(list(running), timeout=REFRESH_SECONDS, return_when=FIRST_COMPLETED)
                for fut in done:
                    org, rid = running.pop(fut)
                    try:
                        stats = fut.result()
                    except Exception:  # noqa: BLE001 - one broken entry must not stop the others
                        log.exception("delivery of %s/%s failed unexpectedly", org.org_id, rid)
                        stats = Stats(deferred=True)
                    if not stats.contended:
                        busy[org.pk].discard(rid)  # a resource another deliverer holds is left to it
                    self.throttle(org.realm).record(stats)
                    total.add(stats)
                    if not stats.failed and all(o.pk != org.pk for o in rotation):
                        rotation.append(org)  # it may have more due entries
        finally:
            for fut in list(running):
                total.add(fut.result())
        return total

    def _due_orgs(self, only: list[int] | None) -> list[Org]:
        out = []
        for pk in self.outbox.due_orgs():
            if only is not None and pk not in only:
                continue
            org = self.orgs.org_by_pk(pk)
            if org is not None and self.realm_ok(org.realm):
                out.append(org)
        return out

    def _dispatch(self, pool: ThreadPoolExecutor, running: dict[Future[Stats], tuple[Org, str]],
                  busy: dict[int, set[str]], rotation: deque[Org], queues: dict[int, deque[OutboxItem]]) -> None:
        """Fill free threads, one resource per org per round, orgs in rotation order."""
        idle_rounds = 0
        while len(running) < self.workers and rotation and idle_rounds < len(rotation):
            org = rotation[0]
            rotation.rotate(-1)
            mine = busy.setdefault(org.pk, set())
            realm_running = sum(1 for o, _ in running.values() if o.realm == org.realm)
            if len(mine) >= self.per_org or realm_running >= self.throttle(org.realm).allowed():
                idle_rounds += 1
                continue
            queue = queues.get(org.pk)
            if not queue:
                queue = queues[org.pk] = deque(self.outbox.due_heads(org.pk, self.per_org * 4, skip=mine))
            while queue and queue[0].resource_id in mine:
                queue.popleft()
            if not queue:
                rotation.remove(org)
                idle_rounds = 0
                continue
            item = queue.popleft()
            mine.add(item.resource_id)
            running[pool.submit(self.deliver, org, item.resource_id)] = (org, item.resource_id)
            idle_rounds = 0
