"""Helpers for tests that drive SCIM into the real Keycloak: a fresh orgscim app per test, IdP-shaped bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from orgscim.app import create_app
from orgscim.keycloak.client import KeycloakAdmin
from orgscim.provision.mapping import ATTR_ID
from orgscim.services import Services
from orgscim.store.db import Database

REALM = "orgscim-test"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Scim:
    """A SCIM client for one org of a fresh orgscim app wired to the session's Keycloak."""

    app: Flask
    client: FlaskClient
    services: Services
    org_id: str
    token: str

    @property
    def base(self) -> str:
        return f"/realms/{REALM}/scim/v2/organizations/{self.org_id}"

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        resp = self.client.open(
            self.base + path, method=method, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        if expect is not None:
            assert resp.status_code == expect, resp.get_data(as_text=True)
        return resp

    def drift(self) -> list[dict[str, Any]]:
        return [d.public() for d in self.services.drift.records()]

    def pending(self) -> int:
        return len(self.services.outbox.entries())


def make_app(keycloak: Any, tmp: Path, **config: Any) -> Flask:
    db_path = tmp / "orgscim.sqlite3"
    Database(db_path).upgrade()
    return create_app(
        {
            "DATABASE": str(db_path),
            "KEYCLOAK_URL": keycloak.base_url,
            "KEYCLOAK_CLIENT_SECRET": "orgscim-dev-secret",
            "KEYCLOAK_TIMEOUT": 3,
            "KEYCLOAK_RETRY_SECONDS": 1,
            **config,
        }
    )


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def okta_user(name: str, **extra: Any) -> dict[str, Any]:
    """The body Okta sends on create (placeholder password, groups [], string booleans are Entra's)."""
    return {
        "schemas": [USER],
        "userName": f"{name}@acme.example",
        "name": {"givenName": name.title(), "familyName": "Tester"},
        "emails": [{"primary": True, "value": f"{name}@acme.example", "type": "work"}],
        "displayName": f"{name.title()} Tester",
        "locale": "en-US",
        "externalId": f"00u{name}",
        "groups": [],
        "password": "Pl@ceholder1",
        "active": True,
        **extra,
    }


def kc_user(admin: KeycloakAdmin, scim_id: str) -> dict[str, Any]:
    found = admin.find_users_by_attribute(ATTR_ID, scim_id)
    assert len(found) == 1, f"expected exactly one Keycloak user for SCIM id {scim_id}, got {len(found)}"
    return admin.get_user(found[0]["id"])




def make_scim(keycloak: Any, tmp: Path, org_id: str, federation: str = "none", fed: dict[str, Any] | None = None,
              **options: Any) -> Scim:
    """A configured org (realm flag on) with one EXTERNAL_SECRET credential, in a fresh orgscim app."""
    app = make_app(keycloak, tmp)
    # okta_user() bodies use acme.example addresses in orgs of any domain; the domain policy (on by default)
    # is tested with its own orgs in tests/keycloak/test_domain_policy.py
    options.setdefault("domain_policy", "off")
    services: Services = app.extensions["orgscim"]
    services.orgs.set_realm(REALM, True)
    org = services.configure_org(REALM, org_id, "EXTERNAL_SECRET", {}, True, federation, fed or {}, options)
    issued = services.auth_mode("EXTERNAL_SECRET").issue(org)
    return Scim(app, app.test_client(), services, org_id, issued.secret)
