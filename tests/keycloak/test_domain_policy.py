"""Domain policy against the real Keycloak (issue #9): an org's SCIM users get usernames and emails within the
org's Keycloak domains, so one org cannot take another org's addresses; on by default, off per org."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scimkit import REALM, Scim, make_app, uniq

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.provision.mapping import setting

pytestmark = pytest.mark.keycloak


@pytest.fixture
def two_orgs(kc_admin: KeycloakAdmin) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    made = []
    for _ in range(2):
        name = uniq("dom")
        made.append(kc_admin.create_organization({"name": name, "alias": name,
                                                  "domains": [{"name": f"{name}.example"}]}))
    yield kc_admin.get_organization(made[0]), kc_admin.get_organization(made[1])
    for org_id in made:
        kc_admin.delete_organization(org_id)


def scim_app(keycloak: Any, tmp: Path, org_id: str, **options: str) -> Scim:
    """An org configured with exactly these options (no test default for the domain policy)."""
    app = make_app(keycloak, tmp)
    services = app.extensions["orgscim"]
    services.orgs.set_realm(REALM, True)
    org = services.configure_org(REALM, org_id, "EXTERNAL_SECRET", {}, True, "none", {}, options)
    return Scim(app, app.test_client(), services, org_id, services.auth_mode("EXTERNAL_SECRET").issue(org).secret)


def body(user_name: str, email: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"userName": user_name, "name": {"givenName": "D", "familyName": "P"}}
    if email:
        out["emails"] = [{"value": email, "type": "work", "primary": True}]
    return out


def test_org_cannot_take_another_orgs_addresses(keycloak: Any, tmp_path: Path, kc_admin: KeycloakAdmin,
                                                two_orgs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = two_orgs
    dom_a, dom_b = a["domains"][0]["name"], b["domains"][0]["name"]
    scim = scim_app(keycloak, tmp_path, a["id"])  # no option: the policy is on by default
    calls: list[str] = []
    client = scim.services.keycloak(REALM)
    assert client is not None
    client.session.hooks.append(lambda x: calls.append(f"{x.method} {x.url}"))

    own = scim.call("POST", "/Users", body(f"ann@{dom_a}", f"ann@{dom_a}"), 201).get_json()
    squat = f"{uniq('bob')}@{dom_b}"
    for sent in (body(squat, squat), body(f"carl@{dom_a}", squat), body(squat)):
        resp = scim.call("POST", "/Users", sent)
        assert resp.status_code == 400, resp.get_data(as_text=True)
        err = resp.get_json()
        assert err["scimType"] == "invalidValue" and dom_a in err["detail"] and "domain_policy" in err["detail"]
    plain = scim.call("POST", "/Users", body(uniq("plainname")))  # no domain at all: not within the org's
    assert plain.status_code == 400 and "outside this organization's domains" in plain.get_json()["detail"]
    assert kc_admin.find_user_by_email(squat) is None and kc_admin.find_user_by_username(squat) is None
    assert scim.call("GET", f'/Users?filter=userName eq "{squat}"', None, 200).get_json()["totalResults"] == 0

    moved = scim.call("PATCH", f"/Users/{own['id']}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "emails", "value": [{"value": squat,
                                                                                     "primary": True}]}]})
    assert moved.status_code == 400
    assert scim.call("GET", f"/Users/{own['id']}", None, 200).get_json()["emails"][0]["value"] == f"ann@{dom_a}"
    # a change that keeps the name and address is not held against the policy
    scim.call("PATCH", f"/Users/{own['id']}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "path": "name.givenName", "value": "Anne"}]}, 200)
    # the org's domains are a cached realm fact: one GET of the organization for all these requests
    org_gets = [c for c in calls if c.startswith("GET ") and c.split("?")[0].endswith(f"/organizations/{a['id']}")]
    assert len(org_gets) == 1, org_gets

    (tmp_path / "b").mkdir()
    b_scim = scim_app(keycloak, tmp_path / "b", b["id"])
    b_scim.call("POST", "/Users", body(squat, squat), 201)  # B's own address is still free for B
    scim.call("DELETE", f"/Users/{own['id']}", None, 204)
    assert setting(scim.services.orgs.org(REALM, a["id"]).settings, "domain_policy") == "on"


def test_domain_policy_off_per_org(keycloak: Any, tmp_path: Path, kc_admin: KeycloakAdmin,
                                   two_orgs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, _ = two_orgs
    scim = scim_app(keycloak, tmp_path, a["id"], domain_policy="off")
    name = f"{uniq('free')}@elsewhere.example"
    user = scim.call("POST", "/Users", body(name, name), 201).get_json()
    assert kc_admin.find_user_by_email(name) is not None
    scim.call("DELETE", f"/Users/{user['id']}", None, 204)
