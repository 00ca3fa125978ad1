"""A small loopback HTTP proxy in front of Keycloak for benchmarks and tests: counts admin API calls by
method and path (ids folded to ``{id}``) and the users created (by ``POST /users`` or a partial import, per
username), and on demand answers ``429`` with ``Retry-After`` to every n-th call (recording whether a refused
write is repeated too early) or delays every answer.

    state = ProxyState("http://127.0.0.1:8080"); server = make_proxy(state)
    ... point orgscim at f"http://127.0.0.1:{server.server_address[1]}" ...; server.shutdown()
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .keycloak import free_port

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "content-length", "host"}


@dataclass
class ProxyState:
    upstream: str
    throttle_every: int = 0  # answer 429 to every n-th admin call (0: never)
    throttle_status: int = 429  # or 503 (Keycloak overloaded or restarting behind a load balancer)
    retry_after: float = 1.0
    delay: float = 0.0  # seconds every admin call waits before it is forwarded
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)  # username -> users Keycloak created with it
    refused_at: dict[str, float] = field(default_factory=dict)  # call key -> when it got its 429
    early: int = 0  # writes repeated before their Retry-After
    early_calls: list[str] = field(default_factory=list)
    throttled: int = 0
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.statuses.clear()
            self.created.clear()
            self.refused_at.clear()
            self.early_calls.clear()
            self.early = self.throttled = self.seen = 0


def _created_usernames(method: str, path: str, body: bytes) -> list[str]:
    """The usernames a ``POST /users`` or ``POST /partialImport`` asks Keycloak to create (lower case)."""
    if method != "POST" or not path.endswith(("/users", "/partialImport")):
        return []
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return []
    reps = data.get("users") if path.endswith("/partialImport") and isinstance(data, dict) else [data]
    return [str(r.get("username", "")).lower() for r in reps or [] if isinstance(r, dict)]


def _added(status: int, asked: list[str], data: bytes) -> list[str]:
    """The usernames Keycloak created, from its answer (201 to ``POST /users``, the results of an import)."""
    if status == 201:
        return asked
    try:
        results = json.loads(data).get("results") or []
    except (ValueError, AttributeError):
        return []
    return [str(r.get("resourceName", "")).lower() for r in results if r.get("action") == "ADDED"]


def make_proxy(state: ProxyState) -> ThreadingHTTPServer:
    up = urlsplit(state.upstream)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            admin = "/admin/realms/" in path
            key = f"{self.command} {_UUID.sub('{id}', path)}"
            creates = _created_usernames(self.command, path, body)
            # a write is judged per user it creates (a partial import names several, and another batch may carry
            # the same user again), any other write by its exact path and body
            calls = [f"create {u}" for u in creates] or [f"{self.command} {self.path} {hashlib.sha1(body).hexdigest()}"]
            with state.lock:
                state.counts[key if admin else "token"] += 1
                now = time.monotonic()
                for call in calls:
                    refused = state.refused_at.pop(call, None)
                    if refused is not None and now - refused < state.retry_after - 0.05:
                        state.early += 1
                        state.early_calls.append(call)
                state.seen += admin
                throttle = admin and state.throttle_every and state.seen % state.throttle_every == 0
                if throttle:
                    state.throttled += 1
                    # Only writes are followed. The same GET (the user profile, an organization) may come from
                    # another process.
                    if self.command != "GET":
                        for call in calls:
                            state.refused_at[call] = now
            if admin and state.delay:
                time.sleep(state.delay)
            if throttle:
                self.send_response(state.throttle_status)
                self.send_header("Retry-After", f"{state.retry_after:g}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with state.lock:
                state.statuses[f"{key if admin else 'token'} {resp.status}"] += 1
                if creates and resp.status in (200, 201):
                    state.created.update(_added(resp.status, creates, data))
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
