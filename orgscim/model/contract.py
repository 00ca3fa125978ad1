"""The storage contract: the records the store hands out and the operations it offers the layers above.

Nothing here knows SQL. ``orgscim.store`` implements these protocols on SQLite; a second backend (PostgreSQL,
for installs that outgrow one host) implements the same ones and runs the same suite, ``tests/store``. What each
operation guarantees (transactions, the outbox row in the write's transaction, ordering, paging, uniqueness,
isolation by org, errors) is written down in ``docs/storage.md``.

Timestamps are the text of :mod:`orgscim.model.clock` (fixed width, so text order is time order). Primary keys
(``pk``) are backend integers that never leave the service; ``id`` values are the SCIM ids (RFC 7643 §3.1).
Delivery to Keycloak has its own part, :mod:`orgscim.model.delivery`: the outbox entries being delivered, the
links between SCIM resources and Keycloak objects, leases and drift records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .clock import now
from .filter import AttrRef, Node
from .types import JSON

if TYPE_CHECKING:  # the delivery part imports this module's OutboxEntry
    from .delivery import Drift, Housekeeping, Leases, Links, Outbox

# -- SCIM resources of one organization ----------------------------------------------------------------------


@dataclass
class Resource:
    """One stored SCIM resource; ``data`` holds its attributes except ``id``, ``meta`` and ``members``.

    ``version`` grows with every change of its representation, including derived ``groups``/``members``
    (it is the ETag, RFC 7644 §3.14).
    """

    pk: int
    type: str
    id: str
    external_id: str | None
    data: JSON
    version: int
    created: str
    modified: str


class Page(NamedTuple):
    """One page of a search: every match counted (``totalResults``, RFC 7644 §3.4.2) and the page's rows."""

    total: int
    rows: list[Resource]


@dataclass
class Member:
    """A member of a group: the member's pk/id/type, and the sub-attributes the client sent with it
    (``display``, ``type``, ``$ref``), returned exactly as sent (RFC 7643 §4.2; conformance README)."""

    pk: int
    id: str
    type: str
    attrs: JSON = field(default_factory=dict)


@dataclass
class MemberChange:
    """Changes to a group's member list; ``replace`` (if not None) is applied first."""

    replace: list[Member] | None = None
    add: list[Member] = field(default_factory=list)
    remove: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.replace is not None or bool(self.add) or bool(self.remove)


def lease_name(org_pk: int, resource_id: str) -> str:
    """The lease whose holder alone delivers the outbox entries of one resource."""
    return f"res:{org_pk}:{resource_id}"


@dataclass
class OutboxEntry:
    """A change Keycloak must receive, stored in the same transaction as the SCIM write it describes."""

    resource_type: str
    resource_id: str  # "" on create: the id the store gives the new resource
    action: str
    payload: JSON = field(default_factory=dict)
    hold: float = 0.0  # seconds other deliverers leave it alone (the request delivers it inline)
    # the holder that takes the resource's lease (:func:`lease_name`) for ``hold`` seconds in the write's own
    # transaction, unless another holder has it: the request delivering inline needs no transaction of its own
    lease: str | None = None


class Resources(Protocol):
    """The SCIM resources of one organization (``Storage.resources(org_pk)``). Nothing of another org can be
    read, counted, referenced or changed through it."""

    @property
    def org_pk(self) -> int: ...

    def get(self, rtype: str, rid: str) -> Resource | None: ...

    def search(self, rtype: str, where: Node | None, sort: AttrRef | None, descending: bool,
               start: int, count: int) -> Page:
        """Matches of a resolved filter, counted, and one page of them (``start`` is 0-based) in a stable order:
        ``sort`` (missing values last, ties by age) or else oldest first."""
        ...

    def members(self, group_pks: Sequence[int]) -> dict[int, list[Member]]: ...

    def member_counts(self, group_pks: Sequence[int]) -> dict[int, int]: ...

    def groups_of(self, member_pks: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """For each member pk: (group id, group displayName) of the groups it is directly in."""
        ...

    def resolve(self, ids: Iterable[str]) -> dict[str, Member]:
        """Resources of this org with the given ids (unknown ids, and other orgs' ids, are absent)."""
        ...

    def create(self, rtype: str, data: JSON, name: str, external_id: str | None,
               members: list[Member] | None = None, outbox: Sequence[OutboxEntry] = ()) -> Resource:
        """Store a new resource (version 1) with its members and outbox entries in one transaction. Raises
        :class:`orgscim.model.errors.Uniqueness` when ``name`` (userName / displayName) is taken in the org for
        the type, case-insensitively (then nothing is stored)."""
        ...

    def update(self, row: Resource, data: JSON, name: str, external_id: str | None,
               members: MemberChange | None = None, outbox: Sequence[OutboxEntry] = ()) -> Resource | None:
        """Write a new state for ``row`` if nobody changed it since it was read; ``None`` otherwise. Raises
        :class:`orgscim.model.errors.Uniqueness` like :meth:`create`."""
        ...

    def delete(self, row: Resource, outbox: Sequence[OutboxEntry] = ()) -> bool:
        """Delete ``row`` if nobody changed it since it was read; False otherwise."""
        ...


# -- realms, organizations, credentials, audit ---------------------------------------------------------------


@dataclass
class Org:
    """An organization's SCIM configuration (DESIGN §2)."""

    pk: int
    realm: str
    org_id: str
    enabled: bool
    auth_mode: str
    auth_config: JSON
    federation: str
    settings: JSON
    realm_enabled: bool
    created: str
    updated: str
    vanished: str | None = None

    @property
    def serving(self) -> bool:
        """SCIM answers only when the realm flag is on, the org is enabled and it still exists in Keycloak."""
        return self.realm_enabled and self.enabled and self.vanished is None

    def public(self) -> JSON:
        """What listings show: never credentials."""
        return {"realm": self.realm, "orgId": self.org_id, "enabled": self.enabled, "authMode": self.auth_mode,
                "authConfig": self.auth_config, "federation": self.federation, "settings": self.settings,
                "realmScimEnabled": self.realm_enabled, "serving": self.serving, "created": self.created,
                "updated": self.updated, "vanished": self.vanished}


@dataclass
class Credential:
    """A stored credential: only its Argon2id hash, never the secret (DESIGN §5)."""

    pk: int
    org_pk: int
    cred_id: str
    kind: str
    username: str | None
    hash: str
    created: str
    last_used: str | None
    expires: str | None
    revoked: str | None

    def active(self, at: str) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > at)

    def status(self, at: str | None = None) -> str:
        """``active``, ``expiring`` (rotated out, still valid until ``expires``), ``expired`` or ``revoked``."""
        at = at or now()
        if self.revoked is not None:
            return "revoked"
        if self.expires is None:
            return "active"
        return "expiring" if self.expires > at else "expired"

    def public(self) -> JSON:
        """Listing form: never the secret, never the hash."""
        return {"id": self.cred_id, "kind": self.kind, "username": self.username, "created": self.created,
                "lastUsed": self.last_used, "expires": self.expires, "revoked": self.revoked,
                "status": self.status()}


ORG_STATUS_FILTERS = ("configured", "not-configured", "drift", "failing")
MAX_PAGE = 500


@dataclass
class OrgPage:
    """One page of :meth:`Orgs.org_page`: rows in (realm, org id) order and the cursor of the next page."""

    rows: list[JSON]
    next: str | None = None
    filters: JSON = field(default_factory=dict)


class Orgs(Protocol):
    """Realms, organizations (configured, and as Keycloak lists them), credentials and the audit log."""

    # realms
    def set_realm(self, realm: str, enabled: bool) -> None: ...
    def realm_enabled(self, realm: str) -> bool: ...
    def realms(self) -> list[JSON]: ...

    # organizations
    def org(self, realm: str, org_id: str) -> Org | None: ...
    def org_by_pk(self, pk: int) -> Org | None: ...
    def orgs(self, realm: str | None = None) -> list[Org]: ...
    def upsert_org(self, realm: str, org_id: str, auth_mode: str, auth_config: JSON, enabled: bool = True,
                   federation: str = "none", settings: JSON | None = None) -> Org: ...
    def org_counts(self, org_pk: int) -> dict[str, int]: ...
    def delete_org(self, org_pk: int) -> None: ...
    def set_vanished(self, org_pk: int, when: str | None) -> None: ...
    def seen_in_keycloak(self, realm: str, orgs: list[JSON]) -> None: ...
    def close_unseen(self, realm: str, run_start: str) -> None: ...
    def discovered(self, realm: str | None = None) -> list[JSON]: ...
    def org_page(self, realm: str | None = None, *, after: str | None = None, limit: int = 100,
                 search: str | None = None, status: str | None = None) -> OrgPage: ...
    def org_names(self, realm: str, org_ids: Iterable[str]) -> dict[str, dict[str, str | None]]: ...
    def resource_names(self, org_pk: int, ids: Iterable[str]) -> dict[str, str]: ...

    # credentials
    def add_credential(self, org_pk: int, cred_id: str, kind: str, hash_: str, username: str | None = None,
                       expires: str | None = None) -> Credential: ...
    def credential(self, org_pk: int, cred_id: str) -> Credential | None: ...
    def credential_by_pk(self, pk: int) -> Credential | None: ...
    def credentials(self, org_pk: int, active_only: bool = False) -> list[Credential]: ...
    def active_credentials(self, org_pk: int, kind: str) -> list[Credential]: ...
    def supersede_credentials(self, org_pk: int, kind: str, deadline: str, keep_pk: int) -> list[Credential]: ...
    def revoke_credential(self, org_pk: int, cred_id: str, at: str) -> Credential | None: ...
    def update_credential(self, pk: int, **fields: str | None) -> None: ...

    # audit
    def event(self, org_pk: int | None, kind: str, detail: JSON | None = None) -> None: ...
    def events(self, realm: str, org_pk: int | None = None, limit: int = 100) -> list[JSON]: ...


# -- JWK Sets shared by the processes of a host --------------------------------------------------------------


@dataclass
class StoredJwks:
    uri: str
    keys: dict[str, JSON]
    fetched: float | None  # epoch seconds of the last successful fetch
    attempted: float
    error: str | None

    @property
    def age(self) -> float | None:
        return None if self.fetched is None else max(0.0, time.time() - self.fetched)

    def public(self) -> JSON:
        return {"uri": self.uri, "kids": sorted(self.keys), "ageSeconds": None if self.age is None else round(self.age),
                "error": self.error}


class JwksSets(Protocol):
    """JWK Sets as the last fetch left them (the worker refreshes, every web process reads)."""

    def load(self, uri: str) -> StoredJwks | None: ...
    def all(self) -> list[StoredJwks]: ...
    def saved(self, uri: str, keys: dict[str, JSON]) -> None: ...
    def failed(self, uri: str, error: str) -> None: ...


# -- reconcile schedule ------------------------------------------------------------------------------------


class Schedule(Protocol):
    """When each org is next due for reconcile, and the org lists reconcile walks."""

    def realms(self) -> list[str]: ...
    def org_pks(self, realm: str, org_id: str | None = None) -> list[int]: ...
    def unconfigured(self, realm: str) -> int: ...
    def unseen(self, realm: str, since: str) -> list[int]: ...
    def due(self, limit: int, at: float | None = None) -> list[int]: ...
    def total(self) -> int: ...
    def claim(self, key: str, holder: str, seconds: float) -> bool: ...
    def done(self, key: str, holder: str, next_due: float) -> None: ...
    def next_due(self, key: str) -> float | None: ...


# -- the backend ---------------------------------------------------------------------------------------------


class SchemaError(RuntimeError):
    """The stored schema is not the version this code knows; the message says what to do."""


class Storage(Protocol):
    """One storage backend: its stores, and its lifecycle (schema, backup, space)."""

    @property
    def orgs(self) -> Orgs: ...
    @property
    def jwks(self) -> JwksSets: ...
    @property
    def schedule(self) -> Schedule: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def links(self) -> Links: ...
    @property
    def leases(self) -> Leases: ...
    @property
    def drift(self) -> Drift: ...
    @property
    def housekeeping(self) -> Housekeeping: ...

    def resources(self, org_pk: int) -> Resources: ...

    def upgrade(self) -> list[int]:
        """Apply pending schema migrations; the versions applied (none when up to date)."""
        ...

    def check_schema(self, upgrade_ok: bool = False) -> None:
        """Raise :class:`SchemaError` for a schema newer than this code, or (unless ``upgrade_ok``) older."""
        ...

    def backup(self, target: str | Path) -> None:
        """A consistent copy while the service keeps writing."""
        ...

    def storage_problem(self, min_free_bytes: int, remember_seconds: float = 60) -> str | None:
        """None while writes can be stored; else a fixed text saying why not (no paths, no error messages)."""
        ...

    def close(self) -> None: ...

