"""``orgscim keycloak bootstrap REALM``: create (or bring back in line) the two Keycloak clients orgscim needs.

* ``orgscim`` — confidential, service account only (no browser or password logins), whose service account holds
  exactly the realm-management roles of :func:`~orgscim.keycloak.roles.required_roles` for the server's version:
  missing ones are added, any other realm-management role is taken away.
* ``orgscim-admin`` — confidential, standard flow (authorization code) only, PKCE S256 required, redirect URI
  ``<orgscim URL>/admin/callback`` and post-logout redirect ``<orgscim URL>/admin/logged-out``; no service account
  and no roles of its own (the admins who log in bring theirs).

It runs with a Keycloak administrator's token (password grant of ``admin-cli`` in the admin realm); the password
comes from a file or a prompt, never from argv. The client secrets are written to files (0600) and never printed.
Running it again changes nothing that is already right and keeps the secrets unless asked for new ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests

from orgscim.model.types import JSON, JSONValue, Scalar

from .roles import required_roles

SERVICE_FILE = "keycloak-client-secret"
ADMIN_FILE = "admin-client-secret"


class BootstrapError(RuntimeError):
    """Keycloak refused or is unreachable; the message says what to do."""


@dataclass
class Result:
    realm: str
    version: str
    roles: list[str]
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    roles_added: list[str] = field(default_factory=list)
    roles_removed: list[str] = field(default_factory=list)
    secret_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def public(self) -> JSON:
        return dict(self.__dict__)


def admin_token(base_url: str, admin_realm: str, user: str, password: str, timeout: float = 10) -> str:
    """An administrator's access token (``admin-cli``, password grant)."""
    try:
        r = requests.post(f"{base_url}/realms/{quote(admin_realm, safe='')}/protocol/openid-connect/token",
                          data={"grant_type": "password", "client_id": "admin-cli", "username": user,
                                "password": password}, timeout=timeout)
    except requests.RequestException as e:
        raise BootstrapError(f"Keycloak at {base_url} is not reachable ({type(e).__name__})") from None
    if r.status_code != 200:
        raise BootstrapError(f"Keycloak refused the administrator login of {user!r} in realm {admin_realm} "
                             f"(HTTP {r.status_code}); check the user, the password file and --admin-realm")
    return str(r.json()["access_token"])


class Bootstrap:
    def __init__(self, base_url: str, realm: str, token: str, timeout: float = 10) -> None:
        self.base = f"{base_url.rstrip('/')}/admin/realms/{quote(realm, safe='')}"
        self.root = base_url.rstrip("/")
        self.realm = realm
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), *,
              params: dict[str, Scalar] | None = None, json: JSONValue = None) -> JSONValue:
        """One admin API call; the JSON answer (None when there is none)."""
        url = path if path.startswith("http") else f"{self.base}{path}"
        try:
            r = self.http.request(method, url, timeout=self.timeout, params=params, json=json)
        except requests.RequestException as e:
            raise BootstrapError(f"Keycloak did not answer {method} {path} ({type(e).__name__})") from None
        if r.status_code not in ok:
            raise BootstrapError(f"Keycloak answered HTTP {r.status_code} to {method} {path}: {r.text[:300]}")
        return r.json() if r.content and "json" in r.headers.get("Content-Type", "") else None

    def run(self, orgscim_url: str, service_id: str = "orgscim", admin_id: str = "orgscim-admin",
            new_secrets: bool = False) -> tuple[Result, dict[str, str]]:
        """Ensure both clients; returns the result and ``{file name: secret}`` for the caller to store."""
        realm_rep = self._call("GET", "", ok=(200, 404))
        if not realm_rep or "realm" not in realm_rep:
            raise BootstrapError(f"Keycloak has no realm {self.realm}: create it first (admin console → Create "
                                 "realm)")
        info = self._call("GET", f"{self.root}/admin/serverinfo")
        version = str(((info or {}).get("systemInfo") or {}).get("version") or "")
        result = Result(self.realm, version, required_roles(version or None))
        if not realm_rep.get("organizationsEnabled"):
            result.warnings.append(f"realm {self.realm} has Organizations turned off: turn them on (Realm settings → "
                                   "General → Organizations), or every organization endpoint answers 404")
        service = self._client(result, service_id, {
            "name": "orgscim SCIM provisioning (service account)", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "protocol": "openid-connect"})
        self._exact_roles(result, service)
        url = orgscim_url.rstrip("/")
        admin = self._client(result, admin_id, {
            "name": "orgscim admin pages (login)", "publicClient": False, "clientAuthenticatorType": "client-secret",
            "serviceAccountsEnabled": False, "standardFlowEnabled": True, "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False, "protocol": "openid-connect",
            "redirectUris": [f"{url}/admin/callback"], "webOrigins": [],
            "attributes": {"pkce.code.challenge.method": "S256",
                           "post.logout.redirect.uris": f"{url}/admin/logged-out"}})
        secrets = {SERVICE_FILE: self._secret(service, new_secrets), ADMIN_FILE: self._secret(admin, new_secrets)}
        return result, secrets

    def _client(self, result: Result, client_id: str, wanted: JSON) -> JSON:
        """Create the client, or update the settings that differ from ``wanted``; returns its representation."""
        found = self._call("GET", "/clients", params={"clientId": client_id}) or []
        if not found:
            self._call("POST", "/clients", json={"clientId": client_id, **wanted})
            result.created.append(client_id)
            created: JSON = (self._call("GET", "/clients", params={"clientId": client_id}) or [])[0]
            return created
        current: JSON = found[0]
        attrs = {**(current.get("attributes") or {}), **wanted.get("attributes", {})}
        differs = any(current.get(k) != v for k, v in wanted.items() if k != "attributes") or \
            attrs != (current.get("attributes") or {})
        if differs:
            self._call("PUT", f"/clients/{current['id']}", json={**current, **wanted, "attributes": attrs})
            result.updated.append(client_id)
            current = self._call("GET", f"/clients/{current['id']}")
        return current

    def _exact_roles(self, result: Result, client: JSON) -> None:
        """The service account gets exactly the required realm-management roles."""
        sa = self._call("GET", f"/clients/{client['id']}/service-account-user")
        rm = (self._call("GET", "/clients", params={"clientId": "realm-management"}) or [None])[0]
        if rm is None:
            raise BootstrapError(f"realm {self.realm} has no realm-management client")
        available = {r["name"]: r for r in self._call("GET", f"/clients/{rm['id']}/roles") or []}
        missing_on_server = [r for r in result.roles if r not in available]
        if missing_on_server:
            raise BootstrapError(f"Keycloak {result.version} has no realm-management roles {missing_on_server}")
        path = f"/users/{sa['id']}/role-mappings/clients/{rm['id']}"
        have = {r["name"]: r for r in self._call("GET", path) or []}
        add = [available[r] for r in result.roles if r not in have]
        remove = [r for name, r in have.items() if name not in result.roles]
        if add:
            self._call("POST", path, json=add)
        if remove:
            self._call("DELETE", path, json=remove)
        result.roles_added = [r["name"] for r in add]
        result.roles_removed = [r["name"] for r in remove]

    def _secret(self, client: JSON, new: bool) -> str:
        path = f"/clients/{client['id']}/client-secret"
        data = self._call("POST" if new else "GET", path) or {}
        if not data.get("value"):
            data = self._call("POST", path) or {}
        return str(data["value"])


def write_secret(folder: Path, name: str, secret: str) -> Path:
    """Write a secret file, replaced atomically: 0600, or the mode (at most 0640) and owner of the file it replaces
    (the install creates them 0640 root:orgscim, so the CLI wrapper can read them as the service user)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        try:
            old = path.stat()
            os.fchown(fh.fileno(), old.st_uid, old.st_gid)
            os.fchmod(fh.fileno(), old.st_mode & 0o640)
        except FileNotFoundError:
            pass
        fh.write(secret + "\n")
    os.replace(tmp, path)
    return path
