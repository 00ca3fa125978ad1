"""Flask application factory (the ``flaskr`` shape: instance folder, config file, env overrides)."""

from __future__ import annotations

import logging
import os
import tomllib
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .services import Services
from .store.db import Database

DEFAULTS: dict[str, Any] = {
    "DATABASE": None,  # default: <instance>/orgscim.sqlite3
    "PUBLIC_BASE_URL": None,  # e.g. https://sso.example.com when behind a proxy; default: the request's
    "MAX_CONTENT_LENGTH": 1_048_576,  # bodies above 1 MiB get 413 (also the Bulk maxPayloadSize)
    "AUTH_CACHE_SECONDS": 86400,  # idle time after which a remembered verification is paid again (sliding)
    "TRUSTED_PROXIES": 0,  # reverse proxies in front that set X-Forwarded-For/-Proto/-Host (0: trust none)
}


def load_config(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    app.config.from_mapping(DEFAULTS)
    path = os.path.join(app.instance_path, "config.toml")
    if os.path.exists(path):
        app.config.from_file(path, load=tomllib.load, text=False)
    app.config.from_prefixed_env("ORGSCIM")
    if test_config:
        app.config.update(test_config)
    if not app.config["DATABASE"]:
        app.config["DATABASE"] = os.path.join(app.instance_path, "orgscim.sqlite3")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app. ``ORGSCIM_INSTANCE`` overrides the instance folder."""
    app = Flask(__name__, instance_path=os.environ.get("ORGSCIM_INSTANCE") or None,
                instance_relative_config=True)
    load_config(app, test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    db = Database(app.config["DATABASE"])
    db.check_schema()  # SchemaError (a RuntimeError) when it needs migrating or is newer than this code
    app.extensions["orgscim"] = Services(db, dict(app.config))
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:  # client address (auth throttle, audit) and URLs (meta.location) as the proxy saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore
    logging.getLogger("orgscim").setLevel(app.config.get("LOG_LEVEL", "INFO"))

    from .web import admin, config_api, hosts, ops, scim

    hosts.init_app(app)  # before every other hook: a made-up Host never reaches them
    app.register_blueprint(scim.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(config_api.bp)
    admin.init_app(app)
    return app
