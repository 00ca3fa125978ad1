"""Group commit of user creations: the users that the threads of one process create at the same moment reach
Keycloak as one partial import (DESIGN §4 "Speed").

A thread that creates a user (a SCIM request delivering inline, or a delivery thread) while no import of its
realm is in flight or queued in this process sends its user itself, as an import of one (still cheaper for
Keycloak than ``POST /users``). Otherwise it queues the user's representation and waits; a sender thread of the
realm takes whatever is queued (at most ``max_batch``) and sends it as one ``POST /partialImport`` once the
import in flight has been answered: the users that arrive while one import is on its way go together in the
next. Keycloak's cost is mostly per request (Keycloak 26.7.3, warm: an import of one user costs it about as much
as ``POST /users``, an import of ten about 1.2 ms per user), so batches are what make a create cheap. Only when
the import in flight has taken longer than :data:`STALL` seconds (Keycloak is slow, or the client waits out a
``Retry-After``) does a second sender go ahead beside it (at most :data:`SENDERS` in flight). Nothing waits
to fill a batch (a short linger for requests on their way to a create was measured: it made batches barely
larger at 16 client threads and slowed 4 client threads down). Each thread gets its own outcome:

* ``ADDED``: the new user's id;
* ``SKIPPED`` (the username is taken): :class:`KeycloakConflict`, exactly as a 409 of ``POST /users``, so the
  caller looks for its own earlier attempt or decides about adoption;
* the import refused as a whole (400, 409 for two users of one batch sharing a username or email, 500 for an email
  taken by another username, 403 without ``manage-realm``): each user of it goes alone through ``POST /users``,
  whose answer is precise;
* Keycloak unreachable, slow or throttling: that error, for every user of the batch (nothing was stored, or the
  next attempt finds what was: see :meth:`~orgscim.provision.users.UserDelivery._ours`).

A waiting thread keeps its own time budget (:meth:`~orgscim.keycloak.base.AdminBase.deadline`): when it runs out
before its user was sent, the user leaves the queue (or the sender leaves it out: too little time left to send).
An import is bounded by the tightest budget of its batch, :data:`MARGIN` seconds early, so every thread of it has
its answer before its own time is up. A ``Retry-After`` that does not fit then reaches each of them as
:class:`~orgscim.keycloak.errors.RateLimited`, and each entry waits it out; a thread that gave up on an import
still in flight would have its entry tried again at once, maybe by another process before the ``Retry-After``
of that import was over. A thread that still stops waiting after its user was sent gets :class:`BudgetSpent`,
and the entry's next attempt looks for what the import did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from orgscim.keycloak.client import BudgetSpent, Forbidden, KeycloakAdmin, KeycloakConflict, KeycloakError
from orgscim.model.types import JSON

log = logging.getLogger("orgscim.deliver")

REFUSED_PAUSE = 300.0  # seconds a realm whose Keycloak forbids partial import gets POST /users only
IDLE_EXIT = 60.0  # seconds a realm's sender thread waits for work before it ends
SENDERS = 2  # imports in flight per realm and process, at most: one may wait out a Retry-After while one sends
STALL = 0.25  # seconds an import may be in flight before another one is sent beside it
MARGIN = 0.2  # seconds before the tightest budget of its batch that an import must be answered


def _unsent() -> BudgetSpent:
    """The error of a thread whose time ran out before its user was sent (nothing happened in Keycloak)."""
    return BudgetSpent(None, None, message="time budget spent waiting for a batched create")


class _Pending:
    __slots__ = ("rep", "end", "done", "user_id", "error", "alone")

    def __init__(self, rep: JSON, left: float | None = None) -> None:
        self.rep = rep
        self.end = None if left is None else time.monotonic() + left  # the creating thread's deadline
        self.done = threading.Event()
        self.user_id: str | None = None
        self.error: KeycloakError | None = None
        self.alone = False  # the batch was refused as a whole: create this one with POST /users


class CreateBatcher:
    """Per process: queues and up to :data:`SENDERS` sender threads per realm (started when needed, so after a
    fork; they end after :data:`IDLE_EXIT` seconds without work)."""

    def __init__(self, max_batch: int = 50) -> None:
        self.max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._queues: dict[str, deque[_Pending]] = {}
        self._admins: dict[str, KeycloakAdmin] = {}
        self._senders: dict[str, int] = {}  # sender threads per realm
        self._idle: dict[str, int] = {}  # of them, waiting for work
        self._sending: dict[str, list[float]] = {}  # per realm, when each import in flight was sent
        self._refused_until: dict[str, float] = {}
        self.batches = 0  # imports sent, and the users in them (tests and the bench read these)
        self.users = 0

    def create(self, admin: KeycloakAdmin, rep: JSON, alone: Callable[[], str]) -> str:
        """Create the user ``rep`` (a partial-import representation), in a batch when other threads create users
        at the same moment; ``alone()`` creates it with ``POST /users`` when the import was refused as a whole.
        Returns the new user's id."""
        realm = admin.realm
        if self._refused_until.get(realm, 0.0) > time.monotonic():
            return alone()
        me = _Pending(rep, admin.remaining())
        with self._cond:
            queue = self._queues.setdefault(realm, deque())
            direct = not queue and not self._sending.get(realm)
            sent = time.monotonic()
            if direct:  # nothing in flight or waiting: no one to share an import with, send it from this thread
                self._sending.setdefault(realm, []).append(sent)
            else:
                queue.append(me)
                self._admins[realm] = admin
                if not self._idle.get(realm) and self._senders.get(realm, 0) < SENDERS:
                    self._senders[realm] = self._senders.get(realm, 0) + 1
                    threading.Thread(target=self._send_loop, args=(realm,), name=f"orgscim-create-{realm}",
                                     daemon=True).start()
                self._cond.notify_all()
        if direct:
            self._send_counted(admin, [me], sent)
        else:
            self._wait(admin, me)
        if me.alone:
            return alone()
        if me.error is not None:
            raise me.error
        assert me.user_id is not None
        return me.user_id

    def _wait(self, admin: KeycloakAdmin, me: _Pending) -> None:
        left = admin.remaining()
        # without a deadline: as long as the sender's request may take, retries and Retry-After included
        wait = left if left is not None else admin.timeout * (admin.retries + 2) + admin.max_wait
        if not me.done.wait(max(0.0, wait)):
            with self._cond:
                queue = self._queues.get(admin.realm)
                if queue is not None and me in queue:
                    queue.remove(me)  # never sent: nothing happened in Keycloak
            raise _unsent()

    def _send_loop(self, realm: str) -> None:
        while True:
            with self._cond:
                queue = self._queues[realm]
                idle_until = time.monotonic() + IDLE_EXIT
                self._idle[realm] = self._idle.get(realm, 0) + 1
                while (wait := self._next_send(realm, queue, idle_until)) > 0:
                    self._cond.wait(wait)  # create() notifies after queueing, _send_counted after an answer
                self._idle[realm] -= 1
                if not queue:
                    self._senders[realm] -= 1
                    return
                batch, late = self._take(queue)
                admin = self._admins[realm]
                sent = time.monotonic()
                if batch:
                    self._sending.setdefault(realm, []).append(sent)
            for p in late:  # never sent: nothing happened in Keycloak
                p.error = _unsent()
                p.done.set()
            if batch:
                ends = [p.end for p in batch if p.end is not None]
                with admin.deadline(min(ends) - MARGIN - sent if ends else None):
                    self._send_counted(admin, batch, sent)

    def _take(self, queue: deque[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """The next batch (at most ``max_batch``), and the users taken from the queue whose threads have too
        little time left to be sent. Called under the lock."""
        batch: list[_Pending] = []
        late: list[_Pending] = []
        soon = time.monotonic() + MARGIN + STALL
        while queue and len(batch) < self.max_batch:
            p = queue.popleft()
            (late if p.end is not None and p.end < soon else batch).append(p)
        return batch, late

    def _next_send(self, realm: str, queue: deque[_Pending], idle_until: float) -> float:
        """Seconds a sender waits before it may send what is queued (0: now, or: the queue stayed empty until
        ``idle_until``). Called under the lock."""
        now = time.monotonic()
        if not queue:
            return max(0.0, idle_until - now)
        in_flight = self._sending.get(realm) or []
        if not in_flight:
            return 0.0
        if len(in_flight) >= SENDERS:
            return STALL
        return max(0.0, min(in_flight) + STALL - now)

    def _send_counted(self, admin: KeycloakAdmin, batch: list[_Pending], sent: float) -> None:
        """Send one import, counted as in flight for its realm since ``sent``; every thread of the batch is told,
        and the realm's sender may send the next batch."""
        try:
            self._send(admin, batch)
        finally:
            with self._cond:
                self._sending[admin.realm].remove(sent)
                self._cond.notify_all()
            for p in batch:
                p.done.set()

    def _send(self, admin: KeycloakAdmin, batch: list[_Pending]) -> None:
        with self._cond:  # two senders and direct sends count at once
            self.batches += 1
            self.users += len(batch)
        try:
            results = admin.import_users([p.rep for p in batch])
        except KeycloakError as e:
            if isinstance(e, Forbidden) or e.status in (400, 409, 500):
                if isinstance(e, Forbidden):
                    log.warning("realm %s: Keycloak forbids partial import (%s); creating users one by one for "
                                "%.0fs (grant the service account manage-realm)", admin.realm, e, REFUSED_PAUSE)
                    self._refused_until[admin.realm] = time.monotonic() + REFUSED_PAUSE
                for p in batch:
                    p.alone = True
                return
            for p in batch:
                p.error = e
            return
        except Exception as e:  # noqa: BLE001 - every waiting thread must get an answer
            log.exception("batched create failed")
            for p in batch:
                p.error = KeycloakError(None, None, message=f"batched create failed: {e}")
            return
        for p in batch:
            username = str(p.rep["username"]).lower()
            action, user_id = results.get(username, ("", ""))
            if action == "ADDED":
                p.user_id = user_id
            elif action == "SKIPPED":
                p.error = KeycloakConflict(409, None, message=f"a user with username {username} exists")
            else:
                p.alone = True
