"""``EXTERNAL_JWT``: the IdP sends ``Authorization: Bearer <JWT>`` signed by its own keys (DESIGN §5).

Checks, in order (any failure is the same 401 to the client; the reason goes to the audit log):

* JOSE header (RFC 7515 §4.1): ``alg`` on the org's allow list, which only ever holds asymmetric algorithms
  (never ``none``, never ``HS*``, so a public key can never be used as an HMAC secret, RFC 8725 §2.1/§3.1);
  ``kid`` present and found in the issuer's JWK Set (re-fetched on an unknown ``kid`` at most once a minute
  per org, :mod:`orgscim.jwks`); no ``crit`` (we understand no extensions, RFC 7515 §4.1.11).
* Signature over the exact bytes sent (python-jose, cryptography backend), with a key whose type, curve and
  size fit ``alg``.
* Claims (RFC 7519 §4.1): ``iss`` equal to the configured issuer; ``aud`` holding one of the configured
  audiences; ``exp`` required and in the future, ``nbf`` (if any) in the past, ``iat`` (if any) not in the
  future, each with ``leeway`` seconds; optionally ``max_age`` on ``iat``; ``required_claims`` equal (or, for
  an array claim, contained).

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
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jose import jws
from jose.exceptions import JOSEError

from orgscim.auth import AuthContext, AuthFailed, AuthRequest, Principal, bearer
from orgscim.jwks import FETCH_FAILED, SIGNATURE_ALGORITHMS, JwksError, usable
from orgscim.model.contract import Org

log = logging.getLogger("orgscim.auth")

DEFAULT_LEEWAY = 30
MAX_LEEWAY = 300
MAX_TOKEN_BYTES = 16 * 1024
COMMON_SETTINGS = frozenset({"audience", "algorithms", "required_claims", "leeway", "max_age"})


@dataclass(frozen=True)
class JwtRules:
    """What a token must satisfy for one org."""

    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...] = ()  # empty: ``aud`` is not checked (KEYCLOAK without an audience setting)
    algorithms: tuple[str, ...] = ("RS256",)
    required_claims: dict[str, Any] = field(default_factory=dict)
    leeway: int = DEFAULT_LEEWAY
    max_age: int | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any], issuer: str, jwks_uri: str) -> JwtRules:
        return cls(issuer, jwks_uri, tuple(cfg.get("audience") or ()), tuple(cfg.get("algorithms") or ("RS256",)),
                   dict(cfg.get("required_claims") or {}), int(cfg.get("leeway", DEFAULT_LEEWAY)),
                   cfg.get("max_age"))


# -- verification ------------------------------------------------------------------------------------
def verify_jwt(ctx: AuthContext, owner: Hashable, token: str, rules: JwtRules,
               cheap_only: bool = False) -> dict[str, Any]:
    """The claims of ``token`` if it passes every check of the module docstring; else :class:`AuthFailed`.

    ``owner`` (an org pk, or any hashable) is whose once-a-minute budget an unknown ``kid`` re-fetch uses.
    """
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AuthFailed("not a compact JWS")
    try:
        header = jws.get_unverified_header(token)
    except JOSEError:
        raise AuthFailed("malformed JOSE header") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        raise AuthFailed(f"algorithm {str(alg)[:20]} not allowed")
    if "crit" in header:
        raise AuthFailed("critical header extensions are not supported")
    if not isinstance(kid, str) or not kid:
        raise AuthFailed("no kid in the JOSE header")
    key = ctx.jwks.key(owner, rules.jwks_uri, kid, alg, allow_fetch=not cheap_only)
    if key is None:
        raise AuthFailed(f"unknown kid {kid[:64]} (or key unusable for {alg})")
    try:
        payload = jws.verify(token, key, algorithms=[alg])
        claims = json.loads(payload)
    except JOSEError:
        raise AuthFailed("bad signature") from None
    except ValueError:
        raise AuthFailed("payload is not JSON") from None
    if not isinstance(claims, dict):
        raise AuthFailed("payload is not a JSON object")
    check_claims(claims, rules, ctx.clock())
    return claims


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2): a JSON number; booleans and strings are malformed."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthFailed(f"{name} is not a NumericDate")
    return float(value)


def check_claims(claims: dict[str, Any], rules: JwtRules, now: float) -> None:
    """RFC 7519 §4.1 registered claims and the org's required claims; :class:`AuthFailed` on the first miss."""
    if claims.get("iss") != rules.issuer:
        raise AuthFailed("wrong issuer")
    if rules.audiences:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in rules.audiences for a in auds):
            raise AuthFailed("wrong audience")
    exp, nbf, iat = (_numeric_date(claims, n) for n in ("exp", "nbf", "iat"))
    if exp is None:
        raise AuthFailed("no exp")
    if now >= exp + rules.leeway:
        raise AuthFailed("expired")
    if nbf is not None and now + rules.leeway < nbf:
        raise AuthFailed("not yet valid (nbf)")
    if iat is not None and now + rules.leeway < iat:
        raise AuthFailed("issued in the future (iat)")
    if rules.max_age is not None and (iat is None or now - iat > rules.max_age + rules.leeway):
        raise AuthFailed("older than max_age (iat)")
    for name, want in rules.required_claims.items():
        have = claims.get(name)
        if not (have == want or (isinstance(have, list) and want in have)):
            raise AuthFailed(f"required claim {name} missing or different")


# -- settings ---------------------------------------------------------------------------------------
def string_list(name: str, value: Any) -> list[str]:
    """A non-empty list of non-empty strings, from a list or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError(f"{name} must be a non-empty string or list of strings")
    return [i.strip() for i in items]


def int_setting(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"{name} must be a whole number of seconds")
    n = int(value)
    if not low <= n <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return n


def check_algorithms(value: Any) -> list[str]:
    """The allow list: asymmetric signature algorithms only (RFC 8725 §3.1)."""
    algs = string_list("algorithms", value)
    for alg in algs:
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise ValueError(f"algorithm {alg} is refused: only asymmetric signatures "
                             f"({', '.join(SIGNATURE_ALGORITHMS)}) can be checked against a public JWK Set")
        if alg not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"unknown algorithm {alg}; use one of {', '.join(SIGNATURE_ALGORITHMS)}")
    return algs


def check_uri(value: Any) -> str:
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


def common_settings(config: dict[str, Any], own: set[str], mode: str, audience_required: bool) -> dict[str, Any]:
    """Validate the settings every JWT mode shares; ``own`` are the mode's other setting names."""
    unknown = set(config) - COMMON_SETTINGS - own
    if unknown:
        raise ValueError(f"{mode} takes no settings named {', '.join(sorted(unknown))}; it knows "
                         f"{', '.join(sorted(COMMON_SETTINGS | own))}")
    out: dict[str, Any] = {"algorithms": check_algorithms(config.get("algorithms", ["RS256"])),
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


def required_str(config: dict[str, Any], name: str, mode: str) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{mode} needs {name}")
    return value.strip()


class ExternalJwtAuth:
    name = "EXTERNAL_JWT"

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
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
        cfg = org.auth_config
        return JwtRules.from_config(cfg, cfg["issuer"], cfg["jwks_uri"])

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        token = bearer(req.authorization)
        if token is None:
            raise AuthFailed("no bearer token")
        return self.accept(org, verify_jwt(self.ctx, org.pk, token, self.rules(org), req.cheap_only))

    def accept(self, org: Org, claims: dict[str, Any]) -> Principal:
        """The principal for verified ``claims`` (a subclass may refuse them with :class:`AuthFailed`)."""
        sub = claims.get("sub")
        return Principal(self.name, None, sub if isinstance(sub, str) else None)

    def schemes(self, org: Org) -> list[dict[str, Any]]:
        return [{"type": "oauthbearertoken", "name": "OAuth Bearer Token (JWT)",
                 "description": "A signed JWT from this organization's identity provider, sent as a bearer "
                                "token (RFC 6750); verified against the provider's JWK Set.",
                 "specUri": "https://www.rfc-editor.org/info/rfc7519", "primary": True}]
