"""SCIM error answers: model errors and web-level conditions as HTTP responses with a SCIM Error body
(RFC 7644 §3.12).

A :class:`~orgscim.model.errors.ModelError` gets its status from the one table,
:data:`orgscim.scim.errors.STATUS`. :class:`ScimError` is for what only the web layer knows: credentials
(401/403), methods (405), request size and media type (413/415), throttling (429), and the server's own
state (500/503/507).
"""

from __future__ import annotations

import json

from flask import Response

from ..model.errors import ModelError
from ..scim.errors import error_body, status_of

SCIM_JSON = "application/scim+json"


class ScimError(Exception):
    """A web-level SCIM answer with an explicit HTTP status; ``scim_type`` is an RFC 7644 §3.12 keyword or
    None, ``headers`` are added to the response (``Retry-After``, ``Allow``)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}


def error_response(err: ScimError | ModelError) -> Response:
    """The SCIM Error response for *err*."""
    if isinstance(err, ModelError):
        status, scim_type, headers = status_of(err), err.scim_type, {}
    else:
        status, scim_type, headers = err.status, err.scim_type, err.headers
    resp = Response(json.dumps(error_body(status, err.detail, scim_type)), status=status, mimetype=SCIM_JSON)
    for k, v in headers.items():
        resp.headers[k] = v
    return resp
