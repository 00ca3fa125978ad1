"""``link-org-idp``: link each provisioned user to the org's identity provider (DESIGN §6).

The IdP-side user id comes from a configurable SCIM attribute (``externalId`` by default — Entra object ids;
or ``userName``, ``email``, ``id``, or an enterprise attribute such as
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber``). It must equal what the IdP
reports at login (the OIDC ``sub``). The link is replaced when that attribute changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgscim.model.contract import Org
from orgscim.model.types import JSON
from orgscim.provision.mapping import scim_value

if TYPE_CHECKING:
    from orgscim.keycloak.client import KeycloakAdmin

ID_SOURCES = ("externalId", "userName", "email", "id")


class LinkOrgIdp:
    """Link each provisioned user to the org's identity provider in Keycloak."""

    name = "link-org-idp"

    def validate_config(self, config: JSON) -> JSON:
        """``alias``, ``id_attribute``, ``username_attribute`` (all optional)."""
        unknown = set(config) - {"alias", "id_attribute", "username_attribute"}
        if unknown:
            raise ValueError(f"link-org-idp takes alias, id_attribute, username_attribute; not {sorted(unknown)}")
        out = {"alias": config.get("alias"), "id_attribute": config.get("id_attribute") or "externalId",
               "username_attribute": config.get("username_attribute") or "userName"}
        for key in ("id_attribute", "username_attribute"):
            value = out[key]
            if not isinstance(value, str) or not (value in ID_SOURCES or value.lower().startswith("urn:")):
                raise ValueError(f"{key} must be one of {', '.join(ID_SOURCES)} or an extension attribute URN")
        if out["alias"] is not None and not isinstance(out["alias"], str):
            raise ValueError("alias must be a string")
        return out

    def link_for(self, org: Org, config: JSON, admin: KeycloakAdmin, rid: str,
                 data: JSON) -> tuple[str, str, str] | None:
        """(IdP alias, IdP-side user id, IdP-side user name), or None when there is nothing to link."""
        alias = config.get("alias")
        if not alias:
            idps = admin.list_organization_identity_providers(org.org_id)
            if not idps:
                return None
            alias = idps[0]["alias"]
        user_id = scim_value(data, rid, config.get("id_attribute") or "externalId")
        if not user_id:
            return None
        user_name = scim_value(data, rid, config.get("username_attribute") or "userName") or user_id
        return alias, user_id, user_name
