"""``orgscim keycloak bootstrap REALM`` against the real Keycloak (issue 11): in a fresh realm it creates the
service-account client with exactly the realm-management roles orgscim needs and the admin-login client, writes
both secrets to 0600 files (never to stdout), and a second run only puts back what drifted."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orgscim.keycloak.client import KeycloakAdmin, required_roles

pytestmark = pytest.mark.keycloak
ORGSCIM = str(Path(sys.executable).parent / "orgscim")


def admin_session(keycloak: Any) -> requests.Session:
    r = requests.post(f"{keycloak.base_url}/realms/master/protocol/openid-connect/token", timeout=30,
                      data={"grant_type": "password", "client_id": "admin-cli", "username": keycloak.admin_user,
                            "password": keycloak.admin_password})
    r.raise_for_status()
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return s


@pytest.fixture
def fresh_realm(keycloak: Any) -> Iterator[str]:
    name = f"bootstrap-{uuid.uuid4().hex[:8]}"
    s = admin_session(keycloak)
    s.post(f"{keycloak.base_url}/admin/realms", json={"realm": name, "enabled": True, "organizationsEnabled": True},
           timeout=60).raise_for_status()
    yield name
    admin_session(keycloak).delete(f"{keycloak.base_url}/admin/realms/{name}", timeout=60)


def bootstrap(keycloak: Any, realm: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    pw = tmp_path / "admin-password"
    pw.write_text(keycloak.admin_password + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ORGSCIM_INSTANCE": str(tmp_path / "instance")}
    proc = subprocess.run([ORGSCIM, "keycloak", "bootstrap", realm, "--keycloak-url", keycloak.base_url,
                           "--admin-user", keycloak.admin_user, "--admin-password-file", str(pw),
                           "--orgscim-url", "https://sso.example.com", "--secrets-dir", str(tmp_path / "etc"),
                           "--json", *extra], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert keycloak.admin_password not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def role_mappings(keycloak: Any, realm: str, client_id: str) -> tuple[set[str], str, str]:
    s = admin_session(keycloak)
    base = f"{keycloak.base_url}/admin/realms/{realm}"
    client = s.get(f"{base}/clients", params={"clientId": client_id}, timeout=30).json()[0]
    rm = s.get(f"{base}/clients", params={"clientId": "realm-management"}, timeout=30).json()[0]
    sa = s.get(f"{base}/clients/{client['id']}/service-account-user", timeout=30).json()
    path = f"{base}/users/{sa['id']}/role-mappings/clients/{rm['id']}"
    return {r["name"] for r in s.get(path, timeout=30).json()}, path, rm["id"]


def test_bootstrap_creates_both_clients_with_exactly_the_roles(keycloak, fresh_realm, tmp_path):
    first = bootstrap(keycloak, fresh_realm, tmp_path)
    assert sorted(first["created"]) == ["orgscim", "orgscim-admin"] and first["warnings"] == []
    files = {Path(f).name: Path(f) for f in first["secret_files"]}
    assert set(files) == {"keycloak-client-secret", "admin-client-secret"}
    for f in files.values():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    service_secret = files["keycloak-client-secret"].read_text().strip()
    assert service_secret and service_secret not in json.dumps(first)

    # the service account works and has exactly the roles orgscim needs: `orgscim check` is satisfied
    admin = KeycloakAdmin(keycloak.base_url, fresh_realm, "orgscim", service_secret)
    assert admin.check_permissions() == []
    direct, path, _ = role_mappings(keycloak, fresh_realm, "orgscim")
    assert direct == set(required_roles(admin.server_version()))

    # the admin-login client: code flow with PKCE, our redirect URIs, no service account, no password grant
    s = admin_session(keycloak)
    login = s.get(f"{keycloak.base_url}/admin/realms/{fresh_realm}/clients", params={"clientId": "orgscim-admin"},
                  timeout=30).json()[0]
    assert login["standardFlowEnabled"] and not login["serviceAccountsEnabled"]
    assert not login["directAccessGrantsEnabled"] and not login["publicClient"]
    assert login["redirectUris"] == ["https://sso.example.com/admin/callback"]
    assert login["attributes"]["pkce.code.challenge.method"] == "S256"
    assert login["attributes"]["post.logout.redirect.uris"] == "https://sso.example.com/admin/logged-out"
    token = requests.post(f"{keycloak.base_url}/realms/{fresh_realm}/protocol/openid-connect/token", timeout=30,
                          data={"grant_type": "client_credentials", "client_id": "orgscim-admin",
                                "client_secret": files["admin-client-secret"].read_text().strip()})
    assert token.status_code in (400, 401)  # no service account: it can only log people in

    # drift: an extra role and a changed redirect; a second run puts both back and keeps the secrets
    available = {r["name"]: r for r in s.get(f"{keycloak.base_url}/admin/realms/{fresh_realm}/clients/"
                                              f"{role_mappings(keycloak, fresh_realm, 'orgscim')[2]}/roles",
                                              timeout=30).json()}
    s.post(path, json=[available["manage-clients"]], timeout=30).raise_for_status()
    s.put(f"{keycloak.base_url}/admin/realms/{fresh_realm}/clients/{login['id']}",
          json={**login, "redirectUris": ["*"]}, timeout=30).raise_for_status()
    second = bootstrap(keycloak, fresh_realm, tmp_path)
    assert second["created"] == [] and second["updated"] == ["orgscim-admin"]
    assert second["roles_removed"] == ["manage-clients"] and second["roles_added"] == []
    assert role_mappings(keycloak, fresh_realm, "orgscim")[0] == set(required_roles(admin.server_version()))
    assert files["keycloak-client-secret"].read_text().strip() == service_secret
    third = bootstrap(keycloak, fresh_realm, tmp_path, "--new-secrets")
    assert third["created"] == third["updated"] == []
    assert files["keycloak-client-secret"].read_text().strip() != service_secret


def test_bootstrap_refuses_a_wrong_password_and_an_unknown_realm(keycloak, tmp_path):
    env = {**os.environ, "ORGSCIM_INSTANCE": str(tmp_path / "instance")}
    (tmp_path / "pw").write_text("wrong")
    proc = subprocess.run([ORGSCIM, "keycloak", "bootstrap", "orgscim-test", "--keycloak-url", keycloak.base_url,
                           "--admin-password-file", str(tmp_path / "pw"), "--orgscim-url", "http://x",
                           "--secrets-dir", str(tmp_path / "etc")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "refused the administrator login" in proc.stderr
    assert not (tmp_path / "etc").exists()
    (tmp_path / "pw").write_text(keycloak.admin_password)
    proc = subprocess.run([ORGSCIM, "keycloak", "bootstrap", f"no-such-{uuid.uuid4().hex[:6]}", "--keycloak-url",
                           keycloak.base_url, "--admin-password-file", str(tmp_path / "pw"), "--orgscim-url",
                           "http://x", "--secrets-dir", str(tmp_path / "etc")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "has no realm" in proc.stderr
