"""Operations endpoints: /healthz, /readyz, /metrics (DESIGN §2)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from flask import Flask

from orgscim.app import create_app
from orgscim.keycloak.transport import Transport
from orgscim.store.db import Database
from orgscim.web import ops


def test_ops_endpoints(client, services) -> None:  # type: ignore[no-untyped-def]
    """/healthz, /readyz (standalone: SQLite only) and /metrics in Prometheus text format."""
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok", "sqlite": "ok", "keycloak": "ok",
                                                             "storage": "ok"}
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE orgscim_orgs_serving gauge" in text
    served = [line for line in text.splitlines() if line.startswith("orgscim_orgs_serving ")]
    assert served == [f"orgscim_orgs_serving {float(sum(o.serving for o in services.orgs.orgs()))}"]


def _dead_keycloak_app(tmp_path: Path, **config: Any) -> Flask:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Database(tmp_path / "db.sqlite3").upgrade()
    app = create_app({"DATABASE": str(tmp_path / "db.sqlite3"), "KEYCLOAK_URL": f"http://127.0.0.1:{port}",
                      "KEYCLOAK_CLIENT_SECRET": "x", "KEYCLOAK_TIMEOUT": 1, **config})
    app.extensions["orgscim"].orgs.set_realm("acme-secret-realm", True)
    return app


def test_readyz_fails_when_keycloak_does_not_answer_without_naming_the_realm_or_the_error(tmp_path: Path) -> None:
    """Issue 9: /readyz echoed Keycloak's error text and realm names to anonymous callers."""
    resp = _dead_keycloak_app(tmp_path).test_client().get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 503 and body["status"] == "unavailable" and body["sqlite"] == "ok"
    assert body["keycloak"] == "unavailable for 1 realm(s)"
    text = resp.get_data(as_text=True)
    assert "acme-secret-realm" not in text and "127.0.0.1" not in text and "onnect" not in text


def test_readyz_is_cached_so_anonymous_probes_do_not_each_call_keycloak(tmp_path: Path, monkeypatch) -> None:
    """Issue 9: every anonymous /readyz made a Keycloak call; now one round of checks per READYZ_CACHE_SECONDS."""
    app = _dead_keycloak_app(tmp_path, READYZ_CACHE_SECONDS=60)
    calls: list[str] = []
    real = Transport.send
    monkeypatch.setattr(Transport, "send", lambda self, method, url, *a, **kw: calls.append(url) or real(
        self, method, url, *a, **kw))
    client = app.test_client()
    statuses = [client.get("/readyz").status_code for _ in range(20)]
    assert statuses == [503] * 20
    assert 1 <= len(calls) <= 3  # one check (the client's own retries of one GET at most)
    ops.READINESS_CHECKS.append(("probe", lambda services: "down"))
    try:
        app.extensions.pop("orgscim.readyz")
        body = client.get("/readyz").get_json()
        assert body["probe"] == "down" and body["status"] == "unavailable"
    finally:
        ops.READINESS_CHECKS.pop()


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    """Behind one proxy the client address and URLs come from X-Forwarded-*; by default they are not trusted."""
    Database(tmp_path / "db.sqlite3").upgrade()
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "sso.example.com"}
    seen: list[tuple[str, str]] = []
    for proxies in (0, 1):
        app = create_app({"DATABASE": str(tmp_path / "db.sqlite3"), "TRUSTED_PROXIES": proxies,
                          "ALLOWED_HOSTS": "sso.example.com"})

        @app.get("/probe")
        def probe() -> str:
            from flask import request

            seen.append((request.remote_addr or "", request.host_url))
            return "ok"

        assert app.test_client().get("/probe", headers=headers).status_code == 200
    assert seen[0] == ("127.0.0.1", "http://localhost/")
    assert seen[1] == ("203.0.113.7", "https://sso.example.com/")
