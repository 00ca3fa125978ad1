"""Concurrent duplicate creates against a real server (``orgscim serve``: gunicorn, several worker processes):
exactly one 201, every other request 409 ``uniqueness`` (QUIRKS #19: IdPs retry after timeouts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from orgscim.store.db import Database

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
THREADS = 8
WORKERS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method: str, url: str, secret: str, body=None, timeout: float = 30) -> tuple[int, dict | None]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def server(template, tmp_path_factory):
    instance = tmp_path_factory.mktemp("served")
    Database(template.db_path).backup(instance / "orgscim.sqlite3")
    port = free_port()
    log = open(instance / "server.log", "wb")
    orgscim = Path(sys.executable).with_name("orgscim")
    proc = subprocess.Popen([str(orgscim), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                             str(WORKERS)], env={**os.environ, "ORGSCIM_INSTANCE": str(instance)}, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (instance / "server.log").read_text()
            try:
                # not a short timeout: a client that gives up while a booting worker is busy is logged by
                # gunicorn as a 500 (the app had nothing to answer), which test_no_server_errors_logged forbids
                with urllib.request.urlopen(url + "/healthz", timeout=15) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "orgscim serve did not come up"
            time.sleep(0.1)
        base = f"{url}/realms/r1/scim/v2/organizations/org-a"
        secret = template.secrets["org-a"]
        # warm every worker's verified-credential cache, so Argon2id does not serialise the race below
        warm = [threading.Thread(target=call, args=("GET", base + "/ServiceProviderConfig", secret))
                for _ in range(WORKERS * 4)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        yield base, secret, instance
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def race(base: str, secret: str, path: str, bodies: list[dict]) -> list[tuple[int, dict | None]]:
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict | None]] = [(0, None)] * len(bodies)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = call("POST", base + path, secret, bodies[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def assert_one_winner(results, kind: str) -> dict:
    statuses = sorted(s for s, _ in results)
    assert statuses == [201] + [409] * (len(results) - 1), results
    for status, body in results:
        if status == 409:
            assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert body["scimType"] == "uniqueness" and body["status"] == "409"
    return next(b for s, b in results if s == 201)


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_duplicate_user_creates(server, round_):
    base, secret, _ = server
    name = f"race-{round_}@example.com"
    bodies = [{"schemas": [USER], "userName": name.upper() if i % 2 else name} for i in range(THREADS)]
    winner = assert_one_winner(race(base, secret, "/Users", bodies), "User")
    status, listing = call("GET", base + "/Users?filter=" + urllib.request.quote(f'userName eq "{name}"'), secret)
    assert status == 200 and [r["id"] for r in listing["Resources"]] == [winner["id"]]


def test_concurrent_duplicate_group_creates(server):
    base, secret, _ = server
    bodies = [{"schemas": [GROUP], "displayName": "Race Team"} for _ in range(THREADS)]
    winner = assert_one_winner(race(base, secret, "/Groups", bodies), "Group")
    status, listing = call("GET", base + "/Groups", secret)
    assert status == 200 and [r["id"] for r in listing["Resources"]] == [winner["id"]]


def test_no_server_errors_logged(server):
    _, _, instance = server
    log = (instance / "server.log").read_text(errors="replace")
    assert "Traceback" not in log and '" 500 ' not in log
