"""Flask application factory (the ``flaskr`` shape: instance folder, config file, env overrides; the settings
themselves are read by :func:`orgscim.config.load_config`, as for the CLI and the worker)."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Settings, instance_path, load_config
from .services import Services
from .store.db import Database
from .web import current


def create_app(test_config: Settings | None = None) -> Flask:
    """Build the web app. ``ORGSCIM_INSTANCE`` overrides the instance folder."""
    folder = instance_path()
    app = Flask(__name__, instance_path=folder, instance_relative_config=True)
    app.config.update(load_config(folder, test_config))
    db = Database(app.config["DATABASE"])
    db.check_schema()  # SchemaError (a RuntimeError) when it needs migrating or is newer than this code
    current.install(app, Services(db, dict(app.config)))
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:  # client address (auth throttle, audit) and URLs (meta.location) as the proxy saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    logging.getLogger("orgscim").setLevel(app.config.get("LOG_LEVEL", "INFO"))

    from .web import admin, config_api, hosts, ops, scim

    hosts.init_app(app)  # before every other hook: a made-up Host never reaches them
    app.register_blueprint(scim.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(config_api.bp)
    admin.init_app(app)
    return app
