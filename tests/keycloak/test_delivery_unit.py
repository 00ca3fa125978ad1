"""Outbox scheduling, leases and retention without a Keycloak (SQLite is real; Keycloak calls are fakes).

Each test here is a regression test of issue 8/9: lease holders unique per process and thread, a dead holder's
lease taken over at once, fairness across orgs, groups after their users, 429 never finishing an entry, and
pending entries never deleted silently with their org.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orgscim.keycloak.client import RateLimited
from orgscim.model.clock import later
from orgscim.model.contract import OutboxEntry
from orgscim.provision.deliver import Deliverer
from orgscim.provision.scheduler import Scheduler, Stats, holder
from orgscim.services import Services
from orgscim.store.db import Database

REALM = "r-delivery"


@pytest.fixture
def services(tmp_path: Path) -> Services:
    db = Database(tmp_path / "orgscim.sqlite3")
    db.upgrade()
    return Services(db, {})


def org(services: Services, org_id: str) -> Any:
    return services.orgs.upsert_org(REALM, org_id, "EXTERNAL_SECRET", {})


def enqueue(services: Services, o: Any, rids: list[str], rtype: str = "User") -> None:
    action = "user.upsert" if rtype == "User" else "group.upsert"
    services.outbox.enqueue(o.pk, [OutboxEntry(rtype, rid, action, {"data": {}}) for rid in rids])


def _child_holder(q: Any) -> None:
    q.put(holder())


def test_lease_holders_are_unique_per_thread_and_process() -> None:
    mine = holder()
    assert mine == holder() and mine.startswith(f"{socket.gethostname()}:")
    other: list[str] = []
    t = threading.Thread(target=lambda: other.append(holder()))
    t.start()
    t.join()
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_holder, args=(q,))
    p.start()
    child = q.get(timeout=30)
    p.join()
    assert len({mine, other[0], child}) == 3  # the forked child does not inherit the parent's token


def test_lease_checked_renewed_and_dead_holder_taken_over_at_once(services: Services) -> None:
    leases = services.leases
    assert leases.acquire("res:1:a", "h:1:alive", 30) and not leases.acquire("res:1:a", "other", 30)
    assert leases.renew("res:1:a", "h:1:alive", 30) and not leases.renew("res:1:a", "other", 30)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:token"
    assert leases.acquire("res:1:b", dead, 60)
    t0 = time.monotonic()
    assert leases.acquire("res:1:b", holder(), 30)  # its process is gone: no waiting out the 60 s
    assert time.monotonic() - t0 < 1
    assert not leases.renew("res:1:b", dead, 30)  # the old holder learns it lost the lease before its next entry


def test_scheduler_is_fair_across_orgs(services: Services) -> None:
    a, b = org(services, "org-a"), org(services, "org-b")
    enqueue(services, a, [f"a{i:03d}" for i in range(60)])
    enqueue(services, b, ["b-only"])
    order: list[str] = []
    lock = threading.Lock()

    def deliver(o: Any, rid: str) -> Stats:
        time.sleep(0.01)
        with lock:
            order.append(rid)
        for item in services.outbox.resource_pending(o.pk, rid):
            services.outbox.finish(item.pk)
        return Stats(delivered=1)

    stats = Scheduler(services.orgs, services.outbox, deliver, workers=2, per_org=2).run()
    assert stats.delivered == 61 and services.outbox.entries() == []
    assert order.index("b-only") < 3  # not after org A's 60 entries
    assert len(order) == len(set(order))  # each resource once


def test_group_waits_for_older_user_entries_and_resources_keep_their_order(services: Services) -> None:
    o = org(services, "org-g")
    enqueue(services, o, ["u1", "u2"])
    enqueue(services, o, ["g1"], "Group")
    enqueue(services, o, ["u1"])  # a second change of u1, behind its first
    heads = services.outbox.due_heads(o.pk, 10)
    assert [(h.resource_id, h.action) for h in heads] == [("u1", "user.upsert"), ("u2", "user.upsert")]
    for h in heads:
        services.outbox.finish(h.pk)
    heads = services.outbox.due_heads(o.pk, 10)
    assert [h.resource_id for h in heads] == ["g1", "u1"]  # users done: the group may go; u1's 2nd change too


class ThrottledAdmin:
    realm = REALM

    def declare_profile_attributes(self, names: Any) -> tuple[list[str], dict[str, Any]]:
        raise RateLimited(429, None, retry_after=7.0)


def test_429_defers_the_entry_for_retry_after_and_finishes_nothing(services: Services) -> None:
    o = org(services, "org-429")
    enqueue(services, o, ["u429"])
    deliverer = Deliverer(services.storage, lambda realm: ThrottledAdmin(),  # type: ignore[arg-type,return-value]
                          services.federation)
    stats = deliverer.deliver_resource(o, "u429")
    assert stats.failed and stats.retry_after == 7.0 and stats.delivered == stats.refused == 0
    [item] = services.outbox.entries(o.pk)
    assert item.done is None and item.attempts == 0  # not processed by Keycloak: a retry need not look first
    assert later(5) < item.next_attempt <= later(8)
    assert services.drift.records() == []


def events(services: Services, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r["detail"]) for r in services.db.all("SELECT detail FROM events WHERE kind = ?", (kind,))]


def test_purge_cancels_pending_entries_with_an_audit_event(services: Services) -> None:
    o = org(services, "org-purge")
    enqueue(services, o, ["u1", "u2"])
    services.remove_org(o, purge=True)
    assert services.orgs.org(REALM, "org-purge") is None
    [ev] = events(services, "outbox.cancelled")
    assert ev["count"] == 2 and ev["orgId"] == "org-purge" and {e["resourceId"] for e in ev["entries"]} == {"u1", "u2"}


def test_pending_entries_are_never_deleted_with_their_org(services: Services) -> None:
    o = org(services, "org-keep")
    enqueue(services, o, ["u1"])
    with pytest.raises(Exception, match="pending outbox"):
        services.orgs.delete_org(o.pk)  # a plain delete (no cancel) is refused by the database
    assert len(services.outbox.entries(o.pk)) == 1


def test_retention_prune_cancels_pending_entries_of_vanished_orgs(services: Services) -> None:
    o = org(services, "org-gone")
    enqueue(services, o, ["deactivate-me"])
    services.orgs.set_vanished(o.pk, later(-40 * 86400))
    result = services.housekeeping.prune(30)
    assert result["orgs"] == 1 and result["outbox_cancelled"] == 1
    [ev] = events(services, "outbox.cancelled")
    assert ev["entries"][0]["resourceId"] == "deactivate-me" and ev["who"] == "housekeeping"
