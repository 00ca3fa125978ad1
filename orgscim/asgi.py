"""The web app as ``orgscim serve`` runs it: built in each gunicorn worker, behind an asyncio front.

gunicorn's ``asgi`` worker parses HTTP on an asyncio loop, so a client sending its headers or body a byte a
second costs a socket, not a thread. :class:`BufferedWsgi` reads each request body whole on that loop
(at most ``MAX_CONTENT_LENGTH`` + 1 bytes), and only then runs the Flask app, a plain WSGI app, in a pool
of ordinary threads: SQLite connections (one per thread), Argon2id, the blocking ``requests`` calls to
Keycloak and the delivery thread pools behave exactly as in any threaded WSGI server. The pool size bounds
the requests in flight per worker; more wait on the loop, holding no thread.

Fair share between tenants: a request ``heavy_key`` names (orgscim: an org's Bulk, searches and large
collection GETs, the requests whose cost grows with the org) waits on the loop while another one of the same
key runs anywhere on the host (a per-process semaphore, then a byte-range lock of ``<instance>/heavy.lock``
shared by every worker), so one org's expensive requests use at most one core and cannot occupy the threads
the other orgs need. Other requests are not limited per tenant.

The Flask app (and with it every SQLite connection, lease holder, cache and thread pool) is created by
the ASGI lifespan startup, in the worker process after the fork, never in the gunicorn master.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[..., Iterable[bytes]]

log = logging.getLogger("orgscim")

HEAVY_STRIPES = 4096
HEAVY_POLL_SECONDS = 0.01


class HostSlots:
    """One holder per key across the processes of this host: a byte-range lock (stripe = hash of the key) of
    one file, tried without blocking and retried from the event loop. Opened per process (after the fork)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @staticmethod
    def stripe(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % HEAVY_STRIPES

    async def acquire(self, key: str) -> None:
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.stripe(key))
                return
            except OSError:
                await asyncio.sleep(HEAVY_POLL_SECONDS)

    def release(self, key: str) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.stripe(key))


class BufferedWsgi:
    """An ASGI app running a WSGI app built by ``factory`` once per process, with whole requests buffered."""

    def __init__(self, factory: Callable[[], WsgiApp], threads: int = 16, max_body: int | None = None,
                 heavy_key: Callable[[Scope], str | None] = lambda scope: None, heavy_slots: int = 1) -> None:
        self._factory = factory
        self._threads = threads
        self._max_body = max_body
        self._heavy_key = heavy_key
        self._heavy_slots = heavy_slots
        self._heavy: dict[str, asyncio.Semaphore] = {}
        self._host_slots: HostSlots | None = None
        self.app: WsgiApp | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _ensure(self) -> WsgiApp:
        if self.app is None:
            self.app = self._factory()
            config = getattr(self.app, "config", {})
            if self._max_body is None:
                self._max_body = int(config.get("MAX_CONTENT_LENGTH") or 1_048_576)
            if config.get("DATABASE"):
                self._host_slots = HostSlots(os.path.join(os.path.dirname(config["DATABASE"]), "heavy.lock"))
            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="orgscim-req")
        return self.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._ensure()
                except Exception as e:  # the worker must not serve: gunicorn stops with this message
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._ensure()
        assert self._max_body is not None
        body = await _read_body(receive, self._max_body + 1)
        if body is None:  # the client went away before sending its request
            return
        environ = wsgi_environ(scope, body)
        loop = asyncio.get_running_loop()
        key = self._heavy_key(scope)
        if key is None:
            status, headers, chunks = await loop.run_in_executor(self._pool, _run_wsgi, app, environ)
        else:
            slots = self._heavy.setdefault(key, asyncio.Semaphore(self._heavy_slots))
            try:
                async with slots:
                    if self._host_slots is not None:
                        await self._host_slots.acquire(key)
                    try:
                        status, headers, chunks = await loop.run_in_executor(self._pool, _run_wsgi, app, environ)
                    finally:
                        if self._host_slots is not None:
                            self._host_slots.release(key)
            finally:
                if not slots.locked() and self._heavy.get(key) is slots and not getattr(slots, "_waiters", None):
                    del self._heavy[key]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, read on the event loop; stops after ``limit`` bytes (the app then answers 413 from
    the length it sees). None when the client disconnected."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(parts)


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP ``scope`` whose body has been read whole."""
    root = scope.get("root_path", "")
    raw_path = scope.get("raw_path")
    # PEP 3333: PATH_INFO is the percent-decoded path as bytes, carried in a latin-1 str
    path = (unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("latin-1") if raw_path
            else scope["path"].encode("utf-8").decode("latin-1"))
    if root and path.startswith(root):
        path = path[len(root):]
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_LENGTH" or name == "TRANSFER_ENCODING":
            continue  # the body is read whole: its length is what CONTENT_LENGTH says above
        key = "CONTENT_TYPE" if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _run_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    """Call the WSGI app in a pool thread; returns status, headers and the whole body."""
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return (int(status.split(" ", 1)[0]),
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], chunks)


_ORG_PATH = re.compile(r"^/realms/([^/]+)/scim/v2/organizations/([^/]+)(/.*)?$")
_HEAVY = re.compile(r"^/(?:Bulk|\.search|(?:Users|Groups)/\.search)/?$")
_COLLECTION = re.compile(r"^/(?:Users|Groups)/?$")


def org_heavy_key(scope: Scope) -> str | None:
    """``realm/org`` for SCIM requests whose cost grows with the org: Bulk, searches, and collection GETs that
    ask for more than the default page or carry a long filter."""
    m = _ORG_PATH.match(scope.get("path", ""))
    if m is None:
        return None
    rest = m.group(3) or "/"
    heavy = bool(_HEAVY.match(rest))
    if not heavy and scope.get("method") == "GET" and _COLLECTION.match(rest):
        query = {k.lower(): v for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        count = (query.get("count") or ["100"])[0]
        heavy = not count.isdigit() or int(count) > 100 or len((query.get("filter") or [""])[0]) > 256
    return f"{m.group(1)}/{m.group(2)}" if heavy else None


def create(threads: int = 16) -> BufferedWsgi:
    """The ASGI app gunicorn loads in each worker (``orgscim.asgi:create()``); the Flask app is built at the
    worker's lifespan startup. One heavy request per org runs at a time in each worker; and threads that wait
    on SQLite or sockets get the GIL back sooner than Python's default 5 ms (0.2 ms) when another thread computes."""
    from .app import create_app

    sys.setswitchinterval(0.0002)
    return BufferedWsgi(create_app, threads=threads, heavy_key=org_heavy_key)
