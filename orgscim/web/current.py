"""The app's :class:`~orgscim.services.Services`, kept in ``app.extensions`` by the app factory: one per process
(each gunicorn worker builds its own app after the fork)."""

from __future__ import annotations

from flask import Flask, current_app

from ..services import Services

EXTENSION = "orgscim"


def install(app: Flask, services: Services) -> None:
    """Give ``app`` its services (the app factory does, once)."""
    app.extensions[EXTENSION] = services


def services(app: Flask | None = None) -> Services:
    """The services of ``app`` (default: the app of the current request)."""
    svc: Services = (app or current_app).extensions[EXTENSION]
    return svc
