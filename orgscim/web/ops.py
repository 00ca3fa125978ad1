"""Operations endpoints (DESIGN §2): ``/healthz`` (process up), ``/readyz`` (SQLite answers and, when
configured, Keycloak answers for every enabled realm), ``/metrics`` (Prometheus text format, from SQLite,
so every gunicorn worker reports the same numbers)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..keycloak.client import KeycloakError
from ..services import ConfigError

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    services = current_app.extensions["orgscim"]
    checks: dict[str, str] = {}
    try:
        services.db.one("SELECT 1")
        checks["sqlite"] = "ok"
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        checks["sqlite"] = f"error: {e}"
    if services.keycloak_configured:
        for realm in (r["realm"] for r in services.orgs.realms() if r["scimEnabled"]):
            try:
                services.keycloak(realm).token()
                checks[f"keycloak:{realm}"] = "ok"
            except (KeycloakError, ConfigError) as e:
                checks[f"keycloak:{realm}"] = f"error: {str(e)[:200]}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ready else "unavailable", **checks), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    services = current_app.extensions["orgscim"]
    stats = services.sync.metrics()
    lines = []
    for name, kind, help_text, samples in stats:
        lines += [f"# HELP orgscim_{name} {help_text}", f"# TYPE orgscim_{name} {kind}"]
        for labels, value in samples:
            label = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"orgscim_{name}{{{label}}} {value}" if label else f"orgscim_{name} {value}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
