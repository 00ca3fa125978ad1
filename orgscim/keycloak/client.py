"""Keycloak admin REST client for orgscim (Keycloak 26.x, native Organizations API).

One :class:`KeycloakAdmin` talks to one realm as one confidential client (client-credentials grant).

Behaviour, in short:

* The access token is cached until 30 s before it expires; a 401 from the admin API fetches a new
  token and repeats the call once.
* Every request has a timeout. Only GETs are retried (connection errors, timeouts, 5xx), with a short
  backoff; writes are never repeated behind the caller's back, except after 429/408, which say the request
  was not processed: any method waits out ``Retry-After`` (when short) and is sent again, else
  :class:`RateLimited` carries ``retry_after`` to the caller.
* :meth:`KeycloakAdmin.deadline` bounds everything a thread sends within a block (request timeouts are cut
  to the time left), so an inline delivery never outlives its budget.
* Status handling is exact: 201 answers give the new id from ``Location``; 204 gives ``None``; 404
  raises :class:`NotFound`, 409 :class:`KeycloakConflict`, other refusals :class:`KeycloakError`; connection
  problems and 5xx raise :class:`KeycloakUnavailable`.
* List endpoints default to ``max=10`` server-side, so every list call here pages explicitly.
  ``list_*`` return one page (``first``/``max``); ``iter_*`` are generators that fetch page after page
  and hold one page in memory at a time.

Facts verified against Keycloak 26.7.3 (see ``tests/keycloak/test_client.py``):

* Organization group endpoints (26.6+): ``/organizations/{org}/groups`` (GET list, POST create -> 201),
  ``/organizations/{org}/groups/{group}`` (GET, PUT rename -> 204, DELETE -> 204),
  ``/organizations/{org}/groups/{group}/members`` (GET), ``.../members/{user}`` (PUT add -> 204, 409 if
  already in; DELETE -> 204, also when not in), ``/organizations/{org}/members/{user}/groups`` (GET).
  Adding a user who is not a member of the organization answers 400.
* ``PUT /users/{id}`` with ``attributes`` rebuilds the whole profile (absent email/names are cleared,
  absent username is a 400); without ``attributes`` it is a partial update. :meth:`KeycloakAdmin.update_user`
  makes both behave like the partial update.
* ``q=attr:value`` user search matches exactly but case-insensitively; values with blanks must be
  quoted. :meth:`KeycloakAdmin.find_users_by_attribute` quotes and re-checks exactly.
* Service-account roles (realm-management) in 26.7: organization endpoints accept
  ``manage-organizations`` (or ``manage-realm``); member endpoints also need ``manage-users``; the user
  profile PUT needs ``manage-realm``; identity providers need ``view-identity-providers`` (an org's IdP
  list needs it *and* ``view-organizations``); client lookup needs ``view-clients`` (``query-clients``
  alone answers an empty list).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from orgscim.keycloak.errors import (
    BadRequest,
    BudgetSpent,
    Forbidden,
    KeycloakConflict,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
    error_for_status,
    retry_after_seconds,
)
from orgscim.keycloak.transport import Response, Transport

__all__ = [
    "BadRequest",
    "BudgetSpent",
    "Forbidden",
    "KeycloakAdmin",
    "KeycloakConflict",
    "KeycloakError",
    "KeycloakUnavailable",
    "NotFound",
    "REQUIRED_ROLES",
    "RateLimited",
    "Unauthorized",
    "required_roles",
]

JSON = dict[str, Any]

#: realm-management roles orgscim's service account needs (Keycloak 26.7+), and why.
REQUIRED_ROLES: dict[str, str] = {
    "manage-users": "create, update, disable and delete users; org membership; federated identity links",
    "view-users": "read users and organization members",
    "query-users": "search users",
    "manage-realm": "declare orgscim's attributes in the realm's user profile",
    "view-realm": "read the realm and its user profile",
    "manage-organizations": "organization members and organization groups",
    "view-organizations": "discover organizations and read their groups and identity providers",
    "view-identity-providers": "read the identity provider an organization's users are linked to",
    "view-clients": "resolve client ids (KEYCLOAK auth mode allow lists)",
}

# Before 26.7 the organization and identity-provider roles did not exist; manage-realm / view-realm
# covered them (DESIGN.md §4). Not verified live; 26.7.3 is.
_PRE_26_7_EQUIVALENT = {
    "manage-organizations": "manage-realm",
    "view-organizations": "view-realm",
    "view-identity-providers": "view-realm",
}

# user-profile fields carried at the top level of UserRepresentation
_CORE_PROFILE_FIELDS = ("username", "email", "firstName", "lastName")
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_TOKEN_EARLY_REFRESH = 30.0  # seconds before expiry at which a cached token is replaced
_MIN_REQUEST_SECONDS = 0.05  # a request with less time left than this is not sent


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def required_roles(server_version: str | None = None) -> list[str]:
    """The realm-management roles orgscim needs on a server of *server_version* (None: newest)."""
    roles = list(REQUIRED_ROLES)
    if server_version and _version_tuple(server_version) < (26, 7):
        roles = list(dict.fromkeys(_PRE_26_7_EQUIVALENT.get(r, r) for r in roles))
    return roles


def _b64url_json(segment: str) -> JSON:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _id_from_location(resp: Response) -> str:
    loc = resp.headers.get("Location")
    if not loc:
        raise KeycloakError(resp.status_code, None, message="201 without a Location header")
    return loc.rstrip("/").rsplit("/", 1)[-1]


def _search_params(search: str | None, exact: bool | None, brief: bool, q: str | None = None) -> JSON:
    """The query parameters the organization and org-group list endpoints share."""
    return {"search": search, "exact": None if exact is None else _bool(exact), "q": q,
            "briefRepresentation": _bool(brief)}


def _bool(value: bool) -> str:
    return "true" if value else "false"


class KeycloakAdmin:
    """Admin REST client for one realm, authenticated as a confidential client's service account.

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
        :class:`RateLimited` so the caller can reschedule.
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
        self._server_version: str | None = None

    def __repr__(self) -> str:
        return f"KeycloakAdmin({self.base_url!r}, realm={self.realm!r}, client_id={self.client_id!r})"

    # ---------------------------------------------------------------------------------------------
    # URLs and token
    # ---------------------------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        """``{base}/admin/realms/{realm}``."""
        return f"{self.base_url}/admin/realms/{quote(self.realm, safe='')}"

    @property
    def token_url(self) -> str:
        """The realm's OIDC token endpoint."""
        return f"{self.base_url}/realms/{quote(self.realm, safe='')}/protocol/openid-connect/token"

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
        data = resp.json()
        lifetime = float(data.get("expires_in", 60))
        return data["access_token"], time.monotonic() + max(0.0, lifetime - _TOKEN_EARLY_REFRESH)

    def token_claims(self) -> JSON:
        """The claims of the current access token (decoded, not verified: it came straight from Keycloak)."""
        parts = self.token().split(".")
        if len(parts) < 2:
            raise KeycloakError(None, None, message="access token is not a JWT")
        return _b64url_json(parts[1])

    # ---------------------------------------------------------------------------------------------
    # low level
    # ---------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        has_body: bool = False,
        expected: Iterable[int] = (200,),
    ) -> Response:
        """Send one admin API request and map errors to exceptions.

        *path* is relative to :attr:`admin_url` (``"/users"``) or absolute (``"http..."``). Send a JSON
        body with *json_body* (``has_body=True`` sends it even when it is ``None``). A 401 renews the
        token and repeats the request once; GETs are retried on connection errors, timeouts and 5xx.
        429 and 408 mean the request was not processed (RFC 6585 §4, RFC 9110 §15.5.9), so any method is
        repeated after ``Retry-After`` when that wait fits the deadline (:meth:`deadline`); otherwise
        :class:`RateLimited` / :class:`KeycloakUnavailable` tell the caller to come back later.
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
            kwargs: dict[str, Any] = {"params": params, "headers": headers, "timeout": self._timeout(method, url)}
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
        end = getattr(self._local, "deadline", None)
        return None if end is None else end - time.monotonic()

    def _timeout(self, method: str, url: str) -> float:
        left = self.remaining()
        if left is None:
            return self.timeout
        if left < _MIN_REQUEST_SECONDS:
            raise BudgetSpent(None, None, method=method, url=url, message="time budget spent")
        return min(self.timeout, left)

    def _backoff(self, attempt: int) -> float:
        return self.backoff * (2 ** (attempt - 1))

    def _pause(self, seconds: float, limit: float | None = None) -> bool:
        """Sleep *seconds* if that fits the deadline (and *limit*); False (no sleep) when it does not."""
        left = self.remaining()
        if (limit is not None and seconds > limit) or (left is not None and seconds + _MIN_REQUEST_SECONDS > left):
            return False
        time.sleep(seconds)
        return True

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def _create(self, path: str, body: Any) -> str:
        """POST expecting 201 + Location; return the new id."""
        return _id_from_location(self.request("POST", path, json_body=body, has_body=True, expected=(201,)))

    def _no_content(self, method: str, path: str, body: Any = None, has_body: bool = False) -> None:
        self.request(method, path, json_body=body, has_body=has_body, expected=(200, 201, 204))

    def list_page(
        self, path: str, params: Mapping[str, Any] | None = None, first: int = 0, max: int = 100
    ) -> list[JSON]:
        """One page of a list endpoint (``first``/``max``)."""
        q = {k: v for k, v in (params or {}).items() if v is not None}
        q.update(first=first, max=max)
        return self._get(path, q)

    def paged(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
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

    # ---------------------------------------------------------------------------------------------
    # server and permissions
    # ---------------------------------------------------------------------------------------------

    def server_version(self) -> str:
        """Keycloak's version (``/admin/serverinfo``), cached."""
        if self._server_version is None:
            info = self.request("GET", f"{self.base_url}/admin/serverinfo").json()
            self._server_version = str(info.get("systemInfo", {}).get("version", ""))
        return self._server_version

    def service_account_roles(self) -> set[str]:
        """The effective realm-management roles of this client's service account.

        Read from the access token (``resource_access.realm-management.roles``, composites expanded).
        If the token carries no ``resource_access`` at all (the client's ``roles`` scope was removed),
        the role mappings are read through the admin API instead (needs ``view-clients``).
        """
        claims = self.token_claims()
        access = claims.get("resource_access")
        if isinstance(access, dict):
            return set(access.get("realm-management", {}).get("roles", []))
        me = self.find_client(self.client_id)
        rm = self.find_client("realm-management")
        if me is None or rm is None:
            raise KeycloakError(None, None, message="cannot resolve the service account's role mappings")
        sa = self._get(f"/clients/{me['id']}/service-account-user")
        comp = self._get(f"/users/{sa['id']}/role-mappings/clients/{rm['id']}/composite")
        return {r["name"] for r in comp}

    def check_permissions(self, required: Iterable[str] | None = None) -> list[str]:
        """Return the required realm-management roles the service account lacks ([] when all is well).

        *required* defaults to :func:`required_roles` for the server's version (``/admin/serverinfo``,
        newest assumed if it cannot be read). Order follows *required*.
        """
        if required is None:
            try:
                version: str | None = self.server_version()
            except KeycloakError:
                version = None
            required = required_roles(version)
        have = self.service_account_roles()
        return [r for r in required if r not in have]

    # ---------------------------------------------------------------------------------------------
    # organizations
    # ---------------------------------------------------------------------------------------------

    def list_organizations(
        self,
        first: int = 0,
        max: int = 100,
        *,
        search: str | None = None,
        exact: bool | None = None,
        q: str | None = None,
        brief: bool = True,
    ) -> list[JSON]:
        """One page of organizations. *search* matches name or domain; *q* is ``attr:value``."""
        params = _search_params(search, exact, brief, q)
        return self.list_page("/organizations", params, first=first, max=max)

    def iter_organizations(
        self,
        *,
        search: str | None = None,
        exact: bool | None = None,
        q: str | None = None,
        brief: bool = True,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All organizations (optionally filtered), page by page."""
        params = _search_params(search, exact, brief, q)
        return self.paged("/organizations", params, page_size=page_size)

    def count_organizations(self) -> int:
        """Number of organizations in the realm."""
        return int(self._get("/organizations/count"))

    def get_organization(self, org_id: str) -> JSON:
        """The organization; :class:`NotFound` if it does not exist."""
        return self._get(f"/organizations/{quote(org_id, safe='')}")

    def find_organization(self, *, name: str | None = None, alias: str | None = None) -> JSON | None:
        """The organization with exactly this *name* or *alias* (None if there is none)."""
        if not name and not alias:
            raise ValueError("give name or alias")
        needle = name or alias
        for org in self.iter_organizations(search=needle, exact=True, brief=False):
            if (name and org.get("name") == name) or (alias and org.get("alias") == alias):
                return org
        if alias and not name:
            # exact search matches names and domains; an alias that differs from the name needs a scan
            for org in self.iter_organizations(search=alias, brief=False):
                if org.get("alias") == alias:
                    return org
        return None

    def create_organization(self, rep: JSON) -> str:
        """Create an organization (``name``, ``alias``, ``domains``, ...); return its id."""
        return self._create("/organizations", rep)

    def delete_organization(self, org_id: str) -> None:
        """Delete an organization (its managed members are deleted by Keycloak)."""
        self._no_content("DELETE", f"/organizations/{quote(org_id, safe='')}")

    def list_organization_identity_providers(self, org_id: str) -> list[JSON]:
        """Identity providers linked to the organization (needs ``view-identity-providers``)."""
        return self._get(f"/organizations/{quote(org_id, safe='')}/identity-providers")

    # ---------------------------------------------------------------------------------------------
    # organization members
    # ---------------------------------------------------------------------------------------------

    def _members_params(self, brief: bool, search: str | None, exact: bool | None, membership_type: str | None):
        return {
            "briefRepresentation": _bool(brief),
            "search": search,
            "exact": None if exact is None else _bool(exact),
            "membershipType": membership_type,
        }

    def list_members(
        self,
        org_id: str,
        first: int = 0,
        max: int = 100,
        *,
        brief: bool = True,
        search: str | None = None,
        exact: bool | None = None,
        membership_type: str | None = None,
    ) -> list[JSON]:
        """One page of members. ``brief=False`` includes attributes (26.7 lists brief by default).

        *membership_type* filters ``MANAGED`` / ``UNMANAGED``; each member carries ``membershipType``.
        """
        params = self._members_params(brief, search, exact, membership_type)
        return self.list_page(f"/organizations/{quote(org_id, safe='')}/members", params, first=first, max=max)

    def iter_members(
        self,
        org_id: str,
        *,
        brief: bool = True,
        search: str | None = None,
        exact: bool | None = None,
        membership_type: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All members of the organization, page by page."""
        params = self._members_params(brief, search, exact, membership_type)
        return self.paged(f"/organizations/{quote(org_id, safe='')}/members", params, page_size=page_size)

    def count_members(self, org_id: str) -> int:
        """Number of members of the organization."""
        return int(self._get(f"/organizations/{quote(org_id, safe='')}/members/count"))

    def get_member(self, org_id: str, user_id: str) -> JSON:
        """The member (with ``membershipType``); :class:`NotFound` if the user is not a member."""
        return self._get(f"/organizations/{quote(org_id, safe='')}/members/{quote(user_id, safe='')}")

    def is_member(self, org_id: str, user_id: str) -> bool:
        """Whether the user is a member of the organization."""
        try:
            self.get_member(org_id, user_id)
        except NotFound:
            return False
        return True

    def add_member(self, org_id: str, user_id: str) -> None:
        """Add an existing user as an (unmanaged) member. :class:`KeycloakConflict` if already a member,
        :class:`NotFound` if the user does not exist. The body is the bare JSON string id."""
        self.request(
            "POST",
            f"/organizations/{quote(org_id, safe='')}/members",
            json_body=user_id,
            has_body=True,
            expected=(201, 204),
        )

    def remove_member(self, org_id: str, user_id: str) -> None:
        """Remove the user from the organization. :class:`NotFound` if not a member.

        Careful: removing a *managed* member (created by IdP login) deletes the account.
        """
        self._no_content("DELETE", f"/organizations/{quote(org_id, safe='')}/members/{quote(user_id, safe='')}")

    def get_user_organizations(self, user_id: str, *, brief: bool = True) -> list[JSON]:
        """The organizations the user is a member of."""
        return self._get(
            f"/organizations/members/{quote(user_id, safe='')}/organizations",
            {"briefRepresentation": _bool(brief)},
        )

    def get_user_role_mappings(self, user_id: str) -> JSON:
        """The user's direct role mappings: ``{"realmMappings": [...], "clientMappings": {client: {...}}}``."""
        return self._get(f"/users/{quote(user_id, safe='')}/role-mappings")

    def list_user_groups(self, user_id: str, max: int = 10) -> list[JSON]:
        """The realm groups the user is in (organization groups are not listed)."""
        return self._get(f"/users/{quote(user_id, safe='')}/groups", {"first": 0, "max": max})

    def organization_domains(self, org_id: str, max_age: float = 300.0, *, fetch: bool = True) -> list[str] | None:
        """The organization's domain names in lower case, remembered for *max_age* seconds per client (a realm
        fact: asking on every SCIM write would add a call to each). ``fetch=False`` answers only from what is
        remembered (None when nothing is)."""
        cache: dict[str, tuple[float, list[str]]] = self.__dict__.setdefault("_org_domains", {})
        hit = cache.get(org_id)
        if hit is not None and (hit[0] > time.monotonic() or not fetch):
            return hit[1]
        if not fetch:
            return None
        domains = [str(d.get("name", "")).lower() for d in self.get_organization(org_id).get("domains") or []]
        cache[org_id] = (time.monotonic() + max_age, domains)
        return domains

    # ---------------------------------------------------------------------------------------------
    # organization groups (26.6+)
    # ---------------------------------------------------------------------------------------------

    def _org_groups(self, org_id: str) -> str:
        return f"/organizations/{quote(org_id, safe='')}/groups"

    def list_org_groups(
        self,
        org_id: str,
        first: int = 0,
        max: int = 100,
        *,
        search: str | None = None,
        exact: bool | None = None,
        brief: bool = True,
    ) -> list[JSON]:
        """One page of the organization's top-level groups."""
        params = _search_params(search, exact, brief)
        return self.list_page(self._org_groups(org_id), params, first=first, max=max)

    def iter_org_groups(
        self,
        org_id: str,
        *,
        search: str | None = None,
        exact: bool | None = None,
        brief: bool = True,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        """All top-level groups of the organization, page by page."""
        params = _search_params(search, exact, brief)
        return self.paged(self._org_groups(org_id), params, page_size=page_size)

    def get_org_group(self, org_id: str, group_id: str) -> JSON:
        """The group; :class:`NotFound` if it does not exist (a group of another org answers 400)."""
        return self._get(f"{self._org_groups(org_id)}/{quote(group_id, safe='')}")

    def find_org_group(self, org_id: str, name: str) -> JSON | None:
        """The organization's top-level group named exactly *name* (None if there is none)."""
        for group in self.iter_org_groups(org_id, search=name, exact=True):
            if group.get("name") == name:
                return group
        return None

    def find_org_groups_by_attribute(self, org_id: str, name: str, value: str) -> list[JSON]:
        """The organization's groups whose attribute *name* holds *value* (``q=name:value``), with attributes."""
        found = self._get(self._org_groups(org_id), {"q": f"{name}:{value}", "briefRepresentation": "false",
                                                     "max": 10})
        return [g for g in found if value in ((g.get("attributes") or {}).get(name) or [])]

    def create_org_group(self, org_id: str, name: str, attributes: Mapping[str, list[str]] | None = None) -> str:
        """Create a top-level organization group; return its id. :class:`KeycloakConflict` on a duplicate name."""
        body: JSON = {"name": name}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        return self._create(self._org_groups(org_id), body)

    def update_org_group(self, org_id: str, group_id: str, rep: JSON) -> None:
        """PUT the group representation."""
        self._no_content("PUT", f"{self._org_groups(org_id)}/{quote(group_id, safe='')}", rep, True)

    def rename_org_group(self, org_id: str, group_id: str, name: str) -> None:
        """Rename the group (keeps its attributes). :class:`KeycloakConflict` if the name is taken."""
        rep = self.get_org_group(org_id, group_id)
        body = {k: v for k, v in rep.items() if k in ("id", "name", "attributes", "description")}
        body["name"] = name
        self.update_org_group(org_id, group_id, body)

    def delete_org_group(self, org_id: str, group_id: str) -> None:
        """Delete the group. :class:`NotFound` if it does not exist."""
        self._no_content("DELETE", f"{self._org_groups(org_id)}/{quote(group_id, safe='')}")

    def list_org_group_members(
        self, org_id: str, group_id: str, first: int = 0, max: int = 100, *, brief: bool = True
    ) -> list[JSON]:
        """One page of the group's members."""
        path = f"{self._org_groups(org_id)}/{quote(group_id, safe='')}/members"
        return self.list_page(path, {"briefRepresentation": _bool(brief)}, first=first, max=max)

    def iter_org_group_members(
        self, org_id: str, group_id: str, *, brief: bool = True, page_size: int | None = None
    ) -> Iterator[JSON]:
        """All members of the group, page by page."""
        path = f"{self._org_groups(org_id)}/{quote(group_id, safe='')}/members"
        return self.paged(path, {"briefRepresentation": _bool(brief)}, page_size=page_size)

    def add_org_group_member(self, org_id: str, group_id: str, user_id: str) -> None:
        """Put an organization member into the group. :class:`KeycloakConflict` if already in;
        :class:`BadRequest` if the user is not a member of the organization."""
        path = f"{self._org_groups(org_id)}/{quote(group_id, safe='')}/members/{quote(user_id, safe='')}"
        self._no_content("PUT", path)

    def remove_org_group_member(self, org_id: str, group_id: str, user_id: str) -> None:
        """Take the user out of the group (204 also when the user was not in it)."""
        path = f"{self._org_groups(org_id)}/{quote(group_id, safe='')}/members/{quote(user_id, safe='')}"
        self._no_content("DELETE", path)

    def get_member_org_groups(self, org_id: str, user_id: str, *, brief: bool = True) -> list[JSON]:
        """The organization groups the member belongs to (all pages)."""
        path = f"/organizations/{quote(org_id, safe='')}/members/{quote(user_id, safe='')}/groups"
        return list(self.paged(path, {"briefRepresentation": _bool(brief)}))

    # ---------------------------------------------------------------------------------------------
    # users
    # ---------------------------------------------------------------------------------------------

    def create_user(self, rep: JSON) -> str:
        """Create a user; return its id. :class:`KeycloakConflict` if the username or email is taken.

        Attributes not declared in the realm's user profile are silently dropped by Keycloak;
        see :meth:`ensure_profile_attributes`. Keycloak stores usernames in lower case.
        """
        return self._create("/users", rep)

    def get_user(self, user_id: str) -> JSON:
        """The user (full representation with attributes); :class:`NotFound` if missing."""
        return self._get(f"/users/{quote(user_id, safe='')}")

    def update_user(self, user_id: str, rep: JSON, *, current: JSON | None = None) -> None:
        """Update the user (PUT) with uniform semantics for the core fields.

        Keycloak 26.7's PUT behaves in two ways: without ``attributes`` it is a partial update
        (absent or ``null`` fields are kept, ``""`` clears one); with ``attributes`` the whole user
        profile is rebuilt from the body, so an absent ``username`` is a 400 ("User name is missing")
        and absent ``email``/``firstName``/``lastName`` are **cleared**. This method hides the
        difference: when *rep* carries ``attributes``, core fields that are absent or ``None`` are
        filled from the stored user (*current*, or one GET), so only ``""`` clears them.

        ``attributes`` (when given) still replace **all** custom attributes; undeclared ones are
        dropped. To change a few, use :meth:`merge_user_attributes`.
        """
        body = dict(rep)
        if "attributes" in body:
            stored = current if current is not None else self.get_user(user_id)
            for field in _CORE_PROFILE_FIELDS:
                if body.get(field) is None and stored.get(field) is not None:
                    body[field] = stored[field]
        self._no_content("PUT", f"/users/{quote(user_id, safe='')}", body, True)

    def merge_user_attributes(self, user_id: str, changes: Mapping[str, list[str] | str | None]) -> JSON:
        """Set (or, with ``None``, remove) some custom attributes and keep all others (and the core
        fields); return the resulting attributes."""
        user = self.get_user(user_id)
        attrs: dict[str, list[str]] = dict(user.get("attributes") or {})
        for key, value in changes.items():
            if value is None:
                attrs.pop(key, None)
            else:
                attrs[key] = [value] if isinstance(value, str) else list(value)
        self.update_user(user_id, {"attributes": attrs}, current=user)
        return attrs

    def delete_user(self, user_id: str) -> None:
        """Delete the user. :class:`NotFound` if missing."""
        self._no_content("DELETE", f"/users/{quote(user_id, safe='')}")

    def find_user_by_username(self, username: str) -> JSON | None:
        """The user with exactly this username (case-insensitive, as Keycloak stores lower case)."""
        for user in self._get("/users", {"username": username, "exact": "true", "max": 2}):
            if user.get("username", "").lower() == username.lower():
                return user
        return None

    def find_user_by_email(self, email: str) -> JSON | None:
        """The user with exactly this email (case-insensitive)."""
        for user in self._get("/users", {"email": email, "exact": "true", "max": 2}):
            if (user.get("email") or "").lower() == email.lower():
                return user
        return None

    def find_users_by_attribute(self, name: str, value: str, *, max: int = 100) -> list[JSON]:
        """Users whose attribute *name* has exactly *value* (``q=name:value``, then re-checked
        case-sensitively, because Keycloak's match ignores case)."""
        needle = f'"{value}"' if any(ch.isspace() for ch in value) else value
        found = self._get("/users", {"q": f"{name}:{needle}", "max": max, "briefRepresentation": "false"})
        return [u for u in found if value in (u.get("attributes") or {}).get(name, [])]

    def find_users_by_idp_link(self, alias: str, idp_user_id: str) -> list[JSON]:
        """Users linked to identity provider *alias* with IdP-side id *idp_user_id*.

        Normally zero or one, but Keycloak 26.7 does not stop the same IdP identity from being linked
        to several users through the admin API.
        """
        found = self._get("/users", {"idpAlias": alias, "idpUserId": idp_user_id, "max": 100})
        return [u for u in found if u.get("id")]

    def find_user_by_idp_link(self, alias: str, idp_user_id: str) -> JSON | None:
        """The user linked to IdP *alias* as *idp_user_id*; None if nobody is;
        :class:`KeycloakError` if several users carry that link (ambiguous)."""
        found = self.find_users_by_idp_link(alias, idp_user_id)
        if len(found) > 1:
            raise KeycloakError(
                None,
                None,
                message=f"ambiguous: {len(found)} users are linked to {alias} as {idp_user_id!r}",
            )
        return found[0] if found else None

    def list_users(
        self, first: int = 0, max: int = 100, *, search: str | None = None, brief: bool = False, **filters: Any
    ) -> list[JSON]:
        """One page of users (*filters*: ``username``, ``email``, ``q``, ``enabled``, ``exact`` ...)."""
        params = {"search": search, "briefRepresentation": _bool(brief), **filters}
        return self.list_page("/users", params, first=first, max=max)

    def iter_users(
        self, *, search: str | None = None, brief: bool = False, page_size: int | None = None, **filters: Any
    ) -> Iterator[JSON]:
        """All users matching the filters, page by page (service accounts are not listed)."""
        params = {"search": search, "briefRepresentation": _bool(brief), **filters}
        return self.paged("/users", params, page_size=page_size)

    def count_users(self, **filters: Any) -> int:
        """Number of users (service accounts excluded)."""
        return int(self._get("/users/count", filters or None))

    # ---------------------------------------------------------------------------------------------
    # federated identities
    # ---------------------------------------------------------------------------------------------

    def list_federated_identities(self, user_id: str) -> list[JSON]:
        """``[{identityProvider, userId, userName}, ...]`` for the user."""
        return self._get(f"/users/{quote(user_id, safe='')}/federated-identity")

    def add_federated_identity(self, user_id: str, alias: str, idp_user_id: str, idp_username: str) -> None:
        """Link the user to IdP *alias*. *idp_user_id* must be what the IdP reports at login (OIDC
        ``sub``). :class:`KeycloakConflict` if the user already has a link to that IdP.

        Keycloak 26.7 checks neither that the alias exists nor that the IdP identity is free: the same
        ``(alias, idp_user_id)`` can end up on two users. Check :meth:`find_users_by_idp_link` first.
        """
        body = {"identityProvider": alias, "userId": idp_user_id, "userName": idp_username}
        self._no_content(
            "POST", f"/users/{quote(user_id, safe='')}/federated-identity/{quote(alias, safe='')}", body, True
        )

    def remove_federated_identity(self, user_id: str, alias: str) -> None:
        """Remove the user's link to IdP *alias*. :class:`NotFound` if there is none."""
        self._no_content("DELETE", f"/users/{quote(user_id, safe='')}/federated-identity/{quote(alias, safe='')}")

    # ---------------------------------------------------------------------------------------------
    # user profile
    # ---------------------------------------------------------------------------------------------

    def get_user_profile(self) -> JSON:
        """The realm's user-profile configuration (``attributes``, ``groups``, ...)."""
        return self._get("/users/profile")

    def put_user_profile(self, config: JSON) -> JSON:
        """Replace the user-profile configuration (needs ``manage-realm``); return what Keycloak stored."""
        return self.request("PUT", "/users/profile", json_body=config, has_body=True).json()

    def ensure_profile_attributes(
        self,
        names: Iterable[str],
        *,
        multivalued: Iterable[str] = (),
        group: str | None = None,
        attempts: int = 3,
    ) -> list[str]:
        """Declare the attributes *names* in the user profile, admin-only (view/edit ``admin``), unless
        they are declared already; existing declarations are left alone. Idempotent.

        Returns the names that were added. Re-reads after writing and tries again (up to *attempts*)
        if a concurrent writer replaced the profile in between.
        """
        wanted = list(dict.fromkeys(names))
        multi = set(multivalued)
        added_total: list[str] = []
        for _ in range(attempts):
            config = self.get_user_profile()
            attrs = config.setdefault("attributes", [])
            present = {a.get("name") for a in attrs}
            missing = [n for n in wanted if n not in present]
            if not missing:
                return added_total
            for n in missing:
                decl: JSON = {
                    "name": n,
                    "displayName": n,
                    "permissions": {"view": ["admin"], "edit": ["admin"]},
                    "multivalued": n in multi,
                    "validations": {},
                    "annotations": {},
                }
                if group:
                    decl["group"] = group
                attrs.append(decl)
            self.put_user_profile(config)
            added_total.extend(n for n in missing if n not in added_total)
        still = [n for n in wanted if n not in {a.get("name") for a in self.get_user_profile().get("attributes", [])}]
        if still:
            raise KeycloakError(None, None, message=f"user-profile attributes not kept: {still}")
        return added_total

    # ---------------------------------------------------------------------------------------------
    # identity providers and clients
    # ---------------------------------------------------------------------------------------------

    def get_identity_provider(self, alias: str) -> JSON:
        """The identity provider (``organizationId`` tells the org it is linked to); :class:`NotFound`."""
        return self._get(f"/identity-provider/instances/{quote(alias, safe='')}")

    def find_client(self, client_id: str) -> JSON | None:
        """The client with this ``clientId`` (None if there is none; needs ``view-clients``)."""
        for client in self._get("/clients", {"clientId": client_id, "max": 2}):
            if client.get("clientId") == client_id:
                return client
        return None

    def get_client(self, client_uuid: str) -> JSON:
        """The client by internal id; :class:`NotFound` if missing."""
        return self._get(f"/clients/{quote(client_uuid, safe='')}")


def _body(resp: Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


# re-exported for callers that want a predicate
def is_retryable(exc: BaseException) -> bool:
    """Whether *exc* means "try again later" (Keycloak unreachable, timeout, 5xx)."""
    return isinstance(exc, KeycloakUnavailable)
