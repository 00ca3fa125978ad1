"""``orgscim serve``: per-process state after the fork, slow clients, the access log, concurrency (issue 9).

The live tests run the real console script (``orgscim_dev.live.LiveServer``); the bridge tests drive
``orgscim.asgi.BufferedWsgi`` directly with ASGI messages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import DB_NAME

from orgscim.asgi import BufferedWsgi
from orgscim.model.contract import SchemaError
from orgscim.store.db import Database
from orgscim_dev.live import LiveServer, open_files, slow_clients


def call(method: str, url: str, headers: dict[str, str], body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    server = LiveServer(tmp_path_factory.mktemp("serving") / "instance")
    try:
        server.cli("db", "upgrade")
        org = server.add_org("serving")
        server.start()
        yield server, org
    finally:
        server.stop()


def test_master_opens_no_database_and_each_worker_its_own(live: Any) -> None:
    server, org = live
    for i in range(6):  # spread over both workers
        status, _ = call("POST", f"{org.base_url}/Users", org.headers, {"userName": f"fork-{i}@example.com"})
        assert status == 201
    db_path = str(server.instance / DB_NAME)
    assert not [p for p in open_files(server.master_pid) if p.startswith(db_path)], "the master holds the database"
    workers = server.worker_pids()
    assert len(workers) == 2
    for pid in workers:
        assert db_path in open_files(pid), f"worker {pid} has no connection of its own"


def test_access_log_has_no_user_names_or_filter_values(live: Any) -> None:
    server, org = live
    url = f"{org.base_url}/Users?filter=" + urllib.request.quote('userName eq "hidden.person@example.com"')
    assert call("GET", url, org.headers)[0] == 200
    basic = base64.b64encode(b"basic-user-in-log:wrong-password").decode()
    assert call("GET", f"{org.base_url}/Users", {"Authorization": f"Basic {basic}"})[0] == 401
    time.sleep(0.5)
    log = server.log_path.read_text(errors="replace")
    assert f'"GET /realms/serving/scim/v2/organizations/{org.org_id}/Users" 200' in log
    assert "hidden.person" not in log and "basic-user-in-log" not in log and "filter=" not in log


def test_slow_clients_do_not_starve_normal_requests(live: Any) -> None:
    """200 connections sending their headers (or body) a byte at a time; normal requests are still served."""
    server, org = live
    with slow_clients(server.port, 200):
        time.sleep(1)
        served = 0
        for _ in range(15):
            status, _ = call("GET", f"{org.base_url}/Users?count=1", org.headers, timeout=5)
            served += status == 200
    assert served == 15


def _asgi_get(bridge: BufferedWsgi, path: str, body: bytes = b"", headers: list | None = None) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    chunks = [body[i:i + 7] for i in range(0, len(body), 7)] or [b""]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST" if body else "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"a=1&b=%C3%A9", "headers": headers or [], "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 5555), "scheme": "http", "http_version": "1.1", "root_path": ""}
    asyncio.run(bridge(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_large_request_right_behind_another_on_the_same_connection_is_answered(live: Any) -> None:
    """The bytes of a request that arrive while the previous one is answered (pipelined here, which makes the
    timing certain; a client sending at once on its keep-alive connection hit the same) were cut at 64 KiB by
    gunicorn's C parser and the connection closed without an answer (gunicorn_conf: ``http_parser``)."""
    _, org = live
    url = urllib.parse.urlsplit(org.base_url)
    def post(body: bytes) -> bytes:
        return (f"POST {url.path}/Users HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: {org.headers['Authorization']}\r\nContent-Type: application/scim+json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    big = json.dumps({"userName": "pipelined-big@example.com", "title": "t" * 200_000}).encode()
    statuses = []
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(post(json.dumps({"userName": "pipelined-small@example.com"}).encode()) + post(big))
        buffered = b""
        while len(statuses) < 2:
            head, sep, rest = buffered.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if sep and length is not None and len(rest) >= length:
                statuses.append(int(head.split()[1]))
                buffered = rest[length:]
                continue
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(statuses)} answer(s)"
            buffered += chunk
    assert statuses == [201, 201]


def test_bridge_runs_sixteen_requests_at_once() -> None:
    """16 in-flight requests per worker (each may wait on Keycloak): they all run at the same time."""
    barrier = threading.Barrier(16, timeout=10)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        barrier.wait()  # BrokenBarrierError unless 16 requests are in the app together
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    bridge = BufferedWsgi(lambda: app, threads=16, max_body=1000)
    results: list[Any] = []

    def one() -> None:
        results.append(_asgi_get(bridge, "/x"))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [(200, b"ok")] * 16


def test_bridge_passes_the_whole_request() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("201 Created", [("X-A", "1")])
        return [b"a", b"b"]

    bridge = BufferedWsgi(lambda: app, threads=2, max_body=1000)
    status, body = _asgi_get(bridge, "/p/%C3%A9%2Fx", b'{"userName": "x"}',
                             [(b"content-type", b"application/scim+json"), (b"x-b", b"1"), (b"x-b", b"2")])
    assert (status, body) == (201, b"ab")
    assert seen["PATH_INFO"] == "/p/é/x".encode().decode("latin-1")
    assert seen["QUERY_STRING"] == "a=1&b=%C3%A9" and seen["CONTENT_TYPE"] == "application/scim+json"
    assert seen["body"] == b'{"userName": "x"}' and seen["CONTENT_LENGTH"] == "17" and seen["HTTP_X_B"] == "1,2"


def test_bridge_stops_reading_past_the_limit() -> None:
    lengths: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        lengths.append(environ["CONTENT_LENGTH"])
        start_response("413 Request Entity Too Large", [])
        return []

    bridge = BufferedWsgi(lambda: app, threads=2, max_body=20)
    assert _asgi_get(bridge, "/x", b"x" * 500)[0] == 413
    assert int(lengths[0]) <= 28  # read up to the limit (+ one chunk), not the whole body


@pytest.fixture
def newer_db(instance: Path) -> Path:
    db = Database(instance / DB_NAME)
    db.conn.execute(f"PRAGMA user_version = {db.latest_version + 1}")
    db.close()
    return instance


def test_a_database_newer_than_the_code_is_refused(newer_db: Path) -> None:
    from orgscim.app import create_app

    with pytest.raises(SchemaError, match="newer than this orgscim"):
        create_app({"DATABASE": str(newer_db / DB_NAME)})
    server = LiveServer(newer_db)
    for args in (["org", "list"], ["worker", "--once"], ["db", "upgrade"], ["serve", "--port", str(server.port)]):
        with pytest.raises(RuntimeError, match="newer than this orgscim"):
            server.cli(*args, timeout=30)
    assert sqlite3.connect(newer_db / DB_NAME).execute("PRAGMA user_version").fetchone()[0] == \
        Database(newer_db / DB_NAME).latest_version + 1
