"""The one place orgscim's settings are read, for the web app, the CLI and the worker alike.

In rising precedence: :data:`DEFAULTS`, ``<instance>/config.toml``, ``ORGSCIM_*`` environment
variables (values parsed as JSON when they are JSON, as Flask's ``from_prefixed_env`` does), then the caller's
overrides (tests). The instance folder is ``ORGSCIM_INSTANCE``, else Flask's default ``instance/`` beside the
package; it is created when missing. ``DATABASE`` defaults to ``<instance>/orgscim.sqlite3``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from flask import Config, Flask

#: settings as read from TOML and the environment: their values are untyped until each consumer reads one
Settings = dict[str, Any]

CONFIG_FILE = "config.toml"
ENV_PREFIX = "ORGSCIM"
DEFAULTS: Settings = {
    "DATABASE": None,  # default: <instance>/orgscim.sqlite3
    "PUBLIC_BASE_URL": None,  # e.g. https://sso.example.com when behind a proxy; default: the request's
    "MAX_CONTENT_LENGTH": 1_048_576,  # bodies above 1 MiB get 413 (also the Bulk maxPayloadSize)
    "AUTH_CACHE_SECONDS": 86400,  # idle time after which a remembered verification is paid again (sliding)
    "TRUSTED_PROXIES": 0,  # reverse proxies in front that set X-Forwarded-For/-Proto/-Host (0: trust none)
}


def instance_path() -> str:
    """The instance folder: ``ORGSCIM_INSTANCE``, else Flask's default for the ``orgscim`` package."""
    return os.environ.get("ORGSCIM_INSTANCE") or Flask("orgscim").instance_path


def load_config(folder: str | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of the instance in ``folder`` (default :func:`instance_path`), which is created if missing.
    ``_CONFIG_SOURCE`` says where they came from (``orgscim check`` prints it)."""
    folder = folder or instance_path()
    os.makedirs(folder, exist_ok=True)
    config = Config(folder)
    config.from_mapping(DEFAULTS)
    path = os.path.join(folder, CONFIG_FILE)
    if os.path.exists(path):
        config.from_file(path, load=tomllib.load, text=False)
    config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        config.update(overrides)
    if not config["DATABASE"]:
        config["DATABASE"] = os.path.join(folder, "orgscim.sqlite3")
    config["_CONFIG_SOURCE"] = (f"{path} and {ENV_PREFIX}_* variables" if os.path.exists(path)
                                else f"{ENV_PREFIX}_* variables (no {path})")
    return dict(config)
