"""Per-org config API (DESIGN §2): JSON under ``/realms/{realm}/orgs``, for realm admins with a Keycloak token.

Authentication: ``Authorization: Bearer <access token of realm {realm}>``, checked with the ``KEYCLOAK`` auth
plugin's JWT code (:func:`orgscim_plugins.auth_jwt.verify_jwt`: signature against the realm's JWK Set, ``iss``,
``exp``/``nbf``/``iat`` with leeway, algorithm allow list) plus ``typ: Bearer``. The token's user or client must
hold one of the realm-management roles ``manage-organizations``, ``manage-realm`` or ``realm-admin``
(``resource_access["realm-management"].roles``). No or a bad token: 401 with ``WWW-Authenticate: Bearer``;
a good token without the role: 403. Failed attempts are throttled per client address like SCIM logins.

Endpoints (``{base}`` = ``/realms/{realm}/orgs/{orgId}/scim``):

* ``GET|PUT /realms/{realm}/orgs/config`` ``{"scimEnabled": bool}``: the realm flag.
* ``GET {base}``: the org's SCIM config (``Org.public()``, ``scimBaseUrl``, resource counts; never a secret).
* ``POST {base}``: create (409 if it exists); ``PUT {base}``: create or update. Body fields: ``authMode``,
  ``authConfig``, ``enabled``, ``federation``, ``federationConfig``, ``options`` (``settings`` as ``GET`` shows
  it works too); fields left out keep their current value. A bad config is 400 with the reason.
* ``DELETE {base}``: closes the endpoint (``enabled`` off) and revokes every credential; the SCIM data stays
  (a later ``PUT`` resumes with it). ``DELETE {base}?purge=true`` also deletes the config and all the org's
  SCIM data. Keycloak users and memberships are not touched either way.
* ``GET {base}/credentials``; ``POST {base}/credentials`` (201, the secret in this response only);
  ``POST {base}/credentials/rotate`` ``{"graceHours": n}`` (new secret once; the previous ones keep working
  until the deadline); ``DELETE {base}/credentials/{id}`` (revoked at once, 204).

Every change goes to the audit events with who made it (token ``preferred_username``/``sub`` and client), never
a secret. :class:`OrgAdmin` holds those changes; the admin pages (:mod:`orgscim.web.admin`) use it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from orgscim_plugins.auth_jwt import DEFAULT_LEEWAY, JwtRules, check_algorithms, verify_jwt
from orgscim_plugins.auth_keycloak import realm_endpoint, realm_issuer
from werkzeug.exceptions import HTTPException

from ..auth import AuthContext, AuthFailed, IssuedCredential, Rotation, bearer, grace_hours
from ..model.contract import Credential, Org
from ..scim.errors import ScimError
from ..services import ConfigError, Services
from ..throttle import client_key, retry_after
from .scim import body as parse_json_body

audit_log = logging.getLogger("orgscim.audit")
log = logging.getLogger("orgscim.web")
bp = Blueprint("config_api", __name__, url_prefix="/realms/<realm>/orgs")

ADMIN_ROLES = frozenset({"manage-organizations", "manage-realm", "realm-admin"})
DEFAULT_ADMIN_TOKEN_CLIENTS = frozenset({"orgscim", "orgscim-admin"})
REALM_MANAGEMENT = "realm-management"
REALM_NAME = re.compile(r"^[\w.-]{1,255}$")
EXTENSION = "orgscim.realm_tokens"
ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]
#: fields of ``GET {base}`` that a client may send back in a ``PUT`` and that are ignored
READ_ONLY = frozenset({"realm", "orgId", "realmScimEnabled", "serving", "created", "updated", "vanished",
                       "scimBaseUrl", "resources", "status", "configured"})
WRITABLE = frozenset({"authMode", "authConfig", "enabled", "federation", "federationConfig", "options", "settings"})


# -- realm tokens ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    """Who presented a verified realm token (or logged in to the admin pages)."""

    realm: str
    subject: str
    username: str | None
    client: str | None
    roles: frozenset[str]

    @property
    def who(self) -> str:
        """The name audit events record: ``preferred_username``, else ``sub``."""
        return self.username or self.subject

    @property
    def is_admin(self) -> bool:
        """Holds one of the realm-management roles that may change SCIM config."""
        return bool(self.roles & ADMIN_ROLES)

    def audit(self) -> dict[str, Any]:
        """What audit events record about the caller."""
        return {"who": self.who, "sub": self.subject, "client": self.client}

    @classmethod
    def from_claims(cls, realm: str, claims: dict[str, Any]) -> Caller:
        """From verified token claims (roles from ``resource_access["realm-management"]``)."""
        access = claims.get("resource_access")
        mgmt = access.get(REALM_MANAGEMENT) if isinstance(access, dict) else None
        roles = mgmt.get("roles") if isinstance(mgmt, dict) else None
        role_set = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
        username = claims.get("preferred_username")
        client = claims.get("azp", claims.get("client_id"))
        return cls(realm, str(claims.get("sub") or ""), username if isinstance(username, str) else None,
                   client if isinstance(client, str) else None, role_set)


class RealmTokens:
    """Verifies tokens issued by any realm of the configured Keycloak.

    A thin wrapper over the ``KEYCLOAK`` auth plugin's checks (:func:`verify_jwt` with :class:`JwtRules`): only
    the issuer and JWK Set are per realm here instead of per org. Keys come from the shared
    :class:`~orgscim.jwks.JwksCache` of ``ctx`` (an unknown ``kid`` re-fetches at most once a minute per realm).
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
    def from_services(cls, services: Services) -> RealmTokens | None:
        """From ``KEYCLOAK_URL``, ``KEYCLOAK_FRONTEND_URL`` and ``ADMIN_TOKEN_ALGORITHMS``; None when standalone."""
        cfg = services.config
        if not cfg.get("KEYCLOAK_URL"):
            return None
        try:
            algs = tuple(check_algorithms(cfg.get("ADMIN_TOKEN_ALGORITHMS") or "RS256"))
        except ValueError as e:
            raise ConfigError(f"ADMIN_TOKEN_ALGORITHMS: {e}") from None
        return cls(services.auth_ctx, str(cfg["KEYCLOAK_URL"]), cfg.get("KEYCLOAK_FRONTEND_URL"), algs,
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

    def verify(self, realm: str, token: str, audience: str | None = None, cheap_only: bool = False) -> dict[str, Any]:
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


def bound_to(claims: dict[str, Any], clients: frozenset[str]) -> bool:
    """Whether a token was issued to one of ``clients`` (``azp``/``client_id``, RFC 9068 §2.2) or names one in
    ``aud`` (RFC 7519 §4.1.3: a token another client obtained for orgscim through an audience mapper)."""
    client = claims.get("azp", claims.get("client_id"))
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return (isinstance(client, str) and client in clients) or any(isinstance(a, str) and a in clients
                                                                   for a in audiences)


def realm_tokens(app: Flask | None = None) -> RealmTokens | None:
    """The app's :class:`RealmTokens` (built on first use; tests may put their own in ``app.extensions``)."""
    app = app or current_app
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = RealmTokens.from_services(app.extensions["orgscim"])
    return app.extensions[EXTENSION]


# -- the changes, shared with the admin pages --------------------------------------------------------------
def org_spec(data: Any, current: Org | None) -> dict[str, Any]:
    """Keyword arguments for :meth:`Services.configure_org` from a request body (see the module docstring).

    Fields left out keep ``current``'s values (or the defaults for a new config); ``authConfig`` and
    ``federationConfig`` only carry over while the mode/behaviour stays the same.
    """
    if not isinstance(data, dict):
        raise ConfigError("send a JSON object, e.g. {\"authMode\": \"EXTERNAL_SECRET\"}")
    unknown = set(data) - WRITABLE - READ_ONLY
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(WRITABLE))}")
    settings = data.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError("settings must be an object")
    settings = dict(settings or {})
    fed_from_settings = settings.pop("federation", None)
    auth_mode = data.get("authMode", current.auth_mode if current else None)
    if not isinstance(auth_mode, str) or not auth_mode:
        raise ConfigError("authMode is required, e.g. EXTERNAL_SECRET, EXTERNAL_BASIC, EXTERNAL_JWT or KEYCLOAK")
    federation = data.get("federation", current.federation if current else "none")
    if not isinstance(federation, str) or not federation:
        raise ConfigError("federation must be the name of a federation behaviour, e.g. none or link-org-idp")
    enabled = data.get("enabled", current.enabled if current else True)
    if not isinstance(enabled, bool):
        raise ConfigError("enabled must be true or false")
    same_mode = current is not None and current.auth_mode == auth_mode
    same_fed = current is not None and current.federation == federation
    auth_config = _object(data, "authConfig", current.auth_config if same_mode and current else {})
    fed_default = (fed_from_settings if fed_from_settings is not None
                   else current.settings.get("federation") if same_fed and current else {})
    fed_config = _object(data, "federationConfig", fed_default or {})
    options_default = settings if data.get("settings") is not None else (
        {k: v for k, v in current.settings.items() if k != "federation"} if current else {})
    options = _object(data, "options", options_default)
    return {"auth_mode": auth_mode, "auth_config": auth_config, "enabled": enabled, "federation": federation,
            "federation_config": fed_config, "options": options}


def _object(data: dict[str, Any], key: str, default: dict[str, Any]) -> dict[str, Any]:
    """``data[key]`` as a dict (``default`` when absent); :class:`ConfigError` otherwise."""
    value = data.get(key, default)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object")
    return dict(value)


class OrgAdmin:
    """Config changes made by a realm admin through the API (``via="api"``) or the admin pages (``"admin"``).

    Each calls the same :class:`Services` / auth-plugin methods as the CLI and writes one audit event
    (``config.*``) with the caller and no secret; the plugins write their own ``credential.*`` events too.
    """

    def __init__(self, services: Services, caller: Caller, via: str) -> None:
        self.services = services
        self.caller = caller
        self.via = via

    def audit(self, org_pk: int | None, kind: str, **detail: Any) -> None:
        """One ``events`` row (and an audit log line) with the caller; ``detail`` must hold no secret."""
        self.services.orgs.event(org_pk, kind, {**detail, **self.caller.audit(), "via": self.via})
        audit_log.info("%s realm=%s org_pk=%s who=%s via=%s", kind, self.caller.realm, org_pk, self.caller.who,
                       self.via)

    def set_realm(self, realm: str, enabled: bool) -> None:
        """Turn the realm flag on or off."""
        self.services.orgs.set_realm(realm, enabled)
        self.audit(None, "config.realm", realm=realm, scimEnabled=enabled)

    def configure(self, realm: str, org_id: str, data: Any, create_only: bool = False) -> tuple[Org, bool]:
        """Create or update from a request body; (org, created). :class:`ConfigError` for a bad config,
        :class:`Conflict` when ``create_only`` and the org has a config already."""
        current = self.services.orgs.org(realm, org_id)
        if create_only and current is not None:
            raise Conflict(f"org {org_id} already has a SCIM config: use PUT to change it")
        spec = org_spec(data, current)
        org = self.services.configure_org(realm, org_id, **spec)
        self.audit(org.pk, "config.org.created" if current is None else "config.org.updated", orgId=org_id,
                   authMode=org.auth_mode, enabled=org.enabled, federation=org.federation,
                   options={k: v for k, v in org.settings.items() if k != "federation"})
        return org, current is None

    def remove(self, org: Org, purge: bool) -> list[str]:
        """``DELETE``: see :meth:`Services.remove_org`."""
        revoked = self.services.remove_org(org, purge)
        self.audit(None if purge else org.pk, "config.org.purged" if purge else "config.org.removed",
                   realm=org.realm, orgId=org.org_id, revoked=revoked)
        return revoked

    def issue(self, org: Org) -> IssuedCredential:
        """A new credential (the caller shows its secret once)."""
        issued = self.services.issuer(org).issue(org)
        self.audit(org.pk, "config.credential.created", credential=issued.credential.cred_id)
        return issued

    def rotate(self, org: Org, hours: Any = None) -> Rotation:
        """Rotate with ``hours`` of grace (validated: 0 … 720), or the org's default when None."""
        try:
            seconds = None if hours is None else grace_hours(hours) * 3600
        except ValueError as e:
            raise ConfigError(str(e)) from None
        rotation = self.services.issuer(org).rotate(org, seconds)
        self.audit(org.pk, "config.credential.rotated", credential=rotation.issued.credential.cred_id,
                   superseded=[c.cred_id for c in rotation.superseded], deadline=rotation.deadline)
        return rotation

    def revoke(self, org: Org, cred_id: str) -> Credential | None:
        """Revoke now; None if the org has no such credential."""
        cred = self.services.auth_ctx.revoke(org, cred_id)
        if cred is not None:
            self.audit(org.pk, "config.credential.revoked", credential=cred_id)
        return cred


class Conflict(Exception):
    """The change conflicts with the current state (409)."""


def scim_base_url(realm: str, org_id: str) -> str:
    """The org's SCIM base URL as IdPs must be given it (``PUBLIC_BASE_URL`` behind a proxy)."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or request.host_url).rstrip("/")
    return f"{base}/realms/{realm}/scim/v2/organizations/{org_id}"


# -- HTTP ---------------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An HTTP error of the config API, rendered as ``{"error": …, "detail": …}``."""
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def _json(data: Any, status: int = 200) -> Response:
    """A JSON response with ``status``."""
    resp = jsonify(data)
    resp.status_code = status
    return resp


def services() -> Services:
    """The app's :class:`Services`."""
    return current_app.extensions["orgscim"]


@bp.url_value_preprocessor
def pull_realm(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Take ``{realm}`` out of the view arguments (every view works on ``g.api_realm``)."""
    g.api_realm = values.pop("realm") if values else None


@bp.before_request
def authenticate() -> None:
    """Bearer access token of the path's realm with an admin role, else 401/403 (throttled like SCIM auth)."""
    realm = g.api_realm
    if not realm or not REALM_NAME.match(realm):
        raise ApiError(404, "not_found", "no such realm")
    tokens = realm_tokens()
    if tokens is None:
        raise ApiError(503, "unavailable", "the config API checks Keycloak access tokens: set KEYCLOAK_URL "
                                           "(ORGSCIM_KEYCLOAK_URL) and restart orgscim")
    challenge = 'Bearer realm="orgscim"'
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise ApiError(401, "unauthorized", f"send an access token of realm {realm}: Authorization: Bearer <token>",
                       {"WWW-Authenticate": challenge})
    ctx = services().auth_ctx
    key = f"config-api|{client_key(request.remote_addr or '')}"
    wait = ctx.throttle.acquire(key)
    try:
        caller = tokens.access_token(realm, token, cheap_only=wait > 0)
    except AuthFailed as e:
        audit_log.info("config api auth failure realm=%s addr=%s reason=%s", realm, request.remote_addr,
                       e.reason[:120])
        if wait:
            raise ApiError(429, "throttled", "too many failed authentication attempts from this address; retry "
                           "later", {"Retry-After": retry_after(wait)}) from None
        raise ApiError(401, "invalid_token", f"the token is not a valid access token of realm {realm} (signature, "
                       "issuer, expiry, type, or a client not among orgscim's: ADMIN_TOKEN_CLIENTS); get a fresh one "
                       "from this realm's token endpoint",
                       {"WWW-Authenticate": f'{challenge}, error="invalid_token"'}) from None
    if not wait:
        ctx.throttle.refund(key)
    if not caller.is_admin:
        audit_log.info("config api forbidden realm=%s who=%s", realm, caller.who)
        raise ApiError(403, "forbidden", f"{caller.who} lacks the realm-management role manage-organizations, "
                       f"manage-realm or realm-admin of realm {realm}",
                       {"WWW-Authenticate": f'{challenge}, error="insufficient_scope"'})
    g.api_caller = caller


@bp.after_request
def no_store(resp: Response) -> Response:
    """Config and one-time secrets are never cached by a browser or proxy."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(ApiError)
def on_api_error(e: ApiError) -> Response:
    """Render an :class:`ApiError` (with its headers, e.g. ``WWW-Authenticate``)."""
    resp = _json({"error": e.error, "detail": e.detail}, e.status)
    resp.headers.update(e.headers)
    return resp


@bp.errorhandler(ConfigError)
def on_config_error(e: ConfigError) -> Response:
    """A refused config: 400 with the reason, as :meth:`Services.configure_org` gave it."""
    return _json({"error": "invalid_config", "detail": str(e)}, 400)


@bp.errorhandler(Conflict)
def on_conflict(e: Conflict) -> Response:
    """409 with the reason."""
    return _json({"error": "conflict", "detail": str(e)}, 409)


@bp.errorhandler(HTTPException)
def on_http_error(e: HTTPException) -> Response:
    """Werkzeug's HTTP errors (413 …) as JSON."""
    status = e.code or 500
    detail = {413: "request body too large"}.get(status, e.description or e.name)
    return _json({"error": e.name.lower().replace(" ", "_"), "detail": detail}, status)


@bp.errorhandler(Exception)
def on_unexpected(e: Exception) -> Response:
    """500 as JSON; the traceback goes to the log only."""
    log.exception("config API: unexpected error")
    return _json({"error": "internal", "detail": "internal error; the change may not have been applied, check "
                  "with GET and retry"}, 500)


def admin() -> OrgAdmin:
    """The :class:`OrgAdmin` acting for this request's caller."""
    return OrgAdmin(services(), g.api_caller, "api")


def body(optional: bool = False) -> Any:
    """The request's JSON (any nesting/encoding problem is a 400 with the reason)."""
    if optional and not request.get_data(cache=True).strip():
        return {}
    try:
        return parse_json_body()
    except ScimError as e:
        raise ApiError(400, "invalid_json", e.detail) from None


def method_not_allowed(*allowed: str) -> ApiError:
    """405 with ``Allow``."""
    return ApiError(405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}",
                    {"Allow": ", ".join(allowed)})


def configured(org_id: str) -> Org:
    """The org's config, or 404 that says how to create it."""
    org = services().orgs.org(g.api_realm, org_id)
    if org is None:
        raise ApiError(404, "not_found", f"org {org_id} of realm {g.api_realm} has no SCIM config: "
                       f"PUT /realms/{g.api_realm}/orgs/{org_id}/scim with {{\"authMode\": \"EXTERNAL_SECRET\"}}")
    return org


def org_view(org: Org) -> dict[str, Any]:
    """``GET {base}``: the config as orgscim shows it everywhere, the SCIM base URL and resource counts."""
    return {**org.public(), "scimBaseUrl": scim_base_url(org.realm, org.org_id),
            "resources": services().orgs.org_counts(org.pk)}


def issuing(org: Org) -> Any:
    """The org's credential-issuing auth plugin, or 409 for the token modes."""
    try:
        return services().issuer(org)
    except ConfigError as e:
        raise Conflict(str(e)) from None


@bp.route("/config", methods=ALL)
def realm_config() -> Response:
    """``GET``/``PUT /realms/{realm}/orgs/config``: the realm flag."""
    realm = g.api_realm
    if request.method == "PUT":
        data = body()
        if not isinstance(data, dict) or not isinstance(data.get("scimEnabled"), bool) or set(data) - {"scimEnabled"}:
            raise ApiError(400, "invalid_config", 'send {"scimEnabled": true} or {"scimEnabled": false}')
        admin().set_realm(realm, data["scimEnabled"])
    elif request.method != "GET":
        raise method_not_allowed("GET", "PUT")
    return _json({"realm": realm, "scimEnabled": services().orgs.realm_enabled(realm)})


@bp.route("/<org_id>/scim", methods=ALL)
def org_config(org_id: str) -> Response:
    """``GET``/``POST``/``PUT``/``DELETE /realms/{realm}/orgs/{orgId}/scim``."""
    realm = g.api_realm
    if request.method == "GET":
        return _json(org_view(configured(org_id)))
    if request.method in ("POST", "PUT"):
        org, created = admin().configure(realm, org_id, body(), create_only=request.method == "POST")
        resp = _json(org_view(org), 201 if created else 200)
        if created:
            resp.headers["Location"] = f"{request.host_url.rstrip('/')}/realms/{realm}/orgs/{org_id}/scim"
        return resp
    if request.method == "DELETE":
        purge = request.args.get("purge", "false").lower()
        if purge not in ("true", "false", "1", "0"):
            raise ApiError(400, "invalid_request", "purge must be true or false")
        admin().remove(configured(org_id), purge in ("true", "1"))
        return Response(status=204)
    raise method_not_allowed("GET", "POST", "PUT", "DELETE")


@bp.route("/<org_id>/scim/credentials", methods=ALL)
def credentials(org_id: str) -> Response:
    """``GET``/``POST …/scim/credentials``: list, or issue one (its secret in this response only)."""
    org = configured(org_id)
    if request.method == "GET":
        return _json([c.public() for c in services().orgs.credentials(org.pk)])
    if request.method == "POST":
        issuing(org)
        if body(optional=True) != {}:
            raise ApiError(400, "invalid_request", "creating a credential takes no fields; send an empty body")
        return _json(admin().issue(org).public(), 201)
    raise method_not_allowed("GET", "POST")


@bp.route("/<org_id>/scim/credentials/rotate", methods=ALL)
def rotate(org_id: str) -> Response:
    """``POST …/scim/credentials/rotate`` ``{"graceHours": n}``."""
    if request.method != "POST":
        raise method_not_allowed("POST")
    org = configured(org_id)
    issuing(org)
    data = body(optional=True)
    if not isinstance(data, dict) or set(data) - {"graceHours"}:
        raise ApiError(400, "invalid_request", 'send {} or {"graceHours": <hours the previous credentials keep '
                                               'working, 0 to 720>}')
    rotation = admin().rotate(org, data.get("graceHours"))
    return _json({**rotation.issued.public(), "superseded": [c.public() for c in rotation.superseded],
                  "deadline": rotation.deadline}, 201)


@bp.route("/<org_id>/scim/credentials/<cred_id>", methods=ALL)
def credential(org_id: str, cred_id: str) -> Response:
    """``GET``/``DELETE …/scim/credentials/{id}``: one credential's listing form, or revoke it now."""
    org = configured(org_id)
    if request.method == "GET":
        cred = services().orgs.credential(org.pk, cred_id)
        if cred is None:
            raise ApiError(404, "not_found", f"org {org_id} has no credential {cred_id}")
        return _json(cred.public())
    if request.method != "DELETE":
        raise method_not_allowed("GET", "DELETE")
    if admin().revoke(org, cred_id) is None:
        raise ApiError(404, "not_found", f"org {org_id} has no credential {cred_id}: see GET "
                       f"/realms/{g.api_realm}/orgs/{org_id}/scim/credentials")
    return Response(status=204)


@bp.route("", methods=ALL, strict_slashes=False)
def org_listing() -> Response:
    """``GET /realms/{realm}/orgs?limit=&after=&search=&status=``: one page of the realm's organizations —
    configured ones (their config, as ``GET …/scim`` shows it) and those Keycloak lists without a SCIM config —
    in org id order, with Keycloak names; ``next`` is the cursor of the next page (``nextUrl`` the link), null on
    the last page. Keyset paging in SQL: every page costs the same (issue 12)."""
    from ..model.contract import MAX_PAGE, ORG_STATUS_FILTERS
    from ..services import org_status

    if request.method != "GET":
        raise method_not_allowed("GET")
    args = request.args
    try:
        limit = int(args.get("limit", 100))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "invalid_request", f"limit must be a whole number from 1 to {MAX_PAGE}")
    status = args.get("status") or None
    if status not in (None, *ORG_STATUS_FILTERS):
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(ORG_STATUS_FILTERS)}")
    try:
        page = services().orgs.org_page(g.api_realm, after=args.get("after") or None, limit=limit,
                                        search=(args.get("search") or "")[:200] or None, status=status)
    except ValueError:
        raise ApiError(400, "invalid_request", "after must be the `next` value of a previous page") from None
    for row in page.rows:
        row["status"] = org_status(row)
        row["scimBaseUrl"] = scim_base_url(row["realm"], row["orgId"])
    query = {k: v for k, v in {"limit": str(limit) if "limit" in args else None, "search": args.get("search"),
                               "status": status, "after": page.next}.items() if v}
    next_url = f"{request.base_url.rstrip('/')}?{urlencode(query)}" if page.next else None
    return _json({"orgs": page.rows, "next": page.next, "nextUrl": next_url})


@bp.route("/<path:rest>", methods=ALL)
def unknown(rest: str) -> Response:
    """Anything else under ``/realms/{realm}/orgs``: 404 as JSON."""
    raise ApiError(404, "not_found", f"no config API endpoint /orgs/{rest}")
