"""Operations endpoints: /healthz, /readyz, /metrics (DESIGN §2)."""

from __future__ import annotations

import socket
from pathlib import Path

from orgscim.app import create_app
from orgscim.store.db import Database


def test_ops_endpoints(client, services) -> None:  # type: ignore[no-untyped-def]
    """/healthz, /readyz (standalone: SQLite only) and /metrics in Prometheus text format."""
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok", "sqlite": "ok"}
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE orgscim_orgs_serving gauge" in text
    served = [line for line in text.splitlines() if line.startswith("orgscim_orgs_serving ")]
    assert served == [f"orgscim_orgs_serving {sum(o.serving for o in services.orgs.orgs())}"]


def test_readyz_fails_when_keycloak_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Database(tmp_path / "db.sqlite3").upgrade()
    app = create_app({"DATABASE": str(tmp_path / "db.sqlite3"), "KEYCLOAK_URL": f"http://127.0.0.1:{port}",
                      "KEYCLOAK_CLIENT_SECRET": "x", "KEYCLOAK_TIMEOUT": 1})
    app.extensions["orgscim"].orgs.set_realm("acme", True)
    resp = app.test_client().get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 503 and body["sqlite"] == "ok" and body["keycloak:acme"].startswith("error")


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    """Behind one proxy the client address and URLs come from X-Forwarded-*; by default they are not trusted."""
    Database(tmp_path / "db.sqlite3").upgrade()
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "sso.example.com"}
    seen: list[tuple[str, str]] = []
    for proxies in (0, 1):
        app = create_app({"DATABASE": str(tmp_path / "db.sqlite3"), "TRUSTED_PROXIES": proxies})

        @app.get("/probe")
        def probe() -> str:
            from flask import request

            seen.append((request.remote_addr or "", request.host_url))
            return "ok"

        assert app.test_client().get("/probe", headers=headers).status_code == 200
    assert seen[0] == ("127.0.0.1", "http://localhost/")
    assert seen[1] == ("203.0.113.7", "https://sso.example.com/")
