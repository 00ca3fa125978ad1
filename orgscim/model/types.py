"""Aliases for data that really is untyped JSON (SCIM and Keycloak bodies, RFC 8259)."""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]
"""A JSON object: a SCIM resource, request or response body (RFC 7643 §2)."""

JSONList: TypeAlias = list[Any]
"""A JSON array."""

JSONValue: TypeAlias = Any
"""Any JSON value (object, array, string, number, boolean or null)."""

Scalar: TypeAlias = str | int | float | bool | None
"""A JSON scalar: the value of a filter comparison (RFC 7644 §3.4.2.2, ``compValue``)."""
