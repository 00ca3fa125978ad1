"""An org's credentials on the admin pages: a new secret is rendered once, in the answer to the POST that created
it; the form carries a one-time value, so a resubmitted form (reload) does not create or show a secret again."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ...auth import IssuedCredential, Rotation
from ...model.contract import Org
from ...services import ConfigError
from ..current import services
from ..urls import scim_base_url
from .blueprint import Page, PageResult, bp, configured, org_admin
from .csrf import fresh_once, spend_once


def _secret_page(org: Org, issued: IssuedCredential, rotation: Rotation | None = None) -> PageResult:
    """The one page that shows a new secret."""
    name = (services().orgs.org_names(org.realm, [org.org_id]).get(org.org_id) or {}).get("name")
    return render_template("secret.html", org=org, name=name, issued=issued, rotation=rotation, user=g.admin_user,
                           base_url=scim_base_url(org.realm, org.org_id)), 201


def _resubmitted(org: Org) -> Page:
    """The page for a form sent twice (a reload of the secret page)."""
    return Page(409, "Already done", "This form was already sent, so no new credential was created. A secret is "
                "shown only once, right after it is created: if you did not copy it, create a new credential on "
                f"the page of organization {org.org_id} and revoke the one you lost.")


@bp.post("/orgs/<org_id>/credentials")
def create_credential(org_id: str) -> PageResult:
    """Issue a credential; its secret is on the answer to this POST only."""
    org = configured(org_id)
    once = request.form.get("once", "")
    if not fresh_once(once):
        raise _resubmitted(org)
    try:
        issued = org_admin().issue(org)
    except ConfigError as e:
        raise Page(409, "No credentials for this mode", str(e)) from None
    spend_once(once)
    return _secret_page(org, issued)


@bp.post("/orgs/<org_id>/credentials/rotate")
def rotate_credential(org_id: str) -> PageResult:
    """Rotate: a new secret once; the others keep working until the grace deadline."""
    org = configured(org_id)
    hours = request.form.get("graceHours", "").strip() or None
    once = request.form.get("once", "")
    if not fresh_once(once):
        raise _resubmitted(org)
    try:
        rotation = org_admin().rotate(org, hours)
    except ConfigError as e:
        raise Page(400, "Not rotated", f"{e}. Go back and correct the grace period.") from None
    spend_once(once)
    return _secret_page(org, rotation.issued, rotation)


@bp.post("/orgs/<org_id>/credentials/<cred_id>/revoke")
def revoke_credential(org_id: str, cred_id: str) -> Response:
    """Revoke a credential now."""
    org = configured(org_id)
    if org_admin().revoke(org, cred_id) is None:
        raise Page(404, "No such credential", f"Organization {org_id} has no credential {cred_id}.")
    flash(f"Credential {cred_id} revoked: it stopped working immediately.", "ok")
    return redirect(url_for("admin.org", org_id=org_id))
