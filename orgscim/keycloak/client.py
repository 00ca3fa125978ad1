"""Keycloak admin REST client for orgscim (Keycloak 26.x, native Organizations API).

One :class:`KeycloakAdmin` talks to one realm as one confidential client (client-credentials grant). It is
composed of one module per job:

* :mod:`~orgscim.keycloak.base` — the request logic: token cache and renewal on 401, GET-only retries,
  429/408 with ``Retry-After``, the per-thread time budget (:meth:`~orgscim.keycloak.base.AdminBase.deadline`),
  paging (``list_*`` return one ``first``/``max`` page, ``iter_*`` fetch page after page);
* :mod:`~orgscim.keycloak.transport` — HTTP over urllib3;
* :mod:`~orgscim.keycloak.errors` — status handling: 201 answers give the new id from ``Location``, 204 gives
  ``None``; 404 raises :class:`NotFound`, 409 :class:`KeycloakConflict`, other refusals :class:`KeycloakError`;
  connection problems and 5xx raise :class:`KeycloakUnavailable`;
* the endpoint groups :mod:`~orgscim.keycloak.users`, :mod:`~orgscim.keycloak.organizations`,
  :mod:`~orgscim.keycloak.org_groups` and :mod:`~orgscim.keycloak.realm` (server, permissions, user profile,
  identity providers, clients), each with the Keycloak 26.7.3 facts it relies on (verified by
  ``tests/keycloak/test_client.py``);
* :mod:`~orgscim.keycloak.roles` — the realm-management roles the service account needs.
"""

from __future__ import annotations

from orgscim.keycloak.errors import (
    BadRequest,
    BudgetSpent,
    Forbidden,
    KeycloakConflict,
    KeycloakError,
    KeycloakUnavailable,
    NotFound,
    RateLimited,
    Unauthorized,
)
from orgscim.keycloak.org_groups import OrgGroupEndpoints
from orgscim.keycloak.organizations import OrganizationEndpoints
from orgscim.keycloak.realm import RealmEndpoints
from orgscim.keycloak.roles import REQUIRED_ROLES, required_roles
from orgscim.keycloak.users import UserEndpoints

__all__ = [
    "BadRequest",
    "BudgetSpent",
    "Forbidden",
    "KeycloakAdmin",
    "KeycloakConflict",
    "KeycloakError",
    "KeycloakUnavailable",
    "NotFound",
    "REQUIRED_ROLES",
    "RateLimited",
    "Unauthorized",
    "required_roles",
]


class KeycloakAdmin(UserEndpoints, OrganizationEndpoints, OrgGroupEndpoints, RealmEndpoints):
    """Admin REST client for one realm, authenticated as a confidential client's service account
    (constructor: :class:`~orgscim.keycloak.base.AdminBase`)."""

    def __repr__(self) -> str:
        return f"KeycloakAdmin({self.base_url!r}, realm={self.realm!r}, client_id={self.client_id!r})"
