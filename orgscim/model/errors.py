"""Domain errors of the SCIM data model: what went wrong, never how HTTP says it.

Each error carries its RFC 7644 §3.12 ``scimType`` keyword (table 9) where the RFC defines one, and a
``detail`` for the client. The HTTP status is the web layer's (and Bulk's, RFC 7644 §3.7.3) business:
:mod:`orgscim.scim.errors` holds the one table from error to status.
"""

from __future__ import annotations

from typing import ClassVar


class ModelError(Exception):
    """A request the model refuses; ``detail`` tells the client why."""

    scim_type: ClassVar[str | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidFilter(ModelError):
    """The filter syntax is invalid, or names an attribute or operator it cannot use (RFC 7644 §3.4.2.2)."""

    scim_type = "invalidFilter"


class InvalidSyntax(ModelError):
    """The request body is not a parsable JSON object of the expected shape."""

    scim_type = "invalidSyntax"


class InvalidValue(ModelError):
    """A required value is missing, or a value has the wrong type or is not allowed."""

    scim_type = "invalidValue"


class InvalidPath(ModelError):
    """A PATCH ``path`` is invalid or names an attribute that does not exist (RFC 7644 §3.5.2)."""

    scim_type = "invalidPath"


class Mutability(ModelError):
    """An attempt to change a read-only or immutable attribute (RFC 7643 §2.2)."""

    scim_type = "mutability"


class NoTarget(ModelError):
    """A PATCH ``path`` filter matched nothing where a match is required (RFC 7644 §3.5.2)."""

    scim_type = "noTarget"


class TooMany(ModelError):
    """More operations or results than the service allows (RFC 7644 §3.7.4, ``maxOperations``)."""

    scim_type = "tooMany"


class NotFound(ModelError):
    """The resource (or discovery item) does not exist in this org."""


class Uniqueness(ModelError):
    """A value that must be unique in the org (or the realm) is already taken."""

    scim_type = "uniqueness"


class PreconditionFailed(ModelError):
    """``If-Match`` names a version other than the current one (RFC 7644 §3.14)."""


class VersionConflict(ModelError):
    """The resource kept changing while it was being written; the client may retry."""


class UnresolvedReference(ModelError):
    """A Bulk operation refers to a ``bulkId`` that no operation defines, or to one in a cycle (RFC 7644
    §3.7.2); it is not a syntax problem of the operation itself."""

    scim_type = "invalidValue"
