"""Batched user creation against the real Keycloak: the partial-import facts orgscim relies on, that what
:class:`ImportRules` lets through is what ``POST /users`` accepts too, and the group commit under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fixtures_keycloak import unique

from orgscim.keycloak.client import BadRequest, KeycloakAdmin, KeycloakUnavailable, NotFound
from orgscim.keycloak.errors import KeycloakConflict
from orgscim.provision.creates import CreateBatcher, _Pending
from orgscim.provision.mapping import PROFILE_ATTRIBUTES
from orgscim.provision.profile import ImportRules, import_rep


@pytest.fixture
def cleanup(kc_admin: KeycloakAdmin) -> Iterator[list[str]]:
    """Usernames whose users are deleted after the test."""
    names: list[str] = []
    yield names
    for name in names:
        user = kc_admin.find_user_by_username(name)
        if user is not None:
            try:
                kc_admin.delete_user(user["id"])
            except NotFound:
                pass


def user(name: str, **fields: Any) -> dict[str, Any]:
    return {"username": name, "email": f"{name}@example.com", "firstName": "Ada", "lastName": "Lovelace",
            "enabled": True, "attributes": {"orgscim_id": [name]}, **fields}


def test_partial_import_facts(kc_admin: KeycloakAdmin, cleanup: list[str]) -> None:
    a, b, c = unique("imp"), unique("imp"), unique("imp")
    cleanup += [a, b, c]
    got = kc_admin.import_users([user(a.upper()), user(b, firstName="", email="")])
    assert got[a][0] == got[b][0] == "ADDED"
    stored = kc_admin.get_user(got[a][1])
    assert (stored["username"], stored["email"], stored["attributes"]["orgscim_id"]) == (a, f"{a}@example.com",
                                                                                         [a.upper()])
    assert kc_admin.get_user(got[b][1]).get("email") is None
    assert kc_admin.import_users([user(a, email=f"{c}@example.com")]) == {a: ("SKIPPED", got[a][1])}
    with pytest.raises(KeycloakUnavailable) as e:  # an email taken by another username: the whole import, 500
        kc_admin.import_users([user(c), user(unique("imp"), email=f"{a}@example.com")])
    assert e.value.status == 500 and kc_admin.find_user_by_username(c) is None  # one transaction
    with pytest.raises(KeycloakConflict):  # two users of one import sharing an email
        kc_admin.import_users([user(c), user(unique("imp"), email=f"{c}@example.com")])
    assert kc_admin.find_user_by_username(c) is None


def test_what_the_rules_let_through_post_users_accepts(kc_admin: KeycloakAdmin, cleanup: list[str]) -> None:
    """Import skips the user-profile validation, so the rules must be at least as strict as Keycloak's: every
    candidate they allow is created by POST /users too, and the ones Keycloak refuses are never allowed."""
    profile = kc_admin.declare_profile_attributes(PROFILE_ATTRIBUTES)[1]
    rules = ImportRules.from_realm(profile, kc_admin.get_realm(), PROFILE_ATTRIBUTES)
    assert rules is not None  # the dev realm keeps Keycloak's default profile
    tag = unique("v").replace("-", "")
    candidates = [
        {}, {"username": f"Ada.Love+{tag}"}, {"username": f"{tag}_x-y@sub.example.org"},
        {"firstName": "José", "lastName": "Müller-Łukasiewicz"}, {"firstName": "O Brien", "lastName": "van der Berg"},
        {"email": f"first.last+tag_{tag}@mail-host.example.co"}, {"email": "", "firstName": "", "lastName": ""},
        {"username": f"a<{tag}"}, {"username": f"{tag} x"}, {"username": f"ád{tag}"}, {"username": "ab"},
        {"email": "not an email"}, {"email": f"{tag}@localhost"}, {"email": f"{tag}..x@example.com"},
        {"firstName": "Bob$"}, {"lastName": "x{y}"}, {"firstName": "tab\there"}, {"lastName": "z" * 256},
    ]
    allowed = refused_by_keycloak = 0
    for i, fields in enumerate(candidates):
        rep = user(f"{tag}c{i}", **fields)
        ok = rules.allows(rep)
        try:
            kc_id = kc_admin.create_user(rep)
        except (BadRequest, KeycloakConflict) as e:
            refused_by_keycloak += 1
            assert not ok, f"{fields}: allowed for import, but POST /users refused it: {e}"
            continue
        cleanup.append(kc_admin.get_user(kc_id)["username"])
        allowed += ok
    assert allowed >= 7 and refused_by_keycloak >= 8  # both sides of the line were tried


def test_concurrent_creates_share_imports_and_each_thread_gets_its_user(kc_admin: KeycloakAdmin,
                                                                        cleanup: list[str]) -> None:
    batcher = CreateBatcher(max_batch=50)
    names = [unique("grp") for _ in range(48)]
    cleanup += names

    def one(name: str) -> str:
        return batcher.create(kc_admin, import_rep(user(name)), lambda: kc_admin.create_user(user(name)))

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(one, names))
    assert [kc_admin.get_user(i)["username"] for i in ids] == names
    assert batcher.users == 48 and batcher.batches < 48  # threads that came together shared an import


def test_an_import_refused_as_a_whole_leaves_each_user_to_post_users(kc_admin: KeycloakAdmin,
                                                                     cleanup: list[str]) -> None:
    """One user of the batch has an email another username holds: Keycloak answers 500 to the import, each
    user is then created alone (the others land, that one gets POST /users' precise 409)."""
    first, other, taker = unique("whole"), unique("whole"), unique("whole")
    cleanup += [first, other, taker]
    kc_admin.create_user(user(first))
    batch = [_Pending(import_rep(user(other))), _Pending(import_rep(user(taker, email=f"{first}@example.com")))]
    CreateBatcher()._send(kc_admin, batch)
    assert [p.alone for p in batch] == [True, True] and kc_admin.find_user_by_username(other) is None
    kc_admin.create_user(user(other))
    with pytest.raises(KeycloakConflict):
        kc_admin.create_user(user(taker, email=f"{first}@example.com"))
