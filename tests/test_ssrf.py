"""No SSRF through a URL a tenant sets (``jwks_uri``), and a bounded JWK Set cache (issue 9).

On 84ab25c any https host (169.254.169.254, 10/8, cluster names) and http to any loopback port was fetched,
before the org was checked to exist, and the 400 echoed the remote status or exception.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import REALM

from orgscim.jwks import JwksCache, JwksError, UnsafeUrl, UrlPolicy, fetch
from orgscim.keycloak.errors import KeycloakError
from orgscim.services import ConfigError


class Recorder:
    """A loopback HTTP server answering every GET with ``status`` and an empty JWK Set; records Host headers."""

    def __init__(self, status: int = 200) -> None:
        self.hosts: list[str] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                rec.hosts.append(self.headers.get("Host", ""))
                body = json.dumps({"keys": []}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder(404)
    yield rec
    rec.close()


def resolver_for(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    def resolve(host: str, port: int, type: int = 0) -> list[tuple[Any, ...]]:  # noqa: A002 - getaddrinfo's name
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in table[host]]
    return resolve


REFUSED = {"metadata.test": ["169.254.169.254"], "ten.test": ["10.1.2.3"], "rfc1918.test": ["192.168.0.10"],
           "loop.test": ["127.0.0.1"], "v6loop.test": ["::1"], "ula.test": ["fd00::1"], "ll6.test": ["fe80::1"],
           "mcast.test": ["224.0.0.251"], "zero.test": ["0.0.0.0"], "mapped.test": ["::ffff:10.0.0.1"],
           "cgnat.test": ["100.64.0.1"], "mixed.test": ["93.184.216.34", "10.0.0.1"]}


@pytest.mark.parametrize("host", sorted(REFUSED))
def test_internal_addresses_are_refused(host: str) -> None:
    policy = UrlPolicy(resolver=resolver_for(REFUSED))
    with pytest.raises(UnsafeUrl):
        policy.check(f"https://{host}/jwks")


def test_public_https_passes_and_http_needs_loopback() -> None:
    table = {"idp.test": ["93.184.216.34"], "loop.test": ["127.0.0.1"]}
    target = UrlPolicy(resolver=resolver_for(table)).check("https://idp.test:8443/keys?x=1")
    assert (target.ip, target.port, target.host, target.path) == ("93.184.216.34", 8443, "idp.test", "/keys?x=1")
    with pytest.raises(UnsafeUrl, match="loopback addresses only"):
        UrlPolicy(resolver=resolver_for(table)).check("http://idp.test/jwks")
    assert UrlPolicy(allow_loopback=True, resolver=resolver_for(table)).check("http://loop.test/j").ip == "127.0.0.1"
    with pytest.raises(UnsafeUrl):
        UrlPolicy(allow_loopback=True, resolver=resolver_for(REFUSED)).check("https://ten.test/j")
    assert UrlPolicy(allow_private=True, resolver=resolver_for(REFUSED)).check("https://ten.test/j").ip == "10.1.2.3"


def test_operator_keycloak_url_is_trusted() -> None:
    policy = UrlPolicy.from_config({"KEYCLOAK_URL": "http://127.0.0.1:8080"})
    assert policy.check("http://127.0.0.1:8080/realms/r/protocol/openid-connect/certs").ip == "127.0.0.1"
    with pytest.raises(UnsafeUrl):
        policy.check("http://127.0.0.1:9999/jwks")


def test_fetch_connects_to_the_address_it_checked(recorder: Recorder) -> None:
    """DNS is asked once; the connection goes to that answer (a rebinding DNS cannot switch it)."""
    calls: list[str] = []
    policy = UrlPolicy(allow_loopback=True, resolver=resolver_for({"idp.rebind.test": ["127.0.0.1"]}, calls))
    with pytest.raises(JwksError, match="HTTP 404"):
        fetch(f"http://idp.rebind.test:{recorder.port}/jwks", policy=policy)
    assert calls == ["idp.rebind.test"]  # the system resolver never saw the name (it could not resolve it)
    assert recorder.hosts == [f"idp.rebind.test:{recorder.port}"]


def test_loopback_is_refused_unless_allowed(recorder: Recorder) -> None:
    with pytest.raises(UnsafeUrl):
        fetch(f"http://127.0.0.1:{recorder.port}/jwks")
    assert recorder.hosts == []


def jwt_config(uri: str) -> dict[str, Any]:
    return {"issuer": "https://idp.example", "jwks_uri": uri, "audience": "api://orgscim"}


def test_configure_refuses_without_an_oracle_and_without_fetching_for_strict_operators(
        services: Any, recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    services.auth_ctx.jwks.policy = UrlPolicy()  # an operator who did not allow loopback URLs
    for uri in (f"http://127.0.0.1:{recorder.port}/jwks", "https://169.254.169.254/latest/meta-data/",
                "https://10.0.0.1/jwks"):
        with pytest.raises(ConfigError) as err:
            services.configure_org(REALM, "org-ssrf", "EXTERNAL_JWT", jwt_config(uri))
        assert "169.254" not in str(err.value) and "10.0.0.1" not in str(err.value)
        assert "public https URL" in str(err.value)
    assert recorder.hosts == []
    assert "loopback" in caplog.text  # the reason is in the operator's log


def test_remote_status_is_not_echoed(services: Any, recorder: Recorder) -> None:
    with pytest.raises(ConfigError) as err:
        services.configure_org(REALM, "org-ssrf", "EXTERNAL_JWT", jwt_config(f"http://127.0.0.1:{recorder.port}/j"))
    assert len(recorder.hosts) == 1
    assert "404" not in str(err.value) and "HTTP" not in str(err.value)


class NoSuchOrg:
    base_url = "http://keycloak.invalid"

    def get_organization(self, org_id: str) -> Any:
        raise KeycloakError(404, message="not found")


def test_org_must_exist_before_any_fetch(services: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "keycloak", lambda realm: NoSuchOrg())
    with pytest.raises(ConfigError, match="no organization"):
        services.configure_org(REALM, "org-missing", "EXTERNAL_JWT",
                               jwt_config(f"http://127.0.0.1:{recorder.port}/jwks"))
    assert recorder.hosts == []


def test_jwks_cache_is_bounded_lru() -> None:
    fetched: list[str] = []
    cache = JwksCache(fetcher=lambda uri: fetched.append(uri) or {}, max_entries=3)
    for i in range(10):
        cache.key(i, f"https://idp{i}.test/jwks", "kid", "RS256")
        cache.key(0, "https://idp0.test/jwks", "kid", "RS256")  # kept warm
    assert len(cache._entries) == 3 and "https://idp0.test/jwks" in cache._entries
    assert len(cache._forced) <= 3
