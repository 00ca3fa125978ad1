"""Cross-org isolation: org B's credential and URLs never reach, reveal, count or change org A's resources.
Plus the gates in front of every org: the realm flag, the org's enabled flag, unknown orgs (DESIGN §2)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def a_data(api_a):
    alice = api_a.create_user("alice@a.example", externalId="ext-alice",
                              emails=[{"value": "alice@a.example", "type": "work"}])
    team = api_a.create_group("A Team", members=[{"value": alice["id"]}])
    return alice, team


def snapshot(api):
    """Everything org A has, as A sees it (with full member lists)."""
    users = api.listing(api.get("/Users?count=1000"))["Resources"]
    groups = api.listing(api.get("/Groups?count=1000"))["Resources"]
    return sorted(users + groups, key=lambda r: r["id"])


def test_a_credential_on_b_is_the_same_401_as_a_wrong_one(api_a, api_b):
    with_a = api_b.get("/Users", headers={"Authorization": f"Bearer {api_a.secret}"})
    wrong = api_b.get("/Users", headers={"Authorization": f"Bearer {api_b.secret[:-4]}abcd"})
    garbage = api_b.get("/Users", headers={"Authorization": "Bearer osk_nothing.here"})
    for resp in (with_a, wrong, garbage):
        assert resp.status_code == 401
    assert with_a.get_data() == wrong.get_data() == garbage.get_data()
    assert with_a.headers["Content-Type"] == wrong.headers["Content-Type"]
    assert with_a.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]
    # and the other way round
    assert api_a.get("/Users", headers={"Authorization": f"Bearer {api_b.secret}"}).get_data() == wrong.get_data()


def test_b_cannot_read_or_write_a_resources_by_id(api_a, api_b, a_data):
    alice, team = a_data
    before = snapshot(api_a)
    for kind, rid, body, op in (
            ("Users", alice["id"], {"schemas": [USER], "userName": "stolen"},
             {"op": "replace", "path": "userName", "value": "stolen"}),
            ("Groups", team["id"], {"schemas": [GROUP], "displayName": "stolen"},
             {"op": "replace", "path": "displayName", "value": "stolen"})):
        api_b.error(api_b.get(f"/{kind}/{rid}"), 404)
        api_b.error(api_b.put(f"/{kind}/{rid}", body), 404)
        api_b.error(api_b.patch(f"/{kind}/{rid}", op), 404)
        api_b.error(api_b.delete(f"/{kind}/{rid}"), 404)
        api_b.error(api_b.get(f"/{kind}/{rid}", headers={"If-None-Match": "*"}), 404)
        api_b.error(api_b.delete(f"/{kind}/{rid}", headers={"If-Match": "*"}), 404)
    assert snapshot(api_a) == before


def test_b_filters_never_find_a_resources(api_a, api_b, a_data):
    alice, team = a_data
    for f in (f'id eq "{alice["id"]}"', 'userName eq "alice@a.example"', 'externalId eq "ext-alice"',
              'emails[type eq "work"].value eq "alice@a.example"', 'emails.value co "a.example"', "userName pr",
              f'groups[value eq "{team["id"]}"]'):
        body = api_b.listing(api_b.get("/Users?filter=" + quote(f)))
        assert body["totalResults"] == 0 and body["Resources"] == [], f
    for f in (f'id eq "{team["id"]}"', 'displayName eq "A Team"', f'members[value eq "{alice["id"]}"]'):
        assert api_b.listing(api_b.get("/Groups?filter=" + quote(f)))["totalResults"] == 0, f
    body = api_b.listing(api_b.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))
    assert body["totalResults"] == 0


def test_b_cannot_make_a_user_a_member(api_a, api_b, a_data):
    alice, team = a_data
    before = snapshot(api_a)
    bees = api_b.create_group("B Team")
    bob = api_b.create_user("bob@b.example")
    resp = api_b.patch(f"/Groups/{bees['id']}", {"op": "add", "path": "members",
                                                 "value": [{"value": alice["id"]}, {"value": bob["id"]}]})
    assert resp.status_code == 200 and resp.get_json()["members"] == [{"value": bob["id"]}]
    created = api_b.post("/Groups", {"schemas": [GROUP], "displayName": "B Two", "members": [{"value": alice["id"]},
                                                                                             {"value": team["id"]}]})
    assert created.status_code == 201 and "members" not in created.get_json()
    put = api_b.put(f"/Groups/{bees['id']}", {"schemas": [GROUP], "displayName": "B Team",
                                              "members": [{"value": alice["id"]}]})
    assert put.status_code == 200 and "members" not in put.get_json()
    bulk = api_b.post("/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "PATCH", "path": f"/Groups/{bees['id']}", "data": {"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}]}},
        {"method": "DELETE", "path": f"/Users/{alice['id']}"},
        {"method": "PATCH", "path": f"/Groups/{team['id']}", "data": {"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": "members"}]}}]})
    assert [r["status"] for r in bulk.get_json()["Operations"]] == ["200", "404", "404"]
    assert "members" not in api_b.read("Groups", bees["id"])
    # B's view: only B's resources, B's totals
    assert api_b.listing(api_b.get("/Users"))["totalResults"] == 1
    assert api_b.listing(api_b.get("/Groups"))["totalResults"] == 2
    assert [g["value"] for g in api_a.read("Users", alice["id"])["groups"]] == [team["id"]]
    assert snapshot(api_a) == before


def test_same_names_in_two_orgs_do_not_collide(api_a, api_b, a_data):
    """Uniqueness is per org: B may have its own alice@a.example and A Team."""
    bob_alice = api_b.create_user("alice@a.example", externalId="ext-alice")
    api_b.create_group("A Team")
    assert bob_alice["id"] != a_data[0]["id"]
    assert api_a.ids("/Users?filter=" + quote('userName eq "alice@a.example"')) == {a_data[0]["id"]}
    assert api_b.ids("/Users?filter=" + quote('userName eq "alice@a.example"')) == {bob_alice["id"]}


def test_b_totals_are_unaffected_by_a(api_a, api_b, a_data):
    for i in range(5):
        api_a.create_user(f"more-{i}")
    assert api_b.listing(api_b.get("/Users"))["totalResults"] == 0
    assert api_b.listing(api_b.get("/Groups"))["totalResults"] == 0
    assert api_a.listing(api_a.get("/Users"))["totalResults"] == 6


def test_realm_flag_off_closes_every_org_of_the_realm(api_a, api_b, services, client, a_data):
    services.configure_org("r2", "org-z", "EXTERNAL_SECRET")
    services.orgs.set_realm("r2", True)
    other_realm = client.get("/realms/r2/scim/v2/organizations/org-z/Users")
    assert other_realm.status_code == 401  # serving, just no credential
    services.orgs.set_realm("r1", False)
    for api in (api_a, api_b):
        for resp in (api.get("/Users"), api.get("/ServiceProviderConfig"), api.get(f"/Users/{a_data[0]['id']}"),
                     api.post("/Users", {"schemas": [USER], "userName": "x"}), api.get("/Users", headers={})):
            body = api.error(resp, 404)
            assert "not enabled" in body["detail"]
    assert client.get("/realms/r2/scim/v2/organizations/org-z/Users").status_code == 401
    services.orgs.set_realm("r1", True)
    assert api_a.read("Users", a_data[0]["id"])["userName"] == "alice@a.example"


def test_disabled_org_is_404_and_the_other_org_keeps_serving(api_a, api_b, services):
    services.configure_org("r1", "org-a", "EXTERNAL_SECRET", enabled=False)
    api_a.error(api_a.get("/Users"), 404)
    api_a.error(api_a.post("/Users", {"schemas": [USER], "userName": "x"}), 404)
    assert api_b.get("/Users").status_code == 200
    services.configure_org("r1", "org-a", "EXTERNAL_SECRET", enabled=True)
    assert api_a.get("/Users").status_code == 200


@pytest.mark.parametrize("path", ["/realms/r1/scim/v2/organizations/no-such-org/Users",
                                  "/realms/r1/scim/v2/organizations/no-such-org/ServiceProviderConfig",
                                  "/realms/nope/scim/v2/organizations/org-a/Users",
                                  "/realms/R1/scim/v2/organizations/org-a/Users"])
def test_unknown_org_or_realm_is_404(api_a, client, path):
    for headers in ({}, api_a.headers):
        api_a.error(client.get(path, headers=headers), 404)


def test_plain_client_with_auth_headers(client, auth_headers):
    """The fixtures in their plain flaskr form: ``client`` plus per-org headers."""
    a = "/realms/r1/scim/v2/organizations/org-a"
    created = client.post(f"{a}/Users", json={"userName": "plain"}, headers=auth_headers["org-a"])
    assert created.status_code == 201
    assert client.get(f"{a}/Users/{created.get_json()['id']}", headers=auth_headers["org-a"]).status_code == 200
    assert client.get(f"{a}/Users", headers=auth_headers["org-b"]).status_code == 401
