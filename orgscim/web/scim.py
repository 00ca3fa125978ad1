"""The SCIM blueprint, mounted once at the per-org prefix; the org is resolved on every request.

Web → auth plugin → SCIM service. This module only speaks HTTP: parse, authenticate, call, render.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from ..auth import AuthRequest, challenge
from ..model.errors import InvalidSyntax, ModelError, NotFound, Uniqueness
from ..scim.query import Query
from ..scim.result import Result, etag_matches
from ..scim.service import ScimService
from ..services import ConfigError, Services
from ..store.db import is_disk_full
from ..throttle import retry_after
from . import current
from .errors import SCIM_JSON, ScimError, error_response
from .ops import readiness_check
from .urls import SCIM_PATH, scim_base_url

log = logging.getLogger("orgscim.web")
bp = Blueprint("scim", __name__, url_prefix=SCIM_PATH.format(realm="<realm>", org_id="<org_id>"))

JSON_TYPES = (SCIM_JSON, "application/json")
MAX_JSON_DEPTH = 64
TYPES = {"Users": "User", "Groups": "Group"}


def scim_response(result: Result) -> Response:
    body = "" if result.body is None else json.dumps(result.body, ensure_ascii=False)
    resp = Response(body, status=result.status, mimetype=None if result.body is None else SCIM_JSON)
    if result.body is None:
        resp.headers.pop("Content-Type", None)
    if result.location:
        resp.headers["Location"] = result.location
    if result.etag:
        resp.headers["ETag"] = result.etag
    return resp


def _depth(x: Any, limit: int) -> int:
    """Nesting depth of ``x`` (stops counting past ``limit``); raises ``UnicodeError`` for a string holding an
    unpaired surrogate (``"\\ud800"`` is valid JSON but not Unicode text: it could never be stored or sent) and
    ``ValueError`` for one holding NUL (no SCIM value has it; Keycloak and C tools cut strings there)."""
    stack = [(x, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, str):
            v.encode("utf-8")
            if "\x00" in v:
                raise ValueError("NUL")
        elif isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values())
            stack.extend((k, d + 1) for k in v)
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v)
    return deepest


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def body() -> Any:
    """The request's JSON (scim+json or json, any charset): 415 for another declared media type, 400
    invalidSyntax for anything that is not a JSON object of finite numbers and NUL-free Unicode strings."""
    ctype = request.mimetype
    if ctype and ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise ScimError(415, f"Content-Type {ctype} is not supported; send application/scim+json (RFC 7644 §3.1)")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidSyntax("request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise InvalidSyntax(f"request body is not valid JSON: {str(e)[:100]}") from None
    try:
        too_deep = _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH
    except UnicodeError:
        raise InvalidSyntax("request body holds a string with an unpaired surrogate (not Unicode text)") from None
    except ValueError:
        raise InvalidSyntax("request body holds a string with a NUL character (U+0000)") from None
    if too_deep:
        raise InvalidSyntax(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def query() -> Query:
    args = {k.lower(): v for k, v in request.args.items()}
    return Query.from_params(lambda name: args.get(name.lower()))


@bp.url_value_preprocessor
def pull_org(endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.realm = values.pop("realm") if values else None
    g.org_id = values.pop("org_id") if values else None


@bp.before_request
def resolve_and_authenticate() -> Response | None:
    """404 unless the org serves; then throttle → auth plugin → audit (DESIGN §5, :meth:`AuthContext.authenticate`).

    A throttled client gets 429 + ``Retry-After`` unless its credential passes the cheap check; every other
    failure is the same SCIM 401 with the mode's ``WWW-Authenticate`` challenge.
    """
    services = current.services()
    org = services.orgs.org(g.realm, g.org_id)
    if org is None or not org.serving:
        return error_response(NotFound("SCIM is not enabled for this organization"))
    try:
        mode = services.auth_mode(org.auth_mode)
    except ConfigError as e:  # e.g. a third-party auth plugin was uninstalled
        log.error("org %s/%s cannot authenticate: %s", g.realm, g.org_id, e)
        return error_response(ScimError(503, "this SCIM endpoint is misconfigured; the operator has been told"))
    outcome = services.auth_ctx.authenticate(mode, org, AuthRequest(request.headers.get("Authorization"),
                                                                     request.remote_addr or ""))
    if outcome.retry_after:
        return error_response(ScimError(429, "too many failed authentication attempts from this address; "
                                        "retry later", None, {"Retry-After": retry_after(outcome.retry_after)}))
    principal = outcome.principal
    if principal is None:
        resp = error_response(ScimError(401, "missing or invalid credentials for this SCIM endpoint"))
        resp.headers["WWW-Authenticate"] = challenge(mode, org)
        return resp
    g.scim = services.scim(org, scim_base_url(g.realm, g.org_id))
    g.principal = principal
    g.org = org
    return None


@bp.after_request
def deliver_now(resp: Response) -> Response:
    """Apply the request's writes to Keycloak before answering, within ``KEYCLOAK_DELIVERY_BUDGET`` (a hard
    bound: request timeouts are cut to it); the worker delivers what is left.

    The writes are already committed with their outbox entries, so a failure here never loses one. A single
    create that Keycloak refuses as a duplicate of a user orgscim may not adopt was never acknowledged: it is
    undone and answered ``409 uniqueness`` (RFC 7644 §3.3).
    """
    scim = g.get("scim")
    provisioner = getattr(scim, "provisioner", None)
    if "org" not in g or not getattr(provisioner, "written", None):
        return resp
    services = current.services()
    single_create = request.method == "POST" and request.endpoint == "scim.collection" and resp.status_code == 201
    try:
        refused = services.deliver_request(g.org, provisioner, single_create)
    except Exception:  # noqa: BLE001 - delivery problems never change the SCIM answer
        log.exception("immediate delivery failed; the worker will retry")
        return resp
    if refused:
        return error_response(Uniqueness(refused))
    return resp


@bp.errorhandler(ScimError)
@bp.errorhandler(ModelError)
def on_scim_error(e: ScimError | ModelError) -> Response:
    return error_response(e)


@bp.errorhandler(HTTPException)
def on_http_error(e: HTTPException) -> Response:
    status = e.code or 500
    detail = {404: "no such SCIM endpoint", 405: "method not allowed on this endpoint",
              413: "request body too large"}.get(status, e.description or e.name)
    resp = error_response(ScimError(status, detail, "tooMany" if status == 413 else None))
    if status == 405 and hasattr(e, "valid_methods") and e.valid_methods:
        resp.headers["Allow"] = ", ".join(e.valid_methods)
    return resp


@bp.errorhandler(Exception)
def on_unexpected(e: Exception) -> Response:
    if is_disk_full(e):  # the transaction rolled back: nothing of this write was stored
        log.error("storage full: %s", e)
        current.services().db.full_at = time.monotonic()
        return error_response(ScimError(507, "insufficient storage: the request was not applied; retry later"))
    log.exception("unexpected error")
    return error_response(ScimError(500, "internal error; read the resources before retrying: this request "
                                         "may have been applied in part"))


@readiness_check("storage")
def storage_ready(services: Services) -> str | None:
    """Not ready while the database's disk is full or nearly (``READY_MIN_FREE_BYTES``, default 8 MiB)."""
    return services.db.storage_problem(int(services.config.get("READY_MIN_FREE_BYTES", 8 << 20)))


def svc() -> ScimService:
    service: ScimService = g.scim
    return service


# -- discovery (read-only; other methods get 405) --------------------------------------------------
ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def read_only() -> None:
    """Discovery endpoints are read-only: writes get 405 (conformance/QUIRKS.md, Responses)."""
    if request.method != "GET":
        raise ScimError(405, f"{request.method} is not allowed on discovery endpoints", None,
                        {"Allow": "GET"})


@bp.route("/ServiceProviderConfig", methods=ALL, strict_slashes=False)
def spc() -> Response:
    read_only()
    return scim_response(svc().service_provider_config())


@bp.route("/ResourceTypes", methods=ALL, strict_slashes=False)
@bp.route("/ResourceTypes/<name>", methods=ALL)
def resource_types(name: str | None = None) -> Response:
    read_only()
    return scim_response(svc().resource_types(name))


@bp.route("/Schemas", methods=ALL, strict_slashes=False)
@bp.route("/Schemas/<path:urn>", methods=ALL)
def schemas(urn: str | None = None) -> Response:
    read_only()
    return scim_response(svc().schemas(urn))


# -- resources -----------------------------------------------------------------------------------
# strict_slashes=False: clients that keep the trailing slash of a configured base URL send `Users/?filter=…`
# and `Users/{id}/` (conformance/QUIRKS.md §18: stray URL forms must not break routing).
@bp.route("/<any(Users, Groups):kind>", methods=["GET", "POST"], strict_slashes=False)
def collection(kind: str) -> Response:
    if request.method == "POST":
        return scim_response(svc().create(TYPES[kind], body()))
    return scim_response(svc().search([TYPES[kind]], query()))


@bp.post("/<any(Users, Groups):kind>/.search")
def type_search(kind: str) -> Response:
    return scim_response(svc().search_request([TYPES[kind]], body()))


@bp.post("/.search")
def root_search() -> Response:
    return scim_response(svc().search_request(list(TYPES.values()), body()))


@bp.route("/<any(Users, Groups):kind>/<rid>", methods=["GET", "PUT", "PATCH", "DELETE"], strict_slashes=False)
def item(kind: str, rid: str) -> Response:
    service, rtype = svc(), TYPES[kind]
    if_match = request.headers.get("If-Match")
    if request.method == "GET":
        result = service.get(rtype, rid, query())
        inm = request.headers.get("If-None-Match")
        if inm and result.etag and etag_matches(inm, result.etag):
            resp = Response(status=304)
            resp.headers["ETag"] = result.etag
            return resp
        return scim_response(result)
    if request.method == "PUT":
        return scim_response(service.replace(rtype, rid, body(), if_match))
    if request.method == "PATCH":
        return scim_response(service.patch(rtype, rid, body(), if_match))
    return scim_response(service.delete(rtype, rid, if_match))


@bp.post("/Bulk")
def bulk() -> Response:
    return scim_response(svc().bulk(body()))


@bp.route("/", defaults={"rest": ""}, methods=ALL)
@bp.route("/<path:rest>", methods=ALL)
def unknown(rest: str) -> Response:
    return error_response(NotFound(f"no SCIM endpoint /{rest}"))
