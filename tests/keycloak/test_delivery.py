"""Concurrent delivery against the real Keycloak: a multi-worker ``orgscim serve`` (gunicorn) and the
``orgscim worker`` deliver at the same time, behind a proxy that counts (and, in one test, throttles) every
Keycloak call. Each change must be applied exactly once (issue 8, issue 9 "per-process state", "429")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from scimkit import PATCH, okta_user, uniq

from orgscim.keycloak.client import KeycloakAdmin, NotFound
from orgscim.provision.mapping import ATTR_ID
from orgscim_dev.kcproxy import ProxyState, make_proxy
from orgscim_dev.live import LiveServer

pytestmark = pytest.mark.keycloak

REALM = "orgscim-test"
IMPORT = f"POST /admin/realms/{REALM}/partialImport"
BUDGET = 2.0


@dataclass
class Live:
    """Proxy → Keycloak; ``orgscim serve --workers 2`` + ``orgscim worker`` on one SQLite file."""

    server: LiveServer
    proxy: ProxyState

    def org(self, org_id: str, federation: str = "none") -> tuple[str, str]:
        org = self.server.configure(REALM, org_id, federation=federation,  # okta_user(): acme.example
                                    options={"domain_policy": "off"})
        return org.base_url, org.secret


@pytest.fixture(scope="module")
def live(keycloak: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    proxy = ProxyState(keycloak.base_url, retry_after=1.0)
    proxy_server = make_proxy(proxy)
    server = LiveServer(tmp_path_factory.mktemp("live"), worker=True,
                        keycloak_url=f"http://127.0.0.1:{proxy_server.server_address[1]}",
                        env={"ORGSCIM_KEYCLOAK_DELIVERY_BUDGET": str(BUDGET)})
    try:
        server.cli("db", "upgrade")
        server.start(timeout=60)
        yield Live(server, proxy)
    finally:
        server.stop(grace=30)
        proxy_server.shutdown()


@pytest.fixture
def org_id(kc_admin: KeycloakAdmin) -> Iterator[str]:
    name = uniq("deliv")
    oid = kc_admin.create_organization({"name": name, "alias": name, "domains": [{"name": f"{name}.example"}]})
    yield oid
    for m in kc_admin.iter_members(oid):
        try:
            kc_admin.delete_user(m["id"])
        except NotFound:
            pass
    kc_admin.delete_organization(oid)


def import_users(base: str, secret: str, n: int, threads: int, rename: bool) -> dict[str, dict[str, Any]]:
    """POST n users from ``threads`` threads; each thread renames its user right after (a second entry of the
    same resource, while the first may still be in flight)."""
    prefix = uniq("c")
    out: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {secret}"}

    def one(i: int) -> None:
        body = okta_user(f"{prefix}-{i:03d}")
        r = requests.post(f"{base}/Users", json=body, headers=headers, timeout=60)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        if rename:
            body["name"]["givenName"] = f"Renamed{i}"
            op = {"op": "replace", "path": "name.givenName", "value": f"Renamed{i}"}
            r = requests.patch(f"{base}/Users/{sid}", headers=headers, timeout=60,
                               json={"schemas": [PATCH], "Operations": [op]})
            assert r.status_code == 200, r.text
        with lock:
            out[sid] = body

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return out


def assert_applied_once(kc_admin: KeycloakAdmin, org_id: str, users: dict[str, dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for m in kc_admin.iter_members(org_id, brief=False):
        sid = (m.get("attributes") or {}).get(ATTR_ID, [None])[0]
        seen[sid] = seen.get(sid, 0) + 1
        body = users[sid]
        assert (m["username"], m["firstName"], m["enabled"]) == (body["userName"].lower(),
                                                                 body["name"]["givenName"], True)
    assert seen == dict.fromkeys(users, 1)


def test_workers_and_worker_process_apply_each_change_once(
    live: Live, kc_admin: KeycloakAdmin, org_id: str
) -> None:
    base, secret = live.org(org_id)
    live.proxy.reset()
    users = import_users(base, secret, 40, 6, rename=True)
    live.server.settle()
    # one Keycloak user created per SCIM user (batched or not): no collision, no double create
    assert live.proxy.created == dict.fromkeys((b["userName"].lower() for b in users.values()), 1)
    assert_applied_once(kc_admin, org_id, users)
    assert live.server.services.drift.records() == []  # no false `uniqueness` / `keycloak_refused`


def test_keycloak_429_loses_nothing_and_retry_after_is_honoured(
    live: Live, kc_admin: KeycloakAdmin, org_id: str
) -> None:
    base, secret = live.org(org_id)
    live.proxy.reset()
    live.proxy.throttle_every = 3
    try:
        users = import_users(base, secret, 30, 4, rename=False)
        live.server.settle()
    finally:
        live.proxy.throttle_every = 0
    assert live.proxy.throttled >= 10
    assert live.proxy.early == 0, live.proxy.early_calls  # no refused call repeated before its Retry-After
    assert live.proxy.created == dict.fromkeys((b["userName"].lower() for b in users.values()), 1)
    assert_applied_once(kc_admin, org_id, users)
    assert live.server.services.drift.records() == []
    done = live.server.services.outbox.entries(include_done=True)
    assert done and all(i.last_error is None or "429" in i.last_error for i in done)


def test_inline_delivery_never_outlasts_its_budget(live: Live, kc_admin: KeycloakAdmin, org_id: str) -> None:
    """Every Keycloak call takes 1.5 s: the SCIM answer still comes within the budget (request timeouts are cut
    to it), and the worker finishes the delivery."""
    base, secret = live.org(org_id)
    headers = {"Authorization": f"Bearer {secret}"}
    requests.post(f"{base}/Users", json=okta_user(uniq("warm")), headers=headers, timeout=60)  # token, profile
    live.server.settle()
    live.proxy.delay = 1.5
    try:
        took = []
        bodies = [okta_user(uniq("slow")) for _ in range(3)]
        for body in bodies:
            t0 = time.monotonic()
            r = requests.post(f"{base}/Users", json=body, headers=headers, timeout=60)
            took.append(time.monotonic() - t0)
            assert r.status_code == 201, r.text
    finally:
        live.proxy.delay = 0
    assert max(took) < BUDGET + 1.0, took
    live.server.settle()
    assert kc_admin.count_members(org_id) == 4
    assert live.server.services.drift.records() == []


def test_created_user_is_one_create_and_one_membership_call_plus_the_idp_link(
    live: Live, kc_admin: KeycloakAdmin, acme: dict[str, Any]
) -> None:
    """Issue 8: 12 Keycloak calls per created user (GETs after the POST, a PUT after it, lookups twice). Now:
    one create (a partial import, of one user when they come one by one) + POST member, and with link-org-idp
    one lookup of the IdP subject + the link itself; realm facts (token, user profile, realm, the org's IdP)
    are cached."""
    base, secret = live.org(acme["id"], federation="link-org-idp")
    headers = {"Authorization": f"Bearer {secret}"}
    made: list[str] = []
    try:
        for _ in range(4):  # warm the caches (the facts of a worker not reached are left out below)
            made.append(requests.post(f"{base}/Users", json=okta_user(uniq("warm")), headers=headers,
                                      timeout=60).json()["id"])
        live.server.settle()
        live.proxy.reset()
        for _ in range(10):
            r = requests.post(f"{base}/Users", json=okta_user(uniq("cost")), headers=headers, timeout=60)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        live.server.settle()
        # realm facts (user profile, the org's IdP) are fetched once per process and cached: a warm-up request
        # need not have reached every gunicorn worker, so they are left out of the per-user count
        per_user = {k: v for k, v in live.proxy.counts.items()
                    if ("/users" in k or k == IMPORT) and not k.endswith("/users/profile")}
        assert per_user == {IMPORT: 10,
                            f"GET /admin/realms/{REALM}/users": 10,  # ?idpAlias=&idpUserId=: subject free?
                            f"POST /admin/realms/{REALM}/users/{{id}}/federated-identity/acme-idp": 10}, per_user
        assert live.proxy.counts[f"POST /admin/realms/{REALM}/organizations/{{id}}/members"] == 10
        assert sum(live.proxy.created.values()) == 10 and set(live.proxy.created.values()) == {1}
        facts = 3 * 3  # user profile, realm, the org's IdP: at most once in each of 2 gunicorn workers and the worker
        assert sum(v for k, v in live.proxy.counts.items() if k != "token") <= 4 * 10 + facts, live.proxy.counts
    finally:
        for sid in made:
            for u in kc_admin.find_users_by_attribute(ATTR_ID, sid):
                kc_admin.delete_user(u["id"])
