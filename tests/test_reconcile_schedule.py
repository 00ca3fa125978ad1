"""The worker spreads reconcile over its interval: a bounded share of due orgs per tick, oldest first, state in
SQLite so several workers and restarts keep the spread (issue #8). Keycloak is a fake here: this is about
scheduling; reconcile against the real Keycloak is tested in ``tests/keycloak/test_reconcile.py``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from orgscim.model.clock import now
from orgscim.provision.reconcile import SPREAD, Pacer, Reconciler
from orgscim.services import Services
from orgscim.store.db import Database
from orgscim.store.reconcile import ReconcileSchedule
from orgscim.worker import Worker

REALM = "r"


class FakeKeycloak:
    """Just enough of ``KeycloakAdmin`` for reconcile of empty orgs; records which orgs were paged."""

    realm = REALM

    def __init__(self, org_ids: list[str]) -> None:
        self.org_ids = org_ids
        self.paged: list[str] = []

    def list_organizations(self, first: int, max: int) -> list[dict[str, Any]]:
        return [{"id": o, "name": o, "alias": o} for o in self.org_ids[first:first + max]]

    def list_members(self, org_id: str, first: int, max: int, brief: bool = True) -> list[dict[str, Any]]:
        self.paged.append(org_id)
        return []

    def list_org_groups(self, org_id: str, first: int, max: int) -> list[dict[str, Any]]:
        return []


def setup(tmp_path: Path, n: int) -> tuple[Services, FakeKeycloak, list[str]]:
    db = Database(tmp_path / "s.sqlite3")
    db.upgrade()
    services = Services(db)
    services.orgs.set_realm(REALM, True)
    ids = [f"org-{i:03d}" for i in range(n)]
    for org_id in ids:
        services.configure_org(REALM, org_id, "EXTERNAL_SECRET")
    return services, FakeKeycloak(ids), ids


def test_ticks_spread_orgs_over_the_interval_once_each(tmp_path: Path) -> None:
    services, kc, ids = setup(tmp_path, 30)
    interval, tick = 300.0, 10.0
    per_tick = math.ceil(30 * tick / (interval * SPREAD))
    assert per_tick == 2
    first = Reconciler(services, admin_for=lambda realm: kc).run_due(interval, tick)
    assert first.orgs == per_tick and kc.paged == ids[:2]  # never reconciled: in pk order
    # a second worker (another process) takes the next ones, never the same
    second = Reconciler(services, admin_for=lambda realm: kc).run_due(interval, tick)
    assert second.orgs == per_tick and kc.paged == ids[:4]
    ticks = 2
    while Reconciler(services, admin_for=lambda realm: kc).run_due(interval, tick).orgs:
        ticks += 1
    assert sorted(kc.paged) == ids and len(kc.paged) == 30  # every org once, none twice
    assert ticks * tick <= interval * SPREAD  # all within the interval
    # a restart (new services on the same database) keeps the schedule: nothing is due again yet
    restarted = Services(Database(tmp_path / "s.sqlite3"))
    assert Reconciler(restarted, admin_for=lambda realm: kc).run_due(interval, tick).orgs == 0
    due = ReconcileSchedule(services.db).next_due("org:1")
    assert due is not None and time.time() + interval * 0.9 < due <= time.time() + interval


def test_oldest_first_and_claims(tmp_path: Path) -> None:
    services, kc, ids = setup(tmp_path, 5)
    schedule = ReconcileSchedule(services.db)
    pks = schedule.org_pks(REALM)
    now = time.time()
    for i, pk in enumerate(pks):  # all reconciled before; org 3 longest ago, then org 1
        assert schedule.claim(f"org:{pk}", "w", 60)
        schedule.done(f"org:{pk}", "w", {3: now - 500, 1: now - 100}.get(i, now + 1000))
    assert schedule.due(10) == [pks[3], pks[1]]
    assert schedule.claim(f"org:{pks[3]}", "worker-a", 60)
    assert not schedule.claim(f"org:{pks[3]}", "worker-b", 60)  # taken
    assert schedule.due(10) == [pks[1]]
    assert not schedule.claim(f"org:{pks[0]}", "worker-b", 60)  # not due
    Reconciler(services, admin_for=lambda realm: kc).run_due(3600, 60)
    assert kc.paged == [ids[1]]  # the due one; the claimed one is left to its worker


def test_worker_runs_reconcile_every_tick(tmp_path: Path) -> None:
    db = Database(tmp_path / "w.sqlite3")
    db.upgrade()
    worker = Worker(Services(db, {"WORKER_RECONCILE_TICK_SECONDS": 30}))
    job = next(j for j in worker.jobs if j.name == "reconcile")
    assert job.interval == 30 and worker.intervals["reconcile"] == 3600


def test_pacer_bounds_calls_per_second() -> None:
    pacer = Pacer(50)
    t0 = time.monotonic()
    for _ in range(100):  # a burst of 50 goes at once, the next 50 at 50/s
        pacer(None)
    elapsed = time.monotonic() - t0
    assert pacer.calls == 100 and 0.9 <= elapsed < 2.0


def test_a_user_delivered_while_keycloak_is_paged_is_not_drift(tmp_path: Path) -> None:
    """The member snapshot can predate a delivery that finishes before the comparison: that user is in flight,
    not ``removed_from_org`` (the bench's 429 import left 16 such false records before)."""
    services, kc, ids = setup(tmp_path, 1)
    org = services.orgs.org(REALM, ids[0])
    assert org is not None
    created = services.scim(org, "http://localhost").create(
        "User", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "late@example.com"})
    rid = created.body["id"]
    db = services.db
    with db.transaction() as conn:
        conn.execute("INSERT INTO kc_links (org_pk, resource_type, resource_id, kc_id, origin, state, updated) "
                     "VALUES (?, 'User', ?, 'kc-late', 'created', '{\"member\": true, \"enabled\": true}', ?)",
                     (org.pk, rid, now()))
        conn.execute("INSERT INTO outbox (org_pk, resource_type, resource_id, action, payload, created, "
                     "next_attempt) VALUES (?, 'User', ?, 'user.upsert', '{}', ?, ?)", (org.pk, rid, now(), now()))

    class DeliveredMeanwhile(FakeKeycloak):
        def list_members(self, org_id: str, first: int, max: int, brief: bool = True) -> list[dict[str, Any]]:
            with db.transaction() as conn:  # another process delivers the user right after this page was read
                conn.execute("UPDATE outbox SET done = ? WHERE resource_id = ?", (now(), rid))
            return []

    summary = Reconciler(services, admin_for=lambda realm: DeliveredMeanwhile(ids)).run(REALM, ids[0])
    assert [f for f in summary.findings if f["resourceId"] == rid] == []
    class StillNotMember(FakeKeycloak):
        def get_user(self, kc_id: str) -> dict[str, Any]:
            return {"id": kc_id, "username": "late@example.com", "enabled": True}

    # a later pass, with the user still not a member in Keycloak, reports it
    later = Reconciler(services, admin_for=lambda realm: StillNotMember(ids)).run(REALM, ids[0])
    assert "removed_from_org" in [f["kind"] for f in later.findings if f["resourceId"] == rid]
