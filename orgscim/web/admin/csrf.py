"""Forms of the admin pages: the session's CSRF token (every POST carries it) and one-time values for forms whose
result must not be produced twice (a new secret: a reload must not create or show another one)."""

from __future__ import annotations

import hmac
import secrets

from flask import session

USED_ONCE_KEPT = 50  # one-time values remembered per session


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_valid(sent: str) -> bool:
    """Whether a posted form's token is the session's (constant-time; none in the session never matches)."""
    expected = session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


def once_token() -> str:
    """A fresh one-time value for a form whose result must not be produced twice (a secret)."""
    return secrets.token_urlsafe(16)


def fresh_once(value: str | None) -> bool:
    """False if the one-time value is missing or was used already (the form was resubmitted)."""
    return bool(value) and value not in (session.get("used_once") or [])


def spend_once(value: str) -> None:
    """Record a one-time value as used (after the form's action succeeded; the last 50 are kept)."""
    session["used_once"] = (list(session.get("used_once") or []) + [value])[-USED_ONCE_KEPT:]
