"""Logging in and out of the admin pages through Keycloak (:class:`.oidc.OidcClient`): only users holding the
realm-management role ``manage-organizations``, ``manage-realm`` or ``realm-admin`` get in (a 403 page
otherwise)."""

from __future__ import annotations

import logging
import time

from flask import redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ...auth import AuthFailed
from ...auth.caller import ADMIN_ROLES
from ..urls import public_url
from .blueprint import Page, PageResult, bp, settings
from .csrf import csrf_token
from .oidc import LOGIN_SECONDS, LoginFailed, answers

log = logging.getLogger("orgscim.web")


def _external(endpoint: str) -> str:
    """An absolute URL of this app, on ``PUBLIC_BASE_URL`` when one is configured (behind a proxy)."""
    return public_url(url_for(endpoint))


def _safe_next(value: str | None) -> str | None:
    """Where to go after login: only an admin page of this app (no open redirect)."""
    if value and value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value.rstrip("?")
    return None


@bp.get("/login")
def login() -> Response:
    """Start the authorization code flow: remember state, nonce and the PKCE verifier; go to Keycloak."""
    oidc = settings().oidc
    pending = oidc.start(_safe_next(request.args.get("next")))
    session["oidc"] = pending
    return redirect(oidc.authorization_url(pending, _external("admin.callback")))


@bp.get("/callback")
def callback() -> Response | PageResult:
    """Finish the login: check state, exchange the code (with the PKCE verifier), verify the tokens, check roles."""
    s = settings()
    oidc = s.oidc
    pending = session.pop("oidc", None)
    if request.args.get("error"):
        raise Page(400, "Keycloak did not log you in",
                   f"Keycloak answered: {request.args.get('error_description') or request.args['error']}. "
                   "Try again; if it keeps failing, check the client "
                   f"{oidc.client_id} in realm {s.realm} (redirect URI, standard flow enabled).", retry=True)
    if not answers(pending, request.args.get("state", "")):
        raise Page(400, "This login has expired",
                   "The login was not started here, was already used, or took longer than "
                   f"{LOGIN_SECONDS // 60} minutes. Log in again.", retry=True)
    code = request.args.get("code")
    if not code:
        raise Page(400, "This login has expired", "Keycloak sent no authorization code. Log in again.", retry=True)
    try:
        tokens = oidc.exchange(code, pending["verifier"], _external("admin.callback"))
    except LoginFailed as e:
        raise Page(502, e.title, e.message, retry=True) from None
    try:
        user, id_claims = oidc.verify(tokens, pending["nonce"])
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


@bp.post("/logout")
def logout() -> Response:
    """End the orgscim session and the Keycloak session (RP-initiated logout)."""
    oidc = settings().oidc
    id_token = session.get("id_token")
    session.clear()
    return redirect(oidc.logout_url(_external("admin.logged_out"), id_token))


@bp.get("/logged-out")
def logged_out() -> str:
    """Where Keycloak sends the browser after logout."""
    return render_template("message.html", title="Logged out", message="You are logged out of the orgscim admin "
                           "pages and of Keycloak.", login=True, user=None)
