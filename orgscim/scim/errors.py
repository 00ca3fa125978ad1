"""How SCIM states a model error: its HTTP status and the Error body (RFC 7644 §3.12).

:data:`STATUS` is the one table from :mod:`orgscim.model.errors` to HTTP status. The web layer answers with
it, and Bulk (RFC 7644 §3.7.3) reports each operation's status with it.
"""

from __future__ import annotations

from orgscim.model.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    ModelError,
    Mutability,
    NoTarget,
    NotFound,
    PreconditionFailed,
    TooMany,
    Uniqueness,
    UnresolvedReference,
    VersionConflict,
)
from orgscim.model.types import JSON

ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"

STATUS: dict[type[ModelError], int] = {
    InvalidFilter: 400,
    InvalidSyntax: 400,
    InvalidValue: 400,
    InvalidPath: 400,
    Mutability: 400,
    NoTarget: 400,
    NotFound: 404,
    Uniqueness: 409,
    VersionConflict: 409,
    UnresolvedReference: 409,
    PreconditionFailed: 412,
    TooMany: 413,
}


def status_of(err: ModelError) -> int:
    """The HTTP status of a model error (its class, or the nearest base class, in :data:`STATUS`)."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_body(status: int, detail: str, scim_type: str | None = None) -> JSON:
    """The Error body; ``status`` is a string per RFC 7644 §3.12."""
    out: JSON = {"schemas": [ERROR_URN], "status": str(status), "detail": detail}
    if scim_type:
        out["scimType"] = scim_type
    return out


def model_error_body(err: ModelError) -> JSON:
    """The Error body of a model error."""
    return error_body(status_of(err), err.detail, err.scim_type)
