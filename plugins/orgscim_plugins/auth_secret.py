"""``EXTERNAL_SECRET``: the IdP sends ``Authorization: Bearer <secret>`` (DESIGN §5).

Secrets look like ``osk_<credential id>.<256-bit random>``: the id names the one credential to check, so a
request costs at most one Argon2id verification (and none with a warm cache).
"""

from __future__ import annotations

from orgscim.auth import AuthFailed, AuthRequest, IssuingMode, Principal, bearer, new_secret
from orgscim.model.contract import Org
from orgscim.model.types import JSON

PREFIX = "osk_"


class ExternalSecretAuth(IssuingMode):
    name = "EXTERNAL_SECRET"
    kind = "secret"

    def generate(self, cred_id: str) -> tuple[str | None, str, str]:
        secret = f"{PREFIX}{cred_id}.{new_secret()}"
        return None, secret, secret

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        token = bearer(req.authorization)
        if not token or not token.startswith(PREFIX) or "." not in token:
            raise AuthFailed("not an orgscim bearer secret")
        cred_id = token[len(PREFIX):].split(".", 1)[0]
        cred = self.ctx.orgs.credential(org.pk, cred_id)
        if cred is None or cred.kind != self.kind:
            raise AuthFailed("no such credential for this org")
        if not self.ctx.verify(org, cred, token, req):
            status = cred.status()
            raise AuthFailed(f"credential {cred.cred_id}: "
                             + ("wrong secret" if status in ("active", "expiring") else status))
        return Principal(self.name, cred.cred_id)

    def schemes(self, org: Org) -> list[JSON]:
        return [{"type": "oauthbearertoken", "name": "Bearer secret",
                 "description": "A secret issued by orgscim for this organization, sent as a bearer token.",
                 "specUri": "https://www.rfc-editor.org/info/rfc6750", "primary": True}]
