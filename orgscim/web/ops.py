"""Operations endpoints (DESIGN §2): ``/healthz`` (process up), ``/readyz`` (every readiness check passes),
``/metrics`` (Prometheus, :mod:`orgscim.metrics`).

Both answer anonymous callers, so neither names a tenant: no realm, org id or JWKS URI, no error text from
Keycloak (details go to the log). ``/readyz`` is cached per process for ``READYZ_CACHE_SECONDS`` (default 5):
a flood of probes costs one round of checks per process every few seconds. ``/metrics`` needs
``Authorization: Bearer <METRICS_TOKEN>`` when that setting is set.

Readiness checks are a list (:data:`READINESS_CHECKS`): a function of the :class:`~orgscim.services.Services`
returning None when ready, else a short fixed reason. Add one with :func:`readiness_check`.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from .. import metrics
from ..keycloak.client import KeycloakError
from ..services import ConfigError, Services
from . import current

log = logging.getLogger("orgscim.web")
bp = Blueprint("ops", __name__)

ReadinessCheck = Callable[[Services], "str | None"]
#: (name, check) in the order they run; ``/readyz`` shows each name with ``ok`` or its reason
READINESS_CHECKS: list[tuple[str, ReadinessCheck]] = []


def readiness_check(name: str) -> Callable[[ReadinessCheck], ReadinessCheck]:
    """Register ``fn`` as the readiness check ``name`` (its reason must not name a tenant or quote an error)."""
    def register(fn: ReadinessCheck) -> ReadinessCheck:
        READINESS_CHECKS[:] = [(n, f) for n, f in READINESS_CHECKS if n != name] + [(name, fn)]
        return fn
    return register


@readiness_check("sqlite")
def _sqlite(services: Services) -> str | None:
    services.db.one("SELECT 1")
    return None


@readiness_check("keycloak")
def _keycloak(services: Services) -> str | None:
    """Each realm with SCIM on answers through the service account (skipped when standalone)."""
    if not services.keycloak_configured:
        return None
    failing = []
    for realm in (r["realm"] for r in services.orgs.realms() if r["scimEnabled"]):
        admin = services.keycloak(realm)
        try:
            assert admin is not None
            admin.request("GET", f"{admin.base_url}/realms/{quote(realm, safe='')}")
        except (KeycloakError, ConfigError) as e:
            failing.append(realm)
            log.warning("readiness: Keycloak realm %s does not answer: %s", realm, str(e)[:300])
    return f"unavailable for {len(failing)} realm(s)" if failing else None


class _ReadyCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0
        self.answer: tuple[dict[str, str], bool] = ({}, False)


def _run_checks(services: Services) -> tuple[dict[str, str], bool]:
    checks: dict[str, str] = {}
    for name, check in READINESS_CHECKS:
        try:
            reason = check(services)
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            log.warning("readiness check %s failed: %s", name, e)
            reason = "error"
        checks[name] = reason or "ok"
    return checks, all(v == "ok" for v in checks.values())


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    services = current.services()
    cache: _ReadyCache = current_app.extensions.setdefault("orgscim.readyz", _ReadyCache())
    ttl = float(services.config.get("READYZ_CACHE_SECONDS", 5))
    with cache.lock:  # one probe runs the checks; the others wait for its answer
        if time.monotonic() >= cache.until:
            cache.answer = _run_checks(services)
            cache.until = time.monotonic() + ttl
        checks, ready = cache.answer
    resp = jsonify(status="ok" if ready else "unavailable", **checks)
    resp.headers["Cache-Control"] = "no-store"
    return resp, 200 if ready else 503


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    services = current.services()
    token = services.secret_setting("METRICS_TOKEN")
    if token:
        sent = (request.headers.get("Authorization") or "").partition(" ")
        if sent[0].lower() != "bearer" or not hmac.compare_digest(sent[2].strip().encode(), token.encode()):
            return Response("metrics need Authorization: Bearer <METRICS_TOKEN>\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="orgscim-metrics"'}, mimetype="text/plain")
    return Response(metrics.exposition(services.housekeeping.metrics), mimetype=CONTENT_TYPE_LATEST)


# -- request metrics for every blueprint ---------------------------------------------------------------
ANY_PART = re.compile(r"<any\([^)]*\):(\w+)>")


def route_label() -> str | None:
    """The matched URL rule (never the URL: no org ids), with ``any(…)`` parts (a fixed set) filled in:
    ``/realms/<realm>/scim/v2/organizations/<org_id>/Users``."""
    rule = request.url_rule
    if rule is None:
        return None
    args = request.view_args or {}
    return ANY_PART.sub(lambda m: str(args.get(m.group(1), m.group(0))), rule.rule)


@bp.before_app_request
def _start_timer() -> None:
    g.orgscim_started = time.perf_counter()


@bp.after_app_request
def _observe(resp: Response) -> Response:
    started: float | None = g.get("orgscim_started")
    if started is not None:
        metrics.observe_request(route_label(), request.method, resp.status_code, time.perf_counter() - started)
    return resp
