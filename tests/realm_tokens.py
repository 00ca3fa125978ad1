"""A stand-in for a Keycloak realm's signing key, for the fast tests of the config API and the admin pages.

Tokens are real RS256 JWTs signed with a local RSA key whose public half is served as the realm's JWK Set by
a fake JWKS fetcher, so the app's real verification code (:class:`orgscim.auth.realm_tokens.RealmTokens` →
``verify_jwt``) runs unchanged; only the HTTP fetch of the JWK Set is replaced.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from jose import jwk, jwt

from orgscim.auth.realm_tokens import RealmTokens
from orgscim.jwks import JwksCache, JwksError, parse_jwks
from orgscim.web.config_api import EXTENSION

KEYCLOAK = "http://kc.test"
KID = "test-key-1"


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class FakeRealm:
    """Signs tokens for any realm of ``http://kc.test`` and serves their JWK Set to the app."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = _pem(self.key)
        public = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        self.jwk = {**jwk.construct(public, "RS256").to_dict(), "kid": KID, "use": "sig"}
        self.fetches: list[str] = []
        self.realms = {"r1", "r2", "master"}  # the realms "Keycloak" has

    def install(self, app: Flask) -> RealmTokens:
        """Make ``app`` verify realm tokens against this key (as if ``KEYCLOAK_URL`` were http://kc.test)."""
        services = app.extensions["orgscim"]
        services.auth_ctx.jwks = JwksCache(fetcher=self.fetch, store=services.auth_ctx.jwks.store)
        tokens = RealmTokens(services.auth_ctx, KEYCLOAK, realm_exists=lambda realm: realm in self.realms)
        app.extensions[EXTENSION] = tokens
        return tokens

    def fetch(self, uri: str) -> dict[str, dict[str, Any]]:
        self.fetches.append(uri)
        if not uri.startswith(f"{KEYCLOAK}/realms/") or not uri.endswith("/protocol/openid-connect/certs"):
            raise JwksError(f"HTTP 404 from {uri}")
        return parse_jwks(json.dumps({"keys": [self.jwk]}).encode())

    def token(self, realm: str = "r1", roles: list[str] | None = None, *, typ: str = "Bearer", lifetime: int = 300,
              iss: str | None = None, kid: str = KID, key: bytes | None = None, username: str = "alice",
              sub: str | None = None, **claims: Any) -> str:
        """An access token of ``realm`` (``roles`` under realm-management; default manage-organizations)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": iss or f"{KEYCLOAK}/realms/{realm}", "sub": sub or f"user-{username}", "typ": typ,
            "azp": "orgscim-admin", "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
            "preferred_username": username,
            "resource_access": {"realm-management": {"roles": ["manage-organizations"] if roles is None else roles}},
        }
        body.update(claims)
        return jwt.encode(body, (key or self.pem).decode(), algorithm="RS256", headers={"kid": kid})

    @staticmethod
    def other_key() -> bytes:
        return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
