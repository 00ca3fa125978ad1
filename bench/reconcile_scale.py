#!/usr/bin/env python3
"""Reconcile at scale: one large org against paging its members, and many small orgs against the interval.

    .venv/bin/python bench/reconcile_scale.py [--members 1000] [--orgs 100] [--orgs-small 10] [--org-users 20]
                                              [--rounds 3] [--keycloak-state F] [--json out.json]

Starts a dedicated real Keycloak (or reuses one: --keycloak-state, the file written by
``python -m orgscim_dev.keycloak start --state-file F``) and seeds the state SCIM writes leave behind:
Keycloak users with orgscim's attributes created through the admin API, made org members (and, for the large
org, linked to the org's identity provider), with SCIM rows and links written through orgscim's own stores.
Then, in one run and with one Keycloak client whose calls are counted:

1. **one org of --members members**, each linked to the org's identity provider: paging all members
   (``briefRepresentation=false``, 200 per page) — the baseline — and a report-mode reconcile of that org with
   federation ``none`` and with ``link-org-idp`` (which also checks every IdP link), interleaved --rounds
   times after a warm-up; medians, their ratios (target <= 1.5), Keycloak calls of each, and the peak Python
   heap (tracemalloc, measured in separate runs so it does not slow the timed ones);
2. **--orgs orgs of --org-users users**: one full reconcile of all of them (discovery included), its duration
   against the default worker interval (``WORKER_RECONCILE_SECONDS`` = 3600; target < 1), Keycloak calls per
   org, and the peak heap of a full reconcile with --orgs-small orgs configured against one with --orgs
   (target: flat, ratio <= 1.2);
3. **the worker's spread** of those orgs: ``Reconciler.run_due`` ticks with the interval compressed to
   4 × the measured full reconcile: orgs per tick, every org reconciled once within the interval, none twice.

Default sizes take a few minutes; the issue's figures are ``--members 5000 --orgs 1000 --orgs-small 100``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # orgscim_dev: from the repository, never installed

from orgscim.keycloak.client import KeycloakAdmin, KeycloakError
from orgscim.model.delivery import Link
from orgscim.provision.mapping import PROFILE_ATTRIBUTES, user_rep
from orgscim.provision.reconcile import Pacer, Reconciler
from orgscim.services import Services
from orgscim.store.db import Database
from orgscim.store.reconcile import ReconcileSchedule
from orgscim.store.resources import ResourceStore
from orgscim_dev.keycloak import KeycloakDev, ensure_distribution

REALM = "orgscim-test"
SECRET = "orgscim-dev-secret"
INTERVAL = 3600.0  # the worker's default WORKER_RECONCILE_SECONDS


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def heap_peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_services(base_url: str) -> Services:
    db = Database(Path(tempfile.mkdtemp(prefix="orgscim-bench-")) / "orgscim.sqlite3")
    db.upgrade()
    services = Services(db, {"KEYCLOAK_URL": base_url, "KEYCLOAK_CLIENT_SECRET": SECRET, "KEYCLOAK_TIMEOUT": 30})
    services.orgs.set_realm(REALM, True)
    return services


def counted(services: Services) -> Pacer:
    """Count the Keycloak calls of the services' client (a pacer without a rate only counts)."""
    client = services.keycloak(REALM)
    assert client is not None
    pacer = Pacer(0)
    client.session.hooks.append(pacer)
    return pacer


def add_idp(base_url: str, master: tuple[str, str], org_id: str, alias: str) -> None:
    """An OIDC identity provider linked to the org (never contacted: links are made through the admin API).
    Made as the bootstrap admin: orgscim's service account may only view identity providers."""
    token = requests.post(f"{base_url}/realms/master/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "password", "client_id": "admin-cli", "username": master[0], "password": master[1]})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    url = f"{base_url}/admin/realms/{REALM}"
    requests.post(f"{url}/identity-provider/instances", headers=headers, timeout=30, json={
        "alias": alias, "providerId": "oidc", "enabled": True, "hideOnLogin": True,
        "config": {"authorizationUrl": "http://127.0.0.1:9/auth", "tokenUrl": "http://127.0.0.1:9/token",
                   "clientId": "bench", "clientSecret": "bench", "clientAuthMethod": "client_secret_post"},
    }).raise_for_status()
    requests.post(f"{url}/organizations/{org_id}/identity-providers", headers=headers, timeout=30,
                  json=alias).raise_for_status()


def seed(services: Services, admin: KeycloakAdmin, org_id: str, n: int, tag: str,
         alias: str | None = None) -> list[str]:
    """``n`` provisioned members of the org; returns their Keycloak ids."""
    org = services.orgs.org(REALM, org_id)
    assert org is not None
    store = ResourceStore(services.db, org.pk)

    def one(i: int) -> str:
        name = f"b-{tag}-{i:05d}@bench.example"
        data = {"userName": name, "name": {"givenName": "Bench", "familyName": f"User{i}"}, "active": True,
                "emails": [{"value": name, "type": "work", "primary": True}], "externalId": f"ext-{tag}-{i}"}
        row = store.create("User", data, name, data["externalId"])
        rep = user_rep(org_id, row.id, data, org.settings)
        kc_id = admin.create_user({**rep, "enabled": True})
        admin.add_member(org_id, kc_id)
        state: dict[str, Any] = {"member": True, "enabled": True}
        if alias:
            admin.add_federated_identity(kc_id, alias, data["externalId"], name)
            state["idp"] = {"alias": alias, "userId": data["externalId"]}
        services.links.save(Link(org.pk, "User", row.id, kc_id, "created", state))
        return kc_id

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = []
        for done, kc_id in enumerate(pool.map(one, range(n)), 1):
            ids.append(kc_id)
            if n >= 500 and (done % 250 == 0 or done == n):
                log(f"  seeded {done}/{n} ({time.perf_counter() - t0:.0f}s)")
        return ids


def one_org(base_url: str, master: tuple[str, str], admin: KeycloakAdmin, members: int,
            rounds: int) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    org_id = admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})
    alias = f"{name}-idp"
    add_idp(base_url, master, org_id, alias)
    services = make_services(base_url)
    services.configure_org(REALM, org_id, "EXTERNAL_SECRET", {}, True, "link-org-idp", {"alias": alias})
    log(f"one org: seeding {members} members (with IdP links) into {name} …")
    t0 = time.perf_counter()
    seed(services, admin, org_id, members, name[-8:], alias)
    seed_s = time.perf_counter() - t0
    client = services.keycloak(REALM)
    assert client is not None
    calls = counted(services)

    def page_all() -> int:
        return sum(1 for _ in client.iter_members(org_id, brief=False, page_size=200))

    findings: list[Any] = []

    def federation(on: bool) -> None:
        services.configure_org(REALM, org_id, "EXTERNAL_SECRET", {}, True, *(
            ("link-org-idp", {"alias": alias}) if on else ("none", {})))

    def reconcile() -> None:
        findings[:] = Reconciler(services, "report").run(REALM, org_id).findings

    assert page_all() == members
    reconcile()  # warm Keycloak's caches (and SQLite's) for both sides
    times: dict[str, list[float]] = {"page": [], "plain": [], "idp": []}
    calls_of: dict[str, int] = {}
    drift = 0
    for _ in range(rounds):
        for kind, fn in (("page", page_all), ("plain", reconcile), ("idp", reconcile)):
            federation(kind == "idp")
            c = calls.calls
            times[kind].append(timed(fn))
            calls_of[kind] = calls.calls - c
            drift += len(findings) if kind != "page" else 0
    heap = {"page": heap_peak(page_all), "idp": heap_peak(reconcile)}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"members": members, "seed_s": round(seed_s, 1), "median_s": {k: round(v, 2) for k, v in med.items()},
            "ratio_plain": round(med["plain"] / med["page"], 2), "ratio_idp": round(med["idp"] / med["page"], 2),
            "times": {k: [round(t, 2) for t in v] for k, v in times.items()}, "calls": calls_of,
            "heap_kib": {k: v // 1024 for k, v in heap.items()}, "drift": drift, "org_id": org_id,
            "services": services}


def many_orgs(base_url: str, admin: KeycloakAdmin, n_orgs: int, n_small: int, users: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    log(f"many orgs: creating {n_orgs} orgs × {users} users …")
    t0 = time.perf_counter()

    def make_org(i: int) -> str:
        name = f"bm-{tag}-{i:04d}"
        return admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})

    with ThreadPoolExecutor(8) as pool:
        org_ids = list(pool.map(make_org, range(n_orgs)))
    services = make_services(base_url)
    for org_id in org_ids:
        services.configure_org(REALM, org_id, "EXTERNAL_SECRET")
    for i, org_id in enumerate(org_ids, 1):
        seed(services, admin, org_id, users, f"{tag}-{i:04d}")
        if i % 100 == 0 or i == n_orgs:
            log(f"  seeded {i}/{n_orgs} orgs ({time.perf_counter() - t0:.0f}s)")
    seed_s = time.perf_counter() - t0

    # peak heap of a full reconcile with n_small orgs configured, then with all of them (same Keycloak)
    small = make_services(base_url)
    for org_id in org_ids[:n_small]:
        small.configure_org(REALM, org_id, "EXTERNAL_SECRET")
    small_heap = heap_peak(lambda: Reconciler(small, "report").run(REALM))
    large_heap = heap_peak(lambda: Reconciler(services, "report").run(REALM))

    calls = counted(services)
    summary: list[Any] = []
    full_s = timed(lambda: summary.append(Reconciler(services, "report").run(REALM)))
    full = summary[0]
    ours = {o for o in org_ids}
    drift = [f for f in full.findings if f["orgId"] in ours]
    return {"orgs": n_orgs, "users_per_org": users, "seed_s": round(seed_s, 1), "full_s": round(full_s, 2),
            "orgs_reconciled": full.orgs, "vs_interval": round(full_s / INTERVAL, 4), "calls": calls.calls,
            "calls_per_org": round(calls.calls / max(full.orgs, 1), 2), "ms_per_org": round(1000 * full_s / n_orgs, 1),
            "small_orgs": n_small, "small_heap_kib": small_heap // 1024, "large_heap_kib": large_heap // 1024,
            "heap_ratio": round(large_heap / max(small_heap, 1), 2), "drift": len(drift), "services": services,
            "org_ids": org_ids}


def spread(services: Services, n_orgs: int, full_s: float) -> dict[str, Any]:
    """Worker ticks over a compressed interval: each tick reconciles a share of the orgs, oldest first."""
    interval = max(20.0, 4 * full_s)
    tick = interval / 16
    schedule = ReconcileSchedule(services.db)
    start = time.time()
    per_tick: list[int] = []
    reconciled: dict[int, int] = {}
    while time.time() - start < interval:
        t0 = time.time()
        before = {pk: schedule.next_due(f"org:{pk}") for pk in schedule.org_pks(REALM)}
        summary = Reconciler(services, "report").run_due(interval, tick)
        for pk, due in before.items():
            if schedule.next_due(f"org:{pk}") != due:
                reconciled[pk] = reconciled.get(pk, 0) + 1
        per_tick.append(summary.orgs)
        time.sleep(max(0.0, tick - (time.time() - t0)))
    return {"interval_s": round(interval, 1), "tick_s": round(tick, 2), "ticks": len(per_tick),
            "orgs_per_tick": per_tick, "reconciled_once": sum(1 for v in reconciled.values() if v == 1),
            "reconciled_twice": sum(1 for v in reconciled.values() if v > 1), "never": n_orgs - len(reconciled)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=1000, help="members of the one large org (0: skip)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--orgs", type=int, default=100, help="orgs of the many-orgs part (0: skip)")
    ap.add_argument("--orgs-small", type=int, default=10, help="orgs configured for the memory baseline")
    ap.add_argument("--org-users", type=int, default=20)
    ap.add_argument("--no-spread", action="store_true", help="skip the worker-spread part")
    ap.add_argument("--keycloak-state")
    ap.add_argument("--json")
    a = ap.parse_args()

    kc = None
    if a.keycloak_state:
        state = json.loads(Path(a.keycloak_state).read_text())
        base_url, master = state["base_url"], (state["admin_user"], state["admin_password"])
    else:
        kc = KeycloakDev(ensure_distribution(), startup_timeout=600).start()
        base_url, master = kc.base_url, (kc.admin_user, kc.admin_password)
    ok = True
    out: dict[str, Any] = {}
    try:
        admin = KeycloakAdmin(base_url, REALM, "orgscim", SECRET, timeout=60)
        admin.ensure_profile_attributes(PROFILE_ATTRIBUTES)
        if a.members:
            r = one_org(base_url, master, admin, a.members, a.rounds)
            med, calls, heap = r["median_s"], r["calls"], r["heap_kib"]
            print(f"\n# one org, {r['members']} members (seeded in {r['seed_s']:.0f}s); median of {a.rounds} "
                  "interleaved rounds")
            print(f"{'':36}{'time (s)':>10}{'ratio':>8}{'Keycloak calls':>16}{'peak heap (KiB)':>18}")
            print(f"{'page members (baseline)':36}{med['page']:>10.2f}{1:>8.2f}{calls['page']:>16}{heap['page']:>18}")
            print(f"{'reconcile, federation none':36}{med['plain']:>10.2f}{r['ratio_plain']:>8.2f}{calls['plain']:>16}"
                  f"{'':>18}")
            print(f"{'reconcile, link-org-idp':36}{med['idp']:>10.2f}{r['ratio_idp']:>8.2f}{calls['idp']:>16}"
                  f"{heap['idp']:>18}")
            print(f"target: ratio <= 1.5; rounds (s): {r['times']}")
            print(f"drift found: {r['drift']} (expected 0)")
            ok &= r["drift"] == 0 and max(r["ratio_plain"], r["ratio_idp"]) <= 1.5
            r.pop("services")
            out["one_org"] = r
        if a.orgs:
            m = many_orgs(base_url, admin, a.orgs, a.orgs_small, a.org_users)
            print(f"\n# {m['orgs']} orgs × {m['users_per_org']} users (seeded in {m['seed_s']:.0f}s): "
                  "one full reconcile (discovery included)")
            print(f"duration {m['full_s']:.1f} s for {m['orgs_reconciled']} orgs ({m['ms_per_org']} ms/org); "
                  f"default interval {INTERVAL:.0f} s; ratio {m['vs_interval']:.3f} (target < 1)")
            print(f"Keycloak calls {m['calls']} ({m['calls_per_org']} per org)")
            print(f"peak heap: {m['small_orgs']} orgs {m['small_heap_kib']} KiB, {m['orgs']} orgs "
                  f"{m['large_heap_kib']} KiB; ratio {m['heap_ratio']:.2f} (target <= 1.2: flat)")
            print(f"drift found: {m['drift']} (expected 0)")
            ok &= m["drift"] == 0 and m["vs_interval"] < 1 and m["heap_ratio"] <= 1.2
            if not a.no_spread:
                s = spread(m["services"], a.orgs, m["full_s"])
                print(f"worker spread: interval {s['interval_s']} s (compressed), tick {s['tick_s']} s, "
                      f"{s['ticks']} ticks, orgs per tick {s['orgs_per_tick']}")
                print(f"  reconciled once {s['reconciled_once']}, twice {s['reconciled_twice']}, never {s['never']} "
                      f"(expected {a.orgs}, 0, 0)")
                ok &= s["reconciled_once"] == a.orgs and s["reconciled_twice"] == 0
                m["spread"] = s
            m.pop("services")
            out["many_orgs"] = {k: v for k, v in m.items() if k != "org_ids"}
            if kc is None:  # a shared Keycloak: take our orgs away again (their users stay; names are unique)
                for org_id in m["org_ids"]:
                    try:
                        admin.delete_organization(org_id)
                    except KeycloakError as e:
                        log(f"cleanup: {org_id} left in place ({e})")
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=2))
        return 0 if ok else 1
    finally:
        if kc is not None:
            kc.stop()


if __name__ == "__main__":
    sys.exit(main())
