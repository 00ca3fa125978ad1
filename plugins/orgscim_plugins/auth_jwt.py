"""``EXTERNAL_JWT``: the IdP sends ``Authorization: Bearer <JWT>`` signed by its own keys (DESIGN §5).

The token is checked by orgscim's shared JWT verification (:mod:`orgscim.auth.jwt`: RFC 7515 JOSE header and
signature against the issuer's JWK Set with an asymmetric-only algorithm allow list, RFC 7519 claims with
leeway); any failure is the same 401 to the client, the reason goes to the audit log.

Settings (``orgscim org configure REALM ORG --auth-mode EXTERNAL_JWT --set key=value``): ``issuer``,
``jwks_uri`` (https, or http on a loopback address), ``audience`` (one or a list), ``algorithms`` (default
``["RS256"]``), ``required_claims`` (e.g. ``{"tid": "<tenant id>"}``), ``leeway`` (seconds, default 30, at
most 300), ``max_age`` (seconds, optional). The JWK Set is fetched when the config is set: a wrong URI or a
set without a usable key is refused then, not at request time.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from urllib.parse import urlsplit

from orgscim.auth import AuthContext, AuthFailed, AuthRequest, Principal, bearer
from orgscim.auth.jwt import DEFAULT_LEEWAY, JwtRules, check_algorithms, string_list, verify_jwt
from orgscim.jwks import FETCH_FAILED, JwksError, usable
from orgscim.model.contract import Org
from orgscim.model.types import JSON, JSONValue

log = logging.getLogger("orgscim.auth")

MAX_LEEWAY = 300
COMMON_SETTINGS = frozenset({"audience", "algorithms", "required_claims", "leeway", "max_age"})


# -- settings ---------------------------------------------------------------------------------------
def int_setting(name: str, value: JSONValue, low: int, high: int) -> int:
    """A whole number of seconds from ``low`` to ``high`` (JSON number or digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"{name} must be a whole number of seconds")
    n = int(value)
    if not low <= n <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return n


def check_uri(value: JSONValue) -> str:
    """An absolute https URL (http only to a loopback address, for a local IdP or tests)."""
    if not isinstance(value, str) or not value:
        raise ValueError("jwks_uri must be the URL of the IdP's JWK Set")
    parts = urlsplit(value)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("jwks_uri must be an https URL (http is accepted for loopback addresses only)")
    if not host or parts.username or parts.password or parts.fragment:
        raise ValueError("jwks_uri must be an absolute URL without credentials or fragment")
    return value


def common_settings(config: JSON, own: set[str], mode: str, audience_required: bool) -> JSON:
    """Validate the settings every JWT mode shares; ``own`` are the mode's other setting names."""
    unknown = set(config) - COMMON_SETTINGS - own
    if unknown:
        raise ValueError(f"{mode} takes no settings named {', '.join(sorted(unknown))}; it knows "
                         f"{', '.join(sorted(COMMON_SETTINGS | own))}")
    out: JSON = {"algorithms": check_algorithms(config.get("algorithms", ["RS256"])),
                           "leeway": int_setting("leeway", config.get("leeway", DEFAULT_LEEWAY), 0, MAX_LEEWAY)}
    if "audience" in config or audience_required:
        if "audience" not in config:
            raise ValueError(f"{mode} needs audience (the value the IdP puts in the token's aud claim)")
        out["audience"] = string_list("audience", config["audience"])
    claims = config.get("required_claims", {})
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            raise ValueError('required_claims must be a JSON object, e.g. {"tid": "<tenant id>"}') from None
    if not isinstance(claims, dict) or not all(
            isinstance(v, str | int | bool) and not isinstance(v, float) for v in claims.values()):
        raise ValueError("required_claims must map claim names to a string, number or boolean")
    if claims:
        out["required_claims"] = claims
    if config.get("max_age") is not None:
        out["max_age"] = int_setting("max_age", config["max_age"], 1, 366 * 86400)
    return out


def required_str(config: JSON, name: str, mode: str) -> str:
    """A required non-empty string setting, stripped."""
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{mode} needs {name}")
    return value.strip()


class ExternalJwtAuth:
    """Tokens signed by the org's own IdP, checked against its JWK Set."""

    name = "EXTERNAL_JWT"

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def validate_config(self, config: JSON) -> JSON:
        cfg = common_settings(config, {"issuer", "jwks_uri"}, self.name, audience_required=True)
        cfg["issuer"] = required_str(config, "issuer", self.name)
        cfg["jwks_uri"] = check_uri(config.get("jwks_uri"))
        try:
            keys = self.ctx.jwks.refresh(cfg["jwks_uri"])
        except JwksError as e:  # the reason stays in the log: answering it would map internal networks
            log.warning("jwks_uri %s refused: %s", cfg["jwks_uri"], e)
            raise ValueError(f"cannot use jwks_uri: {FETCH_FAILED}") from None
        if not any(usable(k, alg) for k in keys.values() for alg in cfg["algorithms"]):
            raise ValueError(f"the JWK Set at {cfg['jwks_uri']} has no signature key with a kid usable for "
                             f"{', '.join(cfg['algorithms'])}")
        return cfg

    def rules(self, org: Org) -> JwtRules:
        """What a token of ``org`` must satisfy."""
        cfg = org.auth_config
        return JwtRules.from_config(cfg, cfg["issuer"], cfg["jwks_uri"])

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        token = bearer(req.authorization)
        if token is None:
            raise AuthFailed("no bearer token")
        return self.accept(org, verify_jwt(self.ctx, org.pk, token, self.rules(org), req.cheap_only))

    def accept(self, org: Org, claims: JSON) -> Principal:
        """The principal for verified ``claims`` (a subclass may refuse them with :class:`AuthFailed`)."""
        sub = claims.get("sub")
        return Principal(self.name, None, sub if isinstance(sub, str) else None)

    def schemes(self, org: Org) -> list[JSON]:
        return [{"type": "oauthbearertoken", "name": "OAuth Bearer Token (JWT)",
                 "description": "A signed JWT from this organization's identity provider, sent as a bearer "
                                "token (RFC 6750); verified against the provider's JWK Set.",
                 "specUri": "https://www.rfc-editor.org/info/rfc7519", "primary": True}]
