"""HTTP transport of the Keycloak admin client: libcurl (pycurl), one handle and connection per thread.

Delivery sends the admin calls of every created user from request and delivery threads, on the host Keycloak
may share, so the client's own CPU per call is part of how fast users reach Keycloak. Measured against Keycloak
26.7.3 (sequential GETs on one keep-alive connection): urllib3 spent 0.92–1.03 ms of CPU per call, most of it in
``http.client``'s header parsing and urllib3's pool and retry bookkeeping; libcurl 0.17–0.18 ms. This transport
keeps the parts of ``requests``' behaviour the admin client relies on and decides them once:

* proxies come from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, as ``requests`` reads them),
  looked up once per Keycloak URL (libcurl's own reading of the environment is switched off);
* TLS is verified against ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` when set, else certifi's bundle;
* errors are ``requests``' exception types (``ConnectionError``, ``Timeout``, ``ConnectTimeout``), so callers and
  test doubles speak one vocabulary;
* no retries and no redirects here: :class:`orgscim.keycloak.client.KeycloakAdmin` decides what is repeated;
* ``timeout`` is what it is to ``requests``: for connecting, and for a pause in the answer (nothing received for
  that long); a large answer that keeps coming may take longer. ``total`` bounds the whole exchange (a caller's
  time budget);
* a handle is made per thread and per process (never shared across a fork), and kept: its connection is reused.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import pycurl
import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

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

    __slots__ = ("status_code", "_head", "_headers", "content")

    def __init__(self, status_code: int, head: list[bytes], content: bytes) -> None:
        self.status_code = status_code
        self._head = head  # the raw header lines, parsed when first read (most answers never are)
        self._headers: Mapping[str, str] | None = None
        self.content = content

    @property
    def headers(self) -> Mapping[str, str]:
        """The header fields, case-insensitive."""
        if self._headers is None:
            self._headers = _headers(self._head)
        return self._headers

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
        self.pool_size = max(1, pool_size)  # threads expected to call at once: each keeps one connection
        self.hooks: list[Hook] = []  # called after every exchange, in the sending thread (metrics, pacing)
        self._local = threading.local()
        self._proxies: dict[str, str] = {}
        self._lock = threading.Lock()

    def _handle(self) -> pycurl.Curl:
        """This thread's libcurl handle (a new one in a forked child: it never uses its parent's sockets)."""
        curl: pycurl.Curl | None = getattr(self._local, "curl", None)
        if curl is None or self._local.pid != os.getpid():
            curl = pycurl.Curl()
            curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: safe in threads
            curl.setopt(pycurl.FOLLOWLOCATION, 0)
            curl.setopt(pycurl.ACCEPT_ENCODING, None)  # no compression: the admin API's answers are small
            bundle = _ca_bundle()
            if bundle:
                curl.setopt(pycurl.CAINFO, bundle)
            self._local.curl, self._local.pid = curl, os.getpid()
        return curl

    def _drop_handle(self) -> None:
        curl = getattr(self._local, "curl", None)
        self._local.curl = None
        if curl is not None:
            curl.close()

    def _proxy(self, url: str) -> str:
        """The proxy for ``url``'s origin from the environment, as ``requests`` decides it; "" for none."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        proxy = self._proxies.get(origin)
        if proxy is None:
            proxies = get_environ_proxies(origin)
            proxy = proxies.get(parts.scheme) or proxies.get("all") or ""
            with self._lock:
                self._proxies[origin] = proxy
        return proxy

    def request(self, method: str, url: str, *, params: Mapping[str, Scalar] | None = None,
                headers: Mapping[str, str] | None = None, json: JSONValue = None, data: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float = 10.0, total: float | None = None) -> Response:
        """One request; ``json`` is sent as a JSON body, ``data`` as a form, ``auth`` as HTTP Basic; ``timeout``
        for connecting and for each pause in the answer, ``total`` (seconds) for the whole exchange."""
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
        return self.send(method.upper(), url, body, out, timeout, total)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float,
             total: float | None = None) -> Response:
        """Send a prepared request; ``requests``' exception types on failure."""
        started = time.perf_counter()
        curl = self._handle()
        chunks: list[bytes] = []
        head: list[bytes] = []
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.PROXY, self._proxy(url))
        if method == "GET" and body is None:
            curl.setopt(pycurl.HTTPGET, 1)
            curl.unsetopt(pycurl.CUSTOMREQUEST)
        else:
            curl.setopt(pycurl.POSTFIELDS, body or b"")  # any body, even an empty one, is sent with its length
            if method == "POST":
                curl.unsetopt(pycurl.CUSTOMREQUEST)
            else:
                curl.setopt(pycurl.CUSTOMREQUEST, method)
        # "Expect:": no 100-continue round trip before a body over 1 KiB (a batch of users)
        curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"])
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(timeout * 1000)))
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)  # less than a byte a second for `timeout` s: a read timeout
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(timeout)))
        curl.setopt(pycurl.TIMEOUT_MS, 0 if total is None else max(1, int(total * 1000)))
        curl.setopt(pycurl.WRITEFUNCTION, chunks.append)
        curl.setopt(pycurl.HEADERFUNCTION, head.append)
        try:
            curl.perform()
        except pycurl.error as exc:
            connected = curl.getinfo(pycurl.PRETRANSFER_TIME) > 0  # the request was on its way
            self._drop_handle()
            self._observe(method, url, None, started)
            raise _as_requests_error(exc, connected) from exc
        status = int(curl.getinfo(pycurl.RESPONSE_CODE))
        self._observe(method, url, status, started)
        return Response(status, head, b"".join(chunks))

    def _observe(self, method: str, url: str, status: int | None, started: float) -> None:
        if self.hooks:
            exchange = Exchange(method, url, status, time.perf_counter() - started)
            for hook in self.hooks:
                hook(exchange)


def _headers(lines: list[bytes]) -> CaseInsensitiveDict[str]:
    """The header fields of the last response block (a proxy's ``CONNECT`` answer comes first)."""
    out: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if line.startswith("HTTP/"):
            out = CaseInsensitiveDict()
        elif ":" in line:
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _dumps(value: JSONValue) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()



# libcurl error codes (https://curl.se/libcurl/c/libcurl-errors.html)
_TIMEDOUT = 28
_TLS = {35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98}


def _as_requests_error(exc: pycurl.error, connected: bool) -> requests.RequestException:
    """The ``requests`` exception ``requests`` itself raises for this libcurl error."""
    code = exc.args[0] if exc.args else None
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    if code == _TIMEDOUT:
        return requests.ReadTimeout(text) if connected else requests.ConnectTimeout(text)
    if code in _TLS:
        return requests.exceptions.SSLError(text)
    return requests.ConnectionError(text)  # refused, unresolvable, reset, closed, incomplete answer
