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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from .. import plugins
from ..auth import AuthFailed
from ..auth.caller import ADMIN_ROLES, Caller
from ..auth.realm_tokens import RealmTokens
from ..keycloak.client import KeycloakError, KeycloakUnavailable
from ..model.contract import Org
from ..orgadmin import OrgAdmin
from ..provision.mapping import DEFAULT_SETTINGS, ORG_SETTINGS
from ..services import ConfigError, Services
from . import forms
from .config_api import realm_tokens
from .connection_test import TEST_LOOKUP, connection_test
from .idp_guides import GUIDES
from .urls import scim_base_url

log = logging.getLogger("orgscim.web")
bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")

DEFAULT_CLIENT_ID = "orgscim-admin"
DEFAULT_SESSION_SECONDS = 3600
LOGIN_SECONDS = 600  # a login started longer ago than this must start again
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.callback", "admin.logged_out", "admin.static"})
SECRET_KEY_FILE = "secret_key"


# -- setup --------------------------------------------------------------------------------------------------
def init_app(app: Flask) -> None:
    """Register the blueprint, the session cookie settings and the secret key."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))
    public = str(app.config.get("PUBLIC_BASE_URL") or "")
    app.config.update(SESSION_COOKIE_NAME="orgscim_admin", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_PATH="/admin",
                      SESSION_COOKIE_SECURE=bool(app.config.get("ADMIN_COOKIE_SECURE", public.startswith("https:"))))
    app.register_blueprint(bp)
    app.register_error_handler(404, _routing_error)
    app.register_error_handler(405, _routing_error)


def instance_secret_key(folder: Path) -> str:
    """The key in ``folder/secret_key``, created (0600, 256 random bits) by the first process that needs it."""
    path = folder / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        # another process is writing it right now
        for _ in range(50):
            time.sleep(0.05)
            key = path.read_text().strip()
            if key:
                return key
        raise RuntimeError(f"{path} is empty: delete it and restart orgscim") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True)
class Settings:
    """What the login needs, from the config (see the module docstring)."""

    realm: str
    client_id: str
    client_secret: str
    tokens: RealmTokens
    session_seconds: float
    timeout: float


def settings() -> Settings:
    """The admin login settings, or a 503 page that names what is missing."""
    if "admin_settings" in g:
        return g.admin_settings
    services = _services()
    missing = []
    try:
        tokens = realm_tokens()
        secret = services.secret_setting("ADMIN_CLIENT_SECRET")
    except ConfigError as e:
        raise Page(503, "Admin pages are not set up", str(e)) from None
    if tokens is None:
        missing.append("KEYCLOAK_URL")
    if not services.config.get("ADMIN_REALM"):
        missing.append("ADMIN_REALM")
    if not secret:
        missing.append("ADMIN_CLIENT_SECRET_FILE (or ADMIN_CLIENT_SECRET)")
    if missing or tokens is None or not secret:
        raise Page(503, "Admin pages are not set up",
                   f"Set {', '.join(missing)} (as ORGSCIM_… environment variables or in config.toml) and restart "
                   "orgscim. See the README, section Admin pages.")
    g.admin_settings = Settings(str(services.config["ADMIN_REALM"]),
                                str(services.config.get("ADMIN_CLIENT_ID") or DEFAULT_CLIENT_ID), secret, tokens,
                                float(services.config.get("ADMIN_SESSION_SECONDS", DEFAULT_SESSION_SECONDS)),
                                float(services.config.get("KEYCLOAK_TIMEOUT", 5)))
    return g.admin_settings


def _services() -> Services:
    """The app's :class:`Services`."""
    return current_app.extensions["orgscim"]


class Page(Exception):
    """Render the message page with this status (errors and refusals)."""

    def __init__(self, status: int, title: str, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.retry = status, title, message, retry


# -- session, CSRF ------------------------------------------------------------------------------------------
def current_user() -> dict[str, Any] | None:
    """The logged-in admin of this session, or None (none, expired, or another realm)."""
    user = session.get("user")
    if not isinstance(user, dict) or user.get("until", 0) < time.time():
        return None
    if user.get("realm") != settings().realm:
        return None
    return user


def caller() -> Caller:
    """The logged-in admin as the config API's :class:`Caller` (for :class:`OrgAdmin` and audit)."""
    user = g.admin_user
    return Caller(user["realm"], user["sub"], user["username"], settings().client_id, frozenset(user["roles"]))


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def once_token() -> str:
    """A fresh one-time value for a form whose result must not be produced twice (a secret)."""
    return secrets.token_urlsafe(16)


def fresh_once(value: str | None) -> bool:
    """False if the one-time value is missing or was used already (the form was resubmitted)."""
    return bool(value) and value not in (session.get("used_once") or [])


def spend_once(value: str) -> None:
    """Record a one-time value as used (after the form's action succeeded; the last 50 are kept)."""
    session["used_once"] = (list(session.get("used_once") or []) + [value])[-50:]


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
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
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


@bp.errorhandler(Page)
def on_page(e: Page) -> tuple[str, int]:
    """Render a :class:`Page` error."""
    return render_template("message.html", title=e.title, message=e.message, retry=e.retry,
                           user=g.get("admin_user")), e.status


@bp.errorhandler(HTTPException)
def on_http_error(e: HTTPException) -> tuple[str, int]:
    """Werkzeug's HTTP errors as a page."""
    return on_page(Page(e.code or 500, e.name, e.description or e.name))


@bp.errorhandler(Exception)
def on_unexpected(e: Exception) -> tuple[str, int]:
    """500 as a page; the traceback goes to the log only."""
    log.exception("admin pages: unexpected error")
    return on_page(Page(500, "Something went wrong",
                        "orgscim could not complete this page; the server log has the details. Try again, and "
                        "check `orgscim check` if Keycloak is involved."))


def _routing_error(e: HTTPException) -> Any:
    """404/405 that routing raises before any blueprint is known: a page under /admin/, unchanged elsewhere."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        return on_page(Page(e.code or 404, e.name, "There is no such admin page; start from the organizations "
                                                   "list."))
    return e


# -- login --------------------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    """base64url without padding (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _external(endpoint: str, **values: Any) -> str:
    """An absolute URL of this app, on ``PUBLIC_BASE_URL`` when one is configured (behind a proxy)."""
    public = current_app.config.get("PUBLIC_BASE_URL")
    if public:
        return str(public).rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _safe_next(value: str | None) -> str | None:
    """Where to go after login: only an admin page of this app (no open redirect)."""
    if value and value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value.rstrip("?")
    return None


@bp.get("/login")
def login() -> Response:
    """Start the authorization code flow: remember state, nonce and the PKCE verifier; go to Keycloak."""
    s = settings()
    verifier = secrets.token_urlsafe(64)
    pending = {"state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32), "verifier": verifier,
               "next": _safe_next(request.args.get("next")), "at": time.time()}
    session["oidc"] = pending
    params = {"response_type": "code", "client_id": s.client_id, "redirect_uri": _external("admin.callback"),
              "scope": "openid", "state": pending["state"], "nonce": pending["nonce"],
              "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
    return redirect(f"{s.tokens.issuer(s.realm)}/protocol/openid-connect/auth?{urlencode(params)}")


@bp.get("/callback")
def callback() -> Response | tuple[str, int]:
    """Finish the login: check state, exchange the code (with the PKCE verifier), verify the tokens, check roles."""
    s = settings()
    pending = session.pop("oidc", None)
    if request.args.get("error"):
        raise Page(400, "Keycloak did not log you in",
                   f"Keycloak answered: {request.args.get('error_description') or request.args['error']}. "
                   "Try again; if it keeps failing, check the client "
                   f"{s.client_id} in realm {s.realm} (redirect URI, standard flow enabled).", retry=True)
    state = request.args.get("state", "")
    if (not isinstance(pending, dict) or not hmac.compare_digest(state.encode(), str(pending["state"]).encode())
            or time.time() - pending["at"] > LOGIN_SECONDS):
        raise Page(400, "This login has expired",
                   "The login was not started here, was already used, or took longer than "
                   f"{LOGIN_SECONDS // 60} minutes. Log in again.", retry=True)
    code = request.args.get("code")
    if not code:
        raise Page(400, "This login has expired", "Keycloak sent no authorization code. Log in again.", retry=True)
    tokens = _exchange(s, code, pending["verifier"])
    try:
        id_claims = s.tokens.verify(s.realm, tokens.get("id_token") or "", audience=s.client_id)
        if id_claims.get("typ", "ID") != "ID" or id_claims.get("azp", s.client_id) != s.client_id:
            raise AuthFailed("not an ID token for this client")
        if not hmac.compare_digest(str(id_claims.get("nonce", "")).encode(), str(pending["nonce"]).encode()):
            raise AuthFailed("nonce mismatch")
        user = s.tokens.access_token(s.realm, tokens.get("access_token") or "")
        if user.subject != id_claims.get("sub"):
            raise AuthFailed("access token and ID token name different users")
    except AuthFailed as e:
        log.warning("admin login refused: %s", e.reason)
        raise Page(400, "Login failed", "Keycloak's answer did not pass verification (signature, issuer, audience, "
                   "nonce or expiry). Log in again; if it keeps failing, check that KEYCLOAK_URL and "
                   "KEYCLOAK_FRONTEND_URL name the Keycloak your browser uses.", retry=True) from None
    session.clear()
    session["id_token"] = tokens.get("id_token")
    csrf_token()
    if not user.is_admin:
        log.info("admin login forbidden: %s lacks the admin roles", user.who)
        return render_template("message.html", title="Not allowed", denied=True, user=None, message=(
            f"You are logged in as {user.who}, who does not hold the realm-management role "
            f"manage-organizations, manage-realm or realm-admin of realm {s.realm}. Ask a realm "
            "administrator for one of these roles, or log out and log in as another user.")), 403
    session["user"] = {"sub": user.subject, "username": user.who, "name": id_claims.get("name"),
                       "realm": s.realm, "roles": sorted(user.roles & ADMIN_ROLES),
                       "until": time.time() + s.session_seconds}
    log.info("admin login realm=%s who=%s", s.realm, user.who)
    return redirect(pending.get("next") or url_for("admin.orgs"))


def _exchange(s: Settings, code: str, verifier: str) -> dict[str, Any]:
    """POST the code to the realm's token endpoint (back channel, client secret basic auth)."""
    try:
        resp = requests.post(s.tokens.endpoint(s.realm, "token"), timeout=s.timeout, auth=(s.client_id,
                             s.client_secret), data={"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": _external("admin.callback"),
                                                     "code_verifier": verifier})
    except requests.RequestException as e:
        raise Page(502, "Keycloak is not reachable",
                   f"orgscim could not reach Keycloak's token endpoint ({type(e).__name__}). Check KEYCLOAK_URL "
                   "and that Keycloak runs, then log in again.", retry=True) from None
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if resp.status_code != 200 or not isinstance(data, dict):
        reason = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
        raise Page(502, "Login failed", f"Keycloak refused the login code (HTTP {resp.status_code}"
                   f"{': ' + str(reason) if reason else ''}). Check ADMIN_CLIENT_ID and its secret, then log in "
                   "again.", retry=True)
    return data


@bp.post("/logout")
def logout() -> Response:
    """End the orgscim session and the Keycloak session (RP-initiated logout)."""
    s = settings()
    id_token = session.get("id_token")
    session.clear()
    params = {"client_id": s.client_id, "post_logout_redirect_uri": _external("admin.logged_out")}
    if id_token:
        params["id_token_hint"] = id_token
    return redirect(f"{s.tokens.issuer(s.realm)}/protocol/openid-connect/logout?{urlencode(params)}")


@bp.get("/logged-out")
def logged_out() -> str:
    """Where Keycloak sends the browser after logout."""
    return render_template("message.html", title="Logged out", message="You are logged out of the orgscim admin "
                           "pages and of Keycloak.", login=True, user=None)


# -- pages ----------------------------------------------------------------------------------------------
NAMES_REFRESH_SECONDS = 300.0  # how often (per process) the orgs page asks Keycloak for new organization names
PAGE_SIZE = 50
_names_refreshed: dict[str, float] = {}


def _refresh_names(realm: str) -> str | None:
    """Cache the names of the realm's Keycloak organizations (``kc_orgs``), at most every NAMES_REFRESH_SECONDS
    per process, page by page; None, or a warning when Keycloak did not answer (the cached names stay)."""
    services = _services()
    if time.monotonic() - _names_refreshed.get(realm, -NAMES_REFRESH_SECONDS) < NAMES_REFRESH_SECONDS:
        return None
    fallback = "names and organizations without a SCIM config are as the last reconcile saw them."
    if not services.keycloak_up(realm):
        return f"Keycloak failed moments ago; {fallback}"
    try:
        admin = services.keycloak(realm)
        if admin is None:
            return "Keycloak is not configured (KEYCLOAK_URL): only configured orgs are listed, without names."
        page: list[dict[str, Any]] = []
        for kc_org in admin.iter_organizations():
            page.append(kc_org)
            if len(page) == 100:
                services.orgs.seen_in_keycloak(realm, page)
                page = []
        services.orgs.seen_in_keycloak(realm, page)
    except (KeycloakError, ConfigError) as e:
        if isinstance(e, KeycloakUnavailable):
            services.keycloak_failed(realm)
        return f"Keycloak did not list its organizations ({str(e)[:200]}); {fallback}"
    _names_refreshed[realm] = time.monotonic()
    return None


@bp.get("/")
def orgs() -> str:
    """The realm's organizations, a page at a time: search by name, alias or id; filter by status."""
    from ..model.contract import ORG_STATUS_FILTERS
    from ..services import org_status

    s = settings()
    services = _services()
    warning = _refresh_names(s.realm)
    q = request.args.get("q", "").strip()[:200]
    status = request.args.get("status") or None
    if status not in (None, *ORG_STATUS_FILTERS):
        status = None
    after = request.args.get("after") or None
    try:
        page = services.orgs.org_page(s.realm, after=after, limit=PAGE_SIZE, search=q or None, status=status)
    except ValueError:
        raise Page(400, "No such page", "The page link is not valid (any more); start from the first page.") from None
    for row in page.rows:
        row["status"] = org_status(row)
    return render_template("orgs.html", rows=page.rows, next=page.next, first=after is not None, q=q, status=status,
                           statuses=ORG_STATUS_FILTERS, warning=warning, realm=s.realm,
                           realm_enabled=services.orgs.realm_enabled(s.realm), user=g.admin_user)


@bp.post("/realm")
def realm_flag() -> Response:
    """Turn SCIM on or off for the realm."""
    s = settings()
    enabled = request.form.get("scimEnabled") == "on"
    OrgAdmin(_services(), caller(), "admin").set_realm(s.realm, enabled)
    flash(f"SCIM is now {'on' if enabled else 'off'} for realm {s.realm}"
          + ("." if enabled else ": every organization's SCIM endpoint answers 404."), "ok")
    return redirect(url_for("admin.orgs"))


def _org_page(org_id: str, status: int = 200, error: str | None = None, form: dict[str, Any] | None = None,
              test: list[dict[str, Any]] | None = None) -> tuple[str, int]:
    """One org: its Keycloak organization, SCIM config, counts, credentials, IdP instructions, the config form."""
    s = settings()
    services = _services()
    org = services.orgs.org(s.realm, org_id)
    kc_org, warning = None, None
    try:
        admin = services.keycloak(s.realm) if services.keycloak_up(s.realm) else None
        kc_org = admin.get_organization(org_id) if admin else None
    except KeycloakError as e:
        if isinstance(e, KeycloakUnavailable):
            services.keycloak_failed(s.realm)
        if e.status == 404 and org is None:
            raise Page(404, "No such organization", f"Realm {s.realm} has no organization with id {org_id}. "
                       "Pick one from the organizations list.") from None
        warning = ("Keycloak no longer lists this organization: its SCIM endpoint stays closed."
                   if e.status == 404 else f"Keycloak did not answer ({str(e)[:200]}).")
    except ConfigError as e:
        warning = str(e)
    names = kc_org or services.orgs.org_names(s.realm, [org_id]).get(org_id) or {}
    creds = services.orgs.credentials(org.pk) if org else []
    issuing = org is not None and _issues_credentials(services, org)
    base_url = scim_base_url(s.realm, org_id)
    mode = org.auth_mode if org else "EXTERNAL_SECRET"
    return render_template(
        "org.html", org=org, org_id=org_id, kc_org=kc_org, name=names.get("name"), alias=names.get("alias"),
        warning=warning, error=error, user=g.admin_user, realm=s.realm,
        realm_enabled=services.orgs.realm_enabled(s.realm), creds=creds, issuing=issuing,
        counts=services.orgs.org_counts(org.pk) if org else {},
        drift=len(services.sync.drift(org.pk)) if org else 0,
        pending=len(services.sync.outbox(org.pk)) if org else 0,
        base_url=base_url, form=form or _default_form(org), auth_modes=sorted(plugins.auth_modes()),
        federations=sorted(plugins.federation_plugins()), auth_fields=forms.AUTH_FIELDS,
        federation_fields=forms.FEDERATION_FIELDS, option_choices=ORG_SETTINGS, once=once_token(),
        guides=[gd for gd in GUIDES if mode in gd.auth_modes] or GUIDES, test=test,
        can_repair=org is not None and services.keycloak_configured and org.vanished is None), status


def _default_form(org: Org | None) -> dict[str, Any]:
    """The config form filled from the stored config (or the defaults for a new one)."""
    current = org.settings if org else DEFAULT_SETTINGS
    mode = org.auth_mode if org else "EXTERNAL_SECRET"
    federation = org.federation if org else "none"
    return {
        "authMode": mode, "federation": federation, "enabled": org.enabled if org else True,
        "authConfig": json.dumps(org.auth_config, indent=2) if org else "{}",
        "auth": forms.field_values(forms.AUTH_FIELDS, mode, org.auth_config if org else {}),
        "fed": forms.field_values(forms.FEDERATION_FIELDS, federation,
                                  dict(current.get("federation") or {}) if org else {}),
        "options": {k: current.get(k, DEFAULT_SETTINGS.get(k)) for k in ORG_SETTINGS},
    }


def _issues_credentials(services: Services, org: Org) -> bool:
    """Whether orgscim issues this org's credentials (EXTERNAL_SECRET, EXTERNAL_BASIC)."""
    try:
        services.credential_issuer(org)
    except ConfigError:
        return False
    return True


@bp.get("/orgs/<org_id>")
def org(org_id: str) -> tuple[str, int]:
    """One organization's page."""
    return _org_page(org_id)


def _configured(org_id: str) -> Org:
    """The org's SCIM config, or a 404 page that says to configure it first."""
    org = _services().orgs.org(settings().realm, org_id)
    if org is None:
        raise Page(404, "Not configured", f"Organization {org_id} has no SCIM config yet: configure it first.")
    return org


@bp.post("/orgs/<org_id>/configure")
def configure(org_id: str) -> Response | tuple[str, int]:
    """The configure form → the same :meth:`OrgAdmin.configure` the config API's PUT uses. The fields of the
    chosen auth mode and federation behaviour are read; a mode without fields here takes the JSON text area."""
    s = settings()
    f = request.form
    mode, federation = f.get("authMode", ""), f.get("federation", "none")
    form = {"authMode": mode, "federation": federation, "enabled": f.get("enabled") == "on",
            "authConfig": f.get("authConfig", "{}"),
            "auth": forms.posted_values(f, "auth-", forms.AUTH_FIELDS),
            "fed": forms.posted_values(f, "fed-", forms.FEDERATION_FIELDS),
            "options": {k: f.get(f"option_{k}", "") for k in ORG_SETTINGS}}
    try:
        auth_config = (forms.parse_fields(f, f"auth-{mode}-", forms.AUTH_FIELDS[mode]) if mode in forms.AUTH_FIELDS
                       else _json_field("Auth settings", form["authConfig"]))
        data = {"authMode": mode, "enabled": form["enabled"], "federation": federation, "authConfig": auth_config,
                "federationConfig": forms.parse_fields(f, f"fed-{federation}-",
                                                       forms.FEDERATION_FIELDS.get(federation, ())),
                "options": {k: v for k, v in form["options"].items() if v}}
        org, created = OrgAdmin(_services(), caller(), "admin").configure(s.realm, org_id, data)
    except ConfigError as e:
        return _org_page(org_id, 400, f"Not saved: {e}", form)
    hint = "" if org.realm_enabled else f" SCIM is off for realm {s.realm}: turn it on on the organizations page."
    flash(f"SCIM config {'created' if created else 'saved'}.{hint}", "ok")
    return redirect(url_for("admin.org", org_id=org_id))


def _json_field(label: str, text: str) -> dict[str, Any]:
    """A JSON-object form field, or a :class:`ConfigError` that names it."""
    try:
        value = json.loads(text.strip() or "{}")
    except ValueError as e:
        raise ConfigError(f"{label} must be a JSON object, e.g. {{\"grace_hours\": 24}} ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a JSON object, e.g. {{}}")
    return value


@bp.post("/orgs/<org_id>/repair")
def repair(org_id: str) -> Response:
    """Repair this org's drift now, exactly as ``orgscim reconcile --org ID --repair``: compare, queue what
    orgscim owns into the outbox, deliver, compare again. Audited as ``drift.repaired``."""
    from ..provision.reconcile import Reconciler

    org = _configured(org_id)
    services = _services()
    if not services.keycloak_configured:
        raise Page(409, "Nothing to repair", "Keycloak is not configured (KEYCLOAK_URL): there is no drift.")
    try:
        summary = Reconciler(services, "repair").run(org.realm, org.org_id)
    except (KeycloakError, ConfigError) as e:
        if isinstance(e, KeycloakUnavailable):
            services.keycloak_failed(org.realm)
        raise Page(502, "Keycloak did not answer", f"The repair could not compare with Keycloak ({str(e)[:200]}); "
                   "nothing was changed. Try again later.", retry=False) from None
    OrgAdmin(services, caller(), "admin").audit(org.pk, "drift.repaired", repaired=summary.repaired,
                                                remaining=len(summary.findings))
    left = len(summary.findings)
    flash(f"Repair queued {summary.repaired} change(s) through the outbox; {left} difference(s) remain"
          + (" (orgscim does not own them, or Keycloak refused: see Drift)." if left else "."), "ok")
    return redirect(url_for("admin.org", org_id=org_id))


@bp.post("/orgs/<org_id>/test")
def test_connection(org_id: str) -> tuple[str, int]:
    """Send what an IdP sends first (ServiceProviderConfig, then a ``userName eq`` lookup) with the credential
    the admin pasted, through this app's own SCIM endpoint, and show the answers. The credential is used for
    these two requests only: never stored, logged or shown again."""
    org = _configured(org_id)
    credential = request.form.get("credential", "")
    username = request.form.get("username", "")
    lookup = request.form.get("lookup", "").strip()[:200] or TEST_LOOKUP
    if not credential.strip():
        return _org_page(org_id, 400, "Paste the credential the IdP will use (a secret or a token) to test.")
    steps = connection_test(current_app, org, credential.strip(), username.strip(), lookup)
    ok = all(st["ok"] for st in steps)
    OrgAdmin(_services(), caller(), "admin").audit(org.pk, "config.connection_tested", ok=ok,
                                                   statuses=[st["status"] for st in steps])
    return _org_page(org_id, 200 if ok else 400, None if ok else "The connection test failed: see the answers.",
                     test=steps)


def _secret_page(org: Org, issued: Any, rotation: Any = None) -> tuple[str, int]:
    """The one page that shows a new secret."""
    name = (_services().orgs.org_names(org.realm, [org.org_id]).get(org.org_id) or {}).get("name")
    return render_template("secret.html", org=org, name=name, issued=issued, rotation=rotation, user=g.admin_user,
                           base_url=scim_base_url(org.realm, org.org_id)), 201


def _resubmitted(org: Org) -> Page:
    """The page for a form sent twice (a reload of the secret page)."""
    return Page(409, "Already done", "This form was already sent, so no new credential was created. A secret is "
                "shown only once, right after it is created: if you did not copy it, create a new credential on "
                f"the page of organization {org.org_id} and revoke the one you lost.")


@bp.post("/orgs/<org_id>/credentials")
def create_credential(org_id: str) -> tuple[str, int]:
    """Issue a credential; its secret is on the answer to this POST only."""
    org = _configured(org_id)
    once = request.form.get("once", "")
    if not fresh_once(once):
        raise _resubmitted(org)
    try:
        issued = OrgAdmin(_services(), caller(), "admin").issue(org)
    except ConfigError as e:
        raise Page(409, "No credentials for this mode", str(e)) from None
    spend_once(once)
    return _secret_page(org, issued)


@bp.post("/orgs/<org_id>/credentials/rotate")
def rotate_credential(org_id: str) -> tuple[str, int]:
    """Rotate: a new secret once; the others keep working until the grace deadline."""
    org = _configured(org_id)
    hours = request.form.get("graceHours", "").strip() or None
    once = request.form.get("once", "")
    if not fresh_once(once):
        raise _resubmitted(org)
    try:
        rotation = OrgAdmin(_services(), caller(), "admin").rotate(org, hours)
    except ConfigError as e:
        raise Page(400, "Not rotated", f"{e}. Go back and correct the grace period.") from None
    spend_once(once)
    return _secret_page(org, rotation.issued, rotation)


@bp.post("/orgs/<org_id>/credentials/<cred_id>/revoke")
def revoke_credential(org_id: str, cred_id: str) -> Response:
    """Revoke a credential now."""
    org = _configured(org_id)
    if OrgAdmin(_services(), caller(), "admin").revoke(org, cred_id) is None:
        raise Page(404, "No such credential", f"Organization {org_id} has no credential {cred_id}.")
    flash(f"Credential {cred_id} revoked: it stopped working immediately.", "ok")
    return redirect(url_for("admin.org", org_id=org_id))


@bp.post("/orgs/<org_id>/remove")
def remove(org_id: str) -> Response:
    """Close the endpoint and revoke the credentials (optionally delete the org's SCIM data)."""
    org = _configured(org_id)
    purge = request.form.get("purge") == "on"
    revoked = OrgAdmin(_services(), caller(), "admin").remove(org, purge)
    what = "SCIM config and data deleted" if purge else "SCIM endpoint closed (data kept; configure to reopen)"
    flash(f"{what}; {len(revoked)} credential(s) revoked.", "ok")
    return redirect(url_for("admin.org", org_id=org_id))


MAX_LISTED = 500  # rows on the drift and activity pages


@bp.get("/drift")
def drift() -> str:
    """Open drift records of the realm's orgs (``?org=ID``: one org), with user, group and org names."""
    from ..names import add_names

    s = settings()
    services = _services()
    only = request.args.get("org") or None
    org = services.orgs.org(s.realm, only) if only else None
    rows = [d for d in services.sync.drift(org.pk if org else None) if d["realm"] == s.realm][:MAX_LISTED]
    if only and org is None:
        rows = []
    add_names(services.orgs, rows)
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in rows:
        groups.setdefault(d["orgId"], []).append(d)
    return render_template("drift.html", groups=list(groups.items()), realm=s.realm, user=g.admin_user,
                           configured=services.orgs.org_page(s.realm, limit=1, status="configured").rows != [],
                           only=only, truncated=len(rows) >= MAX_LISTED)


@bp.get("/activity")
def activity() -> str:
    """Pending outbox entries, recent provisioning and audit events of the realm, with names."""
    from ..names import add_names

    s = settings()
    services = _services()
    orgs = {o.pk: o for o in services.orgs.orgs(s.realm)}

    def named(items: list[Any]) -> list[dict[str, Any]]:
        return add_names(services.orgs, [{**i.public(), "realm": s.realm, "orgId": orgs[i.org_pk].org_id}
                                         for i in items if i.org_pk in orgs])

    pending = named([i for i in services.sync.outbox(None, limit=MAX_LISTED) if i.org_pk in orgs])
    recent = named(services.sync.recent(list(orgs), 100))
    events = services.orgs.events(s.realm, limit=200)
    names = services.orgs.org_names(s.realm, [e["orgId"] for e in events if e["orgId"]])
    for e in events:
        e["orgName"] = (names.get(e["orgId"]) or {}).get("name") if e["orgId"] else None
    return render_template("activity.html", events=events, pending=pending, recent=recent, realm=s.realm,
                           user=g.admin_user)


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str) -> Response:
    """A GET of a form's action URL (the address bar after a POST) leads back to the org; the rest is 404."""
    parts = rest.split("/")
    if request.method == "GET" and len(parts) > 2 and parts[0] == "orgs" and parts[1]:
        return redirect(url_for("admin.org", org_id=parts[1]))
    raise Page(404, "Not found", "There is no such admin page; start from the organizations list.")
