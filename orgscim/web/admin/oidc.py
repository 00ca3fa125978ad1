"""The admin login's OpenID Connect client: authorization code flow (OIDC Core 1.0 §3.1) with PKCE (RFC 7636,
``S256``), ``state`` and ``nonce``, as a confidential client of one realm. It talks HTTP to Keycloak and knows
no Flask: the views keep the :class:`PendingLogin` in the session and turn :class:`LoginFailed` into a page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlencode

import requests

from ...auth import AuthFailed
from ...auth.caller import Caller
from ...auth.realm_tokens import RealmTokens
from ...model.types import JSON

LOGIN_SECONDS = 600  # a login started longer ago than this must start again

#: Keycloak's token response (RFC 6749 §5.1): JSON as Keycloak sends it
TokenResponse = JSON


class PendingLogin(TypedDict):
    """A started login, kept in the session until Keycloak sends the browser back."""

    state: str
    nonce: str
    verifier: str  # the PKCE code verifier (RFC 7636 §4.1)
    next: str | None  # the admin page to go to afterwards
    at: float  # when it started (time.time())


class LoginFailed(Exception):
    """Keycloak's token endpoint could not be reached or refused the code: what the login page says."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title, self.message = title, message


def _b64(raw: bytes) -> str:
    """base64url without padding (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _same(a: object, b: object) -> bool:
    """Constant-time equality of two values' text (state, nonce)."""
    return hmac.compare_digest(str(a).encode(), str(b).encode())


def answers(pending: object, state: str) -> bool:
    """Whether the callback's ``state`` belongs to ``pending`` (the session's), started less than LOGIN_SECONDS
    ago (RFC 6749 §10.12)."""
    return (isinstance(pending, dict) and _same(state, pending["state"])
            and time.time() - pending["at"] <= LOGIN_SECONDS)


@dataclass(frozen=True)
class OidcClient:
    """The confidential client ``client_id`` of ``realm``; tokens are verified by ``tokens``."""

    realm: str
    client_id: str
    client_secret: str
    tokens: RealmTokens
    timeout: float

    def start(self, next_page: str | None) -> PendingLogin:
        """A new login: fresh ``state``, ``nonce`` and PKCE verifier."""
        return {"state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32),
                "verifier": secrets.token_urlsafe(64), "next": next_page, "at": time.time()}

    def authorization_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        """Keycloak's login page for ``pending`` (authentication request, OIDC Core §3.1.2.1)."""
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "scope": "openid", "state": pending["state"], "nonce": pending["nonce"],
                  "code_challenge": _b64(hashlib.sha256(pending["verifier"].encode()).digest()),
                  "code_challenge_method": "S256"}
        return f"{self.tokens.issuer(self.realm)}/protocol/openid-connect/auth?{urlencode(params)}"

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> TokenResponse:
        """POST the code to the realm's token endpoint (back channel, client secret basic auth, RFC 6749 §4.1.3)."""
        try:
            resp = requests.post(self.tokens.endpoint(self.realm, "token"), timeout=self.timeout,
                                 auth=(self.client_id, self.client_secret),
                                 data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                       "code_verifier": verifier})
        except requests.RequestException as e:
            raise LoginFailed("Keycloak is not reachable",
                              f"orgscim could not reach Keycloak's token endpoint ({type(e).__name__}). Check "
                              "KEYCLOAK_URL and that Keycloak runs, then log in again.") from None
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code != 200 or not isinstance(data, dict):
            reason = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
            raise LoginFailed("Login failed", f"Keycloak refused the login code (HTTP {resp.status_code}"
                              f"{': ' + str(reason) if reason else ''}). Check ADMIN_CLIENT_ID and its secret, then "
                              "log in again.")
        return data

    def verify(self, tokens: TokenResponse, nonce: str) -> tuple[Caller, JSON]:
        """The user of a token response and its ID token's claims (OIDC Core §3.1.3.7: signature, issuer, audience,
        expiry, ``nonce``); the access token must name the same user. :class:`AuthFailed` otherwise."""
        id_claims = self.tokens.verify(self.realm, tokens.get("id_token") or "", audience=self.client_id)
        if id_claims.get("typ", "ID") != "ID" or id_claims.get("azp", self.client_id) != self.client_id:
            raise AuthFailed("not an ID token for this client")
        if not _same(id_claims.get("nonce", ""), nonce):
            raise AuthFailed("nonce mismatch")
        user = self.tokens.access_token(self.realm, tokens.get("access_token") or "")
        if user.subject != id_claims.get("sub"):
            raise AuthFailed("access token and ID token name different users")
        return user, id_claims

    def logout_url(self, redirect_uri: str, id_token: str | None) -> str:
        """Keycloak's end-session endpoint (OIDC RP-Initiated Logout 1.0 §2)."""
        params = {"client_id": self.client_id, "post_logout_redirect_uri": redirect_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{self.tokens.issuer(self.realm)}/protocol/openid-connect/logout?{urlencode(params)}"
