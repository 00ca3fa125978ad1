"""Timestamps as orgscim stores and compares them: UTC text with microseconds, ``2026-01-02T03:04:05.000006Z``.

The fixed width makes text order equal time order, so SQL compares stored stamps as strings; the same form is
what ``meta.created``/``meta.lastModified`` return (RFC 7643 §3.1, ``xsd:dateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """The current time as a stored timestamp."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def later(seconds: float) -> str:
    """The stored timestamp *seconds* from now (negative: in the past)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime(TIME_FORMAT)


def epoch(stamp: str) -> float | None:
    """Seconds since the epoch of a stored timestamp (``TIME_FORMAT``, UTC), None if it is not one."""
    try:
        return datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
