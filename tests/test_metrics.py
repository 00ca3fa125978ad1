"""``/metrics`` through prometheus_client (issues 9, 11, 12): parseable, escaped, no tenant identifiers, counters
that move under traffic, bounded label cardinality with 2,000 orgs, and no table scans per scrape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import ORG_A, REALM, base_path
from prometheus_client.parser import text_string_to_metric_families

from orgscim.model.clock import now

FORGED = 'https://idp.example/"} 1\norgscim_outbox_pending{realm="forged",org="x"} 999\n# '


def scrape(client: Any, **kw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics", **kw)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(resp.get_data(as_text=True)) for s in f.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_counters_move_under_traffic(client, auth_headers) -> None:
    users = f"{base_path(REALM, ORG_A)}/Users"
    route = "/realms/<realm>/scim/v2/organizations/<org_id>/Users"
    before = scrape(client)
    for _ in range(3):
        assert client.get(users, headers=auth_headers[ORG_A]).status_code == 200
    assert client.get(users, headers={"Authorization": "Bearer osk_nope.nope"}).status_code == 401
    assert client.get(users).status_code == 401
    after = scrape(client)
    req = dict(route=route, method="GET", status="200")
    assert value(after, "orgscim_http_requests_total", **req) - value(before, "orgscim_http_requests_total", **req) == 3
    assert value(after, "orgscim_http_request_duration_seconds_count", **req) - \
        value(before, "orgscim_http_request_duration_seconds_count", **req) == 3
    for reason in ("rejected", "missing"):
        key = dict(mode="EXTERNAL_SECRET", reason=reason)
        assert value(after, "orgscim_auth_failures_total", **key) - value(before, "orgscim_auth_failures_total",
                                                                           **key) == 1
    assert value(after, "orgscim_resources", type="User") >= 0 and ("orgscim_orgs", ()) in after


def test_label_values_are_escaped_and_name_no_tenant(client, services) -> None:
    """Issue 9: a JWK Set URI (set by a tenant) printed as a label let anonymous /metrics show a forged line."""
    org = services.orgs.org(REALM, ORG_A)
    services.db.conn.execute("INSERT INTO jwks (uri, attempted, error) VALUES (?, 0, ?)", (FORGED, FORGED))
    services.db.conn.execute("INSERT INTO outbox (org_pk, resource_type, resource_id, action, payload, created, "
                             "next_attempt) VALUES (?, 'User', 'u1', 'create', '{}', ?, ?)", (org.pk, now(), now()))
    services.db.conn.execute("INSERT INTO drift (org_pk, resource_type, resource_id, kind, first_seen, last_seen) "
                             "VALUES (?, 'User', 'u1', 'removed_from_org', ?, ?)", (org.pk, now(), now()))
    text = client.get("/metrics").get_data(as_text=True)
    assert "forged" not in text and "idp.example" not in text
    assert REALM not in text.replace("realm>", "") and ORG_A not in text
    samples = scrape(client)
    assert value(samples, "orgscim_outbox_pending") == 1 and value(samples, "orgscim_jwks_refresh_failing") == 1
    assert value(samples, "orgscim_drift_open", kind="removed_from_org") == 1
    assert value(samples, "orgscim_outbox_oldest_age_seconds") >= 0


def test_metrics_token_guards_the_endpoint_when_set(app, client) -> None:
    app.extensions["orgscim"].config["METRICS_TOKEN"] = "s3cret-metrics"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(client, headers={"Authorization": "Bearer s3cret-metrics"})


def test_resource_totals_are_maintained_not_scanned(client, services, api_a) -> None:
    """Issue 12: the scrape read every resource row; counts now follow inserts, deletes and org purges."""
    def totals() -> dict[str, int]:
        return {r[0]: r[1] for r in services.db.all("SELECT type, n FROM resource_totals WHERE n > 0")}

    def scanned() -> dict[str, int]:
        return {r[0]: r[1] for r in services.db.all("SELECT type, count(*) FROM resources GROUP BY type")}

    assert totals() == scanned()
    user = api_a.create_user("totals-user")
    api_a.create_group("totals-group")
    assert totals() == scanned() and totals()["User"] >= 1
    api_a.delete(f"/Users/{user['id']}")
    assert totals() == scanned()
    services.orgs.delete_org(services.orgs.org(REALM, ORG_A).pk)  # cascades to the org's resources
    assert totals() == scanned()
    plan = " ".join(str(r[-1]) for r in services.db.all(
        "EXPLAIN QUERY PLAN SELECT type, n FROM resource_totals"))
    assert "resources" not in plan.replace("resource_totals", "")


def test_label_cardinality_stays_bounded_with_2000_orgs(client, services) -> None:
    """Issue 11/12: requests to 2,000 orgs (served, failing auth, unknown) add no series beyond one org's."""
    start = set(scrape(client))  # series of earlier tests in this process
    pks = []
    for i in range(2000):
        org = services.orgs.upsert_org(REALM, f"card-{i:04d}", "EXTERNAL_SECRET", {}, True, "none", {})
        pks.append(org.pk)

    def hit(org_id: str) -> None:
        base = base_path(REALM, org_id)
        client.get(f"{base}/Users", headers={"Authorization": "Bearer osk_nope.nope"})
        client.get(f"{base}/Users/some-id")
        client.get(f"{base}/Groups?filter=displayName%20eq%20%22x%22")
        client.open(f"{base}/Users", method="BREW")
        client.get(f"/realms/{REALM}/not-a-route/{org_id}")

    hit("card-0000")
    hit("no-such-org")
    one = set(scrape(client))
    for i in range(1, 2000):
        hit(f"card-{i:04d}")
    many = scrape(client)
    assert set(many) == one, sorted(set(many) - one)[:5]
    assert len(set(many) - start) < 300  # what the requests above added: a bounded set of routes and statuses
    assert not any("card-" in v for _, labels in many for _, v in labels)


def test_gunicorn_hooks_make_a_fresh_directory_per_run_and_clean_up(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from orgscim import metrics

    monkeypatch.delenv(metrics.ENV, raising=False)
    stale = tmp_path / "orgscim-metrics-999999-old"  # a master killed before on_exit (no such pid)
    stale.mkdir()
    path = Path(metrics.prepare_multiprocess_dir(str(tmp_path)))
    assert os.environ[metrics.ENV] == str(path) and path.parent == tmp_path and not stale.exists()
    (path / "gauge_livesum_4242.db").write_bytes(b"")
    (path / "counter_4242.db").write_bytes(b"")
    metrics.child_exit(None, SimpleNamespace(pid=4242))
    assert sorted(p.name for p in path.iterdir()) == ["counter_4242.db"]  # counters of the dead stay counted
    metrics.remove_multiprocess_dir()
    assert not path.exists()
