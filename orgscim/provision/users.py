"""Delivering SCIM Users to Keycloak: create or adopt, update what changed, membership, IdP link, delete.

A created user is one ``POST /users`` carrying username, names, email, enabled and orgscim's attributes, plus
one membership call (and the IdP link when federation is on); nothing is read back. An update sends only the
fields that differ from what was last applied (kept in the link's state): one partial ``PUT``, plus a
membership call when ``active`` changed. Lookups happen only where they decide something: a retried create
(it may have landed before) first looks for the user by its ``orgscim_id`` attribute, and a ``409`` from
Keycloak looks for the user by id, then by username/email to decide about adoption. Nothing is re-created
behind an admin's back: a linked user that vanished is reported as drift.
"""

from __future__ import annotations

from orgscim.keycloak.errors import BadRequest, KeycloakConflict, NotFound
from orgscim.model.contract import Org
from orgscim.model.delivery import Drift, Link, Links, OutboxItem
from orgscim.model.types import JSON, JSONValue

from .errors import Refused
from .facts import EntryAdmin
from .federation import Federation, IdpLink, idp_link
from .mapping import ATTR_EXTERNAL_ID, ATTR_ID, active, setting, user_rep
from .provisioner import adoptable

APPLIED = ("username", "email", "firstName", "lastName")


def _missing(kc_id: str) -> Refused:
    return Refused("missing_in_keycloak", "the Keycloak user linked to this SCIM user no longer exists; "
                   "not re-created (reconcile --repair decides)", kc_id, None)


class UserDelivery:
    """``user.upsert`` and ``user.delete`` entries of one process."""

    def __init__(self, links: Links, drift: Drift, federation: Federation) -> None:
        self.links = links
        self.drift = drift
        self.federation = federation

    def upsert(self, org: Org, admin: EntryAdmin, item: OutboxItem) -> Link:
        """Apply the user's state; the returned link is written with the entry's completion."""
        data: JSON = item.payload["data"]
        rid = item.resource_id
        rep = user_rep(org.org_id, rid, data, org.settings)
        want_active = active(data)
        link = self.links.get(org.pk, rid)
        if link is None:
            link = self._create_or_adopt(org, admin, item, rep, want_active)
            explicit = link.origin != "created" or not link.state.get("applied")
        else:
            explicit = bool(item.payload.get("active_changed"))
        if link.state.get("applied") is None or self._attributes_changed(link, rep):
            self._full_update(org, admin, link, rep, want_active, explicit)
        else:
            self._changed_fields(org, admin, link, rep, want_active, explicit)
        member = link.state.get("member")
        if explicit and want_active and not member:
            self._add_member(admin, org, link.kc_id)
        elif explicit and not want_active and member is not False:
            self._remove_member(org, admin, link, rid)
        if explicit:
            link.state["member"] = want_active
        plugin, cfg = self.federation(org)
        want = idp_link(plugin, org, cfg, admin, rid, data)
        have = link.state.get("idp")
        if want is not None and (have is None or [have.get("alias"), have.get("userId")] != list(want[:2])):
            self.links.save(link)  # what is applied so far, should the IdP link fail
            self._federate(org, admin, link, want)
        return link

    def delete(self, org: Org, admin: EntryAdmin, item: OutboxItem) -> None:
        rid = item.resource_id
        link = self.links.get(org.pk, rid)
        if link is None:
            return
        try:
            user = admin.get_user(link.kc_id)
        except NotFound:
            self.links.drop(org.pk, rid)
            return
        if not self._remove_member(org, admin, link, rid):
            self.links.drop(org.pk, rid)
            return
        if link.origin == "created" and not admin.get_user_organizations(link.kc_id):
            if setting(org.settings, "delete_policy") == "delete":
                admin.delete_user(link.kc_id)
            elif user.get("enabled", True):
                admin.update_user(link.kc_id, {"enabled": False})
        self.links.drop(org.pk, rid)
        self.drift.resolve(org.pk, rid)

    # -- create or adopt ----------------------------------------------------------------------------
    def _create_or_adopt(self, org: Org, admin: EntryAdmin, item: OutboxItem, rep: JSON, want_active: bool) -> Link:
        rid = item.resource_id
        applied = {k: rep[k] for k in APPLIED} | {"externalId": rep["attributes"].get(ATTR_EXTERNAL_ID)}
        if item.attempts:  # an earlier attempt may have created the user before it failed
            link = self._ours(org, admin, rid)
            if link is not None:
                return link
        try:
            kc_id = admin.create_user({**rep, "enabled": want_active})
        except KeycloakConflict as e:
            link = self._ours(org, admin, rid) or self._adopt(org, admin, rid, rep, str(e))
        else:
            admin.fresh.add(kc_id)
            # Written when the entry completes. Should the member call fail, the next attempt finds the user by
            # its orgscim id (attempts > 0, or Keycloak's 409 for a repeated create) and adopts it as ours.
            link = Link(org.pk, "User", rid, kc_id, "created",
                        {"member": False, "enabled": want_active, "applied": applied})
            if want_active:
                self._add_member(admin, org, kc_id)
                link.state["member"] = True
        return link

    def _ours(self, org: Org, admin: EntryAdmin, rid: str) -> Link | None:
        """The user an earlier attempt created (found by our id attribute); membership is then unknown."""
        found = admin.find_users_by_attribute(ATTR_ID, rid, max=2)
        if not found:
            return None
        link = Link(org.pk, "User", rid, found[0]["id"], "created",
                    {"member": None, "enabled": found[0].get("enabled", True), "applied": None})
        self.links.save(link)
        return link

    def _adopt(self, org: Org, admin: EntryAdmin, rid: str, rep: JSON, why: str) -> Link:
        existing = admin.find_user_by_username(rep["username"]) or (
            admin.find_user_by_email(rep["email"]) if rep["email"] else None)
        if existing is None:
            raise Refused("uniqueness", f"Keycloak refused to create the user: {why}", rep["username"], None,
                          on_create=True)
        if not adoptable(org, admin, self.links, existing, rid):
            raise Refused("uniqueness", f"username/email of SCIM user {rid} belongs to another Keycloak user "
                          "that may not be adopted", rep["username"], existing["id"], on_create=True)
        link = Link(org.pk, "User", rid, existing["id"], "adopted",
                    {"member": admin.is_member(org.org_id, existing["id"]),
                     "enabled": existing.get("enabled", True), "applied": None})
        self.links.save(link)
        return link

    # -- updates --------------------------------------------------------------------------------------
    @staticmethod
    def _attributes_changed(link: Link, rep: JSON) -> bool:
        return bool(link.state["applied"].get("externalId") != rep["attributes"].get(ATTR_EXTERNAL_ID))

    def _full_update(self, org: Org, admin: EntryAdmin, link: Link, rep: JSON, want_active: bool,
                     explicit: bool) -> None:
        """Read the user and write every field orgscim owns (adopted users, changed attributes: a PUT with
        attributes replaces all of them, so the others are read and kept)."""
        try:
            user = admin.get_user(link.kc_id)
        except NotFound:
            raise _missing(link.kc_id) from None
        attrs = dict(user.get("attributes") or {})
        attrs.update(rep["attributes"])
        if ATTR_EXTERNAL_ID not in rep["attributes"]:
            attrs.pop(ATTR_EXTERNAL_ID, None)
        # An org member's email cannot be cleared ("Email not set"): without a SCIM email, Keycloak's is kept.
        update: JSON = {"username": rep["username"], "firstName": rep["firstName"], "lastName": rep["lastName"],
                        "email": rep["email"] or None, "attributes": attrs}
        if explicit:
            update["enabled"] = self._enabled_after(org, admin, link, user, want_active)
        self._put(org, admin, link, update, user.get("username"), user)
        if link.state.get("member") is None:
            link.state["member"] = admin.is_member(org.org_id, link.kc_id)

    def _changed_fields(self, org: Org, admin: EntryAdmin, link: Link, rep: JSON, want_active: bool,
                        explicit: bool) -> None:
        """One partial PUT with the fields that differ from what was last applied (none: no call)."""
        applied = link.state["applied"]
        update = {k: rep[k] for k in APPLIED if rep[k] != applied.get(k) and (k != "email" or rep[k])}
        if explicit:
            enabled = self._enabled_after(org, admin, link, {"enabled": link.state.get("enabled", True)},
                                          want_active)
            if enabled != link.state.get("enabled", True):
                update["enabled"] = enabled
        if update:
            self._put(org, admin, link, update, applied.get("username"), None)

    def _put(self, org: Org, admin: EntryAdmin, link: Link, update: JSON, current_username: JSONValue,
             current: JSON | None) -> None:
        try:
            admin.update_user(link.kc_id, update, current=current)
        except NotFound:
            raise _missing(link.kc_id) from None
        except KeycloakConflict as e:
            raise Refused("uniqueness", f"Keycloak refused the new username/email: {e}", update.get("username"),
                          None) from None
        except BadRequest as e:
            if "username" not in update or update["username"] == current_username or "read-only" not in str(e):
                raise
            # The realm forbids renames (editUsernameAllowed=false): apply the rest, report the rename.
            wanted = update["username"]
            update["username"] = current_username
            if current is None:
                update.pop("username")
            if update:
                admin.update_user(link.kc_id, update, current=current)
            self.drift.report(org.pk, "User", link.resource_id, "username_not_editable", wanted, current_username)
            update["username"] = current_username
        applied = dict(link.state.get("applied") or {})
        applied.update({k: update[k] for k in APPLIED if k in update})
        if "attributes" in update:
            applied["externalId"] = (update["attributes"].get(ATTR_EXTERNAL_ID) or [None])[0]
        link.state["applied"] = applied
        if "enabled" in update:
            link.state["enabled"] = update["enabled"]

    def _enabled_after(self, org: Org, admin: EntryAdmin, link: Link, user: JSON, want: bool) -> bool:
        """``active=false`` disables only a user orgscim created who belongs to no other org; others keep
        their enabled flag (their access to this org ends with the membership)."""
        if want:
            return True if link.origin == "created" else bool(user.get("enabled", True))
        others = [o for o in admin.get_user_organizations(link.kc_id) if o.get("id") != org.org_id]
        if link.origin == "created" and not others:
            return False
        return bool(user.get("enabled", True))

    # -- membership -----------------------------------------------------------------------------------
    @staticmethod
    def _add_member(admin: EntryAdmin, org: Org, kc_id: str) -> None:
        try:
            admin.add_member(org.org_id, kc_id)
        except KeycloakConflict:
            pass  # already a member: the goal is reached

    def _remove_member(self, org: Org, admin: EntryAdmin, link: Link, rid: str) -> bool:
        """Remove membership unless the member is managed (created by IdP login): that would delete them."""
        try:
            member = admin.get_member(org.org_id, link.kc_id)
        except NotFound:
            return True
        if str(member.get("membershipType", "")).upper() == "MANAGED":
            self.drift.report(org.pk, "User", rid, "managed_member_kept", "not a member", "MANAGED member")
            return False
        try:
            admin.remove_member(org.org_id, link.kc_id)
        except NotFound:
            pass
        return True

    # -- IdP link ---------------------------------------------------------------------------------------
    def _federate(self, org: Org, admin: EntryAdmin, link: Link, want: IdpLink) -> None:
        alias, idp_user_id, idp_username = want
        current = {f["identityProvider"]: f for f in admin.list_federated_identities(link.kc_id)}
        have = current.get(alias)
        if have is not None and have.get("userId") == idp_user_id:
            link.state["idp"] = {"alias": alias, "userId": idp_user_id}
            return
        # Only the org's own IdP, and never a subject another user holds: Keycloak accepts both through the
        # admin API, and either would let one tenant's SCIM decide who logs in as whom.
        owner = admin.get_identity_provider(alias).get("organizationId")
        if owner != org.org_id:
            raise Refused("idp_not_of_org", f"identity provider {alias!r} is not linked to this organization; "
                          "link it to the organization in Keycloak or set the federation alias", alias, owner)
        holders = [u["id"] for u in admin.find_users_by_idp_link(alias, idp_user_id) if u["id"] != link.kc_id]
        if holders:
            raise Refused("idp_link_conflict", f"another Keycloak user is already linked to {alias} as "
                          f"{idp_user_id}", idp_user_id, holders[0])
        if have is not None:
            admin.remove_federated_identity(link.kc_id, alias)
        try:
            admin.add_federated_identity(link.kc_id, alias, idp_user_id, idp_username)
        except KeycloakConflict:
            raise Refused("idp_link_conflict", f"another Keycloak user is already linked to {alias} as "
                          f"{idp_user_id}", idp_user_id, None) from None
        link.state["idp"] = {"alias": alias, "userId": idp_user_id}
