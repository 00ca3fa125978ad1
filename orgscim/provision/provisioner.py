"""Outbox entries for SCIM writes, and the request-time uniqueness check of renames (DESIGN §4).

A create is not checked here: while Keycloak answers, the request delivers its entry inline before it
answers, and Keycloak's own 409 (for a user orgscim may not adopt) undoes the never-acknowledged write and
becomes the SCIM 409 (:meth:`orgscim.services.Services.deliver_request`): uniqueness is decided once, by
Keycloak, without a race. An update that changes the username or email is checked here (its previous state
is already acknowledged, so it cannot be undone later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from orgscim.keycloak.client import KeycloakAdmin, KeycloakError, KeycloakUnavailable
from orgscim.model.contract import Org, OutboxEntry
from orgscim.model.delivery import Links
from orgscim.model.errors import Uniqueness
from orgscim.model.types import JSON

from .domains import check_domains
from .mapping import ATTR_ORG, active, kc_username, primary_email, setting
from .scheduler import holder

log = logging.getLogger("orgscim.provision")


class KeycloakProvisioner:
    """Implements ``orgscim.scim.service.Provisioner`` for an org whose realm has Keycloak configured.

    ``check_now`` is False while Keycloak is known to be down or slow: writes are accepted and delivered later.
    Otherwise entries are held for ``hold`` seconds so that only this request delivers them (inline); the
    writes it committed are listed in :attr:`written`.
    """

    def __init__(self, org: Org, admin: KeycloakAdmin, links: Links, check_now: bool = True,
                 on_unavailable: Callable[[], None] | None = None, hold: float = 0.0) -> None:
        self.org = org
        self.admin = admin
        self.links = links
        self.check_now = check_now
        self.on_unavailable = on_unavailable or (lambda: None)
        self.hold = hold if check_now else 0.0
        self.lease = holder() if self.hold else None  # this thread delivers inline: its write takes the leases
        self.written: list[tuple[str, str, str]] = []  # (action, resource type, id) in commit order

    def entries(self, action: str, rtype: str, rid: str, before: Any, after: Any) -> list[OutboxEntry]:
        if rtype == "User":
            if action == "delete":
                return [OutboxEntry("User", rid, "user.delete", hold=self.hold, lease=self.lease)]
            check_domains(self.org, self.admin, before, after, self.check_now)
            if before is not None:
                self.check_conflicts(rid, before, after)
            changed = action == "create" or active(before) != active(after)
            return [OutboxEntry("User", rid, "user.upsert", {"data": after, "active_changed": changed},
                                hold=self.hold, lease=self.lease)]
        return [OutboxEntry("Group", rid, "group.delete" if action == "delete" else "group.upsert", hold=self.hold,
                            lease=self.lease)]

    def committed(self, action: str, rtype: str, rid: str) -> None:
        self.written.append((action, rtype, rid))

    def check_conflicts(self, rid: str, before: JSON | None, after: JSON) -> None:
        """409 when a new username or email belongs to another realm user that may not be adopted.

        Only checked when Keycloak answers; if it is down the write is accepted and the deliverer reports
        the conflict as drift later (an acknowledged write is never lost).
        """
        policy = setting(self.org.settings, "username_policy")
        checks: list[tuple[str, str, Callable[[str], JSON | None]]] = []
        username = kc_username(after, policy)
        if before is None or username != kc_username(before, policy):
            checks.append(("userName", username, self.admin.find_user_by_username))
        email = primary_email(after)
        if email and (before is None or email.lower() != (primary_email(before) or "").lower()):
            checks.append(("email", email, self.admin.find_user_by_email))
        if not checks or not self.check_now:
            return
        link = self.links.get(self.org.pk, rid) if rid else None
        try:
            with self.admin.deadline(self.admin.timeout):
                for what, value, finder in checks:
                    user = finder(value)
                    if user is None or (link is not None and user["id"] == link.kc_id):
                        continue
                    if not adoptable(self.org, self.admin, self.links, user, rid):
                        raise Uniqueness(f"{what} {value!r} already belongs to another user of realm "
                                         f"{self.org.realm}")
        except KeycloakUnavailable as e:
            log.warning("Keycloak unreachable for the uniqueness check of org %s: %s", self.org.org_id, e)
            self.on_unavailable()


def adoptable(org: Org, admin: KeycloakAdmin, links: Links, user: JSON, rid: str) -> bool:
    """Whether orgscim may take over an existing Keycloak user for this org (DESIGN §4, adopt policy).

    Never a service account, never the Keycloak side of another SCIM resource, never a user another org's
    SCIM owns; a user orgscim created for this org earlier (kept after a SCIM delete) is taken back; other
    users only under the ``org-members`` policy, when already members of this org and of no other org, and
    when they hold no realm role beyond the realm's default roles, no client role (realm admins hold
    realm-management roles) and no realm group (groups carry roles): orgscim would rewrite their username,
    email and IdP link.
    """
    if user.get("serviceAccountClientLink") or str(user.get("username", "")).startswith("service-account-"):
        return False
    attrs = user.get("attributes")
    if attrs is None:
        try:
            attrs = admin.get_user(user["id"]).get("attributes") or {}
        except KeycloakError:
            return False
    if [lk for lk in links.by_kc_id(user["id"]) if lk.resource_id != rid]:
        return False
    owner = (attrs.get(ATTR_ORG) or [None])[0]
    if owner == org.org_id:
        return True
    if owner is not None or setting(org.settings, "adopt_policy") != "org-members":
        return False
    try:
        if not admin.is_member(org.org_id, user["id"]):
            return False
        if any(o.get("id") != org.org_id for o in admin.get_user_organizations(user["id"])):
            return False
        roles = admin.get_user_role_mappings(user["id"])
        default = f"default-roles-{admin.realm}".lower()
        if roles.get("clientMappings") or any(str(r.get("name", "")).lower() != default
                                              for r in roles.get("realmMappings") or []):
            return False
        return not admin.list_user_groups(user["id"], max=1)
    except KeycloakError:
        return False
