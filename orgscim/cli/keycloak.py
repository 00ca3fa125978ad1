"""``orgscim check`` and ``orgscim keycloak bootstrap``: orgscim and its Keycloak."""

from __future__ import annotations

import sys

import click

from ..model.types import JSON
from ..services import ConfigError
from .common import config, emit, json_option, services


@click.command()
@click.option("--realm", "realm_names", multiple=True, help="realm to check (default: every configured realm)")
@click.option("--require-keycloak", is_flag=True,
              help="fail when KEYCLOAK_URL is not set (the systemd units use it: never start standalone by mistake)")
@json_option
def check(realm_names: tuple[str, ...], require_keycloak: bool, as_json: bool) -> None:
    """Check the configuration, Keycloak reachability and the service account's roles (exit 1 on a problem)."""
    from ..keycloak.client import KeycloakError

    svc = services()
    report: list[JSON] = []
    ok = True
    realms = list(realm_names) or [r["realm"] for r in svc.orgs.realms()]
    if not svc.keycloak_configured:
        report.append({"check": "keycloak", "ok": not require_keycloak, "detail": (
            "STANDALONE: KEYCLOAK_URL is not set, so nothing reaches Keycloak (SCIM data stays in SQLite only). "
            f"Settings come from {svc.config.get('_CONFIG_SOURCE', 'ORGSCIM_* variables')}: set KEYCLOAK_URL "
            "and KEYCLOAK_CLIENT_SECRET_FILE in config.toml of the instance folder (or as ORGSCIM_… variables); "
            "see README, Configuration")})
        ok = not require_keycloak
    elif not realms:
        report.append({"check": "keycloak", "ok": True, "detail": f"KEYCLOAK_URL is {svc.config['KEYCLOAK_URL']}; "
                       "no realm is enabled yet (`orgscim realm enable REALM`), so no realm was checked"})
    for name in realms if svc.keycloak_configured else []:
        try:
            admin = svc.keycloak(name)
            assert admin is not None
            admin.token()
            missing = admin.check_permissions()
            version = admin.server_version()
            detail = f"Keycloak {version} at {admin.base_url} reachable; " + (
                f"service account {admin.client_id} lacks realm-management roles: {', '.join(missing)} "
                f"(Keycloak admin console → Clients → {admin.client_id} → Service account roles)"
                if missing else "service account has every required role")
            report.append({"check": f"realm {name}", "ok": not missing, "missing": missing, "detail": detail})
            ok &= not missing
        except (KeycloakError, ConfigError) as e:
            report.append({"check": f"realm {name}", "ok": False, "detail": str(e)})
            ok = False
    emit(report, as_json, "\n".join(f"{'ok ' if r['ok'] else 'FAIL'} {r['check']}: {r['detail']}" for r in report))
    sys.exit(0 if ok else 1)


@click.group("keycloak")
def keycloak_group() -> None:
    """Set up Keycloak for orgscim."""


@keycloak_group.command("bootstrap")
@click.argument("realm_name")
@click.option("--keycloak-url", help="default: KEYCLOAK_URL of the configuration")
@click.option("--admin-user", default="admin", show_default=True, help="a Keycloak administrator")
@click.option("--admin-realm", default="master", show_default=True, help="the administrator's realm")
@click.option("--admin-password-file", type=click.Path(exists=True, dir_okay=False),
              help="file holding the administrator's password (else you are prompted; never on the command line)")
@click.option("--orgscim-url", help="orgscim's public URL for the admin login redirect (default: PUBLIC_BASE_URL)")
@click.option("--secrets-dir", default="/etc/orgscim", show_default=True, type=click.Path(file_okay=False),
              help="where the two client secrets are written (keycloak-client-secret, admin-client-secret; 0600)")
@click.option("--client-id", default="orgscim", show_default=True, help="the service-account client")
@click.option("--admin-client-id", default="orgscim-admin", show_default=True, help="the admin-login client")
@click.option("--new-secrets", is_flag=True, help="regenerate both client secrets (default: keep existing ones)")
@json_option
def keycloak_bootstrap(realm_name: str, keycloak_url: str | None, admin_user: str, admin_realm: str,
                       admin_password_file: str | None, orgscim_url: str | None, secrets_dir: str, client_id: str,
                       admin_client_id: str, new_secrets: bool, as_json: bool) -> None:
    """Create orgscim's service-account client (exactly the realm-management roles it needs) and the admin-login
    client in REALM, and write their secrets to files. Safe to run again: it only fixes what differs."""
    from pathlib import Path

    from ..keycloak.bootstrap import Bootstrap, BootstrapError, admin_token, write_secret

    settings = config()  # the database is not opened: this runs as root and must not create files there
    url = keycloak_url or settings.get("KEYCLOAK_URL")
    if not url:
        raise click.UsageError("no Keycloak URL: pass --keycloak-url or set KEYCLOAK_URL")
    public = orgscim_url or settings.get("PUBLIC_BASE_URL")
    if not public:
        raise click.UsageError("pass --orgscim-url (the URL browsers use for orgscim) or set PUBLIC_BASE_URL")
    if admin_password_file:
        password = Path(admin_password_file).read_text().rstrip("\n")
    else:
        password = click.prompt(f"password of Keycloak administrator {admin_user}", hide_input=True, err=True)
    try:
        token = admin_token(str(url).rstrip("/"), admin_realm, admin_user, password)
        result, secrets = Bootstrap(str(url), realm_name, token).run(str(public), client_id, admin_client_id,
                                                                     new_secrets)
    except BootstrapError as e:
        raise click.ClickException(str(e)) from None
    folder = Path(secrets_dir)
    try:
        result.secret_files = [str(write_secret(folder, name, secret)) for name, secret in secrets.items()]
    except OSError as e:
        raise click.ClickException(f"cannot write the secrets into {folder}: {e.strerror}") from None
    lines = [f"realm {realm_name} (Keycloak {result.version or '?'}):",
             f"  created: {', '.join(result.created) or 'nothing'}; updated: {', '.join(result.updated) or 'nothing'}",
             f"  {client_id} service account roles: {', '.join(result.roles)}"
             + (f" (added {', '.join(result.roles_added)})" if result.roles_added else "")
             + (f" (removed {', '.join(result.roles_removed)})" if result.roles_removed else ""),
             f"  secrets written (0600): {', '.join(result.secret_files)}",
             *(f"  WARNING: {w}" for w in result.warnings)]
    emit(result.public(), as_json, "\n".join(lines))
