"""``none`` federation behaviour: provisioned users get no identity-provider link (DESIGN §6)."""

from __future__ import annotations

from typing import Any


class NoFederation:
    name = "none"

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        if config:
            raise ValueError("the 'none' federation behaviour takes no settings")
        return {}

    def link_for(self, org: Any, config: dict[str, Any], admin: Any, rid: str, data: dict[str, Any]) -> None:
        """The IdP link a user should have: none."""
        return None
