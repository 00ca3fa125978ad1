"""The public URLs orgscim gives out: on ``PUBLIC_BASE_URL`` behind a proxy, else the request's own host
(already checked against ``ALLOWED_HOSTS`` by :mod:`orgscim.web.hosts`)."""

from __future__ import annotations

from flask import current_app, request

SCIM_PATH = "/realms/{realm}/scim/v2/organizations/{org_id}"
"""Where an org's SCIM endpoint is mounted: one blueprint, the org resolved from the URL on each request."""


def public_base_url() -> str:
    """orgscim's base URL as clients reach it, without a trailing slash."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    if configured:
        return str(configured).rstrip("/")
    host = request.host
    if not request.root_path and host.isascii() and "%" not in host and "xn--" not in host.lower():
        return f"{request.scheme}://{host}"  # what host_url gives, without its IRI round trip on every request
    return str(request.host_url).rstrip("/")  # IDN hosts (shown decoded) and mounted apps


def scim_base_url(realm: str, org_id: str) -> str:
    """The org's SCIM base URL as IdPs must be given it (RFC 7644 §3.1: resource locations build on it)."""
    return public_base_url() + SCIM_PATH.format(realm=realm, org_id=org_id)


def public_url(path: str) -> str:
    """An absolute URL of ``path`` (starting with ``/``) of this app."""
    return public_base_url() + path
