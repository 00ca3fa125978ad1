"""Batched user creation without Keycloak: when partial import may be used (:mod:`orgscim.provision.profile`) and
how the per-process group commit hands each thread its own outcome (:mod:`orgscim.provision.creates`). The same
against a real Keycloak: ``tests/keycloak/test_batched_creates.py``."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from orgscim.keycloak.client import BudgetSpent, Forbidden, KeycloakConflict, KeycloakError, KeycloakUnavailable
from orgscim.provision.creates import MARGIN, SENDERS, STALL, CreateBatcher
from orgscim.provision.mapping import PROFILE_ATTRIBUTES
from orgscim.provision.profile import ImportRules, _name_ok, import_rep

# Keycloak 26.7.3's default user profile (as GET /users/profile gives it), orgscim's attributes declared
DEFAULT_PROFILE: dict[str, Any] = {"attributes": [
    {"name": "username", "validations": {"length": {"min": 3, "max": 255}, "username-prohibited-characters": {},
                                         "up-username-not-idn-homograph": {}}},
    {"name": "email", "validations": {"email": {}, "length": {"max": 255}}, "required": {"roles": ["user"]}},
    {"name": "firstName", "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
     "required": {"roles": ["user"]}},
    {"name": "lastName", "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
     "required": {"roles": ["user"]}},
    *({"name": n, "validations": {}} for n in PROFILE_ATTRIBUTES)]}


def rules(profile: dict[str, Any] | None = None, **realm: Any) -> ImportRules | None:
    return ImportRules.from_realm(profile or DEFAULT_PROFILE, realm, PROFILE_ATTRIBUTES)


def rep(**fields: Any) -> dict[str, Any]:
    base = {"username": "ada@example.com", "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
            "attributes": {"orgscim_id": ["3b1c"], "orgscim_org": ["org-1"], "orgscim_external_id": ["00u1"]}}
    return {**base, **fields}


def with_attr(name: str, **changes: Any) -> dict[str, Any]:
    attrs = [dict(a, **changes) if a["name"] == name else a for a in DEFAULT_PROFILE["attributes"]]
    return {"attributes": attrs}


# -- when partial import may be used ---------------------------------------------------------------------------
def test_default_profile_allows_plain_users() -> None:
    r = rules()
    assert r is not None
    assert r.allows(rep())
    assert r.allows(rep(username="Ada.Lovelace+1", firstName="José Müller-Łukasiewicz", lastName="O Brien"))
    assert r.allows(rep(email="", firstName="", lastName=""))  # not required of an administrator


@pytest.mark.parametrize("fields", [
    {"username": "ad"},  # shorter than the length validator's min
    {"username": "ada lovelace"}, {"username": "ada<b>"}, {"username": "adá"}, {"username": ""},
    {"email": "not an email"}, {"email": "ada@localhost"}, {"email": "adä@example.com"},
    {"email": "a..b@example.com"}, {"email": f"{'a' * 65}@example.com"},
    {"firstName": "Bob$"}, {"lastName": "Robert'); DROP--\u0000"}, {"firstName": " Ada"},
    {"lastName": "x" * 256}, {"firstName": "Ada\u200b"}, {"attributes": {"orgscim_id": ["a", "b"]}},
])
def test_anything_keycloak_might_refuse_goes_through_post_users(fields: dict[str, Any]) -> None:
    r = rules()
    assert r is not None and not r.allows(rep(**fields))


def test_the_ascii_fast_path_of_the_name_check_refuses_exactly_what_the_per_character_rule_refuses() -> None:
    def per_character(value: str) -> bool:  # profile._name_ok's rule for any text
        return not any(c in '<>&"$%!#?§;*~/\\|^=[]{}()' or unicodedata.category(c)[0] in "CZ" and c != " "
                       for c in value)

    for code in range(128):
        value = f"Ada{chr(code)}Byron"
        assert _name_ok(value) is per_character(value), repr(value)
    assert not _name_ok("Ada§") and not _name_ok("Ada\u200b") and _name_ok("José Müller")


def test_realms_whose_validation_orgscim_cannot_repeat_use_post_users_only() -> None:
    assert rules(registrationEmailAsUsername=True) is None
    assert rules(with_attr("firstName", validations={"pattern": {"pattern": "^[A-Z].*"}})) is None
    assert rules(with_attr("username", validations={"username-prohibited-characters": {"error-message": "x"}})) is None
    required_extra = {"attributes": [*DEFAULT_PROFILE["attributes"], {"name": "department", "required": {}}]}
    assert rules(required_extra) is None  # POST /users would refuse a user without it
    user_only = {"attributes": [*DEFAULT_PROFILE["attributes"], {"name": "dept", "required": {"roles": ["user"]}}]}
    assert rules(user_only) is not None
    optional_pattern = {"attributes": [*DEFAULT_PROFILE["attributes"], {"name": "phone", "validations": {
        "pattern": {"pattern": "^[0-9+]+$"}}}]}
    assert rules(optional_pattern) is not None  # orgscim never sends it


def test_the_realms_lengths_and_requirements_are_applied() -> None:
    r = rules(with_attr("username", validations={"length": {"min": 5, "max": 8}}))
    assert r is not None and r.allows(rep(username="adalove")) and not r.allows(rep(username="adalovelace"))
    r = rules(with_attr("email", required={"roles": ["admin", "user"]}))
    assert r is not None and not r.allows(rep(email="")) and r.allows(rep())


def test_import_rep_leaves_empty_fields_out_as_post_users_stores_them() -> None:
    assert import_rep(rep(email="", firstName="")) == {k: v for k, v in rep().items() if k not in ("email",
                                                                                                     "firstName")}


# -- group commit --------------------------------------------------------------------------------------------
class FakeAdmin:
    """What :class:`CreateBatcher` uses of a KeycloakAdmin; ``import_users`` waits for ``gate``."""

    realm = "r"
    timeout = 5.0
    retries = 0
    max_wait = 0.0

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[list[str]] = []  # answered imports
        self.sent: list[list[str]] = []  # imports sent, answered or not
        self.lefts: list[float | None] = []  # of each import sent, the time its thread had left
        self.gate = threading.Event()
        self.gate.set()
        self.answer = answer
        self.local = threading.local()

    def remaining(self) -> float | None:
        return getattr(self.local, "left", None)

    @contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        self.local.left = seconds
        try:
            yield
        finally:
            self.local.left = None

    def import_users(self, reps: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        names = [r["username"] for r in reps]
        self.sent.append(names)
        self.lefts.append(self.remaining())
        self.gate.wait(10)
        self.calls.append(names)
        if isinstance(self.answer, Exception):
            raise self.answer
        if callable(self.answer):
            return self.answer(names)  # type: ignore[no-any-return]
        return {n.lower(): ("ADDED", f"id-{n.lower()}") for n in names}


def create(batcher: CreateBatcher, admin: FakeAdmin, name: str, left: float | None = None) -> str:
    admin.local.left = left
    return batcher.create(admin, {"username": name}, lambda: f"alone-{name}")  # type: ignore[arg-type]


def test_creates_waiting_together_go_as_one_import_and_each_thread_gets_its_own_id() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher(max_batch=50)
    admin.gate.clear()  # the first import waits: the others queue behind it
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(create, batcher, admin, f"U{i}") for i in range(12)]
        time.sleep(0.3)
        admin.gate.set()
        ids = [f.result(10) for f in futures]
    assert ids == [f"id-u{i}" for i in range(12)]
    assert len(admin.calls) < 12 and sorted(n for c in admin.calls for n in c) == sorted(f"U{i}" for i in range(12))
    assert max(len(c) for c in admin.calls) > 1


def test_batches_are_capped() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher(max_batch=3)
    admin.gate.clear()
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(create, batcher, admin, f"u{i}") for i in range(10)]
        time.sleep(0.3)
        admin.gate.set()
        [f.result(10) for f in futures]
    assert max(len(c) for c in admin.calls) == 3


def test_a_taken_username_is_a_conflict_like_a_409_of_post_users() -> None:
    admin = FakeAdmin(lambda names: {n: ("SKIPPED", "someone-else") for n in names})
    with pytest.raises(KeycloakConflict):
        create(CreateBatcher(), admin, "taken")


@pytest.mark.parametrize("status", [400, 409, 500])
def test_an_import_refused_as_a_whole_sends_each_user_alone(status: int) -> None:
    admin = FakeAdmin(KeycloakError(status, None) if status != 500 else KeycloakUnavailable(500, None))
    assert create(CreateBatcher(), admin, "u1") == "alone-u1"


def test_a_user_missing_from_the_answer_goes_alone() -> None:
    assert create(CreateBatcher(), FakeAdmin(lambda names: {}), "u1") == "alone-u1"


def test_forbidden_import_falls_back_and_is_not_tried_again_for_a_while() -> None:
    admin, batcher = FakeAdmin(Forbidden(403, None)), CreateBatcher()
    assert create(batcher, admin, "u1") == "alone-u1"
    assert create(batcher, admin, "u2") == "alone-u2"
    assert admin.calls == [["u1"]]


def test_transient_failures_reach_every_thread_of_the_batch() -> None:
    admin = FakeAdmin(KeycloakUnavailable(None, None, message="connection refused"))
    with pytest.raises(KeycloakUnavailable, match="connection refused"):
        create(CreateBatcher(), admin, "u1")


def first_held(pool: ThreadPoolExecutor, batcher: CreateBatcher, admin: FakeAdmin) -> Future[str]:
    """A user sent alone whose import Keycloak answers only once ``admin.gate`` is set."""
    admin.gate.clear()
    first = pool.submit(create, batcher, admin, "first")
    time.sleep(0.05)
    return first


def test_users_arriving_while_an_import_is_in_flight_wait_for_its_answer_and_go_together() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher()
    with ThreadPoolExecutor(8) as pool:
        first = first_held(pool, batcher, admin)
        rest = [pool.submit(create, batcher, admin, f"u{i}") for i in range(6)]
        time.sleep(STALL / 2)
        assert admin.sent == [["first"]]  # the others wait for the answer to the import in flight
        admin.gate.set()
        assert first.result(5) == "id-first" and [f.result(5) for f in rest] == [f"id-u{i}" for i in range(6)]
    assert [sorted(names) for names in admin.sent] == [["first"], [f"u{i}" for i in range(6)]]


def test_an_import_in_flight_too_long_lets_another_go_beside_it_up_to_the_limit() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher()
    with ThreadPoolExecutor(8) as pool:  # Keycloak does not answer (or the client waits out a Retry-After)
        futures = [first_held(pool, batcher, admin)]
        futures += [pool.submit(create, batcher, admin, f"u{i}") for i in range(3)]
        time.sleep(STALL * 2)
        assert [sorted(names) for names in admin.sent] == [["first"], ["u0", "u1", "u2"]]  # beside the stalled one
        futures += [pool.submit(create, batcher, admin, "later")]
        time.sleep(STALL * 2)
        assert len(admin.sent) == SENDERS == 2  # no more in flight at once
        admin.gate.set()
        assert [f.result(5) for f in futures] == ["id-first", "id-u0", "id-u1", "id-u2", "id-later"]
    assert admin.sent[-1] == ["later"]


def test_a_thread_whose_budget_runs_out_in_the_queue_leaves_it_unsent() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher()
    with ThreadPoolExecutor(2) as pool:
        first = first_held(pool, batcher, admin)
        with pytest.raises(BudgetSpent):  # queued behind the import in flight with less time than STALL
            pool.submit(create, batcher, admin, "late", STALL / 3).result(5)
        admin.gate.set()
        assert first.result(5) == "id-first"
    time.sleep(STALL * 2)
    assert admin.sent == [["first"]]  # "late" was never sent


def test_an_import_is_answered_before_the_tightest_budget_of_its_batch_runs_out() -> None:
    """So a Retry-After that does not fit reaches every thread as RateLimited (its entry waits it out) instead of
    a thread giving up on the import in flight, whose entry would be tried again at once (issue 8, "429")."""
    admin, batcher = FakeAdmin(), CreateBatcher()
    with ThreadPoolExecutor(4) as pool:
        first = first_held(pool, batcher, admin)
        rest = [pool.submit(create, batcher, admin, name, left) for name, left in
                (("roomy", None), ("tight", 2.0), ("loose", 4.0))]
        time.sleep(0.05)
        admin.gate.set()
        assert first.result(5) == "id-first" and [f.result(5) for f in rest] == ["id-roomy", "id-tight", "id-loose"]
    assert [sorted(names) for names in admin.sent] == [["first"], ["loose", "roomy", "tight"]]
    left = admin.lefts[1]
    assert left is not None and 2.0 - MARGIN - 0.5 < left <= 2.0 - MARGIN


def test_a_thread_too_close_to_its_budget_is_left_out_of_the_batch_unsent() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher()
    with ThreadPoolExecutor(3) as pool:
        first = first_held(pool, batcher, admin)
        late = pool.submit(create, batcher, admin, "late", MARGIN + STALL + 0.15)
        other = pool.submit(create, batcher, admin, "other")
        time.sleep(0.2)  # "late" has less than MARGIN + STALL left when the sender takes the queue
        admin.gate.set()
        with pytest.raises(BudgetSpent):
            late.result(5)
        assert first.result(5) == "id-first" and other.result(5) == "id-other"
    assert admin.sent == [["first"], ["other"]] and admin.lefts[1] is None


def test_a_user_alone_is_sent_from_its_own_thread() -> None:
    admin, batcher = FakeAdmin(), CreateBatcher()
    seen: list[str] = []
    admin.answer = lambda names: seen.append(threading.current_thread().name) or {n: ("ADDED", "x") for n in names}
    assert create(batcher, admin, "u1") == "x"
    assert seen == [threading.current_thread().name]
