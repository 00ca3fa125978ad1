"""The admin config form: one field per setting of each built-in auth mode and federation behaviour.

The settings are validated by the plugins themselves (``validate_config``); this module only says which fields to
show, fills them from a stored config and turns the posted strings back into a settings object. A plugin without a
field list here (a third-party auth mode) gets a JSON text area instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from ..model.contract import Org
from ..model.types import JSON, JSONValue
from ..provision.mapping import DEFAULT_SETTINGS, ORG_SETTINGS

#: a posted form (``request.form``): field name → text
Posted = Mapping[str, str]
#: ``{plugin: {setting: text}}``: the text of each plugin's fields
FieldTexts = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    help: str = ""
    kind: str = "text"  # text, number, url, json, select
    choices: tuple[str, ...] = ()
    placeholder: str = ""


_JWT_COMMON = (
    Field("audience", "Audience", "the token's aud claim; several separated by commas"),
    Field("algorithms", "Algorithms", "allowed signature algorithms, comma-separated (RS/ES 256–512)",
          placeholder="RS256"),
    Field("required_claims", "Required claims", 'JSON object of claims the token must carry, e.g. {"tid": "…"}',
          kind="json", placeholder="{}"),
    Field("leeway", "Clock leeway (s)", "tolerated clock difference for exp/nbf/iat", kind="number",
          placeholder="60"),
    Field("max_age", "Max token age (s)", "refuse tokens issued longer ago than this (optional)", kind="number"),
)
_GRACE = Field("grace_hours", "Rotation overlap (hours)", "how long a rotated-out credential keeps working",
               kind="number", placeholder="24")

AUTH_FIELDS: dict[str, tuple[Field, ...]] = {
    "EXTERNAL_SECRET": (_GRACE,),
    "EXTERNAL_BASIC": (_GRACE,),
    "EXTERNAL_JWT": (
        Field("issuer", "Issuer", "exactly the token's iss claim", placeholder="https://login.example.com/tenant/"),
        Field("jwks_uri", "JWK Set URL", "where the IdP publishes its signing keys (https)", kind="url",
              placeholder="https://login.example.com/keys"),
        *_JWT_COMMON,
    ),
    "KEYCLOAK": (
        Field("allowed_clients", "Allowed clients", "client ids of this realm whose tokens may call this org's "
              "endpoint, comma-separated", placeholder="okta-scim"),
        *_JWT_COMMON,
    ),
}

FEDERATION_FIELDS: dict[str, tuple[Field, ...]] = {
    "none": (),
    "link-org-idp": (
        Field("alias", "IdP alias", "the organization's identity provider to link users to (default: its first "
              "linked IdP)"),
        Field("id_attribute", "IdP user id from", "the SCIM attribute holding the user's id at the IdP (what the "
              "IdP sends as sub at login)", kind="select", choices=("externalId", "userName", "email", "id")),
        Field("username_attribute", "IdP username from", "the SCIM attribute holding the user's name at the IdP",
              kind="select", choices=("userName", "email", "externalId")),
    ),
}


class ConfigForm(TypedDict):
    """What the config form shows: the stored config, or what the admin posted (shown again after an error)."""

    authMode: str
    federation: str
    enabled: bool
    authConfig: str  # the JSON text area (auth modes without fields here)
    auth: FieldTexts
    fed: FieldTexts
    options: dict[str, str | None]  # org option → its value (None: no default)


def display(value: JSONValue) -> str:
    """A stored setting as the text of its field (lists comma-separated, objects as JSON)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return str(value)


def field_values(fields: dict[str, tuple[Field, ...]], current: str, config: JSON) -> FieldTexts:
    """``{plugin: {key: text}}``: the stored config fills the fields of the plugin in use; the others are empty."""
    return {name: {f.key: display(config.get(f.key)) if name == current else "" for f in group}
            for name, group in fields.items()}


def parse_value(text: str) -> JSONValue:
    """A posted field: numbers and JSON objects as such, anything else as the string (the plugin validates)."""
    text = text.strip()
    if text[:1] in "{[" or text.lstrip("-").isdigit():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def parse_fields(form: Posted, prefix: str, fields: tuple[Field, ...]) -> JSON:
    """The settings object from the posted fields ``{prefix}{key}``; empty fields are left out (defaults apply)."""
    out: JSON = {}
    for f in fields:
        text = str(form.get(f"{prefix}{f.key}", "")).strip()
        if text:
            out[f.key] = parse_value(text)
    return out


def posted_values(form: Posted, prefix: str, fields: dict[str, tuple[Field, ...]]) -> FieldTexts:
    """What the admin typed, to show the form again after an error."""
    return {name: {f.key: str(form.get(f"{prefix}{name}-{f.key}", "")) for f in group}
            for name, group in fields.items()}


def stored_form(org: Org | None) -> ConfigForm:
    """The config form filled from the stored config (or the defaults for a new one)."""
    current: JSON = org.settings if org else DEFAULT_SETTINGS
    mode = org.auth_mode if org else "EXTERNAL_SECRET"
    federation = org.federation if org else "none"
    return {
        "authMode": mode, "federation": federation, "enabled": org.enabled if org else True,
        "authConfig": json.dumps(org.auth_config, indent=2) if org else "{}",
        "auth": field_values(AUTH_FIELDS, mode, org.auth_config if org else {}),
        "fed": field_values(FEDERATION_FIELDS, federation, dict(current.get("federation") or {}) if org else {}),
        "options": {k: current.get(k, DEFAULT_SETTINGS.get(k)) for k in ORG_SETTINGS},
    }


def posted_form(form: Posted) -> ConfigForm:
    """The config form as the admin posted it."""
    return {"authMode": form.get("authMode", ""), "federation": form.get("federation", "none"),
            "enabled": form.get("enabled") == "on", "authConfig": form.get("authConfig", "{}"),
            "auth": posted_values(form, "auth-", AUTH_FIELDS), "fed": posted_values(form, "fed-", FEDERATION_FIELDS),
            "options": {k: form.get(f"option_{k}", "") for k in ORG_SETTINGS}}
