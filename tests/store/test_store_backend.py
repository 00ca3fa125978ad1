"""The backend as a whole: schema migrations, the schema check, online backup, and the stores that are not
per-organization (JWK Sets, the reconcile schedule) (docs/storage.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orgscim.model.contract import Org, SchemaError, Storage

from .conftest import Backend


def test_upgrade_is_idempotent_and_the_schema_then_checks(storage: Storage) -> None:
    assert storage.upgrade() == []  # the fixture upgraded it already
    storage.check_schema()


def test_a_fresh_backend_needs_an_upgrade_first(backend: Backend, tmp_path: Path) -> None:
    fresh = backend.fresh(tmp_path)
    try:
        with pytest.raises(SchemaError, match="upgrade"):
            fresh.check_schema()
        fresh.check_schema(upgrade_ok=True)
        assert fresh.upgrade()  # every migration, in order
        fresh.check_schema()
    finally:
        fresh.close()


def test_backup_is_a_consistent_copy(backend: Backend, storage: Storage, org_a: Org, tmp_path: Path) -> None:
    row = storage.resources(org_a.pk).create("User", {"userName": "kept"}, "kept", None)
    storage.backup(tmp_path / "backup")
    copy = backend.restore(tmp_path / "backup")
    try:
        copy.check_schema()
        org = copy.orgs.org("r1", "org-a")
        assert org is not None and copy.resources(org.pk).get("User", row.id) == row
    finally:
        copy.close()


def test_storage_problem_is_none_while_there_is_room(storage: Storage) -> None:
    assert storage.storage_problem(0) is None
    assert storage.storage_problem(2**62) == "disk almost full"


# -- JWK Sets -------------------------------------------------------------------------------------------------
def test_jwks_keep_the_last_good_keys_when_a_fetch_fails(storage: Storage) -> None:
    uri = "https://idp.example/jwks"
    assert storage.jwks.load(uri) is None
    storage.jwks.failed(uri, "timeout")
    first = storage.jwks.load(uri)
    assert first is not None and first.keys == {} and first.fetched is None and first.error == "timeout"
    storage.jwks.saved(uri, {"k1": {"kty": "RSA"}})
    storage.jwks.failed(uri, "x" * 1000)
    stored = storage.jwks.load(uri)
    assert stored is not None and stored.keys == {"k1": {"kty": "RSA"}} and stored.fetched is not None
    assert stored.error is not None and len(stored.error) <= 500
    assert [s.uri for s in storage.jwks.all()] == [uri] and stored.public()["kids"] == ["k1"]


# -- reconcile schedule ---------------------------------------------------------------------------------------
def test_schedule_claims_and_due_order(storage: Storage) -> None:
    for org_id in ("a", "b", "c"):
        storage.orgs.upsert_org("r", org_id, "EXTERNAL_SECRET", {})
    sched = storage.schedule
    pks = sched.org_pks("r")
    assert len(pks) == 3 and sched.org_pks("r", "b") == [pks[1]] and sched.realms() == ["r"]
    assert sched.due(10) == pks and sched.total() == 3  # never reconciled: all due, in pk order
    t = time.time()
    assert sched.claim(f"org:{pks[0]}", "w1", 60)
    assert not sched.claim(f"org:{pks[0]}", "w2", 60)  # another worker holds it
    assert sched.claim(f"org:{pks[0]}", "w1", 60)  # its holder may renew
    sched.done(f"org:{pks[0]}", "w1", t + 3600)
    for pk, due in ((pks[1], t - 100), (pks[2], t - 500)):
        assert sched.claim(f"org:{pk}", "w1", 60)
        sched.done(f"org:{pk}", "w1", due)
    assert sched.due(10) == [pks[2], pks[1]]  # due longest ago first; pks[0] is not due
    next_due = sched.next_due(f"org:{pks[0]}")
    assert next_due is not None and abs(next_due - (t + 3600)) < 1
    assert sched.next_due("org:nope") is None


def test_schedule_counts_unconfigured_and_unseen_orgs(storage: Storage) -> None:
    storage.orgs.seen_in_keycloak("r", [{"id": "k1"}, {"id": "k2"}])
    storage.orgs.upsert_org("r", "k1", "EXTERNAL_SECRET", {})
    storage.orgs.upsert_org("r", "gone", "EXTERNAL_SECRET", {})
    assert storage.schedule.unconfigured("r") == 1
    gone = storage.orgs.org("r", "gone")
    assert gone is not None and storage.schedule.unseen("r", "0000") == [gone.pk]
