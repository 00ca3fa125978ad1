"""``/healthz`` (process up) and ``/readyz`` (SQLite answers)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    services = current_app.extensions["orgscim"]
    try:
        services.db.one("SELECT 1")
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        return jsonify(status="unavailable", sqlite=str(e)), 503
    return jsonify(status="ok", sqlite="ok")
