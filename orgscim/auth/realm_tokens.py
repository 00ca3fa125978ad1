"""Access tokens of any realm of the configured Keycloak: how realm admins authenticate to the config API.

The checks are the ``KEYCLOAK`` auth mode's (:func:`orgscim.auth.jwt.verify_jwt`: signature against the realm's
JWK Set, ``iss``, ``exp``/``nbf``/``iat`` with leeway, algorithm allow list) with issuer and JWK Set per realm
instead of per org, plus: ``typ: Bearer`` (an access token, not an ID or refresh token), a ``sub``, and a token
issued to one of orgscim's own clients (``ADMIN_TOKEN_CLIENTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from ..model.types import JSON
from .api import AuthFailed
from .caller import Caller
from .context import AuthContext
from .jwt import DEFAULT_LEEWAY, JwtRules, audiences, check_algorithms, verify_jwt

DEFAULT_ADMIN_TOKEN_CLIENTS = frozenset({"orgscim", "orgscim-admin"})


def realm_issuer(public_url: str, realm: str) -> str:
    """The ``iss`` of a realm's tokens: Keycloak's public (front-end) URL + ``/realms/{realm}``."""
    return f"{str(public_url).rstrip('/')}/realms/{quote(realm, safe='')}"


def realm_endpoint(base_url: str, realm: str, name: str) -> str:
    """A back-channel OIDC endpoint of a realm (``token``, ``certs``) on the URL orgscim reaches Keycloak at."""
    return f"{str(base_url).rstrip('/')}/realms/{quote(realm, safe='')}/protocol/openid-connect/{name}"


class RealmTokens:
    """Verifies tokens issued by any realm of the configured Keycloak.

    Keys come from the shared :class:`~orgscim.jwks.JwksCache` of ``ctx`` (an unknown ``kid`` re-fetches at
    most once a minute per realm).
    """

    def __init__(self, ctx: AuthContext, keycloak_url: str, frontend_url: str | None = None,
                 algorithms: tuple[str, ...] = ("RS256",), leeway: int = DEFAULT_LEEWAY, timeout: float = 5.0,
                 realm_exists: Callable[[str], bool] | None = None,
                 clients: frozenset[str] = DEFAULT_ADMIN_TOKEN_CLIENTS) -> None:
        self.ctx = ctx
        self.clients = clients
        self.base = keycloak_url.rstrip("/")
        self.public = (frontend_url or keycloak_url).rstrip("/")
        self.algorithms = algorithms
        self.leeway = leeway
        self.timeout = timeout
        self.realm_exists = realm_exists or self._ask_keycloak
        self._known: set[str] = set()

    @classmethod
    def from_config(cls, ctx: AuthContext, cfg: dict[str, Any]) -> RealmTokens | None:
        """From ``KEYCLOAK_URL``, ``KEYCLOAK_FRONTEND_URL`` and ``ADMIN_TOKEN_ALGORITHMS``; None when standalone.
        ``ValueError`` names a bad setting."""
        if not cfg.get("KEYCLOAK_URL"):
            return None
        try:
            algs = tuple(check_algorithms(cfg.get("ADMIN_TOKEN_ALGORITHMS") or "RS256"))
        except ValueError as e:
            raise ValueError(f"ADMIN_TOKEN_ALGORITHMS: {e}") from None
        return cls(ctx, str(cfg["KEYCLOAK_URL"]), cfg.get("KEYCLOAK_FRONTEND_URL"), algs,
                   timeout=float(cfg.get("KEYCLOAK_TIMEOUT", 5)), clients=admin_token_clients(cfg))

    def issuer(self, realm: str) -> str:
        """The ``iss`` of the realm's tokens (and the base of its browser-facing OIDC endpoints)."""
        return realm_issuer(self.public, realm)

    def endpoint(self, realm: str, name: str) -> str:
        """A back-channel OIDC endpoint of the realm (``token``, ``certs``), on the URL orgscim uses."""
        return realm_endpoint(self.base, realm, name)

    def rules(self, realm: str, audience: str | None = None) -> JwtRules:
        """What a token of ``realm`` must satisfy (``audience`` checked when given: ID tokens)."""
        return JwtRules(self.issuer(realm), self.endpoint(realm, "certs"), (audience,) if audience else (),
                        self.algorithms, {}, self.leeway)

    def verify(self, realm: str, token: str, audience: str | None = None, cheap_only: bool = False) -> JSON:
        """The claims of a token signed by ``realm`` (:class:`AuthFailed` otherwise).

        The realm comes from the URL, so before its JWK Set is fetched (and remembered, in memory and SQLite)
        Keycloak must confirm that the realm exists: made-up realm names cannot grow the key cache.
        """
        if realm not in self._known:
            if cheap_only or not self.realm_exists(realm):
                raise AuthFailed(f"realm {realm[:64]} is not known to Keycloak")
            self._known.add(realm)
        return verify_jwt(self.ctx, ("realm", realm), token, self.rules(realm, audience), cheap_only)

    def _ask_keycloak(self, realm: str) -> bool:
        """Whether Keycloak serves ``realm`` (its public realm endpoint answers 200)."""
        try:
            resp = requests.get(f"{self.base}/realms/{quote(realm, safe='')}", timeout=self.timeout,
                                allow_redirects=False)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def access_token(self, realm: str, token: str, cheap_only: bool = False) -> Caller:
        """The caller of an access token of ``realm`` (``typ: Bearer``; ID and refresh tokens are refused)."""
        claims = self.verify(realm, token, cheap_only=cheap_only)
        if claims.get("typ") != "Bearer":
            raise AuthFailed("not an access token (typ)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthFailed("no sub")
        if not bound_to(claims, self.clients):
            client = str(claims.get("azp", claims.get("client_id")))[:64]
            raise AuthFailed(f"token issued to client {client}, not to orgscim (ADMIN_TOKEN_CLIENTS)")
        return Caller.from_claims(realm, claims)


def admin_token_clients(cfg: dict[str, Any]) -> frozenset[str]:
    """``ADMIN_TOKEN_CLIENTS`` (list or comma-separated); default: orgscim's own clients (``KEYCLOAK_CLIENT_ID``,
    ``ADMIN_CLIENT_ID``)."""
    value = cfg.get("ADMIN_TOKEN_CLIENTS")
    if value:
        items = value.split(",") if isinstance(value, str) else list(value)
        return frozenset(str(c).strip() for c in items if str(c).strip())
    return frozenset({str(cfg.get("KEYCLOAK_CLIENT_ID") or "orgscim"), str(cfg.get("ADMIN_CLIENT_ID") or
                                                                           "orgscim-admin")})


def bound_to(claims: JSON, clients: frozenset[str]) -> bool:
    """Whether a token was issued to one of ``clients`` (``azp``/``client_id``, RFC 9068 §2.2) or names one in
    ``aud`` (RFC 7519 §4.1.3: a token another client obtained for orgscim through an audience mapper)."""
    client = claims.get("azp", claims.get("client_id"))
    return (isinstance(client, str) and client in clients) or any(a in clients for a in audiences(claims))
