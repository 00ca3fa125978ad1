"""The admin pages in a real browser (headless Debian chromium through selenium + chromedriver) against a real
``orgscim serve`` (gunicorn) and the session's real Keycloak: the whole OIDC login, the orgs list, configuring an
org, a credential's secret shown once, revocation, drift, activity, logout, and the 403 page for a user without
the realm-management roles.

The browser comes from Debian packages (``scripts/browser``; nothing is downloaded at run time). If chromium or
chromedriver is missing or cannot start, the test fails and says to run ``scripts/browser``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fixtures_keycloak import ORGSCIM_CLIENT, REALM

from orgscim.keycloak.client import KeycloakAdmin

pytestmark = pytest.mark.keycloak

REPO = Path(__file__).resolve().parents[2]
ADMIN_CLIENT = ("orgscim-admin", "orgscim-admin-dev-secret")
REALM_ADMIN = ("realm-admin", "realm-admin-dev-password")
PLAIN_USER = ("plain-user", "plain-user-dev-password")
WAIT = 20.0
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the server -------------------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        proc = subprocess.run([str(orgscim_bin()), *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode in ok, f"orgscim {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        return proc.stdout


def orgscim_bin() -> Path:
    path = Path(sys.executable).parent / "orgscim"
    assert path.exists(), f"{path} missing: run scripts/bootstrap"
    return path


@pytest.fixture
def server(keycloak: Any, tmp_path: Path) -> Iterator[Server]:
    """``orgscim serve`` (gunicorn, 2 workers) on a free loopback port, admin pages set up for the test realm."""
    instance = tmp_path / "instance"
    instance.mkdir()
    (tmp_path / "kc-secret").write_text(ORGSCIM_CLIENT[1])
    (tmp_path / "admin-secret").write_text(ADMIN_CLIENT[1])
    port = free_port()
    env = {**os.environ, "ORGSCIM_INSTANCE": str(instance), "ORGSCIM_KEYCLOAK_URL": keycloak.base_url,
           "ORGSCIM_KEYCLOAK_CLIENT_SECRET_FILE": str(tmp_path / "kc-secret"), "ORGSCIM_ADMIN_REALM": REALM,
           "ORGSCIM_ADMIN_CLIENT_ID": ADMIN_CLIENT[0],
           "ORGSCIM_ADMIN_CLIENT_SECRET_FILE": str(tmp_path / "admin-secret")}
    srv = Server(f"http://127.0.0.1:{port}", env, tmp_path / "server.log")
    srv.cli("db", "upgrade")
    srv.cli("realm", "enable", REALM)
    with srv.log.open("w") as log:
        proc = subprocess.Popen([str(orgscim_bin()), "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{srv.url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"orgscim serve did not come up:\n{srv.log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-3000:]


# -- the browser ------------------------------------------------------------------------------------------
BROWSER_HINT = "run scripts/browser (installs Debian's chromium and chromium-driver)"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless chromium through chromedriver; fails (never skips) when it cannot start."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run scripts/bootstrap (it is in the test extra)", pytrace=False)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.fail(f"chromium or chromedriver not found on PATH: {BROWSER_HINT}", pytrace=False)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--no-first-run", "--disable-extensions", "--password-store=basic"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_bin, log_output=str(tmp_path / "cd.log")))
    except (WebDriverException, OSError) as e:
        pytest.fail(f"chromium could not start ({str(e).strip()[:500]}): {BROWSER_HINT}", pytrace=False)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """Small helpers over the webdriver, with waits that say what they waited for."""

    def __init__(self, driver: Any) -> None:
        self.d = driver

    def wait(self, what: str, cond: Any) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.d, WAIT).until(lambda d: cond(d))
        except Exception as e:  # noqa: BLE001 - report where we were
            raise AssertionError(f"waited {WAIT:.0f}s for {what}; at {self.d.current_url}:\n"
                                 f"{self.text()[:1500]}") from e

    def el(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.wait(f"element {css}", lambda d: (d.find_elements(By.CSS_SELECTOR, css) or [None])[0])

    def click(self, css: str) -> None:
        self.el(css).click()

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        try:
            return self.d.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001
            return ""

    def heading(self) -> str:
        return self.el("h1").text

    def login(self, keycloak_url: str, user: tuple[str, str]) -> None:
        """On Keycloak's login page of the test realm: fill in the form and submit.

        With organizations enabled Keycloak asks for the username first (to send members of an org with an IdP
        there), then for the password on a second page; a one-page form is handled too.
        """
        from selenium.webdriver.common.by import By

        self.wait("Keycloak's login page", lambda d: d.current_url.startswith(f"{keycloak_url}/realms/{REALM}/"))
        self.el("#username").send_keys(user[0])
        if not self.d.find_elements(By.CSS_SELECTOR, "#password"):
            self.click("#kc-login")
        self.el("#password").send_keys(user[1])
        self.click("#kc-login")


def scim_users(server: Server, org_id: str, secret: str) -> requests.Response:
    return requests.get(f"{server.url}/realms/{REALM}/scim/v2/organizations/{org_id}/Users",
                        headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def test_admin_pages_in_a_real_browser(server, browser, keycloak, kc_admin: KeycloakAdmin, temp_org, acme,
                                       tmp_path):
    page = Page(browser)
    org_id = temp_org["id"]

    # not logged in: /admin/ goes to Keycloak's login page; after it, back to the orgs list
    browser.get(f"{server.url}/admin/")
    page.login(keycloak.base_url, REALM_ADMIN)
    page.wait("the orgs list", lambda d: d.current_url == f"{server.url}/admin/")
    assert page.heading() == f"Organizations of realm {REALM}"
    assert page.el("#who").text == REALM_ADMIN[0]
    # the orgs list pages (the shared realm may hold many organizations): search finds the fresh one by name
    page.el("#q").send_keys(temp_org["name"])
    page.click("#search-button")
    page.wait("the search result", lambda d: "q=" in d.current_url)
    orgs_text = page.el("#orgs").text
    browser.save_screenshot(str(tmp_path / "orgs-page.png"))
    assert temp_org["name"] in orgs_text and "not configured" in orgs_text

    # configure the fresh organization (EXTERNAL_SECRET is the form's default)
    page.click(f'tr[data-org="{org_id}"] a')
    page.wait("the org page", lambda d: d.current_url.endswith(f"/admin/orgs/{org_id}"))
    assert page.heading() == temp_org["name"]
    assert "SCIM is not configured" in page.el("#not-configured").text
    page.click("#save-config")
    page.wait("the saved config", lambda d: "SCIM config created" in page.text())
    assert page.el("#org-status").text == "serving"
    assert "No credentials yet" in page.el("#no-credentials").text

    # a credential: the secret is on the result page once, and works
    page.click("#create-credential")
    secret = page.el("#secret").text
    assert secret.startswith("osk_") and "only time" in page.el("#once").text
    assert scim_users(server, org_id, secret).status_code == 200
    browser.save_screenshot(str(tmp_path / "secret-page.png"))  # for a human looking into a failure
    page.click("#done")
    page.wait("the org page again", lambda d: d.current_url.endswith(f"/admin/orgs/{org_id}"))
    assert secret not in browser.page_source
    browser.refresh()
    page.el("#creds")
    assert secret not in browser.page_source
    cred_id = secret[len("osk_"):].split(".", 1)[0]
    assert page.el(f'tr[data-credential="{cred_id}"]').text.count("active") == 1
    shot = tmp_path / "org-page.png"
    assert browser.save_screenshot(str(shot)), "screenshot failed"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, len(data)

    # provision a user, delete it behind orgscim's back in Keycloak, reconcile: the drift page shows it
    user_name = f"browser-{cred_id}@{temp_org['name']}.example"  # inside the org's domain
    r = requests.post(f"{server.url}/realms/{REALM}/scim/v2/organizations/{org_id}/Users", timeout=20,
                      headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"},
                      json={"schemas": [USER_URN], "userName": user_name, "emails": [
                          {"value": user_name, "primary": True}]})
    assert r.status_code == 201, r.text
    kc_user = kc_admin.find_user_by_username(user_name)
    assert kc_user is not None, "the SCIM user did not reach Keycloak"
    kc_admin.delete_user(kc_user["id"])
    server.cli("reconcile", "--realm", REALM, "--org", org_id, ok=(1,))
    page.click("#nav-drift")
    drift = page.el(f'section[data-org="{org_id}"]').text
    browser.save_screenshot(str(tmp_path / "drift-page.png"))
    assert r.json()["id"] in drift and user_name in drift and temp_org["name"] in drift  # names beside ids

    # repair that org's drift from its page: through the outbox, the user is back in Keycloak
    browser.get(f"{server.url}/admin/orgs/{org_id}")
    page.click("#repair")
    page.wait("the repair message", lambda d: "Repair queued 1 change(s)" in page.text())
    assert "0 difference(s) remain" in page.text()
    assert kc_admin.find_user_by_username(user_name) is not None, "repair did not re-create the user"

    # revoke: the secret stops working at once
    browser.get(f"{server.url}/admin/orgs/{org_id}")
    page.click(f"#revoke-{cred_id}")
    page.wait("the revocation message", lambda d: f"Credential {cred_id} revoked" in page.text())
    assert "revoked" in page.el(f'tr[data-credential="{cred_id}"]').text
    assert scim_users(server, org_id, secret).status_code == 401

    # activity: audit events with who did what, never the secret
    page.click("#nav-activity")
    events = page.el("#events").text
    assert "config.credential.revoked" in events and "config.org.created" in events and "drift.repaired" in events
    assert REALM_ADMIN[0] in events and secret not in browser.page_source

    # log out of orgscim and Keycloak
    page.click("#logout")
    page.wait("the logged-out page", lambda d: d.current_url.startswith(f"{server.url}/admin/logged-out"))
    assert "You are logged out" in page.text()

    # a user without the realm-management roles gets the 403 page
    browser.get(f"{server.url}/admin/orgs/{org_id}")
    page.login(keycloak.base_url, PLAIN_USER)
    page.wait("the 403 page", lambda d: d.current_url.startswith(f"{server.url}/admin/callback"))
    assert page.heading() == "Not allowed"
    browser.save_screenshot(str(tmp_path / "403-page.png"))
    assert PLAIN_USER[0] in page.el("#message").text
    browser.get(f"{server.url}/admin/drift")  # still not in: straight back to the 403 page via Keycloak's SSO
    page.wait("the 403 page again", lambda d: "Not allowed" in page.text())
    assert "realm-management" in page.text()


# -- issue 11: 2,000 organizations ---------------------------------------------------------------------------
SEEDED = 2000


def seed_orgs(db_path: Path, run: str, n: int = SEEDED) -> list[str]:
    """``n`` configured orgs with Keycloak names (as reconcile caches them), straight through the store."""
    from orgscim.store.db import Database
    from orgscim.store.orgs import OrgStore

    db = Database(db_path)
    store = OrgStore(db)
    ids = [f"seed-{run}-{i:05d}" for i in range(n)]
    with db.transaction() as conn:
        conn.executemany("INSERT INTO orgs (realm, org_id, auth_mode, created, updated) VALUES "
                         "(?, ?, 'EXTERNAL_SECRET', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                         [(REALM, i) for i in ids])
    store.seen_in_keycloak(REALM, [{"id": i, "name": f"Seeded Customer {run} {i[-5:]}", "alias": f"sc-{run}-{i[-5:]}"}
                                   for i in ids])
    db.close()
    return ids


def test_admin_pages_with_2000_orgs(server, browser, keycloak, temp_org, tmp_path, record_property):
    """Search finds an org by name among 2,000, paging walks the list, the org page shows the IdP
    instructions and "test connection" succeeds with a real credential; screenshots at 1280 px and 420 px."""
    from selenium.webdriver.common.by import By

    shots = tmp_path / "screenshots"
    shots.mkdir()
    record_property("screenshots", str(shots))
    print(f"\nscreenshots: {shots}")
    run = temp_org["name"].rsplit("-", 1)[-1]
    seed_orgs(Path(server.env["ORGSCIM_INSTANCE"]) / "orgscim.sqlite3", run)
    org_id = temp_org["id"]
    server.cli("org", "configure", REALM, org_id, "--auth-mode", "EXTERNAL_SECRET")
    secret = __import__("json").loads(server.cli("org", "credential", "create", REALM, org_id, "--json"))["secret"]
    page = Page(browser)

    browser.get(f"{server.url}/admin/")
    page.login(keycloak.base_url, REALM_ADMIN)
    page.wait("the orgs list", lambda d: d.current_url == f"{server.url}/admin/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#orgs tbody tr")
    assert len(rows) == 50, len(rows)
    browser.save_screenshot(str(shots / "orgs-1280.png"))

    # paging: the next page has other organizations, and the first page link comes back
    first_ids = {r.get_attribute("data-org") for r in rows}
    page.click("#next-page")
    page.wait("the second page", lambda d: "after=" in d.current_url)
    second_ids = {r.get_attribute("data-org") for r in browser.find_elements(By.CSS_SELECTOR, "#orgs tbody tr")}
    assert len(second_ids) == 50 and not first_ids & second_ids
    page.click("#first-page")
    page.wait("the first page again", lambda d: "after=" not in d.current_url)
    assert {r.get_attribute("data-org") for r in browser.find_elements(By.CSS_SELECTOR, "#orgs tbody tr")} == first_ids

    # search by name: one seeded customer out of 2,000, then the real organization
    page.el("#q").send_keys(f"Seeded Customer {run} 01234")
    page.click("#search-button")
    page.wait("the search result", lambda d: "q=" in d.current_url)
    found = browser.find_elements(By.CSS_SELECTOR, "#orgs tbody tr")
    assert [r.get_attribute("data-org") for r in found] == [f"seed-{run}-01234"]
    browser.save_screenshot(str(shots / "search-1280.png"))
    browser.get(f"{server.url}/admin/?status=configured&q={temp_org['name']}")
    page.click(f'tr[data-org="{org_id}"] td.org-name a')
    page.wait("the org page", lambda d: d.current_url.endswith(f"/admin/orgs/{org_id}"))
    assert page.heading() == temp_org["name"] and page.el("#crumb-org").text == temp_org["name"]

    # per-IdP instructions with this org's SCIM URL
    base = f"{server.url}/realms/{REALM}/scim/v2/organizations/{org_id}"
    okta = page.el("#guide-okta")
    assert "SCIM connector base URL" in okta.text and base in okta.text
    page.click("#guide-entra-id summary")
    assert f"{base}?aadOptscim062020" in page.el("#guide-entra-id").text
    for slug in ("jumpcloud", "onelogin", "google-workspace", "generic"):
        page.el(f"#guide-{slug}")

    # test connection with the credential: ServiceProviderConfig, then the userName lookup, both 200
    page.el("#test-credential").send_keys(secret)
    page.click("#test-button")
    result = page.el("#test-result").text
    assert "200 GET" in result and "ServiceProviderConfig" in result and "totalResults 0" in result, result
    assert result.count("200 GET") == 2 and secret not in browser.page_source
    browser.save_screenshot(str(shots / "org-test-connection-1280.png"))

    # a narrow window: no horizontal scrolling of the page itself
    browser.set_window_size(420, 1400)
    browser.get(f"{server.url}/admin/")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 420, f"the orgs page scrolls sideways at 420 px ({width} px wide)"
    browser.save_screenshot(str(shots / "orgs-420.png"))
    browser.get(f"{server.url}/admin/orgs/{org_id}")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 420, f"the org page scrolls sideways at 420 px ({width} px wide)"
    browser.save_screenshot(str(shots / "org-420.png"))
    for png in shots.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000, png
