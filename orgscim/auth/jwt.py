"""JWT verification shared by the token auth modes (``EXTERNAL_JWT``, ``KEYCLOAK``) and the config API.

Checks, in order (any failure is an :class:`~orgscim.auth.api.AuthFailed` whose reason goes to the audit log):

* JOSE header (RFC 7515 §4.1): ``alg`` on the allow list, which only ever holds asymmetric algorithms
  (never ``none``, never ``HS*``, so a public key can never be used as an HMAC secret, RFC 8725 §2.1/§3.1);
  ``kid`` present and found in the issuer's JWK Set (re-fetched on an unknown ``kid`` at most once a minute
  per owner, :mod:`orgscim.jwks`); no ``crit`` (we understand no extensions, RFC 7515 §4.1.11).
* Signature over the exact bytes sent (python-jose, cryptography backend), with a key whose type, curve and
  size fit ``alg``.
* Claims (RFC 7519 §4.1): ``iss`` equal to the expected issuer; ``aud`` holding one of the expected
  audiences (when any are given); ``exp`` required and in the future, ``nbf`` (if any) in the past, ``iat``
  (if any) not in the future, each with ``leeway`` seconds; optionally ``max_age`` on ``iat``;
  ``required_claims`` equal (or, for an array claim, contained).
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field

from jose import jws
from jose.exceptions import JOSEError

from ..jwks import SIGNATURE_ALGORITHMS
from ..model.types import JSON, JSONValue
from .api import AuthFailed
from .context import AuthContext

DEFAULT_LEEWAY = 30
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True)
class JwtRules:
    """What a token must satisfy (for one org, or for one realm's admin tokens)."""

    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...] = ()  # empty: ``aud`` is not checked (KEYCLOAK without an audience setting)
    algorithms: tuple[str, ...] = ("RS256",)
    required_claims: JSON = field(default_factory=dict)
    leeway: int = DEFAULT_LEEWAY
    max_age: int | None = None

    @classmethod
    def from_config(cls, cfg: JSON, issuer: str, jwks_uri: str) -> JwtRules:
        """From an org's validated JWT settings (``audience``, ``algorithms``, ``required_claims``, …)."""
        return cls(issuer, jwks_uri, tuple(cfg.get("audience") or ()), tuple(cfg.get("algorithms") or ("RS256",)),
                   dict(cfg.get("required_claims") or {}), int(cfg.get("leeway", DEFAULT_LEEWAY)),
                   cfg.get("max_age"))


def verify_jwt(ctx: AuthContext, owner: Hashable, token: str, rules: JwtRules, cheap_only: bool = False) -> JSON:
    """The claims of ``token`` if it passes every check of the module docstring; else :class:`AuthFailed`.

    ``owner`` (an org pk, or any hashable) is whose once-a-minute budget an unknown ``kid`` re-fetch uses;
    ``cheap_only`` (a throttled client) uses cached keys only.
    """
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AuthFailed("not a compact JWS")
    try:
        header: JSON = jws.get_unverified_header(token)
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
        claims: JSONValue = json.loads(jws.verify(token, key, algorithms=[alg]))
    except JOSEError:
        raise AuthFailed("bad signature") from None
    except ValueError:
        raise AuthFailed("payload is not JSON") from None
    if not isinstance(claims, dict):
        raise AuthFailed("payload is not a JSON object")
    check_claims(claims, rules, ctx.clock())
    return claims


def numeric_date(claims: JSON, name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2): a JSON number; booleans and strings are malformed."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthFailed(f"{name} is not a NumericDate")
    return float(value)


def check_claims(claims: JSON, rules: JwtRules, now: float) -> None:
    """RFC 7519 §4.1 registered claims and the required claims; :class:`AuthFailed` on the first miss."""
    if claims.get("iss") != rules.issuer:
        raise AuthFailed("wrong issuer")
    if rules.audiences and not any(a in rules.audiences for a in audiences(claims)):
        raise AuthFailed("wrong audience")
    exp, nbf, iat = (numeric_date(claims, n) for n in ("exp", "nbf", "iat"))
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


def audiences(claims: JSON) -> list[str]:
    """The ``aud`` claim as a list of strings (RFC 7519 §4.1.3: one string or an array of them)."""
    aud = claims.get("aud")
    items = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return [a for a in items if isinstance(a, str)]


def string_list(name: str, value: JSONValue) -> list[str]:
    """A non-empty list of non-empty strings, from a list or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError(f"{name} must be a non-empty string or list of strings")
    return [i.strip() for i in items]


def check_algorithms(value: JSONValue) -> list[str]:
    """The allow list: asymmetric signature algorithms only (RFC 8725 §3.1)."""
    algs = string_list("algorithms", value)
    for alg in algs:
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise ValueError(f"algorithm {alg} is refused: only asymmetric signatures "
                             f"({', '.join(SIGNATURE_ALGORITHMS)}) can be checked against a public JWK Set")
        if alg not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"unknown algorithm {alg}; use one of {', '.join(SIGNATURE_ALGORITHMS)}")
    return algs
