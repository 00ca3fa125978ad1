"""Typed errors raised by :mod:`orgscim.keycloak.client`.

``KeycloakError`` carries the HTTP status (``None`` when no answer came back) and the body Keycloak
sent (parsed JSON when it was JSON, otherwise text). Subclasses let callers branch without looking at
numbers: ``NotFound`` (404), ``KeycloakConflict`` (409), ``BadRequest`` (400), ``Unauthorized`` (401),
``Forbidden`` (403) and ``KeycloakUnavailable`` (connection refused, timeout, a 5xx or a 408: worth
retrying later, e.g. from the outbox). ``RateLimited`` (429, RFC 6585 §4) is a ``KeycloakUnavailable`` that
carries the server's ``Retry-After`` in seconds; ``BudgetSpent`` is raised before a request when the caller's
time budget (:meth:`KeycloakAdmin.deadline`) is used up.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from orgscim.model.types import JSONValue


class KeycloakError(Exception):
    """Keycloak refused a request, or could not be asked."""

    def __init__(
        self,
        status: int | None,
        body: JSONValue = None,
        *,
        method: str | None = None,
        url: str | None = None,
        message: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.method = method
        self.url = url
        self.message = message or _message_from(body) or ""
        where = f" ({method} {url})" if method and url else ""
        text = f"HTTP {status}" if status is not None else "no response"
        if self.message:
            text += f": {self.message}"
        super().__init__(text + where)

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (Keycloak down or overloaded)."""
        return False


class BadRequest(KeycloakError):
    """400: Keycloak rejected the input (e.g. adding a non-member to an organization group)."""


class Unauthorized(KeycloakError):
    """401: the client credentials or the token were not accepted."""


class Forbidden(KeycloakError):
    """403: the service account lacks a realm-management role for this call."""


class NotFound(KeycloakError):
    """404: the resource (or, for org endpoints, the organization) does not exist."""


class KeycloakConflict(KeycloakError):
    """409: duplicate username/email, already a member, already linked, duplicate group name."""


class KeycloakUnavailable(KeycloakError):
    """Connection refused, timeout, or a 5xx answer: try again later."""

    @property
    def retryable(self) -> bool:
        return True


class RateLimited(KeycloakUnavailable):
    """429 Too Many Requests (RFC 6585 §4): not applied; try again after ``retry_after`` seconds (None: unknown)."""

    def __init__(self, status: int | None, body: JSONValue = None, *, retry_after: float | None = None,
                 method: str | None = None, url: str | None = None, message: str | None = None) -> None:
        super().__init__(status, body, method=method, url=url, message=message)
        self.retry_after = retry_after


class BudgetSpent(KeycloakUnavailable):
    """The caller's time budget ran out before (or while) asking Keycloak; nothing says Keycloak is down."""


_BY_STATUS: dict[int, type[KeycloakError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: KeycloakConflict,
}


def _message_from(body: JSONValue) -> str | None:
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error", "message"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val
        return None
    if isinstance(body, str):
        return body.strip()[:300] or None
    return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(
    status: int, body: JSONValue = None, *, method: str | None = None, url: str | None = None,
    retry_after: float | None = None,
) -> KeycloakError:
    """The most specific ``KeycloakError`` for an HTTP *status*; 429 and 408 are transient (RFC 6585 §4,
    RFC 9110 §15.5.9: the request was not processed)."""
    if status == 429:
        return RateLimited(status, body, retry_after=retry_after, method=method, url=url)
    if status >= 500 or status == 408:
        return KeycloakUnavailable(status, body, method=method, url=url)
    cls = _BY_STATUS.get(status, KeycloakError)
    return cls(status, body, method=method, url=url)


__all__ = [
    "BadRequest",
    "BudgetSpent",
    "Forbidden",
    "KeycloakConflict",
    "KeycloakError",
    "KeycloakUnavailable",
    "NotFound",
    "RateLimited",
    "Unauthorized",
    "error_for_status",
    "retry_after_seconds",
]
