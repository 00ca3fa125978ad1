"""What delivery and reconcile use of a federation plugin (entry-point group ``orgscim.federation``, DESIGN §6).

Plugins implement these methods without importing this module (they are found through entry points, like
third-party ones); ``link_for`` is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from orgscim.keycloak.client import KeycloakAdmin
from orgscim.model.contract import Org
from orgscim.model.types import JSON

IdpLink = tuple[str, str, str]
"""(IdP alias, the user's id at the IdP, the user's name at the IdP)."""


class FederationPlugin(Protocol):
    """A federation behaviour: how provisioned users relate to the org's identity provider."""

    def validate_config(self, config: JSON) -> JSON: ...


#: the org's federation plugin instance and its settings (``Services.federation``)
Federation = Callable[[Org], tuple[FederationPlugin, JSON]]


def idp_link(plugin: FederationPlugin, org: Org, config: JSON, admin: KeycloakAdmin, rid: str,
             data: JSON) -> IdpLink | None:
    """The IdP link the plugin wants for SCIM user ``rid``, or None (also for a plugin without ``link_for``)."""
    if not hasattr(plugin, "link_for"):
        return None
    want: IdpLink | None = plugin.link_for(org, config, admin, rid, data)
    return want
