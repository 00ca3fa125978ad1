"""Admin pages under ``/admin/`` (DESIGN §2): server-rendered Jinja, no JavaScript.

Login is Keycloak OIDC, authorization code flow with PKCE (RFC 7636, ``S256``), ``state`` and ``nonce`` checked,
as the confidential client ``ADMIN_CLIENT_ID`` (secret from ``ADMIN_CLIENT_SECRET_FILE`` or
``ADMIN_CLIENT_SECRET``) of realm ``ADMIN_REALM``. The ID token is verified against the realm's JWK Set (audience
= the client, ``nonce``, issuer, expiry) and the access token the same way as the config API's tokens; only users
holding the realm-management role ``manage-organizations``, ``manage-realm`` or ``realm-admin`` get in (a
403 page otherwise).

The session is Flask's signed cookie (``orgscim_admin``, HttpOnly, SameSite=Lax, path ``/admin``, Secure when
``PUBLIC_BASE_URL`` is https), valid for ``ADMIN_SESSION_SECONDS``; ``SECRET_KEY`` comes from the config or is
generated once into ``<instance>/secret_key`` (mode 0600). Every POST form carries a CSRF token. Pages are never
cached (``Cache-Control: no-store``), may not be framed, and load nothing but their own stylesheet.

A new credential's secret is rendered once, in the response to the POST that created it; the form carries a
one-time value, so a resubmitted form (reload) does not create or show a secret again.

Modules: :mod:`.blueprint` (the blueprint, settings, login and CSRF check, errors as pages), :mod:`.oidc` (the
OIDC client), :mod:`.secret_key`, :mod:`.sessions`, :mod:`.csrf`, and the views by page: :mod:`.login`,
:mod:`.orgs`, :mod:`.org`, :mod:`.credentials`, :mod:`.reports`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

# the view modules register their routes on the blueprint when imported
from . import credentials, login, org, orgs, reports  # noqa: F401
from .blueprint import bp, routing_error
from .secret_key import instance_secret_key
from .sessions import AdminSessions

__all__ = ["bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the blueprint, the session cookie settings and the secret key."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))
    public = str(app.config.get("PUBLIC_BASE_URL") or "")
    app.config.update(SESSION_COOKIE_NAME="orgscim_admin", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_PATH="/admin",
                      SESSION_COOKIE_SECURE=bool(app.config.get("ADMIN_COOKIE_SECURE", public.startswith("https:"))))
    app.session_interface = AdminSessions()
    app.register_blueprint(bp)
    app.register_error_handler(404, routing_error)
    app.register_error_handler(405, routing_error)
