"""Realm facts cached per process, and the realm client as one outbox entry sees it (DESIGN §4 "Speed").

A realm's user-profile declaration and its organizations' identity providers change rarely; asking for them
with every user would double the Keycloak calls per created user.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.model.types import JSON

from .creates import CreateBatcher
from .profile import ImportRules, import_rep

FACTS_TTL = 300.0  # seconds realm facts (user-profile declaration and import rules, org IdPs) are trusted per process
T = TypeVar("T")


class Facts:
    """Values cached per process for :data:`FACTS_TTL`."""

    def __init__(self) -> None:
        self._values: dict[tuple[Hashable, ...], tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Hashable, ...], load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return cast(T, hit[1])
        value = load()
        with self._lock:
            self._values[key] = (time.monotonic() + FACTS_TTL, value)
        return value


# To the type checker an EntryAdmin is the realm's KeycloakAdmin: every attribute it does not define is the
# realm client's (``__getattr__``), so it can go wherever the client goes.
if TYPE_CHECKING:
    _Client = KeycloakAdmin
else:
    _Client = object


class EntryAdmin(_Client):
    """The realm's client as one entry sees it: realm facts come from :class:`Facts`, a user created by this
    entry has no federated identities yet (no need to ask), and a new user whose fields pass the realm's
    ``rules`` is created in a batch (:mod:`.creates`), else with ``POST /users``."""

    def __init__(self, admin: KeycloakAdmin, facts: Facts, creates: CreateBatcher | None = None,
                 rules: ImportRules | None = None) -> None:
        self._admin = admin
        self._facts = facts
        self._creates = creates
        self._rules = rules
        self.fresh: set[str] = set()  # Keycloak ids of the users this entry created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._admin, name)

    def create_user(self, rep: JSON) -> str:
        if self._creates is None or self._rules is None or not self._rules.allows(rep):
            return self._admin.create_user(rep)
        return self._creates.create(self._admin, import_rep(rep), lambda: self._admin.create_user(rep))

    def list_organization_identity_providers(self, org_id: str) -> list[JSON]:
        return self._facts.get((self._admin.realm, "org-idps", org_id),
                               lambda: self._admin.list_organization_identity_providers(org_id))

    def get_identity_provider(self, alias: str) -> JSON:
        return self._facts.get((self._admin.realm, "idp", alias), lambda: self._admin.get_identity_provider(alias))

    def list_federated_identities(self, user_id: str) -> list[JSON]:
        return [] if user_id in self.fresh else self._admin.list_federated_identities(user_id)
