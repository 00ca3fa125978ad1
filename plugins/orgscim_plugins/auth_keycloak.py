"""``KEYCLOAK``: the IdP sends ``Authorization: Bearer <access token of this realm>`` (DESIGN §5).

The token is checked like an ``EXTERNAL_JWT`` token (:mod:`orgscim.auth.jwt`: RFC 7515 signature
against the realm's JWK Set, RFC 7519 ``iss``/``exp``/``nbf``/``iat`` with leeway, algorithm allow list), with
issuer and JWK Set derived from the Keycloak the service is configured with:

* JWK Set: ``{KEYCLOAK_URL}/realms/{realm}/protocol/openid-connect/certs``;
* issuer: ``{KEYCLOAK_FRONTEND_URL or KEYCLOAK_URL}/realms/{realm}`` (set ``KEYCLOAK_FRONTEND_URL`` when
  clients get their tokens through a public hostname other than the URL orgscim uses).

A valid realm token is not enough: the token must be an access token (``typ: Bearer``) of a client on the
org's ``allowed_clients`` list (its ``azp``, or ``client_id`` for service-account tokens; if both are present
they must agree). Settings: ``allowed_clients`` (required), ``audience``, ``algorithms`` (default RS256),
``required_claims``, ``leeway``, ``max_age`` — as for ``EXTERNAL_JWT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgscim.auth import AuthFailed, Principal
from orgscim.auth.jwt import JwtRules, string_list
from orgscim.auth.realm_tokens import realm_endpoint, realm_issuer
from orgscim.model.contract import Org
from orgscim.model.types import JSON

from .auth_jwt import ExternalJwtAuth, common_settings

if TYPE_CHECKING:
    from orgscim.keycloak.client import KeycloakAdmin


class KeycloakAuth(ExternalJwtAuth):
    """Access tokens of the org's own realm, issued to one of the org's ``allowed_clients``."""

    name = "KEYCLOAK"

    def validate_config(self, config: JSON) -> JSON:
        if not self.ctx.config.get("KEYCLOAK_URL"):
            raise ValueError("KEYCLOAK mode checks tokens against the realm's keys: set KEYCLOAK_URL "
                             "(ORGSCIM_KEYCLOAK_URL) first")
        cfg = common_settings(config, {"allowed_clients"}, self.name, audience_required=False)
        if "allowed_clients" not in config:
            raise ValueError("KEYCLOAK mode needs allowed_clients: the client ids whose tokens may call this "
                             "org's SCIM endpoint, e.g. --set allowed_clients=okta-scim")
        cfg["allowed_clients"] = string_list("allowed_clients", config["allowed_clients"])
        return cfg

    def check_in_keycloak(self, admin: KeycloakAdmin, config: JSON) -> None:
        """At config time: every client of ``allowed_clients`` exists in the org's realm (``view-clients``);
        ``ValueError`` names the missing ones."""
        missing = [c for c in config.get("allowed_clients", []) if admin.find_client(c) is None]
        if missing:
            raise ValueError(f"allowed_clients: realm {admin.realm} has no client {', '.join(missing)}; create it "
                             "(Keycloak admin console → Clients) or fix the client id")

    def rules(self, org: Org) -> JwtRules:
        cfg = self.ctx.config
        return JwtRules.from_config(org.auth_config, realm_issuer(cfg.get("KEYCLOAK_FRONTEND_URL") or
                                                                 cfg["KEYCLOAK_URL"], org.realm),
                                    realm_endpoint(cfg["KEYCLOAK_URL"], org.realm, "certs"))

    def accept(self, org: Org, claims: JSON) -> Principal:
        if claims.get("typ") != "Bearer":
            raise AuthFailed("not an access token (typ)")
        azp, client_id = claims.get("azp"), claims.get("client_id")
        if azp is not None and client_id is not None and azp != client_id:
            raise AuthFailed("azp and client_id differ")
        client = azp if azp is not None else client_id
        if not isinstance(client, str) or client not in org.auth_config.get("allowed_clients", []):
            raise AuthFailed(f"client {str(client)[:64]} is not allowed for this org")
        return Principal(self.name, None, client)

    def schemes(self, org: Org) -> list[JSON]:
        return [{"type": "oauthbearertoken", "name": "OAuth Bearer Token (Keycloak)",
                 "description": f"An access token of realm {org.realm} issued to a client allowed for this "
                                "organization (client credentials grant), sent as a bearer token (RFC 6750).",
                 "specUri": "https://www.rfc-editor.org/info/rfc6750", "primary": True}]
