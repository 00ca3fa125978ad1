"""The admin blueprint itself: its settings, the login and CSRF check before every page, the headers after it,
and errors as pages. The views are in :mod:`.login`, :mod:`.orgs`, :mod:`.org`, :mod:`.credentials` and
:mod:`.reports`."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ...auth.caller import Caller
from ...keycloak.client import KeycloakUnavailable
from ...model.contract import Org
from ...model.types import JSON
from ...orgadmin import OrgAdmin
from ...services import ConfigError
from ..config_api import realm_tokens
from ..current import services
from .csrf import csrf_token, csrf_valid
from .oidc import OidcClient

log = logging.getLogger("orgscim.web")
# the templates and the stylesheet are the web package's
bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static",
               root_path=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_CLIENT_ID = "orgscim-admin"
DEFAULT_SESSION_SECONDS = 3600
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.callback", "admin.logged_out", "admin.static"})
#: a rendered page and its HTTP status
PageResult = tuple[str, int]


class Page(Exception):
    """Render the message page with this status (errors and refusals)."""

    def __init__(self, status: int, title: str, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.retry = status, title, message, retry


@dataclass(frozen=True)
class AdminSettings:
    """What the login needs, from the config (see :mod:`orgscim.web.admin`)."""

    oidc: OidcClient
    session_seconds: float

    @property
    def realm(self) -> str:
        """The realm whose admins may log in (``ADMIN_REALM``)."""
        return self.oidc.realm


def settings() -> AdminSettings:
    """The admin login settings, or a 503 page that names what is missing."""
    if "admin_settings" in g:
        known: AdminSettings = g.admin_settings
        return known
    svc = services()
    missing = []
    try:
        tokens = realm_tokens()
        secret = svc.secret_setting("ADMIN_CLIENT_SECRET")
    except ConfigError as e:
        raise Page(503, "Admin pages are not set up", str(e)) from None
    if tokens is None:
        missing.append("KEYCLOAK_URL")
    if not svc.config.get("ADMIN_REALM"):
        missing.append("ADMIN_REALM")
    if not secret:
        missing.append("ADMIN_CLIENT_SECRET_FILE (or ADMIN_CLIENT_SECRET)")
    if missing or tokens is None or not secret:
        raise Page(503, "Admin pages are not set up",
                   f"Set {', '.join(missing)} (as ORGSCIM_… environment variables or in config.toml) and restart "
                   "orgscim. See the README, section Admin pages.")
    oidc = OidcClient(str(svc.config["ADMIN_REALM"]), str(svc.config.get("ADMIN_CLIENT_ID") or DEFAULT_CLIENT_ID),
                      secret, tokens, float(svc.config.get("KEYCLOAK_TIMEOUT", 5)))
    found = AdminSettings(oidc, float(svc.config.get("ADMIN_SESSION_SECONDS", DEFAULT_SESSION_SECONDS)))
    g.admin_settings = found
    return found


# -- the session's admin ------------------------------------------------------------------------------------
def current_user() -> JSON | None:
    """The logged-in admin of this session (as :func:`.login.callback` stored it: JSON in the signed cookie), or
    None (none, expired, or another realm)."""
    user = session.get("user")
    if not isinstance(user, dict) or user.get("until", 0) < time.time():
        return None
    if user.get("realm") != settings().realm:
        return None
    return user


def org_admin() -> OrgAdmin:
    """Config changes as the logged-in admin (a :class:`Caller` like the config API's), audited as made through
    the admin pages."""
    user = g.admin_user
    who = Caller(user["realm"], user["sub"], user["username"], settings().oidc.client_id, frozenset(user["roles"]))
    return OrgAdmin(services(), who, "admin")


def keycloak_trouble(e: Exception, realm: str) -> str:
    """The start of a Keycloak (or config) error for a page; Keycloak not answering also pauses inline delivery
    to ``realm`` for a while (:meth:`Services.keycloak_failed`)."""
    if isinstance(e, KeycloakUnavailable):
        services().keycloak_failed(realm)
    return str(e)[:200]


def configured(org_id: str) -> Org:
    """The org's SCIM config, or a 404 page that says to configure it first."""
    org = services().orgs.org(settings().realm, org_id)
    if org is None:
        raise Page(404, "Not configured", f"Organization {org_id} has no SCIM config yet: configure it first.")
    return org


# -- around every page --------------------------------------------------------------------------------------
@bp.app_template_global()
def admin_csrf() -> str:
    """Templates: the CSRF token for a hidden form field."""
    return csrf_token()


@bp.before_request
def require_login() -> Response | None:
    """Every page but the login steps needs a logged-in admin; every POST needs the session's CSRF token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    settings()
    if request.method == "POST" and not csrf_valid(request.form.get("csrf", "")):
        raise Page(400, "The form has expired",
                   "This form was not sent from a current orgscim admin page (or your session ended). "
                   "Go back, reload the page and try again.", retry=True)
    if request.endpoint == "admin.logout":
        return None
    user = current_user()
    if user is None:
        if request.method != "GET":
            flash("Your session ended before the change was sent; log in and make it again.", "error")
        return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
    g.admin_user = user
    return None


@bp.after_request
def headers(resp: Response) -> Response:
    """No caching anywhere (one-time secrets, config), no framing, nothing loaded from elsewhere."""
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                               "frame-ancestors 'none'; base-uri 'none'")
    return resp


# -- errors -------------------------------------------------------------------------------------------------
@bp.errorhandler(Page)
def on_page(e: Page) -> PageResult:
    """Render a :class:`Page` error."""
    return render_template("message.html", title=e.title, message=e.message, retry=e.retry,
                           user=g.get("admin_user")), e.status


@bp.errorhandler(HTTPException)
def on_http_error(e: HTTPException) -> PageResult:
    """Werkzeug's HTTP errors as a page."""
    return on_page(Page(e.code or 500, e.name, e.description or e.name))


@bp.errorhandler(Exception)
def on_unexpected(e: Exception) -> PageResult:
    """500 as a page; the traceback goes to the log only."""
    log.exception("admin pages: unexpected error")
    return on_page(Page(500, "Something went wrong",
                        "orgscim could not complete this page; the server log has the details. Try again, and "
                        "check `orgscim check` if Keycloak is involved."))


def routing_error(e: HTTPException) -> PageResult | HTTPException:
    """404/405 that routing raises before any blueprint is known: a page under /admin/, unchanged elsewhere."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        return on_page(Page(e.code or 404, e.name, "There is no such admin page; start from the organizations "
                                                   "list."))
    return e


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str) -> Response:
    """A GET of a form's action URL (the address bar after a POST) leads back to the org; the rest is 404."""
    parts = rest.split("/")
    if request.method == "GET" and len(parts) > 2 and parts[0] == "orgs" and parts[1]:
        return redirect(url_for("admin.org", org_id=parts[1]))
    raise Page(404, "Not found", "There is no such admin page; start from the organizations list.")
