"""``Outbox``, ``Links``, ``Leases``, ``Drift``: the delivery side of the storage contract (docs/storage.md,
"Delivery to Keycloak")."""

from __future__ import annotations

import subprocess
import sys

from orgscim.model.contract import Org, OutboxEntry, Storage
from orgscim.model.delivery import Link
from orgscim.model.holders import new_holder, process_holder


def queue(storage: Storage, org: Org, *rids: str, rtype: str = "User") -> None:
    action = "user.upsert" if rtype == "User" else "group.upsert"
    storage.outbox.enqueue(org.pk, [OutboxEntry(rtype, rid, action, {"data": {"n": i}}) for i, rid in enumerate(rids)])


def test_entries_come_in_commit_order_per_resource_and_groups_wait_for_older_users(storage: Storage,
                                                                                  org_a: Org) -> None:
    queue(storage, org_a, "u1", "u2")
    queue(storage, org_a, "g1", rtype="Group")
    queue(storage, org_a, "u1")
    assert [(i.resource_id, i.payload["data"]["n"]) for i in storage.outbox.resource_pending(org_a.pk, "u1")] == [
        ("u1", 0), ("u1", 0)]
    assert [i.resource_id for i in storage.outbox.due_heads(org_a.pk, 10)] == ["u1", "u2"]
    assert storage.outbox.due_orgs() == [org_a.pk]


def test_complete_marks_done_writes_the_link_and_releases_the_lease_with_the_last_entry(storage: Storage,
                                                                                       org_a: Org) -> None:
    queue(storage, org_a, "u1")
    queue(storage, org_a, "u1")
    lease = ("res:1:u1", new_holder())
    assert storage.leases.acquire(*lease, 30)
    first, second = storage.outbox.resource_pending(org_a.pk, "u1")
    link = Link(org_a.pk, "User", "u1", "kc-1", "created", {"member": True})
    assert storage.outbox.complete(first, link, lease) is False  # u1 has another entry: the lease is kept
    assert storage.links.get(org_a.pk, "u1") == link
    assert not storage.leases.acquire(lease[0], new_holder(), 30)
    assert storage.outbox.complete(second, None, lease) is True  # the last one: released in its transaction
    assert storage.outbox.entries(org_a.pk) == []
    assert [i.done is not None for i in storage.outbox.entries(org_a.pk, include_done=True)] == [True, True]
    assert storage.leases.acquire(lease[0], new_holder(), 30)


def test_a_lease_of_a_dead_process_of_this_host_is_taken_over_at_once(storage: Storage) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{process_holder().partition(':')[0]}:{gone.pid}:token"
    assert storage.leases.acquire("job:x", dead, 600)
    me = new_holder()
    assert storage.leases.acquire("job:x", me, 30)
    assert not storage.leases.renew("job:x", dead, 30) and storage.leases.renew("job:x", me, 30)
    storage.leases.release("job:x", me)
    assert storage.leases.acquire("job:x", process_holder(), 30)


def test_links_are_found_by_resource_and_by_keycloak_id(storage: Storage, org_a: Org, org_b: Org) -> None:
    storage.links.save(Link(org_a.pk, "User", "u1", "kc-1", "created", {}))
    storage.links.save(Link(org_b.pk, "User", "u9", "kc-1", "adopted", {}))
    assert {lk.resource_id for lk in storage.links.by_kc_id("kc-1")} == {"u1", "u9"}
    assert storage.links.owned_kc_ids(org_a.pk, ["kc-1", "kc-2"]) == {"kc-1"}
    storage.links.drop(org_a.pk, "u1")
    assert storage.links.get(org_a.pk, "u1") is None and storage.links.owned_kc_ids(org_a.pk, ["kc-1"]) == set()


def test_drift_is_one_open_record_per_kind_until_resolved(storage: Storage, org_a: Org) -> None:
    storage.drift.report(org_a.pk, "User", "u1", "missing_in_keycloak", "kc-1", None)
    storage.drift.report(org_a.pk, "User", "u1", "missing_in_keycloak", "kc-1", None)
    [record] = storage.drift.records(org_a.pk)
    assert (record.org_id, record.resource_id, record.kind, record.expected) == ("org-a", "u1", "missing_in_keycloak",
                                                                                  "kc-1")
    assert record.public()["resourceId"] == "u1"
    assert storage.drift.resolve(org_a.pk, "u1") == 1
    assert storage.drift.records(org_a.pk) == [] and len(storage.drift.records(org_a.pk, open_only=False)) == 1


def test_pending_entries_are_cancelled_with_an_audit_event_never_dropped(storage: Storage, org_a: Org) -> None:
    queue(storage, org_a, "u1", "u2")
    assert storage.outbox.cancel_pending(org_a.pk, "test", "tester") == 2
    assert storage.outbox.entries(org_a.pk) == []
    done = storage.outbox.entries(org_a.pk, include_done=True)
    assert [i.last_error for i in done] == ["cancelled: test", "cancelled: test"]
    [event] = [e for e in storage.orgs.events("r1", org_a.pk) if e["kind"] == "outbox.cancelled"]
    assert event["detail"]["count"] == 2 and event["detail"]["who"] == "tester"
    assert storage.outbox.purge_org(org_a.pk, "test") == 0 and storage.orgs.org_by_pk(org_a.pk) is None
