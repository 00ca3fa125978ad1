"""``Orgs``: realms, organizations (configured and as Keycloak lists them), the keyset-paged listing,
credentials and the audit log (docs/storage.md)."""

from __future__ import annotations

import pytest

from orgscim.model.clock import later, now
from orgscim.model.contract import MAX_PAGE, Org, OutboxEntry, Storage


# -- realms and organizations ---------------------------------------------------------------------------------
def test_realm_flag_and_org_serving(storage: Storage) -> None:
    orgs = storage.orgs
    assert orgs.realm_enabled("r") is False and orgs.realms() == []
    org = orgs.upsert_org("r", "o1", "EXTERNAL_SECRET", {"k": "v"}, settings={"s": 1})
    assert (org.realm, org.org_id, org.auth_config, org.settings, org.federation) == ("r", "o1", {"k": "v"},
                                                                                        {"s": 1}, "none")
    assert org.enabled and not org.serving  # the realm flag is off
    orgs.set_realm("r", True)
    assert orgs.realm_enabled("r") and [r["realm"] for r in orgs.realms()] == ["r"]
    org = orgs.org("r", "o1")
    assert org is not None and org.serving and orgs.org_by_pk(org.pk) == org
    orgs.set_vanished(org.pk, now())
    vanished = orgs.org_by_pk(org.pk)
    assert vanished is not None and not vanished.serving
    orgs.set_vanished(org.pk, None)
    again = orgs.upsert_org("r", "o1", "EXTERNAL_BASIC", {}, enabled=False)  # same org, new config
    assert again.pk == org.pk and again.auth_mode == "EXTERNAL_BASIC" and not again.serving
    assert orgs.org("r", "nope") is None and orgs.org_by_pk(10**9) is None


def test_orgs_are_listed_in_realm_and_id_order(storage: Storage) -> None:
    for realm, org_id in (("r2", "b"), ("r1", "b"), ("r1", "a")):
        storage.orgs.upsert_org(realm, org_id, "EXTERNAL_SECRET", {})
    assert [(o.realm, o.org_id) for o in storage.orgs.orgs()] == [("r1", "a"), ("r1", "b"), ("r2", "b")]
    assert [o.org_id for o in storage.orgs.orgs("r2")] == ["b"]


def test_deleting_an_org_deletes_its_scim_data(storage: Storage, org_a: Org, org_b: Org) -> None:
    for org in (org_a, org_b):
        storage.resources(org.pk).create("User", {"userName": "u"}, "u", None)
        storage.orgs.add_credential(org.pk, f"cred-{org.org_id}", "secret", "hash")
    assert storage.orgs.org_counts(org_a.pk) == {"User": 1}
    storage.orgs.delete_org(org_a.pk)
    assert storage.orgs.org("r1", "org-a") is None and storage.orgs.org_counts(org_a.pk) == {}
    assert storage.orgs.credential(org_a.pk, "cred-org-a") is None
    assert storage.orgs.org_counts(org_b.pk) == {"User": 1}  # the other org is untouched


def test_resource_names_stay_inside_the_org(storage: Storage, org_a: Org, org_b: Org) -> None:
    u = storage.resources(org_a.pk).create("User", {"userName": "Ann"}, "Ann", None)
    g = storage.resources(org_a.pk).create("Group", {"displayName": "Ops"}, "Ops", None)
    other = storage.resources(org_b.pk).create("User", {"userName": "Zed"}, "Zed", None)
    assert storage.orgs.resource_names(org_a.pk, [u.id, g.id, other.id, ""]) == {u.id: "Ann", g.id: "Ops"}


# -- organizations as Keycloak lists them ---------------------------------------------------------------------
def test_discovered_orgs_until_configured_or_unseen(storage: Storage) -> None:
    orgs = storage.orgs
    start = now()
    orgs.seen_in_keycloak("r", [{"id": "k1", "name": "Acme", "alias": "acme"}, {"id": "k2", "name": "Beta"}])
    assert [(d["orgId"], d["name"], d["configured"]) for d in orgs.discovered("r")] == [("k1", "Acme", False),
                                                                                      ("k2", "Beta", False)]
    assert orgs.org_names("r", ["k1", "k3"]) == {"k1": {"name": "Acme", "alias": "acme"}}
    orgs.upsert_org("r", "k1", "EXTERNAL_SECRET", {})
    assert [d["orgId"] for d in orgs.discovered()] == ["k2"]  # configured ones are not "discovered"
    later_run = later(1)
    orgs.seen_in_keycloak("r", [{"id": "k1", "name": "Acme"}])
    orgs.close_unseen("r", start)  # nothing is older than the first run
    assert [d["orgId"] for d in orgs.discovered()] == ["k2"]
    orgs.seen_in_keycloak("r", [])
    orgs.close_unseen("r", later_run)  # k2 was not listed since: it vanished
    assert orgs.discovered() == []


# -- the listing: keyset pages over configured and discovered orgs ------------------------------------------
@pytest.fixture
def listed(storage: Storage) -> list[str]:
    storage.orgs.set_realm("r", True)
    storage.orgs.seen_in_keycloak("r", [{"id": f"k{i:02d}", "name": f"Name {i}", "alias": f"al_{i}"}
                                        for i in range(0, 12, 2)])
    for i in range(1, 12, 2):
        storage.orgs.upsert_org("r", f"k{i:02d}", "EXTERNAL_SECRET", {})
    storage.orgs.upsert_org("s", "k00", "EXTERNAL_SECRET", {})
    return [f"k{i:02d}" for i in range(12)]


def test_org_page_walks_every_org_once_in_order(storage: Storage, listed: list[str]) -> None:
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = storage.orgs.org_page(after=after, limit=5)
        seen += [(r["realm"], r["orgId"]) for r in page.rows]
        if page.next is None:
            break
        after = page.next
    assert seen == [("r", i) for i in listed] + [("s", "k00")]
    one_realm = storage.orgs.org_page("r", limit=100)
    assert [r["orgId"] for r in one_realm.rows] == listed and one_realm.next is None
    assert [r["configured"] for r in one_realm.rows] == [i % 2 == 1 for i in range(12)]
    assert storage.orgs.org_page(limit=10**6).filters["limit"] == MAX_PAGE


def test_org_page_search_and_status(storage: Storage, listed: list[str]) -> None:
    orgs = storage.orgs
    assert [r["orgId"] for r in orgs.org_page("r", search="NAME 1").rows] == ["k10"]  # name, case-insensitive
    assert [r["orgId"] for r in orgs.org_page("r", search="al_4").rows] == ["k04"]  # "_" is literal
    assert orgs.org_page("r", search="%").rows == []
    assert [r["orgId"] for r in orgs.org_page("r", status="not-configured").rows] == listed[0::2]
    assert [r["orgId"] for r in orgs.org_page("r", status="configured").rows] == listed[1::2]
    org = orgs.org("r", "k03")
    assert org is not None
    storage.drift.report(org.pk, "User", "x", "missing")
    assert [r["orgId"] for r in orgs.org_page(status="drift").rows] == ["k03"]
    storage.resources(org.pk).create("User", {"userName": "u"}, "u", None, outbox=[OutboxEntry("User", "", "a")])
    entry = storage.outbox.entries(org.pk)[0]
    assert orgs.org_page(status="failing").rows == []
    storage.outbox.retry_later(entry.pk, "refused", 60)
    row = orgs.org_page(status="failing").rows[0]
    assert (row["orgId"], row["pendingChanges"], row["failingChanges"], row["openDrift"]) == ("k03", 1, 1, 1)
    with pytest.raises(ValueError):
        orgs.org_page(status="sideways")
    with pytest.raises(ValueError):
        orgs.org_page(after="not a cursor")


# -- credentials ----------------------------------------------------------------------------------------------
def test_credential_lifecycle(storage: Storage, org_a: Org, org_b: Org) -> None:
    orgs = storage.orgs
    first = orgs.add_credential(org_a.pk, "c1", "secret", "h1")
    second = orgs.add_credential(org_a.pk, "c2", "secret", "h2")
    orgs.add_credential(org_a.pk, "c3", "basic", "h3", username="bob")
    assert first.status() == "active" and orgs.credential(org_b.pk, "c1") is None  # another org's id
    deadline = later(3600)
    changed = orgs.supersede_credentials(org_a.pk, "secret", deadline, keep_pk=second.pk)  # rotation
    assert [(c.cred_id, c.expires, c.status()) for c in changed] == [("c1", deadline, "expiring")]
    assert [c.cred_id for c in orgs.active_credentials(org_a.pk, "secret")] == ["c1", "c2"]
    orgs.update_credential(first.pk, expires=later(-1), last_used=now())
    assert [c.cred_id for c in orgs.active_credentials(org_a.pk, "secret")] == ["c2"]
    assert [c.cred_id for c in orgs.credentials(org_a.pk, active_only=True)] == ["c2", "c3"]
    first_time = "2026-01-01T00:00:00.000000Z"
    revoked = orgs.revoke_credential(org_a.pk, "c2", first_time)
    again = orgs.revoke_credential(org_a.pk, "c2", "2027-01-01T00:00:00.000000Z")
    assert revoked is not None and again is not None and again.revoked == revoked.revoked == first_time
    assert again.status() == "revoked" and orgs.active_credentials(org_a.pk, "secret") == []
    assert "hash" not in again.public() and orgs.credential_by_pk(first.pk) == orgs.credential(org_a.pk, "c1")


# -- audit log ------------------------------------------------------------------------------------------------
def test_events_newest_first_per_realm_and_org(storage: Storage, org_a: Org, org_b: Org) -> None:
    orgs = storage.orgs
    orgs.upsert_org("r2", "elsewhere", "EXTERNAL_SECRET", {})
    other = orgs.org("r2", "elsewhere")
    assert other is not None
    orgs.event(org_a.pk, "one", {"n": 1})
    orgs.event(org_b.pk, "two")
    orgs.event(None, "realm.flag", {"realm": "r1"})
    orgs.event(other.pk, "not-r1")
    assert [e["kind"] for e in orgs.events("r1")] == ["realm.flag", "two", "one"]
    assert [(e["orgId"], e["detail"]) for e in orgs.events("r1", org_pk=org_a.pk)] == [("org-a", {"n": 1})]
    assert [e["kind"] for e in orgs.events("r1", limit=1)] == ["realm.flag"]
