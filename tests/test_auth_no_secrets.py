"""No API response, CLI output, log line or audit event shows a secret after its creation, or any hash (DESIGN §5).

Every credential issued in the session is collected; each output is scanned for all of them (except the one
secret the output itself just issued: ``create`` and ``rotate`` show their new secret once) and for ``$argon2``.
"""

from __future__ import annotations

import base64
import json
import logging

from conftest import ORG_A, ORG_B, REALM, USER_URN, base_path


def test_no_output_contains_a_secret_after_creation_or_any_hash(client, services, runner, template, caplog):
    caplog.set_level(logging.DEBUG)
    issued: list[str] = list(template.secrets.values())
    outputs: list[tuple[str, str, str | None]] = []  # (what, text, the secret this output issued)

    def cli(*args: str, issues: bool = False) -> str:
        result = runner.invoke(*args)
        assert result.exit_code == 0, result.output
        own = None
        if issues:
            data = json.loads(result.stdout) if "--json" in args else None
            own = data["secret"] if data else result.output.split("(shown once): ")[1].split()[0]
            issued.append(own)
        outputs.append((" ".join(args), result.output, own))
        return result.stdout

    def api(method: str, org: str, path: str, header: str | None, body: dict | None = None) -> None:
        resp = client.open(f"{base_path(REALM, org)}{path}", method=method,
                           headers={"Authorization": header} if header else {},
                           data=json.dumps(body) if body else None, content_type="application/scim+json")
        outputs.append((f"{method} {org}{path} -> {resp.status_code}", resp.get_data(as_text=True)
                        + json.dumps(dict(resp.headers)), None))

    cli("org", "configure", REALM, "org-basic", "--auth-mode", "EXTERNAL_BASIC")
    basic = json.loads(cli("org", "credential", "create", REALM, "org-basic", "--json", issues=True))
    cli("org", "credential", "create", REALM, ORG_A, issues=True)
    rotated = json.loads(cli("org", "credential", "rotate", REALM, ORG_A, "--grace", "1h", "--json", issues=True))
    cli("org", "credential", "rotate", REALM, "org-basic", issues=True)
    for org in (ORG_A, "org-basic"):
        cli("org", "credential", "list", REALM, org)
        cli("org", "credential", "list", REALM, org, "--json")
        cli("org", "show", REALM, org)
        cli("org", "show", REALM, org, "--json")
    cli("org", "list", "--json")
    cli("org", "credential", "revoke", REALM, ORG_A, rotated["superseded"][0]["id"], "--json")

    good = f"Bearer {rotated['secret']}"
    basic_good = "Basic " + base64.b64encode(f"{basic['username']}:{basic['secret']}".encode()).decode()
    basic_wrong = "Basic " + base64.b64encode(f"{basic['username']}:{basic['secret']}x".encode()).decode()
    for path in ("/ServiceProviderConfig", "/Users", "/Groups", "/Schemas", "/ResourceTypes"):
        api("GET", ORG_A, path, good)
        api("GET", "org-basic", path, basic_good)
    api("POST", ORG_A, "/Users", good, {"schemas": [USER_URN], "userName": "alice"})
    for secret in issued:  # every secret on the wrong org, twice, and mangled: 401s, then 429s
        for org in (ORG_B, "org-basic"):
            api("GET", org, "/Users", f"Bearer {secret}")
            api("GET", org, "/Users", f"Bearer {secret}x")
    api("GET", "org-basic", "/Users", basic_wrong)
    assert any("-> 429" in what for what, _, _ in outputs) and any("-> 401" in what for what, _, _ in outputs)

    rows = services.db.all("SELECT kind, detail FROM events") + services.db.all("SELECT auth_config FROM orgs")
    outputs.append(("events and org config", json.dumps([list(r) for r in rows]), None))
    outputs.append(("logs", "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records), None))

    assert len(issued) == len(set(issued)) == 6
    for what, text, own in outputs:
        assert "$argon2" not in text, what
        for secret in issued:
            if secret != own:
                assert secret not in text, (what, secret[:8])
                assert secret[-16:] not in text, (what, secret[:8])
