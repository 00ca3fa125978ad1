"""Outbox delivery: apply SCIM writes to Keycloak in order per resource, idempotently, at least once, with as
few Keycloak calls as the change needs (DESIGN §4 "Speed", §7).

This module holds a resource's lease while its entries are delivered one after the other, and decides what
becomes of each entry. What an entry does in Keycloak is in :mod:`.users` and :mod:`.groups`; scheduling and
parallelism are in :mod:`.scheduler`; realm facts cached per process in :mod:`.facts`.

Failures: Keycloak down, slow, rate limiting (429, honouring ``Retry-After``) or refusing our credentials
defers the entry (nothing acknowledged is dropped or finished unapplied); a permanent refusal finishes the
entry with its error and records drift. Nothing is ever re-created behind an admin's back, and only an
explicit SCIM change of ``active`` touches membership and enablement. Differences an admin made in Keycloak
are found by reconcile, not by reading before each write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.keycloak.errors import (
    BudgetSpent,
    Forbidden,
    KeycloakError,
    KeycloakUnavailable,
    RateLimited,
    Unauthorized,
)
from orgscim.model.clock import now
from orgscim.model.contract import Org, Storage, lease_name
from orgscim.model.delivery import Lease, Link, OutboxItem

from .creates import CreateBatcher
from .errors import Refused
from .facts import EntryAdmin, Facts
from .federation import Federation
from .groups import GroupDelivery
from .mapping import PROFILE_ATTRIBUTES
from .profile import ImportRules
from .scheduler import DEFAULT_PER_ORG, DEFAULT_WORKERS, LEASE_TTL, Scheduler, Stats, holder
from .users import UserDelivery

log = logging.getLogger("orgscim.deliver")

__all__ = ["Deliverer", "Refused", "Stats", "backoff"]

MAX_BACKOFF = 300.0
NEXT = object()  # deliver_one: the entry is done, the resource may have more
RELEASED = object()  # deliver_one: the entry is done and was the resource's last: its lease is released

#: applies one entry in Keycloak; the link to write with the entry's completion, if it changed
Handler = Callable[[Org, EntryAdmin, OutboxItem], Link | None]


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF, 2.0 ** min(attempts, 10))


class Deliverer:
    """Delivers outbox entries. ``admin_for(realm)`` gives the Keycloak client of a realm (or None)."""

    def __init__(self, storage: Storage, admin_for: Callable[[str], KeycloakAdmin | None], federation: Federation,
                 workers: int = DEFAULT_WORKERS, per_org: int = DEFAULT_PER_ORG,
                 realm_ok: Callable[[str], bool] = lambda realm: True, create_batch: int = 50) -> None:
        self.outbox = storage.outbox
        self.leases = storage.leases
        self.drift = storage.drift
        self.admin_for = admin_for
        self.facts = Facts()
        self.creates = CreateBatcher(create_batch) if create_batch > 0 else None
        users = UserDelivery(storage.links, storage.drift, federation)
        groups = GroupDelivery(storage.links, storage.drift, storage.resources)
        self.handlers: dict[str, Handler] = {"user.upsert": users.upsert, "user.delete": users.delete,
                                             "group.upsert": groups.upsert, "group.delete": groups.delete}
        self.scheduler = Scheduler(storage.orgs, storage.outbox, self.deliver_resource, workers, per_org, realm_ok)

    # -- queue ----------------------------------------------------------------------------------
    def deliver_all(self, seconds: float | None = None) -> Stats:
        """Deliver every due entry of every org (worker, ``orgscim outbox --retry``), in parallel and fairly."""
        return self.scheduler.run(seconds)

    def deliver_org(self, org: Org, budget: float | None = None) -> Stats:
        """Deliver the due entries of one org (reconcile repairs), for at most ``budget`` seconds."""
        return self.scheduler.run(budget, [org.pk])

    def deliver_resources(self, org: Org, resource_ids: Iterable[str], budget: float) -> Stats:
        """Deliver what one SCIM request wrote, in this thread, within ``budget`` seconds in total (request
        timeouts are cut to what is left). Entries the request held for itself are due for it at once."""
        admin = self.admin_for(org.realm)
        stats = Stats()
        if admin is None:
            return Stats(deferred=True)
        with admin.deadline(budget):
            for rid in dict.fromkeys(resource_ids):
                left = admin.remaining()
                if left is not None and left <= 0:
                    stats.deferred = True
                    break
                s = self.deliver_resource(org, rid, inline=True)
                stats.add(s)
                if s.failed:
                    break
        return stats

    def release_leases(self, org: Org, resource_ids: Iterable[str]) -> None:
        """Give up the leases this thread's request took with its write (:attr:`OutboxEntry.lease`) and did not
        use: the worker may deliver those resources at once. One transaction, however many the request wrote (a Bulk
        request may hold a thousand), so the time after its budget stays short."""
        self.leases.release_all([lease_name(org.pk, rid) for rid in dict.fromkeys(resource_ids)], holder())

    def deliver_resource(self, org: Org, rid: str, inline: bool = False) -> Stats:
        """Deliver the pending entries of one resource in commit order, holding its lease (renewed and
        checked before each entry). ``inline``: entries never attempted are due even when held."""
        stats = Stats()
        admin = self.admin_for(org.realm)
        if admin is None:
            return Stats(deferred=True)
        name, me = lease_name(org.pk, rid), holder()
        # a request's write took the lease in its own transaction (OutboxEntry.lease)
        if not (inline and self.leases.holds(name, me)) and not self.leases.acquire(name, me, LEASE_TTL):
            return Stats(deferred=True, contended=True)
        renew = False  # just acquired: the first entry needs no renewal
        released = False
        try:
            while True:
                items = self.outbox.resource_pending(org.pk, rid)
                if not items:
                    return stats
                for item in items:
                    if renew and not self.leases.renew(name, me, LEASE_TTL):
                        log.warning("lease %s lost; leaving %s to its new holder", name, item.pk)
                        stats.contended = stats.deferred = True
                        return stats
                    if item.next_attempt > now() and not (inline and item.attempts == 0):
                        stats.deferred = True
                        return stats  # the head of the resource's queue waits: order is kept
                    if item.resource_type == "Group" and self.outbox.older_users_pending(org.pk, item.pk):
                        stats.deferred = True
                        return stats  # its members first
                    outcome = self.deliver_one(org, admin, item, stats, (name, me))
                    if outcome is None:
                        stats.deferred = True
                        return stats
                    if outcome is RELEASED:
                        released = True
                        return stats
                    renew = True
        finally:
            if not released:
                self.leases.release(name, me)

    def deliver_one(self, org: Org, admin: KeycloakAdmin, item: OutboxItem, stats: Stats,
                    lease: Lease) -> object | None:
        """Apply one entry. None when delivery of this resource must pause (transient failure); otherwise
        :data:`RELEASED` when this was the resource's last pending entry (its ``lease`` is released in the
        transaction that marks the entry done), else :data:`NEXT`."""
        try:
            rules = self.ensure_profile(admin)
            link = self.handlers[item.action](org, EntryAdmin(admin, self.facts, self.creates, rules), item)
        except BudgetSpent as e:
            # the request's time is up, Keycloak is fine: the worker goes on at once (the entry may have
            # landed, so the next attempt looks first)
            self.outbox.retry_later(item.pk, str(e), 0)
            return None
        except RateLimited as e:
            wait = e.retry_after if e.retry_after is not None else backoff(item.attempts)
            log.info("outbox %s (%s %s): Keycloak asks to slow down for %.1fs", item.pk, item.action,
                     item.resource_id, wait)
            self.outbox.retry_later(item.pk, str(e), wait, attempted=False)
            stats.failed, stats.retry_after = True, wait
            return None
        except (KeycloakUnavailable, Unauthorized, Forbidden) as e:
            log.warning("outbox %s (%s %s) deferred: %s", item.pk, item.action, item.resource_id, e)
            self.outbox.retry_later(item.pk, str(e), backoff(item.attempts))
            stats.failed = True
            return None
        except Refused as e:
            log.warning("outbox %s (%s %s) refused: %s", item.pk, item.action, item.resource_id, e)
            self.drift.report(org.pk, item.resource_type, item.resource_id, e.kind, e.expected, e.actual)
            self.outbox.finish(item.pk, f"{e.kind}: {e}")
            stats.refused += 1
            stats.refusals.append((item.resource_id, e.kind, e.on_create))
            return NEXT
        except KeycloakError as e:
            log.warning("outbox %s (%s %s) refused by Keycloak: %s", item.pk, item.action, item.resource_id, e)
            self.drift.report(org.pk, item.resource_type, item.resource_id, "keycloak_refused", item.action, str(e))
            self.outbox.finish(item.pk, str(e))
            stats.refused += 1
            stats.refusals.append((item.resource_id, "keycloak_refused", False))
            return NEXT
        stats.delivered += 1
        return RELEASED if self.outbox.complete(item, link, lease) else NEXT

    def ensure_profile(self, admin: KeycloakAdmin) -> ImportRules | None:
        """Declare orgscim's user-profile attributes (else Keycloak drops them); checked once per realm per
        :data:`~.facts.FACTS_TTL` per process. Returns when new users may be created by partial import
        (:mod:`.profile`); None: with ``POST /users`` only."""
        def load() -> ImportRules | None:
            profile = admin.declare_profile_attributes(PROFILE_ATTRIBUTES)[1]
            if self.creates is None:
                return None
            return ImportRules.from_realm(profile, admin.get_realm(), PROFILE_ATTRIBUTES)

        return self.facts.get((admin.realm, "profile"), load)
