"""The admin pages' session: Flask's signed cookie, opened only under the cookie's path."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request


class AdminSessions(SecureCookieSessionInterface):
    """SCIM and API requests (bearer tokens) never carry the admin cookie, whose path is ``/admin``: they get a
    null session instead of building the cookie's signer, CPU the host's Keycloak can use (#8)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(self.get_cookie_path(app)):
            return self.make_null_session(app)
        return super().open_session(app, request)
