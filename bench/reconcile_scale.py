#!/usr/bin/env python3
"""Reconcile an org of N members and compare with just paging those members from Keycloak.

    .venv/bin/python bench/reconcile_scale.py [--members 5000] [--keycloak-state F] [--json out.json]

Starts the real Keycloak (or reuses one: --keycloak-state, the file written by
``python -m orgscim.devserver.keycloak start --state-file F``), creates an organization with N members that
orgscim provisioned (Keycloak users created through the admin API with orgscim's attributes, SCIM rows and
links written through orgscim's own stores — the same state SCIM writes leave behind), then measures in one
run, with the same Keycloak client:

* baseline: paging through all members (``briefRepresentation=false``, 200 per page);
* reconcile of that org (report mode: snapshot, compare, record drift).

It prints both times, their ratio, and the peak Python heap of each (tracemalloc), so a reconcile that held
the org in memory would show up as a peak growing with N.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orgscim.devserver.keycloak import KeycloakDev, ensure_distribution
from orgscim.keycloak.client import KeycloakAdmin, KeycloakError
from orgscim.provision.mapping import PROFILE_ATTRIBUTES, user_rep
from orgscim.provision.reconcile import Reconciler
from orgscim.services import Services
from orgscim.store.db import Database
from orgscim.store.resources import ResourceStore
from orgscim.store.sync import Link

REALM = "orgscim-test"
SECRET = "orgscim-dev-secret"


def measure(fn: Any) -> tuple[float, int, Any]:
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak, result


def seed(services: Services, admin: KeycloakAdmin, org_id: str, n: int) -> None:
    org = services.orgs.org(REALM, org_id)
    assert org is not None
    store = ResourceStore(services.db, org.pk)
    admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
    tag = uuid.uuid4().hex[:6]

    def one(i: int) -> None:
        name = f"bench-{tag}-{i:05d}@bench.example"
        data = {"userName": name, "name": {"givenName": "Bench", "familyName": f"User{i}"}, "active": True,
                "emails": [{"value": name, "type": "work", "primary": True}], "externalId": f"ext-{tag}-{i}"}
        row = store.create("User", data, name, data["externalId"])
        rep = user_rep(org_id, row.id, data, org.settings)
        kc_id = admin.create_user({**rep, "enabled": True})
        admin.add_member(org_id, kc_id)
        services.sync.set_link(Link(org.pk, "User", row.id, kc_id, "created", {"member": True, "enabled": True}))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for done, _ in enumerate(pool.map(one, range(n)), 1):
            if done % 500 == 0 or done == n:
                print(f"  seeded {done}/{n} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--keycloak-state")
    ap.add_argument("--json")
    a = ap.parse_args()

    kc = None
    if a.keycloak_state:
        base_url = json.loads(Path(a.keycloak_state).read_text())["base_url"]
    else:
        kc = KeycloakDev(ensure_distribution()).start()
        base_url = kc.base_url
    try:
        admin = KeycloakAdmin(base_url, REALM, "orgscim", SECRET, timeout=30)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        org_id = admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})
        tmp = Path(tempfile.mkdtemp(prefix="orgscim-bench-"))
        db = Database(tmp / "orgscim.sqlite3")
        db.upgrade()
        services = Services(db, {"KEYCLOAK_URL": base_url, "KEYCLOAK_CLIENT_SECRET": SECRET, "KEYCLOAK_TIMEOUT": 30})
        services.orgs.set_realm(REALM, True)
        services.configure_org(REALM, org_id, "EXTERNAL_SECRET")
        print(f"seeding {a.members} members into organization {name} …", file=sys.stderr)
        t0 = time.perf_counter()
        seed(services, admin, org_id, a.members)
        seed_s = time.perf_counter() - t0
        client = services.keycloak(REALM)
        assert client is not None

        def page_all() -> int:
            return sum(1 for _ in client.iter_members(org_id, brief=False, page_size=200))

        measure(page_all)  # warm Keycloak's caches so neither side pays for them
        page_s, page_peak, count = measure(page_all)
        org = services.orgs.org(REALM, org_id)
        rec_s, rec_peak, summary = measure(lambda: Reconciler(services, "report").run(REALM, org_id))
        assert count == a.members, count
        result = {"members": a.members, "seed_s": round(seed_s, 1), "page_s": round(page_s, 2),
                  "reconcile_s": round(rec_s, 2), "ratio_time": round(rec_s / page_s, 2),
                  "page_peak_kib": page_peak // 1024, "reconcile_peak_kib": rec_peak // 1024,
                  "ratio_peak": round(rec_peak / max(page_peak, 1), 2), "drift": len(summary.findings),
                  "org": org.org_id if org else org_id}
        print(f"\nmembers {a.members}  (seeded in {seed_s:.0f}s)")
        print(f"{'':24}{'time (s)':>10}{'peak heap (KiB)':>18}")
        print(f"{'page members (baseline)':24}{page_s:>10.2f}{page_peak // 1024:>18}")
        print(f"{'reconcile org':24}{rec_s:>10.2f}{rec_peak // 1024:>18}")
        print(f"{'ratio':24}{rec_s / page_s:>10.2f}{rec_peak / max(page_peak, 1):>18.2f}")
        print(f"drift found: {len(summary.findings)} (expected 0)")
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2))
        try:  # best effort: deleting thousands of members can outlast the client timeout
            KeycloakAdmin(base_url, REALM, "orgscim", SECRET, timeout=300).delete_organization(org_id)
        except KeycloakError as e:
            print(f"cleanup: organization {name} left in place ({e})", file=sys.stderr)
        return 0 if summary.findings == [] else 1
    finally:
        if kc is not None:
            kc.stop()


if __name__ == "__main__":
    sys.exit(main())
