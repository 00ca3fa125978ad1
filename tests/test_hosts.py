"""Host header validation (issue 9): without PUBLIC_BASE_URL, meta.location and the admin login's redirect_uri
come from the Host header, so a Host a client made up is refused (``ALLOWED_HOSTS``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import DB_NAME, ORG_A, REALM, USER_URN, auth, base_path
from flask import request

from orgscim.app import create_app
from orgscim.web.urls import public_base_url


def make(instance: Path, **config: Any) -> Any:
    return create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), **config}).test_client()


def test_unknown_host_is_400_before_anything_runs(client: Any, template: Any) -> None:
    headers = {**auth(template.secrets[ORG_A]), "Host": "evil.example:8000"}
    resp = client.get(f"{base_path(REALM, ORG_A)}/Users", headers=headers)
    assert resp.status_code == 400 and resp.get_json()["error"] == "untrusted_host"
    assert "evil" not in resp.get_data(as_text=True)
    admin = client.get("/admin/login", headers={"Host": "evil.example"})
    assert admin.status_code == 400 and "Location" not in admin.headers
    for probe in ("/healthz", "/readyz"):
        assert client.get(probe, headers={"Host": "10.1.2.3:8000"}).status_code == 200
    for ok in ("localhost", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get(f"{base_path(REALM, ORG_A)}/Users", headers={**headers, "Host": ok}).status_code == 200


def test_allowed_and_public_hosts_build_the_urls(instance: Path, template: Any) -> None:
    client = make(instance, ALLOWED_HOSTS="scim.example.com, .tenants.example")
    headers = {**auth(template.secrets[ORG_A]), "Host": "scim.example.com"}
    resp = client.post(f"{base_path(REALM, ORG_A)}/Users", json={"schemas": [USER_URN], "userName": "h1"},
                       headers=headers)
    assert resp.status_code == 201
    assert resp.get_json()["meta"]["location"].startswith("http://scim.example.com/realms/")
    assert client.get("/healthz", headers={"Host": "a.tenants.example"}).status_code == 200
    assert client.get(f"{base_path(REALM, ORG_A)}/Users", headers={**headers, "Host": "a.tenants.example"}
                      ).status_code == 200
    assert client.get(f"{base_path(REALM, ORG_A)}/Users", headers={**headers, "Host": "tenants.example.evil"}
                      ).status_code == 400
    public = make(instance, PUBLIC_BASE_URL="https://sso.example.org")
    assert public.get(f"{base_path(REALM, ORG_A)}/Users", headers={**headers, "Host": "sso.example.org"}
                      ).status_code == 200
    anything = make(instance, ALLOWED_HOSTS=["*"])
    assert anything.get(f"{base_path(REALM, ORG_A)}/Users", headers={**headers, "Host": "x.example"}
                        ).status_code == 200


def test_the_base_url_is_what_werkzeug_makes_of_the_host(instance: Path) -> None:
    app = create_app({"TESTING": True, "DATABASE": str(instance / DB_NAME), "ALLOWED_HOSTS": ["*"]})
    for host, root in [("scim.example.com", ""), ("localhost:8000", ""), ("[::1]:8000", ""), ("10.1.2.3", ""),
                       ("xn--mnchen-3ya.de", ""), ("XN--MNCHEN-3YA.de:8443", ""), ("scim.example.com", "/orgscim")]:
        with app.test_request_context("/healthz", base_url=f"https://{host}{root}"):
            assert public_base_url() == request.host_url.rstrip("/"), (host, root)
