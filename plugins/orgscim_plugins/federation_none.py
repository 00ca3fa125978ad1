"""``none`` federation behaviour: provisioned users get no identity-provider link (DESIGN §6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgscim.model.contract import Org
from orgscim.model.types import JSON

if TYPE_CHECKING:
    from orgscim.keycloak.client import KeycloakAdmin


class NoFederation:
    """Provisioned users get no identity-provider link."""

    name = "none"

    def validate_config(self, config: JSON) -> JSON:
        """No settings."""
        if config:
            raise ValueError("the 'none' federation behaviour takes no settings")
        return {}

    def link_for(self, org: Org, config: JSON, admin: KeycloakAdmin, rid: str, data: JSON) -> None:
        """The IdP link a user should have: none."""
        return None
