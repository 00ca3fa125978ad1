"""Typed errors raised by :mod:`orgscim.keycloak.client`.

``KeycloakError`` carries the HTTP status (``None`` when no answer came back) and the body Keycloak
sent (parsed JSON when it was JSON, otherwise text). Subclasses let callers branch without looking at
numbers: ``NotFound`` (404), ``Conflict`` (409), ``BadRequest`` (400), ``Unauthorized`` (401),
``Forbidden`` (403) and ``KeycloakUnavailable`` (connection refused, timeout, or a 5xx: worth
retrying later, e.g. from the outbox).
"""

from __future__ import annotations

from typing import Any


class KeycloakError(Exception):
    """Keycloak refused a request, or could not be asked."""

    def __init__(
        self,
        status: int | None,
        body: Any = None,
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


class Conflict(KeycloakError):
    """409: duplicate username/email, already a member, already linked, duplicate group name."""


class KeycloakUnavailable(KeycloakError):
    """Connection refused, timeout, or a 5xx answer: try again later."""

    @property
    def retryable(self) -> bool:
        return True


_BY_STATUS: dict[int, type[KeycloakError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def _message_from(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("errorMessage", "error_description", "error", "message"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val
        return None
    if isinstance(body, str):
        return body.strip()[:300] or None
    return None


def error_for_status(
    status: int, body: Any = None, *, method: str | None = None, url: str | None = None
) -> KeycloakError:
    """The most specific ``KeycloakError`` for an HTTP *status*."""
    if status >= 500:
        return KeycloakUnavailable(status, body, method=method, url=url)
    cls = _BY_STATUS.get(status, KeycloakError)
    return cls(status, body, method=method, url=url)


__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "KeycloakError",
    "KeycloakUnavailable",
    "NotFound",
    "Unauthorized",
    "error_for_status",
]
