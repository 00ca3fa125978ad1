"""The storage contract's delivery part: the outbox entries being delivered to Keycloak (:class:`OutboxItem`),
the links between SCIM resources and Keycloak objects (:class:`Link`), leases (one deliverer per resource, one job
of a kind across processes), drift records (differences between SCIM state and Keycloak) and housekeeping.

The rest of the contract, and the :class:`~orgscim.model.contract.Storage` protocol that hands these stores out,
are in :mod:`orgscim.model.contract`; ``docs/storage.md`` says what each operation guarantees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .contract import OutboxEntry
from .types import JSON, JSONValue

# -- delivery to Keycloak: outbox, links, leases, drift ------------------------------------------------------


@dataclass
class OutboxItem:
    """A stored outbox entry: an :class:`OutboxEntry` with its delivery state (DESIGN §4)."""

    pk: int
    org_pk: int
    resource_type: str
    resource_id: str
    action: str
    payload: JSON
    created: str
    attempts: int  # attempts that may have reached Keycloak (a retry looks first for what it made)
    next_attempt: str
    last_error: str | None
    done: str | None

    def public(self) -> JSON:
        return {"id": self.pk, "resourceType": self.resource_type, "resourceId": self.resource_id,
                "action": self.action, "created": self.created, "attempts": self.attempts,
                "nextAttempt": self.next_attempt, "lastError": self.last_error, "done": self.done}


@dataclass
class Link:
    """A SCIM resource's object in Keycloak, and what delivery last applied to it (``state``)."""

    org_pk: int
    resource_type: str
    resource_id: str
    kc_id: str
    origin: str  # "created" (orgscim made it) or "adopted" (existed before)
    state: JSON


@dataclass
class DriftRecord:
    """A difference between SCIM state and Keycloak (``kind``), with what orgscim expected and what it found."""

    realm: str
    org_id: str
    resource_type: str
    resource_id: str
    kind: str
    expected: JSONValue
    actual: JSONValue
    first_seen: str
    last_seen: str
    resolved: str | None

    def public(self) -> JSON:
        """Listing form (CLI ``drift``, admin pages)."""
        return {"realm": self.realm, "orgId": self.org_id, "resourceType": self.resource_type,
                "resourceId": self.resource_id, "kind": self.kind, "expected": self.expected, "actual": self.actual,
                "firstSeen": self.first_seen, "lastSeen": self.last_seen, "resolved": self.resolved}


Lease = tuple[str, str]
"""A held lease: (name, holder)."""

Gauge = tuple[str, str, list[tuple[dict[str, str], float]]]
"""A ``/metrics`` gauge: name, help text and its (labels, value) samples."""


class Outbox(Protocol):
    """Changes Keycloak must receive, delivered in commit order per resource (DESIGN §4)."""

    def pending(self, org_pk: int, limit: int = 50) -> list[OutboxItem]: ...
    def resource_pending(self, org_pk: int, resource_id: str, limit: int = 20) -> list[OutboxItem]: ...

    def due_heads(self, org_pk: int, limit: int, skip: Iterable[str] = ()) -> list[OutboxItem]:
        """The oldest due entry of each resource of the org, oldest first; a Group entry waits for older User
        entries of the org."""
        ...

    def due_orgs(self, limit: int = 10000) -> list[int]: ...
    def older_users_pending(self, org_pk: int, pk: int) -> bool: ...
    def orgs_with_pending(self, due_only: bool = True) -> list[int]: ...
    def entries(self, org_pk: int | None = None, include_done: bool = False, limit: int = 1000) -> list[OutboxItem]: ...
    def recent(self, org_pks: Sequence[int], limit: int = 100) -> list[OutboxItem]: ...

    def enqueue(self, org_pk: int, entries: Sequence[OutboxEntry]) -> None:
        """Entries not tied to a SCIM write (reconcile repairs)."""
        ...

    def hold(self, org_pk: int, resource_ids: Sequence[str], seconds: float) -> None: ...
    def unhold(self, org_pk: int, resource_ids: Sequence[str]) -> None: ...
    def finish(self, pk: int, error: str | None = None) -> bool: ...

    def complete(self, item: OutboxItem, link: Link | None, lease: Lease) -> bool:
        """In ONE transaction: mark ``item`` done, write ``link`` (if any) and, when nothing of the resource is
        pending any more, release ``lease``. True when the lease was released."""
        ...

    def retry_later(self, pk: int, error: str, delay: float, attempted: bool = True) -> None: ...
    def retry_now(self, org_pk: int | None = None) -> int: ...

    def cancel_pending(self, org_pk: int, reason: str, who: str = "orgscim") -> int:
        """Finish the org's pending entries as cancelled, with one ``outbox.cancelled`` audit event."""
        ...

    def rollback_create(self, org_pk: int, resource_id: str, reason: str) -> bool: ...

    def purge_org(self, org_pk: int, reason: str, who: str = "orgscim") -> int:
        """Delete an org with its SCIM data; its pending entries are cancelled first (audit event)."""
        ...


class Links(Protocol):
    """SCIM resource ↔ Keycloak object links."""

    def get(self, org_pk: int, resource_id: str) -> Link | None: ...
    def save(self, link: Link) -> None: ...
    def drop(self, org_pk: int, resource_id: str) -> None: ...
    def by_kc_id(self, kc_id: str) -> list[Link]: ...
    def group_member_kc_ids(self, org_pk: int, group_id: str) -> set[str]: ...
    def owned_kc_ids(self, org_pk: int, kc_ids: Iterable[str]) -> set[str]: ...


class Leases(Protocol):
    """Named leases across the processes of the host; a holder is ``host:pid[:token]``."""

    def acquire(self, name: str, holder: str, ttl: float) -> bool: ...
    def holds(self, name: str, holder: str) -> bool: ...
    def renew(self, name: str, holder: str, ttl: float) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...
    def release_all(self, names: Iterable[str], holder: str) -> None: ...


class Drift(Protocol):
    """Open and resolved differences between SCIM state and Keycloak."""

    def report(self, org_pk: int, resource_type: str, resource_id: str, kind: str, expected: JSONValue = None,
               actual: JSONValue = None) -> None: ...
    def resolve(self, org_pk: int, resource_id: str, kinds: Sequence[str] | None = None) -> int: ...
    def resolve_unseen(self, org_pk: int, since: str) -> int: ...
    def records(self, org_pk: int | None = None, open_only: bool = True) -> list[DriftRecord]: ...


class Housekeeping(Protocol):
    """Retention and the store's ``/metrics`` gauges."""

    def prune(self, days: int) -> dict[str, int]: ...
    def metrics(self) -> list[Gauge]: ...
