"""The request logic every Keycloak admin endpoint group shares: token, retries, 429/Retry-After, time budget.

:class:`AdminBase` talks to one realm as one confidential client (client-credentials grant). The endpoint
groups (:mod:`~orgscim.keycloak.users`, :mod:`~orgscim.keycloak.organizations`,
:mod:`~orgscim.keycloak.org_groups`, :mod:`~orgscim.keycloak.realm`) subclass it and
:class:`~orgscim.keycloak.client.KeycloakAdmin` composes them; the HTTP transport is
:mod:`~orgscim.keycloak.transport`.

* The access token is cached until 30 s before it expires; a 401 from the admin API fetches a new
  token and repeats the call once.
* Every request has a timeout. Only GETs are retried (connection errors, timeouts, 5xx), with a short
  backoff; writes are never repeated behind the caller's back, except after 429/408, which say the request
  was not processed (RFC 6585 §4, RFC 9110 §15.5.9): any method waits out ``Retry-After`` (when short) and is
  sent again, else :class:`~orgscim.keycloak.errors.RateLimited` carries ``retry_after`` to the caller.
* :meth:`AdminBase.deadline` bounds everything a thread sends within a block (request timeouts are cut to
  the time left), so an inline delivery never outlives its budget.
* List endpoints default to ``max=10`` server-side, so :meth:`AdminBase.list_page` and
  :meth:`AdminBase.paged` always send ``first``/``max``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import NotRequired, TypeAlias, TypedDict
from urllib.parse import quote

import requests

from orgscim.keycloak.errors import (
    BudgetSpent,
    KeycloakError,
    KeycloakUnavailable,
    Unauthorized,
    error_for_status,
    retry_after_seconds,
)
from orgscim.keycloak.transport import Response, Transport
from orgscim.model.types import JSON, JSONValue, Scalar

Params: TypeAlias = Mapping[str, Scalar]
"""Query parameters of an admin API call (``None`` values are left out)."""

_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_TOKEN_EARLY_REFRESH = 30.0  # seconds before expiry at which a cached token is replaced
_MIN_REQUEST_SECONDS = 0.05  # a request with less time left than this is not sent


class _Send(TypedDict):
    """The keyword arguments of one :meth:`Transport.request`."""

    params: Params | None
    headers: dict[str, str]
    timeout: float
    total: float | None
    json: NotRequired[JSONValue]


def flag(value: bool) -> str:
    """A boolean query parameter as Keycloak reads it."""
    return "true" if value else "false"


def search_params(search: str | None, exact: bool | None, brief: bool, q: str | None = None) -> dict[str, Scalar]:
    """The query parameters the organization and org-group list endpoints share."""
    return {"search": search, "exact": None if exact is None else flag(exact), "q": q,
            "briefRepresentation": flag(brief)}


def seg(value: str) -> str:
    """*value* as one URL path segment (RFC 3986 §3.3: ``/`` and the rest percent-encoded)."""
    return quote(value, safe="")


def _b64url_json(segment: str) -> JSON:
    padded = segment + "=" * (-len(segment) % 4)
    claims: JSON = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    return claims


def _id_from_location(resp: Response) -> str:
    loc = resp.headers.get("Location")
    if not loc:
        raise KeycloakError(resp.status_code, None, message="201 without a Location header")
    return loc.rstrip("/").rsplit("/", 1)[-1]


def _body(resp: Response) -> JSONValue:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


class AdminBase:
    """Admin REST access to one realm, authenticated as a confidential client's service account.

    :param base_url: Keycloak root URL, e.g. ``http://127.0.0.1:8080`` (no ``/admin``).
    :param realm: the realm to manage; the token is fetched from the same realm.
    :param client_id: confidential client with a service account.
    :param client_secret: its secret.
    :param timeout: seconds for each HTTP request (connect and read).
    :param session: the HTTP transport to use (:class:`Transport`; one is created otherwise).
    :param page_size: ``max`` used by the ``iter_*`` generators.
    :param retries: extra attempts for GETs on connection errors / timeouts / 5xx.
    :param backoff: seconds before the first retry (doubled each time).
    :param pool_size: connections kept per host when the client makes its own session; size it to the number
        of threads that use this client at once (one client is shared by a process's delivery threads).
    :param max_wait: the longest ``Retry-After`` the client waits out itself; longer ones raise
        :class:`~orgscim.keycloak.errors.RateLimited` so the caller can reschedule.
    """

    def __init__(
        self,
        base_url: str,
        realm: str,
        client_id: str,
        client_secret: str,
        timeout: float = 10,
        session: Transport | None = None,
        *,
        page_size: int = 100,
        retries: int = 2,
        backoff: float = 0.2,
        pool_size: int = 10,
        max_wait: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout
        self.session = Transport(pool_size) if session is None else session
        self.max_wait = max_wait
        self._local = threading.local()
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    # -- URLs and token ---------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        """``{base}/admin/realms/{realm}``."""
        return f"{self.base_url}/admin/realms/{seg(self.realm)}"

    @property
    def token_url(self) -> str:
        """The realm's OIDC token endpoint."""
        return f"{self.base_url}/realms/{seg(self.realm)}/protocol/openid-connect/token"

    def token(self) -> str:
        """A valid access token (cached until 30 s before it expires)."""
        with self._token_lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            self._token, self._token_expires = self._fetch_token()
            return self._token

    def invalidate_token(self) -> None:
        """Forget the cached token; the next call fetches a new one."""
        with self._token_lock:
            self._token = None
            self._token_expires = 0.0

    def _fetch_token(self) -> tuple[str, float]:
        """Client-credentials grant (RFC 6749 §4.4) with HTTP Basic client authentication (§2.3.1)."""
        url = self.token_url
        try:
            resp = self.session.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self._client_secret),
                timeout=self._timeout("POST", url),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise KeycloakUnavailable(None, str(exc), method="POST", url=url) from exc
        if resp.status_code != 200:
            body = _body(resp)
            if resp.status_code in (400, 401):
                # invalid_client / unauthorized_client: wrong id or secret, or no service account
                raise Unauthorized(resp.status_code, body, method="POST", url=url)
            raise error_for_status(resp.status_code, body, method="POST", url=url,
                                   retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        data: JSON = resp.json()
        lifetime = float(data.get("expires_in", 60))
        token: str = data["access_token"]
        return token, time.monotonic() + max(0.0, lifetime - _TOKEN_EARLY_REFRESH)

    def token_claims(self) -> JSON:
        """The claims of the current access token (decoded, not verified: it came straight from Keycloak)."""
        parts = self.token().split(".")
        if len(parts) < 2:
            raise KeycloakError(None, None, message="access token is not a JWT")
        return _b64url_json(parts[1])

    # -- one request ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: JSONValue = None,
        has_body: bool = False,
        expected: Iterable[int] = (200,),
    ) -> Response:
        """Send one admin API request and map errors to exceptions.

        *path* is relative to :attr:`admin_url` (``"/users"``) or absolute (``"http..."``). Send a JSON
        body with *json_body* (``has_body=True`` sends it even when it is ``None``). A 401 renews the
        token and repeats the request once; GETs are retried on connection errors, timeouts and 5xx.
        429 and 408 mean the request was not processed (RFC 6585 §4, RFC 9110 §15.5.9), so any method is
        repeated after ``Retry-After`` when that wait fits the deadline (:meth:`deadline`); otherwise
        :class:`~orgscim.keycloak.errors.RateLimited` / :class:`KeycloakUnavailable` tell the caller to come
        back later.
        """
        url = path if path.startswith(("http://", "https://")) else self.admin_url + path
        method = method.upper()
        send_json = has_body or json_body is not None
        attempts = 1 + (self.retries if method == "GET" else 0)
        throttled_left = self.retries  # repeats after 429/408, any method
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                token = self.token()
            except KeycloakUnavailable as exc:
                if attempt < attempts and not isinstance(exc, BudgetSpent) and self._pause(self._backoff(attempt)):
                    continue
                raise
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            kwargs: _Send = {"params": params, "headers": headers, "timeout": self._timeout(method, url),
                             "total": self.remaining()}  # a deadline bounds the whole exchange
            if send_json:
                kwargs["json"] = json_body
            try:
                resp = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if isinstance(exc, requests.Timeout) and kwargs["timeout"] < self.timeout:
                    # cut short by the caller's deadline: no sign that Keycloak is down (a write may have landed)
                    raise BudgetSpent(None, str(exc), method=method, url=url, message="time budget spent") from exc
                if attempt < attempts and self._pause(self._backoff(attempt)):
                    continue
                raise KeycloakUnavailable(None, str(exc), method=method, url=url) from exc
            if resp.status_code == 401 and not renewed:
                renewed = True
                attempt -= 1  # a token renewal is not a retry
                self.invalidate_token()
                continue
            if resp.status_code in (429, 408):
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                if throttled_left > 0 and self._pause(self._backoff(1) if wait is None else wait, self.max_wait):
                    throttled_left -= 1
                    attempt -= 1
                    continue
                raise error_for_status(resp.status_code, _body(resp), method=method, url=url, retry_after=wait)
            if resp.status_code in _RETRY_STATUSES and attempt < attempts and self._pause(self._backoff(attempt)):
                continue
            if resp.status_code in tuple(expected):
                return resp
            raise error_for_status(resp.status_code, _body(resp), method=method, url=url)

    # -- time budget ------------------------------------------------------------------------------

    @contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        """Bound every request made by this thread inside the block to *seconds* in total: each request's
        timeout is cut to what is left, waits (backoff, ``Retry-After``) that do not fit are skipped, and a
        request with no time left raises :class:`BudgetSpent`. Nested blocks keep the earlier deadline."""
        outer = getattr(self._local, "deadline", None)
        mine = None if seconds is None else time.monotonic() + seconds
        self._local.deadline = mine if outer is None else (outer if mine is None else min(outer, mine))
        try:
            yield
        finally:
            self._local.deadline = outer

    def remaining(self) -> float | None:
        """Seconds left before this thread's deadline (None: no deadline)."""
        end: float | None = getattr(self._local, "deadline", None)
        return None if end is None else end - time.monotonic()

    def _timeout(self, method: str, url: str) -> float:
        left = self.remaining()
        if left is None:
            return self.timeout
        if left < _MIN_REQUEST_SECONDS:
            raise BudgetSpent(None, None, method=method, url=url, message="time budget spent")
        return min(self.timeout, left)

    def _backoff(self, attempt: int) -> float:
        return self.backoff * (2.0 ** (attempt - 1))

    def _pause(self, seconds: float, limit: float | None = None) -> bool:
        """Sleep *seconds* if that fits the deadline (and *limit*); False (no sleep) when it does not."""
        left = self.remaining()
        if (limit is not None and seconds > limit) or (left is not None and seconds + _MIN_REQUEST_SECONDS > left):
            return False
        time.sleep(seconds)
        return True

    # -- answer shapes ----------------------------------------------------------------------------

    def _get(self, path: str, params: Params | None = None) -> JSONValue:
        return self.request("GET", path, params=params).json()

    def _get_object(self, path: str, params: Params | None = None) -> JSON:
        """GET an endpoint that answers one JSON object (a representation)."""
        rep: JSON = self._get(path, params)
        return rep

    def _get_list(self, path: str, params: Params | None = None) -> list[JSON]:
        """GET an endpoint that answers a JSON array of representations."""
        reps: list[JSON] = self._get(path, params)
        return reps

    def _count(self, path: str, params: Params | None = None) -> int:
        """GET a ``.../count`` endpoint (a bare JSON number)."""
        return int(self._get(path, params))

    def _create(self, path: str, body: JSONValue) -> str:
        """POST expecting 201 + Location; return the new id."""
        return _id_from_location(self.request("POST", path, json_body=body, has_body=True, expected=(201,)))

    def _no_content(self, method: str, path: str, body: JSONValue = None, has_body: bool = False) -> None:
        self.request(method, path, json_body=body, has_body=has_body, expected=(200, 201, 204))

    # -- paging -----------------------------------------------------------------------------------

    def list_page(self, path: str, params: Params | None = None, first: int = 0, max: int = 100) -> list[JSON]:
        """One page of a list endpoint (``first``/``max``)."""
        q: dict[str, Scalar] = {k: v for k, v in (params or {}).items() if v is not None}
        q.update(first=first, max=max)
        return self._get_list(path, q)

    def paged(
        self,
        path: str,
        params: Params | None = None,
        *,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Iterator[JSON]:
        """Yield every item of a list endpoint, fetching ``page_size`` items per request.

        Stops after a short page (or after *limit* items). Only one page is held in memory. This is
        offset paging: items created or deleted while iterating may be missed or seen twice, so
        callers that must see everything (reconcile) should tolerate that or re-run.
        """
        size = page_size or self.page_size
        first = 0
        yielded = 0
        while True:
            page = self.list_page(path, params, first=first, max=size)
            for item in page:
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if len(page) < size:
                return
            first += size
