"""Model errors carry no HTTP status; one table (``orgscim.scim.errors.STATUS``) gives it, for the web layer and
for Bulk's per-operation status (RFC 7644 §3.7.3, §3.12)."""

from __future__ import annotations

import pytest

from orgscim.model import errors as model
from orgscim.scim.errors import STATUS, model_error_body, status_of
from orgscim.web.errors import ScimError, error_response

EXPECTED = {
    model.InvalidFilter: (400, "invalidFilter"),
    model.InvalidSyntax: (400, "invalidSyntax"),
    model.InvalidValue: (400, "invalidValue"),
    model.InvalidPath: (400, "invalidPath"),
    model.Mutability: (400, "mutability"),
    model.NoTarget: (400, "noTarget"),
    model.NotFound: (404, None),
    model.Uniqueness: (409, "uniqueness"),
    model.VersionConflict: (409, None),
    model.UnresolvedReference: (409, "invalidValue"),
    model.PreconditionFailed: (412, None),
    model.TooMany: (413, "tooMany"),
}


def test_every_model_error_has_a_status() -> None:
    kinds = {c for c in vars(model).values()
             if isinstance(c, type) and issubclass(c, model.ModelError) and c is not model.ModelError}
    assert kinds == set(STATUS) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.__name__)
def test_status_and_scim_type(kind: type[model.ModelError]) -> None:
    err = kind("why")
    assert (status_of(err), err.scim_type) == EXPECTED[kind]
    body = model_error_body(err)
    assert body["status"] == str(EXPECTED[kind][0]) and body.get("scimType") == EXPECTED[kind][1]


def test_web_answers_keep_their_bytes() -> None:
    resp = error_response(model.Uniqueness("a User with this userName already exists"))
    assert resp.status_code == 409 and resp.mimetype == "application/scim+json"
    assert resp.get_data() == (b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", '
                               b'"detail": "a User with this userName already exists", "scimType": "uniqueness"}')
    resp = error_response(ScimError(429, "slow down", None, {"Retry-After": "3"}))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.get_data() == (b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "429", '
                               b'"detail": "slow down"}')
