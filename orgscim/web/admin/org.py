"""One organization's page: its Keycloak organization, SCIM config, counts, credentials, IdP instructions and
the config form; configuring, repairing drift, testing the connection and removing the config."""

from __future__ import annotations

import json

from flask import current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ... import plugins
from ...keycloak.client import KeycloakError
from ...model.contract import Org
from ...model.types import JSON
from ...provision.mapping import ORG_SETTINGS
from ...services import ConfigError, Services
from .. import forms
from ..connection_test import TEST_LOOKUP, Step, connection_test
from ..current import services
from ..idp_guides import GUIDES
from ..urls import scim_base_url
from .blueprint import Page, PageResult, bp, configured, keycloak_trouble, org_admin, settings
from .csrf import once_token


def _org_page(org_id: str, status: int = 200, error: str | None = None, form: forms.ConfigForm | None = None,
              test: list[Step] | None = None) -> PageResult:
    """One org: its Keycloak organization, SCIM config, counts, credentials, IdP instructions, the config form."""
    s = settings()
    svc = services()
    org = svc.orgs.org(s.realm, org_id)
    kc_org, warning = None, None
    try:
        admin = svc.keycloak(s.realm) if svc.keycloak_up(s.realm) else None
        kc_org = admin.get_organization(org_id) if admin else None
    except KeycloakError as e:
        detail = keycloak_trouble(e, s.realm)
        if e.status == 404 and org is None:
            raise Page(404, "No such organization", f"Realm {s.realm} has no organization with id {org_id}. "
                       "Pick one from the organizations list.") from None
        warning = ("Keycloak no longer lists this organization: its SCIM endpoint stays closed."
                   if e.status == 404 else f"Keycloak did not answer ({detail}).")
    except ConfigError as e:
        warning = str(e)
    names = kc_org or svc.orgs.org_names(s.realm, [org_id]).get(org_id) or {}
    creds = svc.orgs.credentials(org.pk) if org else []
    issuing = org is not None and _issues_credentials(svc, org)
    base_url = scim_base_url(s.realm, org_id)
    mode = org.auth_mode if org else "EXTERNAL_SECRET"
    return render_template(
        "org.html", org=org, org_id=org_id, kc_org=kc_org, name=names.get("name"), alias=names.get("alias"),
        warning=warning, error=error, user=g.admin_user, realm=s.realm,
        realm_enabled=svc.orgs.realm_enabled(s.realm), creds=creds, issuing=issuing,
        counts=svc.orgs.org_counts(org.pk) if org else {},
        drift=len(svc.drift.records(org.pk)) if org else 0,
        pending=len(svc.outbox.entries(org.pk)) if org else 0,
        base_url=base_url, form=form or forms.stored_form(org), auth_modes=sorted(plugins.auth_modes()),
        federations=sorted(plugins.federation_plugins()), auth_fields=forms.AUTH_FIELDS,
        federation_fields=forms.FEDERATION_FIELDS, option_choices=ORG_SETTINGS, once=once_token(),
        guides=[gd for gd in GUIDES if mode in gd.auth_modes] or GUIDES, test=test,
        can_repair=org is not None and svc.keycloak_configured and org.vanished is None), status


def _issues_credentials(svc: Services, org: Org) -> bool:
    """Whether orgscim issues this org's credentials (EXTERNAL_SECRET, EXTERNAL_BASIC)."""
    try:
        svc.credential_issuer(org)
    except ConfigError:
        return False
    return True


@bp.get("/orgs/<org_id>")
def org(org_id: str) -> PageResult:
    """One organization's page."""
    return _org_page(org_id)


@bp.post("/orgs/<org_id>/configure")
def configure(org_id: str) -> Response | PageResult:
    """The configure form → the same :meth:`OrgAdmin.configure` the config API's PUT uses. The fields of the
    chosen auth mode and federation behaviour are read; a mode without fields here takes the JSON text area."""
    s = settings()
    f = request.form
    form = forms.posted_form(f)
    mode, federation = form["authMode"], form["federation"]
    try:
        auth_config = (forms.parse_fields(f, f"auth-{mode}-", forms.AUTH_FIELDS[mode]) if mode in forms.AUTH_FIELDS
                       else _json_field("Auth settings", form["authConfig"]))
        data = {"authMode": mode, "enabled": form["enabled"], "federation": federation, "authConfig": auth_config,
                "federationConfig": forms.parse_fields(f, f"fed-{federation}-",
                                                       forms.FEDERATION_FIELDS.get(federation, ())),
                "options": {k: v for k, v in form["options"].items() if v}}
        org, created = org_admin().configure(s.realm, org_id, data)
    except ConfigError as e:
        return _org_page(org_id, 400, f"Not saved: {e}", form)
    hint = "" if org.realm_enabled else f" SCIM is off for realm {s.realm}: turn it on on the organizations page."
    flash(f"SCIM config {'created' if created else 'saved'}.{hint}", "ok")
    return redirect(url_for("admin.org", org_id=org_id))


def _json_field(label: str, text: str) -> JSON:
    """A JSON-object form field, or a :class:`ConfigError` that names it."""
    try:
        value = json.loads(text.strip() or "{}")
    except json.JSONDecodeError as e:
        raise ConfigError(f"{label} must be a JSON object, e.g. {{\"grace_hours\": 24}} ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a JSON object, e.g. {{}}")
    return value


@bp.post("/orgs/<org_id>/repair")
def repair(org_id: str) -> Response:
    """Repair this org's drift now, exactly as ``orgscim reconcile --org ID --repair``: compare, queue what
    orgscim owns into the outbox, deliver, compare again. Audited as ``drift.repaired``."""
    from ...provision.reconcile import Reconciler

    org = configured(org_id)
    svc = services()
    if not svc.keycloak_configured:
        raise Page(409, "Nothing to repair", "Keycloak is not configured (KEYCLOAK_URL): there is no drift.")
    try:
        summary = Reconciler(svc, "repair").run(org.realm, org.org_id)
    except (KeycloakError, ConfigError) as e:
        raise Page(502, "Keycloak did not answer", f"The repair could not compare with Keycloak "
                   f"({keycloak_trouble(e, org.realm)}); "
                   "nothing was changed. Try again later.", retry=False) from None
    org_admin().audit(org.pk, "drift.repaired", repaired=summary.repaired, remaining=len(summary.findings))
    left = len(summary.findings)
    flash(f"Repair queued {summary.repaired} change(s) through the outbox; {left} difference(s) remain"
          + (" (orgscim does not own them, or Keycloak refused: see Drift)." if left else "."), "ok")
    return redirect(url_for("admin.org", org_id=org_id))


@bp.post("/orgs/<org_id>/test")
def test_connection(org_id: str) -> PageResult:
    """Send what an IdP sends first (ServiceProviderConfig, then a ``userName eq`` lookup) with the credential
    the admin pasted, through this app's own SCIM endpoint, and show the answers. The credential is used for
    these two requests only: never stored, logged or shown again."""
    org = configured(org_id)
    credential = request.form.get("credential", "")
    username = request.form.get("username", "")
    lookup = request.form.get("lookup", "").strip()[:200] or TEST_LOOKUP
    if not credential.strip():
        return _org_page(org_id, 400, "Paste the credential the IdP will use (a secret or a token) to test.")
    steps = connection_test(current_app, org, credential.strip(), username.strip(), lookup)
    ok = all(st["ok"] for st in steps)
    org_admin().audit(org.pk, "config.connection_tested", ok=ok, statuses=[st["status"] for st in steps])
    return _org_page(org_id, 200 if ok else 400, None if ok else "The connection test failed: see the answers.",
                     test=steps)


@bp.post("/orgs/<org_id>/remove")
def remove(org_id: str) -> Response:
    """Close the endpoint and revoke the credentials (optionally delete the org's SCIM data)."""
    org = configured(org_id)
    purge = request.form.get("purge") == "on"
    revoked = org_admin().remove(org, purge)
    what = "SCIM config and data deleted" if purge else "SCIM endpoint closed (data kept; configure to reopen)"
    flash(f"{what}; {len(revoked)} credential(s) revoked.", "ok")
    return redirect(url_for("admin.org", org_id=org_id))
