"""HTTP transport of the Keycloak admin client: one urllib3 connection pool per process and Keycloak URL.

Delivery sends two admin calls per created user from up to ``DELIVERY_WORKERS`` threads, so the client's own CPU
per call is part of how fast users reach Keycloak. ``requests`` spends about twice urllib3's CPU per call on
preparing the request, merging environment settings and looking up proxies again for every call; this
transport keeps the parts of ``requests``' behaviour the admin client relies on and decides them once:

* proxies come from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, as ``requests`` reads them),
  looked up once per Keycloak URL;
* TLS is verified against ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` when set, else certifi's bundle;
* errors are ``requests``' exception types (``ConnectionError``, ``Timeout``, ``ConnectTimeout``), so callers and
  test doubles speak one vocabulary;
* no retries and no redirects here: :class:`orgscim.keycloak.client.KeycloakAdmin` decides what is repeated.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.utils import get_environ_proxies
from urllib3 import exceptions as u3
from urllib3.exceptions import HTTPError

from orgscim.model.types import JSONValue, Scalar


class Exchange(NamedTuple):
    """One request as the transport's hooks see it (``status`` None: no answer, a connection error or timeout)."""

    method: str
    url: str
    status: int | None
    seconds: float


Hook = Callable[[Exchange], None]


class Response:
    """The parts of an HTTP answer the admin client reads (a subset of ``requests.Response``)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # case-insensitive (urllib3's HTTPHeaderDict)
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> JSONValue:
        return json.loads(self.content)


def _ca_bundle() -> str | None:
    explicit = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or os.environ.get(
        "SSL_CERT_FILE")
    if explicit:
        return explicit
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return str(certifi.where())


class Transport:
    """Sends requests with the call shape of ``requests.Session.request``; made per process (after a fork)."""

    def __init__(self, pool_size: int = 10) -> None:
        self.pool_size = max(1, pool_size)
        self.hooks: list[Hook] = []  # called after every exchange, in the sending thread (metrics, pacing)
        self._managers: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            if self._pid != os.getpid():  # a forked child never shares its parent's sockets
                self._managers, self._pid = {}, os.getpid()
            manager = self._managers.get(origin)
            if manager is None:
                kwargs: dict[str, Any] = {"num_pools": 4, "maxsize": self.pool_size, "block": False,
                                          "retries": False}
                if parts.scheme == "https":
                    kwargs["ca_certs"] = _ca_bundle()
                proxies = get_environ_proxies(origin)
                proxy = proxies.get(parts.scheme) or proxies.get("all")
                manager = urllib3.ProxyManager(proxy, **kwargs) if proxy else urllib3.PoolManager(**kwargs)
                self._managers[origin] = manager
            return manager

    def request(self, method: str, url: str, *, params: Mapping[str, Scalar] | None = None,
                headers: Mapping[str, str] | None = None, json: JSONValue = None, data: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float = 10.0) -> Response:
        """One request; ``json`` is sent as a JSON body, ``data`` as a form, ``auth`` as HTTP Basic."""
        out: dict[str, str] = dict(headers or {})
        body: bytes | None = None
        if params:
            query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        if json is not None:
            body = _dumps(json)
            out.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = urlencode(data).encode()
            out.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if auth is not None:
            out["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode("latin-1")).decode()
        return self.send(method.upper(), url, body, out, timeout)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float) -> Response:
        """Send a prepared request; ``requests``' exception types on failure."""
        started = time.perf_counter()
        try:
            raw = self._manager(url).request(method, url, body=body, headers=headers, redirect=False,
                                             timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except HTTPError as exc:
            self._observe(method, url, None, started)
            raise _as_requests_error(exc) from exc
        self._observe(method, url, raw.status, started)
        return Response(raw.status, raw.headers, raw.data or b"")

    def _observe(self, method: str, url: str, status: int | None, started: float) -> None:
        if self.hooks:
            exchange = Exchange(method, url, status, time.perf_counter() - started)
            for hook in self.hooks:
                hook(exchange)


def _dumps(value: JSONValue) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()



def _as_requests_error(exc: HTTPError) -> requests.RequestException:
    """The ``requests`` exception ``requests`` itself raises for this urllib3 error."""
    if isinstance(exc, u3.NewConnectionError):  # before ConnectTimeoutError: it is a subclass of it
        return requests.ConnectionError(str(exc))
    if isinstance(exc, u3.ConnectTimeoutError):
        return requests.ConnectTimeout(str(exc))
    if isinstance(exc, u3.ReadTimeoutError):
        return requests.ReadTimeout(str(exc))
    if isinstance(exc, u3.SSLError):
        return requests.exceptions.SSLError(str(exc))
    return requests.ConnectionError(str(exc))  # reset, closed, incomplete answer
