"""``orgscim org credential create|rotate|list|revoke``: an org's credentials (shown once, stored as Argon2id)."""

from __future__ import annotations

import click

from ..auth import CredentialIssuer, IssuedCredential
from ..model.contract import Org
from ..model.types import JSON
from ..services import ConfigError, Services
from .common import configured_org, emit, json_option, org_arguments, services


@click.group("credential")
def credential() -> None:
    """Credentials of an org (shown once at creation, stored only as Argon2id hashes)."""


def _issuer(svc: Services, o: Org) -> CredentialIssuer:
    """The org's auth-mode plugin, if orgscim issues its credentials (EXTERNAL_SECRET, EXTERNAL_BASIC)."""
    try:
        return svc.credential_issuer(o)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _issued(issued: IssuedCredential) -> tuple[JSON, str]:
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
@org_arguments
@json_option
def credential_create(realm_name: str, org_id: str, as_json: bool) -> None:
    """Issue a new credential (existing ones stay valid); the secret is printed once and never again."""
    svc = services()
    o = configured_org(svc, realm_name, org_id)
    data, human = _issued(_issuer(svc, o).issue(o))
    emit(data, as_json, f"credential {data['id']} created for org {org_id} ({o.auth_mode}).\n{human}")


@credential.command("rotate")
@org_arguments
@click.option("--grace", default=None, metavar="DURATION",
              help="how long the previous credentials keep working, e.g. 24h, 30m, 0 (default: the org's "
                   "grace_hours setting, else 24h)")
@json_option
def credential_rotate(realm_name: str, org_id: str, grace: str | None, as_json: bool) -> None:
    """Issue a new credential; the org's previous active ones expire after the grace period."""
    svc = services()
    o = configured_org(svc, realm_name, org_id)
    rotation = _issuer(svc, o).rotate(o, None if grace is None else _duration(grace))
    data, human = _issued(rotation.issued)
    data["superseded"] = [c.public() for c in rotation.superseded]
    old = ", ".join(c.cred_id for c in rotation.superseded) or "none"
    emit(data, as_json, f"credential {data['id']} created for org {org_id} ({o.auth_mode}).\n{human}\n"
         f"previous credentials ({old}) stay valid until {rotation.deadline}")


@credential.command("list")
@org_arguments
@json_option
def credential_list(realm_name: str, org_id: str, as_json: bool) -> None:
    """Credentials with created / last used / expires / revoked (never a secret or a hash)."""
    svc = services()
    creds = [c.public() for c in svc.orgs.credentials(configured_org(svc, realm_name, org_id).pk)]
    emit(creds, as_json, "\n".join(
        f"{c['id']}\t{c['kind']}\t{c['status']}\t{c['username'] or '-'}\tcreated {c['created']}\t"
        f"last used {c['lastUsed'] or '-'}\texpires {c['expires'] or '-'}\trevoked {c['revoked'] or '-'}"
        for c in creds) or "no credentials")


@credential.command("revoke")
@org_arguments
@click.argument("credential_id")
@json_option
def credential_revoke(realm_name: str, org_id: str, credential_id: str, as_json: bool) -> None:
    """Revoke a credential immediately (every process refuses it from the next request on)."""
    svc = services()
    o = configured_org(svc, realm_name, org_id)
    cred = svc.auth_ctx.revoke(o, credential_id)
    if cred is None:
        raise click.ClickException(f"no credential {credential_id} for org {org_id}: see `orgscim org credential "
                                   f"list {realm_name} {org_id}`")
    emit(cred.public(), as_json, f"credential {credential_id} revoked")
