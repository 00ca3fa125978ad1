"""``orgscim`` command line (click). Listings take ``--json``; errors say what to do."""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

import click

from .services import ConfigError, Services


def _config() -> dict[str, Any]:
    from flask import Flask

    from .app import load_config

    app = Flask("orgscim", instance_path=os.environ.get("ORGSCIM_INSTANCE") or None,
                instance_relative_config=True)
    load_config(app)
    os.makedirs(app.instance_path, exist_ok=True)
    config_file = os.path.join(app.instance_path, "config.toml")
    app.config["_CONFIG_SOURCE"] = (f"{config_file} and ORGSCIM_* variables" if os.path.exists(config_file)
                                    else f"ORGSCIM_* variables (no {config_file})")
    return dict(app.config)


def _database(config: dict[str, Any], upgrade_ok: bool = False) -> Any:
    from .model.contract import SchemaError
    from .store.db import Database

    db = Database(config["DATABASE"])
    try:
        db.check_schema(upgrade_ok)
    except SchemaError as e:
        raise click.ClickException(str(e)) from None
    return db


def _services(upgrade_ok: bool = False) -> Services:
    config = _config()
    return Services(_database(config, upgrade_ok), config)


def _emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human)


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]], empty: str) -> str:
    """Rows as aligned columns under a header (the last column is not padded), or ``empty``."""
    if not rows:
        return empty
    cells = [tuple("-" if v is None or v == "" else str(v) for v in row) for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
                     for r in cells)


def _resource(row: dict[str, Any]) -> str:
    """``User alice@example.com (id)`` for a row with names (see :func:`orgscim.names.add_names`)."""
    name = row.get("resourceName")
    return f"{row['resourceType']} {name} ({row['resourceId']})" if name else f"{row['resourceType']} " \
        f"{row['resourceId']}"


def _org_cell(row: dict[str, Any]) -> str:
    from .names import org_label

    return org_label(row.get("orgName"), row.get("orgAlias"), row["orgId"])


@click.group()
@click.version_option(package_name="orgscim")
def main() -> None:
    """orgscim: per-organization SCIM 2.0 provisioning for Keycloak."""


# -- db -------------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the SQLite database (each migration in one transaction)."""
    services = _services(upgrade_ok=True)
    applied = services.db.upgrade()
    click.echo(f"database {services.db.path} at schema version {services.db.schema_version()}"
               + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
def backup(path: str) -> None:
    """Online backup of the SQLite database to PATH (safe while the service runs)."""
    services = _services()
    services.db.backup(path)
    click.echo(f"backed up {services.db.path} to {path}")


# -- realm ----------------------------------------------------------------------------------------
@main.group()
def realm() -> None:
    """The per-realm SCIM flag: off closes every org's SCIM endpoint of the realm."""


@realm.command("enable")
@click.argument("realm_name")
def realm_enable(realm_name: str) -> None:
    _services().orgs.set_realm(realm_name, True)
    click.echo(f"SCIM enabled for realm {realm_name}")


@realm.command("disable")
@click.argument("realm_name")
def realm_disable(realm_name: str) -> None:
    _services().orgs.set_realm(realm_name, False)
    click.echo(f"SCIM disabled for realm {realm_name}: every org endpoint of it now answers 404")


@realm.command("show")
@click.argument("realm_name", required=False)
@click.option("--json", "as_json", is_flag=True)
def realm_show(realm_name: str | None, as_json: bool) -> None:
    rows = [r for r in _services().orgs.realms() if realm_name in (None, r["realm"])]
    _emit(rows, as_json, "\n".join(f"{r['realm']}\tscim={'on' if r['scimEnabled'] else 'off'}" for r in rows)
          or "no realms configured")


# -- org ------------------------------------------------------------------------------------------
@main.group()
def org() -> None:
    """Per-organization SCIM configuration."""


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--set")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@org.command("configure")
@click.argument("realm_name")
@click.argument("org_id")
@click.option("--auth-mode", required=True, help="EXTERNAL_SECRET, or any installed auth-mode plugin")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="auth-mode setting (repeatable)")
@click.option("--federation", default="none", show_default=True, help="federation plugin: none, link-org-idp, …")
@click.option("--federation-set", "fed_settings", multiple=True, metavar="KEY=VALUE",
              help="federation setting, e.g. id_attribute=externalId (repeatable)")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="username_policy=userName|email, delete_policy=delete|disable, adopt_policy=never|org-members")
@click.option("--disable", is_flag=True, help="keep the config but close the endpoint")
@click.option("--json", "as_json", is_flag=True)
def org_configure(realm_name: str, org_id: str, auth_mode: str, settings: tuple[str, ...], federation: str,
                  fed_settings: tuple[str, ...], options: tuple[str, ...], disable: bool, as_json: bool) -> None:
    """Create or update ORG_ID's SCIM config (enabled unless --disable).

    With Keycloak configured, the organization must exist in the realm, and orgscim's user-profile
    attributes are declared there.
    """
    try:
        o = _services().configure_org(realm_name, org_id, auth_mode, _parse_settings(settings), not disable,
                                      federation, _parse_settings(fed_settings), _parse_settings(options))
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    hint = "" if o.realm_enabled else f" (realm {realm_name} is off: run `orgscim realm enable {realm_name}`)"
    _emit(o.public(), as_json, f"org {org_id} in realm {realm_name}: {auth_mode}, "
          f"{'enabled' if o.enabled else 'disabled'}{hint}")


def _org(services: Services, realm_name: str, org_id: str) -> Any:
    o = services.orgs.org(realm_name, org_id)
    if o is None:
        raise click.ClickException(f"org {org_id} of realm {realm_name} is not configured: run "
                                   f"`orgscim org configure {realm_name} {org_id} --auth-mode EXTERNAL_SECRET`")
    return o


@org.command("list")
@click.option("--realm", "realm_name")
@click.option("--search", help="part of the name, alias or id (case-insensitive)")
@click.option("--status", type=click.Choice(["configured", "not-configured", "drift", "failing"]),
              help="only configured orgs, organizations without SCIM config, orgs with open drift, or with failing "
                   "deliveries to Keycloak")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500), help="rows per page")
@click.option("--after", metavar="CURSOR", help="the page after this cursor (the `next` value of a page)")
@click.option("--json", "as_json", is_flag=True,
              help='{"orgs": [...], "next": CURSOR or null}; repeat with --after CURSOR until next is null')
def org_list(realm_name: str | None, search: str | None, status: str | None, limit: int, after: str | None,
             as_json: bool) -> None:
    """Configured orgs, and organizations Keycloak lists without a SCIM config, one page at a time (in realm
    and id order), with their Keycloak names."""
    from .services import org_status

    try:
        page = _services().orgs.org_page(realm_name, after=after, limit=limit, search=search, status=status)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--after") from None
    for row in page.rows:
        row["status"] = org_status(row)
    again = ["orgscim", "org", "list", *(("--realm", realm_name) if realm_name else ()),
             *(("--search", search) if search else ()), *(("--status", status) if status else ()),
             *(("--limit", str(limit)) if limit != 100 else ())]
    next_cmd = shlex.join([*again, "--after", page.next]) if page.next else None
    if as_json:
        _emit({"orgs": page.rows, "next": page.next, "nextCommand": next_cmd and next_cmd + " --json"}, True, "")
        return
    from .names import org_label

    click.echo(_table(("ORGANIZATION", "ID", "REALM", "AUTH MODE", "SCIM", "DRIFT", "PENDING"), [
        (org_label(o.get("name"), o.get("alias"), o["orgId"]) if o.get("name") else "(name unknown)", o["orgId"],
         o["realm"], o.get("authMode"), o["status"], o.get("openDrift"), o.get("pendingChanges"))
        for o in page.rows], "no orgs" + (" match" if search or status else "")))
    if next_cmd:
        click.echo(f"more: {next_cmd}")


@org.command("show")
@click.argument("realm_name")
@click.argument("org_id")
@click.option("--json", "as_json", is_flag=True)
def org_show(realm_name: str, org_id: str, as_json: bool) -> None:
    services = _services()
    o = _org(services, realm_name, org_id)
    data = {**o.public(), "resources": services.orgs.org_counts(o.pk),
            "credentials": [c.public() for c in services.orgs.credentials(o.pk)]}
    _emit(data, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@org.group("credential")
def credential() -> None:
    """Credentials of an org (shown once at creation, stored only as Argon2id hashes)."""


def _issuer(services: Services, o: Any) -> Any:
    """The org's auth-mode plugin, if orgscim issues its credentials (EXTERNAL_SECRET, EXTERNAL_BASIC)."""
    try:
        return services.credential_issuer(o)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _issued(issued: Any) -> tuple[dict[str, Any], str]:
    """JSON and human forms of a new credential: the only time its secret is ever shown."""
    data = issued.public()
    if issued.username:
        human = f"username: {issued.username}\npassword (shown once): {issued.secret}"
    else:
        human = f"secret (shown once): {issued.secret}"
    return data, human


def _duration(value: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``24h`` or ``7d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    factor = units.get(text[-1:], None)
    number = text[:-1] if factor else text
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use seconds or a number with s, m, h or d (e.g. 24h)",
                                 param_hint="--grace") from None
    if seconds < 0:
        raise click.BadParameter("must not be negative", param_hint="--grace")
    return seconds


@credential.command("create")
@click.argument("realm_name")
@click.argument("org_id")
@click.option("--json", "as_json", is_flag=True)
def credential_create(realm_name: str, org_id: str, as_json: bool) -> None:
    """Issue a new credential (existing ones stay valid); the secret is printed once and never again."""
    services = _services()
    o = _org(services, realm_name, org_id)
    data, human = _issued(_issuer(services, o).issue(o))
    _emit(data, as_json, f"credential {data['id']} created for org {org_id} ({o.auth_mode}).\n{human}")


@credential.command("rotate")
@click.argument("realm_name")
@click.argument("org_id")
@click.option("--grace", default=None, metavar="DURATION",
              help="how long the previous credentials keep working, e.g. 24h, 30m, 0 (default: the org's "
                   "grace_hours setting, else 24h)")
@click.option("--json", "as_json", is_flag=True)
def credential_rotate(realm_name: str, org_id: str, grace: str | None, as_json: bool) -> None:
    """Issue a new credential; the org's previous active ones expire after the grace period."""
    services = _services()
    o = _org(services, realm_name, org_id)
    rotation = _issuer(services, o).rotate(o, None if grace is None else _duration(grace))
    data, human = _issued(rotation.issued)
    data["superseded"] = [c.public() for c in rotation.superseded]
    old = ", ".join(c.cred_id for c in rotation.superseded) or "none"
    _emit(data, as_json, f"credential {data['id']} created for org {org_id} ({o.auth_mode}).\n{human}\n"
          f"previous credentials ({old}) stay valid until {rotation.deadline}")


@credential.command("list")
@click.argument("realm_name")
@click.argument("org_id")
@click.option("--json", "as_json", is_flag=True)
def credential_list(realm_name: str, org_id: str, as_json: bool) -> None:
    """Credentials with created / last used / expires / revoked (never a secret or a hash)."""
    services = _services()
    creds = [c.public() for c in services.orgs.credentials(_org(services, realm_name, org_id).pk)]
    _emit(creds, as_json, "\n".join(
        f"{c['id']}\t{c['kind']}\t{c['status']}\t{c['username'] or '-'}\tcreated {c['created']}\t"
        f"last used {c['lastUsed'] or '-'}\texpires {c['expires'] or '-'}\trevoked {c['revoked'] or '-'}"
        for c in creds) or "no credentials")


@credential.command("revoke")
@click.argument("realm_name")
@click.argument("org_id")
@click.argument("credential_id")
@click.option("--json", "as_json", is_flag=True)
def credential_revoke(realm_name: str, org_id: str, credential_id: str, as_json: bool) -> None:
    """Revoke a credential immediately (every process refuses it from the next request on)."""
    services = _services()
    o = _org(services, realm_name, org_id)
    cred = services.auth_ctx.revoke(o, credential_id)
    if cred is None:
        raise click.ClickException(f"no credential {credential_id} for org {org_id}: see `orgscim org credential "
                                   f"list {realm_name} {org_id}`")
    _emit(cred.public(), as_json, f"credential {credential_id} revoked")


# -- Keycloak ---------------------------------------------------------------------------------------
@main.command()
@click.option("--realm", "realm_names", multiple=True, help="realm to check (default: every configured realm)")
@click.option("--require-keycloak", is_flag=True,
              help="fail when KEYCLOAK_URL is not set (the systemd units use it: never start standalone by mistake)")
@click.option("--json", "as_json", is_flag=True)
def check(realm_names: tuple[str, ...], require_keycloak: bool, as_json: bool) -> None:
    """Check the configuration, Keycloak reachability and the service account's roles (exit 1 on a problem)."""
    from .keycloak.client import KeycloakError

    services = _services()
    report: list[dict[str, Any]] = []
    ok = True
    realms = list(realm_names) or [r["realm"] for r in services.orgs.realms()]
    if not services.keycloak_configured:
        report.append({"check": "keycloak", "ok": not require_keycloak, "detail": (
            "STANDALONE: KEYCLOAK_URL is not set, so nothing reaches Keycloak (SCIM data stays in SQLite only). "
            f"Settings come from {services.config.get('_CONFIG_SOURCE', 'ORGSCIM_* variables')}: set KEYCLOAK_URL "
            "and KEYCLOAK_CLIENT_SECRET_FILE in config.toml of the instance folder (or as ORGSCIM_… variables); "
            "see README, Configuration")})
        ok = not require_keycloak
    elif not realms:
        report.append({"check": "keycloak", "ok": True, "detail": f"KEYCLOAK_URL is {services.config['KEYCLOAK_URL']}; "
                       "no realm is enabled yet (`orgscim realm enable REALM`), so no realm was checked"})
    for name in realms if services.keycloak_configured else []:
        try:
            admin = services.keycloak(name)
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
    _emit(report, as_json, "\n".join(f"{'ok ' if r['ok'] else 'FAIL'} {r['check']}: {r['detail']}" for r in report))
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--realm", "realm_name")
@click.option("--org", "org_id")
@click.option("--all", "include_done", is_flag=True, help="include delivered entries")
@click.option("--retry", is_flag=True, help="make pending entries due now and deliver them")
@click.option("--json", "as_json", is_flag=True)
def outbox(realm_name: str | None, org_id: str | None, include_done: bool, retry: bool, as_json: bool) -> None:
    """Pending Keycloak changes (exit 1 when some are pending)."""
    services = _services()
    org_pk = None
    if org_id:
        if not realm_name:
            matches = [o for o in services.orgs.orgs() if o.org_id == org_id]
            if len(matches) != 1:
                raise click.ClickException(f"org {org_id} is not configured (or in several realms: pass --realm)")
            org_pk = matches[0].pk
        else:
            org_pk = _org(services, realm_name, org_id).pk
    if retry:
        n = services.sync.retry_now(org_pk)
        stats = services.deliverer.deliver_all()
        click.echo(f"retried {n} entries: {stats.delivered} delivered, {stats.refused} refused"
                   + (", Keycloak still failing" if stats.failed else ""), err=as_json)
    from .names import add_names

    items = services.sync.outbox(org_pk, include_done)
    orgs = {o.pk: o for o in services.orgs.orgs(realm_name)} if items else {}
    rows = add_names(services.orgs, [{**i.public(), "realm": orgs[i.org_pk].realm, "orgId": orgs[i.org_pk].org_id}
                                     for i in items if i.org_pk in orgs])
    _emit(rows, as_json, _table(("ID", "ORGANIZATION", "CHANGE", "RESOURCE", "ATTEMPTS", "DONE", "LAST ERROR"), [
        (r["id"], _org_cell(r), r["action"], _resource(r), r["attempts"], r["done"] or "pending", r["lastError"])
        for r in rows], "outbox empty"))
    sys.exit(1 if any(r["done"] is None for r in rows) else 0)


@main.command()
@click.option("--realm", "realm_name")
@click.option("--org", "org_id")
@click.option("--dry-run", "dry_run", is_flag=True, help="compare and print; write nothing anywhere")
@click.option("--repair", is_flag=True, help="make Keycloak match SCIM for what orgscim owns")
@click.option("--json", "as_json", is_flag=True)
def reconcile(realm_name: str | None, org_id: str | None, dry_run: bool, repair: bool, as_json: bool) -> None:
    """Compare SCIM state with Keycloak and record drift (exit 1 if drift remains)."""
    from .provision.reconcile import Reconciler

    if dry_run and repair:
        raise click.UsageError("--dry-run and --repair exclude each other")
    services = _services()
    if not services.keycloak_configured:
        raise click.ClickException("reconcile needs Keycloak: set ORGSCIM_KEYCLOAK_URL (see README, Configuration)")
    mode = "dry-run" if dry_run else "repair" if repair else "report"
    counts = {"members": 0, "orgs": 0}
    total = sum(1 for o in services.orgs.orgs(realm_name) if org_id in (None, o.org_id) and o.vanished is None)
    bar = None
    if sys.stderr.isatty() and not as_json:  # progress on the terminal only; --json and pipes stay quiet
        bar = click.progressbar(length=max(total, 1), label=f"{mode}: {total} orgs", file=sys.stderr,
                                show_pos=True, show_eta=True,
                                item_show_func=lambda _: f"{counts['members']} Keycloak members compared")
        bar.__enter__()

    def progress(what: str, n: int) -> None:
        counts[what] = counts.get(what, 0) + n
        if bar is not None:
            bar.update(n if what == "orgs" else 0)

    try:
        summary = Reconciler(services, mode, progress).run(realm_name, org_id)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    data = {"mode": mode, "orgs": summary.orgs, "users": summary.users, "groups": summary.groups,
            "keycloakMembers": counts["members"], "discovered": summary.discovered, "vanished": summary.vanished,
            "repaired": summary.repaired, "drift": summary.findings}
    from .names import add_names

    add_names(services.orgs, summary.findings)
    lines = [_table(("ORGANIZATION", "RESOURCE", "KIND"), [(_org_cell(d), _resource(d), d["kind"])
                                                          for d in summary.findings], "no differences")]
    lines.append(f"{mode}: {summary.orgs} orgs, {summary.users} users, {summary.groups} groups, "
                 f"{counts['members']} Keycloak members; {len(summary.findings)} differences"
                 + (f", {summary.repaired} repaired" if repair else "")
                 + (f"; {summary.discovered} organizations without SCIM config" if summary.discovered else ""))
    _emit(data, as_json, "\n".join(lines))
    sys.exit(1 if summary.findings else 0)


@main.command()
@click.option("--org", "org_id")
@click.option("--all", "include_resolved", is_flag=True, help="include resolved records")
@click.option("--json", "as_json", is_flag=True)
def drift(org_id: str | None, include_resolved: bool, as_json: bool) -> None:
    """Recorded differences between SCIM and Keycloak (exit 1 if any is open)."""
    from .names import add_names

    services = _services()
    rows = [d for o in services.orgs.orgs() if org_id in (None, o.org_id)
            for d in services.sync.drift(o.pk, open_only=not include_resolved)]
    add_names(services.orgs, rows)
    _emit(rows, as_json, _table(("ORGANIZATION", "RESOURCE", "KIND", "SINCE", "RESOLVED"), [
        (_org_cell(d), _resource(d), d["kind"], d["firstSeen"], d["resolved"]) for d in rows], "no drift"))
    sys.exit(1 if any(d["resolved"] is None for d in rows) else 0)


@main.group("keycloak")
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
@click.option("--json", "as_json", is_flag=True)
def keycloak_bootstrap(realm_name: str, keycloak_url: str | None, admin_user: str, admin_realm: str,
                       admin_password_file: str | None, orgscim_url: str | None, secrets_dir: str, client_id: str,
                       admin_client_id: str, new_secrets: bool, as_json: bool) -> None:
    """Create orgscim's service-account client (exactly the realm-management roles it needs) and the admin-login
    client in REALM, and write their secrets to files. Safe to run again: it only fixes what differs."""
    from pathlib import Path

    from .keycloak.bootstrap import Bootstrap, BootstrapError, admin_token, write_secret

    config = _config()  # the database is not opened: this runs as root and must not create files there
    url = keycloak_url or config.get("KEYCLOAK_URL")
    if not url:
        raise click.UsageError("no Keycloak URL: pass --keycloak-url or set KEYCLOAK_URL")
    public = orgscim_url or config.get("PUBLIC_BASE_URL")
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
    _emit(result.public(), as_json, "\n".join(lines))


@main.group()
def jwks() -> None:
    """JWK Sets of the orgs that authenticate with JWTs (KEYCLOAK, EXTERNAL_JWT)."""


@jwks.command("refresh")
@click.option("--json", "as_json", is_flag=True)
def jwks_refresh(as_json: bool) -> None:
    """Fetch every JWK Set in use now (the worker does it every WORKER_JWKS_SECONDS); exit 1 if one fails."""
    from .store.jwks import JwksStore

    services = _services()
    results = services.refresh_jwks()
    stored = {s.uri: s.public() for s in JwksStore(services.db).all()}
    rows = [{**stored.get(uri, {"uri": uri}), "result": result} for uri, result in results.items()]
    _emit(rows, as_json, "\n".join(
        f"{'ok  ' if r['result'] == 'ok' else 'FAIL'} {r['uri']}\tkids {', '.join(r.get('kids') or []) or '-'}"
        + ("" if r["result"] == "ok" else f"\t{r['result']} (last good keys kept)") for r in rows)
        or "no org uses a JWT auth mode")
    sys.exit(0 if all(r["result"] == "ok" for r in rows) else 1)


@main.command()
@click.option("--once", is_flag=True, help="run every job once (respecting the leases) and exit")
def worker(once: bool) -> None:
    """Run the background jobs (outbox delivery, reconcile, JWKS refresh, housekeeping) until SIGTERM."""
    import logging

    from .worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    w = Worker(_services())
    if once:
        for job in w.jobs:
            click.echo(f"{job.name}: {'ran' if w.run_once(job) else 'skipped (another worker ran it this interval)'}")
        return
    w.serve()


# -- serve ----------------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=16, show_default=True, type=int, help="requests in flight per worker")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
def serve(host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Serve the web app (gunicorn, settings in orgscim.gunicorn_conf; --dev for Flask's server)."""
    if dev:
        from .app import create_app

        try:
            app = create_app()
        except RuntimeError as e:
            raise click.ClickException(str(e)) from None
        app.run(host=host, port=port)
        return
    _database(_config()).close()  # refuse a database to migrate or newer than this code; keep nothing open
    from gunicorn.app.base import BaseApplication

    from . import gunicorn_conf

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_conf.settings(bind=[f"{host}:{port}"], workers=workers).items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:  # in each worker after the fork (no preload_app)
            from .asgi import create

            return create(threads)

    _Gunicorn().run()


if __name__ == "__main__":
    sys.exit(main())
