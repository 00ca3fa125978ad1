"""``EXTERNAL_SECRET``: the IdP sends ``Authorization: Bearer <secret>`` (DESIGN §5).

Secrets look like ``osk_<credential id>.<256-bit random>``: the id names the one credential to check, so a
request costs at most one Argon2id verification (and none with a warm cache).
"""

from __future__ import annotations

from typing import Any

from orgscim.auth import AuthContext, AuthRequest, IssuedCredential, Principal, bearer, new_credential_id, new_secret
from orgscim.store.orgs import Org

PREFIX = "osk_"


class ExternalSecretAuth:
    name = "EXTERNAL_SECRET"

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = set(config) - {"grace_hours"}
        if unknown:
            raise ValueError(f"EXTERNAL_SECRET takes no settings named {', '.join(sorted(unknown))}")
        return dict(config)

    def issue(self, org: Org, expires: str | None = None) -> IssuedCredential:
        cred_id = new_credential_id()
        secret = f"{PREFIX}{cred_id}.{new_secret()}"
        cred = self.ctx.orgs.add_credential(org.pk, cred_id, "secret", self.ctx.hash_secret(secret),
                                            expires=expires)
        return IssuedCredential(cred, secret)

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        token = bearer(req.authorization)
        if not token or not token.startswith(PREFIX) or "." not in token:
            return None
        cred_id = token[len(PREFIX):].split(".", 1)[0]
        cred = self.ctx.orgs.credential(org.pk, cred_id)
        if cred is None or cred.kind != "secret" or not self.ctx.verify(org, cred, token):
            return None
        return Principal(self.name, cred.cred_id)

    def schemes(self, org: Org) -> list[dict[str, Any]]:
        return [{"type": "oauthbearertoken", "name": "Bearer secret",
                 "description": "A secret issued by orgscim for this organization, sent as a bearer token.",
                 "primary": True}]
