"""KeycloakAdmin request logic against a scripted fake session (no server): token cache, 401 renewal,
GET-only retries, status mapping, paging."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any

import pytest
import requests

from orgscim.keycloak.client import (
    BadRequest,
    Forbidden,
    KeycloakAdmin,
    KeycloakConflict,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
    required_roles,
)
from orgscim.keycloak.transport import Transport


def _jwt(claims: dict[str, Any]) -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'none'})}.{enc(claims)}.sig"


def _resp(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = b"" if body is None else json.dumps(body).encode()  # noqa: SLF001
    r.headers.update(headers or {})
    if body is not None:
        r.headers["Content-Type"] = "application/json"
    return r


class FakeSession:
    """Answers token requests itself; admin requests pop scripted answers (Response or exception)."""

    def __init__(self, script: list[Any], expires_in: int = 300, roles: list[str] | None = None) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.token_calls = 0
        self.expires_in = expires_in
        self.roles = roles or []

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        assert url.endswith("/protocol/openid-connect/token")
        assert kwargs["data"] == {"grant_type": "client_credentials"}
        self.token_calls += 1
        tok = _jwt({"n": self.token_calls, "resource_access": {"realm-management": {"roles": self.roles}}})
        return _resp(200, {"access_token": tok, "expires_in": self.expires_in})

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def admin(script: list[Any], **kw: Any) -> tuple[KeycloakAdmin, FakeSession]:
    sess = FakeSession(script, **{k: kw.pop(k) for k in ("expires_in", "roles") if k in kw})
    return KeycloakAdmin("http://kc", "r", "c", "s", session=sess, backoff=0, **kw), sess  # type: ignore[arg-type]


def test_token_cached_then_refreshed_30s_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    kc, sess = admin([], expires_in=300)
    t = kc.token()
    assert kc.token() == t and sess.token_calls == 1
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 265)  # < 270 s: still cached
    assert kc.token() == t and sess.token_calls == 1
    monkeypatch.setattr(time, "monotonic", lambda: now + 275)  # within 30 s of expiry: renewed
    assert kc.token() != t and sess.token_calls == 2


def test_401_renews_token_once() -> None:
    kc, sess = admin([_resp(401), _resp(200, [])])
    assert kc.list_organizations() == []
    assert sess.token_calls == 2 and len(sess.calls) == 2
    kc, sess = admin([_resp(401), _resp(401)])
    with pytest.raises(Unauthorized):
        kc.list_organizations()
    assert sess.token_calls == 2 and len(sess.calls) == 2


def test_get_retried_on_connection_error_and_5xx() -> None:
    kc, sess = admin([requests.ConnectionError("refused"), _resp(503), _resp(200, 3)], retries=2)
    assert kc.count_organizations() == 3
    assert len(sess.calls) == 3
    kc, sess = admin([requests.Timeout("slow"), requests.Timeout("slow")], retries=1)
    with pytest.raises(KeycloakUnavailable) as exc:
        kc.count_organizations()
    assert exc.value.status is None and exc.value.retryable
    kc, sess = admin([_resp(502), _resp(502)], retries=1)
    with pytest.raises(KeycloakUnavailable) as exc:
        kc.count_organizations()
    assert exc.value.status == 502


def test_get_retried_when_token_endpoint_is_down() -> None:
    kc, sess = admin([_resp(200, 5)], retries=2)
    real_post = sess.post
    failures = iter([requests.ConnectionError("down")])

    def flaky_post(url: str, **kwargs: Any) -> requests.Response:
        exc = next(failures, None)
        if exc:
            raise exc
        return real_post(url, **kwargs)

    sess.post = flaky_post  # type: ignore[method-assign]
    assert kc.count_organizations() == 5
    kc2, sess2 = admin([], retries=0)
    sess2.post = lambda url, **kw: (_ for _ in ()).throw(requests.ConnectionError("down"))  # type: ignore[method-assign]
    with pytest.raises(KeycloakUnavailable):
        kc2.count_organizations()


def test_writes_are_not_retried() -> None:
    kc, sess = admin([_resp(503)], retries=3)
    with pytest.raises(KeycloakUnavailable):
        kc.create_user({"username": "x"})
    assert len(sess.calls) == 1
    kc, sess = admin([requests.ConnectionError("reset")], retries=3)
    with pytest.raises(KeycloakUnavailable):
        kc.add_member("o", "u")
    assert len(sess.calls) == 1


def test_status_mapping_and_created_id() -> None:
    kc, sess = admin([_resp(201, None, {"Location": "http://kc/admin/realms/r/users/abc-123"})])
    assert kc.create_user({"username": "x"}) == "abc-123"
    kc, _ = admin([_resp(201)])
    with pytest.raises(KeycloakError, match="Location"):
        kc.create_user({"username": "x"})
    for status, cls in [(400, BadRequest), (403, Forbidden), (404, NotFound), (409, KeycloakConflict),
                        (422, KeycloakError)]:
        kc, _ = admin([_resp(status, {"errorMessage": "nope"})])
        with pytest.raises(cls) as exc:
            kc.delete_user("u")
        assert exc.value.status == status and exc.value.message == "nope" and exc.value.body == {"errorMessage": "nope"}
    kc, _ = admin([_resp(204)])
    assert kc.delete_user("u") is None


def test_add_member_sends_bare_json_string() -> None:
    kc, sess = admin([_resp(201)])
    kc.add_member("org-1", "user-1")
    method, url, kwargs = sess.calls[0]
    assert method == "POST" and url == "http://kc/admin/realms/r/organizations/org-1/members"
    assert kwargs["json"] == "user-1"


def test_paging_fetches_page_by_page() -> None:
    pages = [_resp(200, [{"id": str(i)} for i in range(k, min(k + 3, 7))]) for k in (0, 3, 6)]
    kc, sess = admin(pages)
    it = kc.iter_members("o", page_size=3)
    assert next(it) == {"id": "0"}
    assert len(sess.calls) == 1  # lazily: only the first page so far
    assert [m["id"] for m in it] == [str(i) for i in range(1, 7)]
    assert [c[2]["params"]["first"] for c in sess.calls] == [0, 3, 6]
    assert all(c[2]["params"]["max"] == 3 for c in sess.calls)
    # exactly full last page -> one more (empty) request
    kc, sess = admin([_resp(200, [{"id": "a"}, {"id": "b"}]), _resp(200, [])])
    assert len(list(kc.iter_users(page_size=2))) == 2 and len(sess.calls) == 2


def test_check_permissions_from_token() -> None:
    kc, _ = admin([_resp(200, {"systemInfo": {"version": "26.7.3"}})], roles=["manage-users", "view-users"])
    missing = kc.check_permissions()
    assert "manage-users" not in missing and "manage-organizations" in missing and "query-users" in missing
    kc, _ = admin([_resp(200, {"systemInfo": {"version": "26.6.2"}})], roles=required_roles("26.6.2"))
    assert kc.check_permissions() == []


def test_429_is_rate_limited_with_retry_after_and_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: a 429 was a generic KeycloakError (the entry finished unapplied). Now it is transient, carries
    Retry-After, and a short one is waited out and the request (even a POST: 429 means not processed) sent
    again."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    kc, sess = admin([_resp(429, None, {"Retry-After": "2"}), _resp(201, None, {"Location": "http://kc/u/42"})])
    assert kc.create_user({"username": "x"}) == "42"
    assert slept == [2.0] and [c[0] for c in sess.calls] == ["POST", "POST"]
    kc, sess = admin([_resp(429, None, {"Retry-After": "120"})])  # longer than max_wait: the caller reschedules
    with pytest.raises(RateLimited) as exc:
        kc.create_user({"username": "x"})
    assert exc.value.retryable and exc.value.retry_after == 120.0 and isinstance(exc.value, KeycloakUnavailable)
    kc, sess = admin([_resp(429, None, {"Retry-After": "1"})] * 3, retries=2)
    with pytest.raises(RateLimited):
        kc.add_member("o", "u")
    assert len(sess.calls) == 3 and slept[-2:] == [1.0, 1.0]


def test_408_is_transient() -> None:
    kc, sess = admin([_resp(408), _resp(408), _resp(408)], retries=2)
    with pytest.raises(KeycloakUnavailable) as exc:
        kc.delete_user("u")
    assert exc.value.status == 408 and exc.value.retryable


def test_retry_after_http_date() -> None:
    from orgscim.keycloak.errors import retry_after_seconds

    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_deadline_cuts_timeouts_and_refuses_when_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inline delivery budget is enforced through the request timeouts, not only between entries."""
    from orgscim.keycloak.client import BudgetSpent

    kc, sess = admin([_resp(200, 1), _resp(200, 2)], timeout=5)
    kc.token()
    with kc.deadline(2.0):
        kc.count_organizations()
        assert 1.5 < sess.calls[-1][2]["timeout"] <= 2.0
    kc.count_organizations()
    assert sess.calls[-1][2]["timeout"] == 5  # outside the block: the normal timeout
    kc, sess = admin([requests.Timeout("slow")], timeout=5, retries=2)
    kc.token()
    with kc.deadline(1.0), pytest.raises(BudgetSpent):
        kc.count_organizations()  # cut short by the deadline: not a sign that Keycloak is down, no retry
    assert len(sess.calls) == 1
    kc, sess = admin([], timeout=5)
    kc.token()
    with kc.deadline(0.01), pytest.raises(BudgetSpent):
        kc.create_user({"username": "x"})
    assert sess.calls == []
    kc, sess = admin([_resp(429, None, {"Retry-After": "5"})], timeout=5)
    kc.token()
    with kc.deadline(1.0), pytest.raises(RateLimited):  # a wait that does not fit is not taken
        kc.create_user({"username": "x"})


def test_each_thread_keeps_one_connection_and_a_forked_child_never_shares_it() -> None:
    kc = KeycloakAdmin("http://kc", "r", "c", "s", pool_size=24)
    assert kc.session.pool_size == 24
    mine = kc.session._handle()  # noqa: SLF001
    assert kc.session._handle() is mine  # noqa: SLF001 - kept: its connection is reused
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(kc.session._handle()))  # noqa: SLF001
    t.start()
    t.join()
    assert other[0] is not mine
    kc.session._local.pid = -1  # noqa: SLF001 - as if this thread's handle came from the parent before a fork
    assert kc.session._handle() is not mine  # noqa: SLF001


def test_each_endpoint_group_sends_its_urls_with_quoted_segments() -> None:
    """KeycloakAdmin is composed of endpoint groups (users, organizations, org groups, realm); every id is one
    quoted path segment (RFC 3986 §3.3), including the realm's name."""
    kc, sess = admin([_resp(200, {"id": "u"}), _resp(204), _resp(200, 3), _resp(204), _resp(200, [])])
    kc.realm = "my realm"
    kc.get_user("a/b")
    kc.add_org_group_member("o 1", "g/1", "u?1")
    assert kc.count_members("o#1") == 3
    kc.remove_federated_identity("u1", "idp/x")
    assert kc.find_client("c") is None
    base = "http://kc/admin/realms/my%20realm"
    assert [(c[0], c[1]) for c in sess.calls] == [
        ("GET", f"{base}/users/a%2Fb"),
        ("PUT", f"{base}/organizations/o%201/groups/g%2F1/members/u%3F1"),
        ("GET", f"{base}/organizations/o%231/members/count"),
        ("DELETE", f"{base}/users/u1/federated-identity/idp%2Fx"),
        ("GET", f"{base}/clients"),
    ]
    assert sess.calls[-1][2]["params"] == {"clientId": "c", "max": 2}
    assert "json" not in sess.calls[1][2]  # no body unless one is given


def _slow_server(pause: float, parts: int) -> tuple[socket.socket, int]:
    """A loopback HTTP server that answers each request with ``parts`` bytes of body, one every ``pause`` s."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % parts)
            for _ in range(parts):
                time.sleep(pause)
                try:
                    conn.sendall(b"x")
                except OSError:
                    break
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_transport_timeout_is_for_pauses_and_total_bounds_the_whole_exchange() -> None:
    """A large answer that keeps coming is not cut by the per-pause timeout (as with requests), an answer that
    stops is, and a caller's budget (``total``) bounds the whole exchange."""
    t = Transport()
    srv, port = _slow_server(0.3, 8)  # 2.4 s in all, never a pause of 1 s
    try:
        assert t.request("GET", f"http://127.0.0.1:{port}/", timeout=1).content == b"x" * 8
        started = time.monotonic()
        with pytest.raises(requests.Timeout):
            t.request("GET", f"http://127.0.0.1:{port}/", timeout=1, total=0.5)
        assert time.monotonic() - started < 1.0
    finally:
        srv.close()
    srv, port = _slow_server(30, 1)  # headers, then nothing
    try:
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            t.request("GET", f"http://127.0.0.1:{port}/", timeout=1)
        assert time.monotonic() - started < 3
    finally:
        srv.close()
