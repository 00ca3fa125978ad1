"""Keycloak admin endpoints for users: CRUD, look-ups, federated identity links, their role mappings and groups.

Facts verified against Keycloak 26.7.3 (``tests/keycloak/test_client.py``):

* ``PUT /users/{id}`` with ``attributes`` rebuilds the whole profile (absent email/names are cleared,
  absent username is a 400); without ``attributes`` it is a partial update. :meth:`UserEndpoints.update_user`
  makes both behave like the partial update.
* ``q=attr:value`` user search matches exactly but case-insensitively; values with blanks must be
  quoted. :meth:`UserEndpoints.find_users_by_attribute` quotes and re-checks exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orgscim.keycloak.base import AdminBase, flag, seg
from orgscim.keycloak.errors import KeycloakError
from orgscim.model.types import JSON, Scalar

# user-profile fields carried at the top level of UserRepresentation
_CORE_PROFILE_FIELDS = ("username", "email", "firstName", "lastName")


class UserEndpoints(AdminBase):
    """``/users``: the realm's users and what hangs off them."""

    def create_user(self, rep: JSON) -> str:
        """Create a user; return its id. :class:`KeycloakConflict` if the username or email is taken.

        Attributes not declared in the realm's user profile are silently dropped by Keycloak;
        see :meth:`~orgscim.keycloak.realm.RealmEndpoints.ensure_profile_attributes`. Keycloak stores usernames
        in lower case.
        """
        return self._create("/users", rep)

    def import_users(self, reps: list[JSON]) -> dict[str, tuple[str, str]]:
        """Create several users in one ``POST /partialImport`` with ``ifResourceExists: SKIP``; returns
        ``{username in lower case: (action, id)}``, action ``ADDED`` or ``SKIPPED`` (that username was taken:
        the id is the existing user's).

        Keycloak 26.7.3 facts: the representations are stored as given, without the user-profile validation of
        ``POST /users`` (empty fields are kept as ``""``); usernames are stored in lower case. It is one
        transaction: when an email is taken by a user of another username Keycloak answers 500, when two users
        of one import share a username or email 409, and nothing of the import is stored. Needs ``manage-realm``.
        """
        resp = self.request("POST", "/partialImport", json_body={"ifResourceExists": "SKIP", "users": reps},
                            expected=(200,))
        body = resp.json()
        results = body.get("results", []) if isinstance(body, dict) else []
        return {str(r["resourceName"]).lower(): (str(r["action"]), str(r["id"]))
                for r in results if isinstance(r, dict) and r.get("resourceType") == "USER"}

    def get_user(self, user_id: str) -> JSON:
        """The user (full representation with attributes); :class:`NotFound` if missing."""
        return self._get_object(f"/users/{seg(user_id)}")

    def update_user(self, user_id: str, rep: JSON, *, current: JSON | None = None) -> None:
        """Update the user (PUT) with uniform semantics for the core fields.

        Keycloak 26.7's PUT behaves in two ways: without ``attributes`` it is a partial update
        (absent or ``null`` fields are kept, ``""`` clears one); with ``attributes`` the whole user
        profile is rebuilt from the body, so an absent ``username`` is a 400 ("User name is missing")
        and absent ``email``/``firstName``/``lastName`` are **cleared**. This method hides the
        difference: when *rep* carries ``attributes``, core fields that are absent or ``None`` are
        filled from the stored user (*current*, or one GET), so only ``""`` clears them.

        ``attributes`` (when given) still replace **all** custom attributes; undeclared ones are
        dropped. To change a few, use :meth:`merge_user_attributes`.
        """
        body = dict(rep)
        if "attributes" in body:
            stored = current if current is not None else self.get_user(user_id)
            for field in _CORE_PROFILE_FIELDS:
                if body.get(field) is None and stored.get(field) is not None:
                    body[field] = stored[field]
        self._no_content("PUT", f"/users/{seg(user_id)}", body, True)

    def merge_user_attributes(
        self, user_id: str, changes: Mapping[str, list[str] | str | None]
    ) -> dict[str, list[str]]:
        """Set (or, with ``None``, remove) some custom attributes and keep all others (and the core
        fields); return the resulting attributes."""
        user = self.get_user(user_id)
        attrs: dict[str, list[str]] = dict(user.get("attributes") or {})
        for key, value in changes.items():
            if value is None:
                attrs.pop(key, None)
            else:
                attrs[key] = [value] if isinstance(value, str) else list(value)
        self.update_user(user_id, {"attributes": attrs}, current=user)
        return attrs

    def delete_user(self, user_id: str) -> None:
        """Delete the user. :class:`NotFound` if missing."""
        self._no_content("DELETE", f"/users/{seg(user_id)}")

    def find_user_by_username(self, username: str) -> JSON | None:
        """The user with exactly this username (case-insensitive, as Keycloak stores lower case)."""
        for user in self._get_list("/users", {"username": username, "exact": "true", "max": 2}):
            if user.get("username", "").lower() == username.lower():
                return user
        return None

    def find_user_by_email(self, email: str) -> JSON | None:
        """The user with exactly this email (case-insensitive)."""
        for user in self._get_list("/users", {"email": email, "exact": "true", "max": 2}):
            if (user.get("email") or "").lower() == email.lower():
                return user
        return None

    def find_users_by_attribute(self, name: str, value: str, *, max: int = 100) -> list[JSON]:
        """Users whose attribute *name* has exactly *value* (``q=name:value``, then re-checked
        case-sensitively, because Keycloak's match ignores case)."""
        needle = f'"{value}"' if any(ch.isspace() for ch in value) else value
        found = self._get_list("/users", {"q": f"{name}:{needle}", "max": max, "briefRepresentation": "false"})
        return [u for u in found if value in (u.get("attributes") or {}).get(name, [])]

    def find_users_by_idp_link(self, alias: str, idp_user_id: str) -> list[JSON]:
        """Users linked to identity provider *alias* with IdP-side id *idp_user_id*.

        Normally zero or one, but Keycloak 26.7 does not stop the same IdP identity from being linked
        to several users through the admin API.
        """
        found = self._get_list("/users", {"idpAlias": alias, "idpUserId": idp_user_id, "max": 100})
        return [u for u in found if u.get("id")]

    def find_user_by_idp_link(self, alias: str, idp_user_id: str) -> JSON | None:
        """The user linked to IdP *alias* as *idp_user_id*; None if nobody is;
        :class:`KeycloakError` if several users carry that link (ambiguous)."""
        found = self.find_users_by_idp_link(alias, idp_user_id)
        if len(found) > 1:
            raise KeycloakError(
                None,
                None,
                message=f"ambiguous: {len(found)} users are linked to {alias} as {idp_user_id!r}",
            )
        return found[0] if found else None

    def list_users(
        self, first: int = 0, max: int = 100, *, search: str | None = None, brief: bool = False, **filters: Scalar
    ) -> list[JSON]:
        """One page of users (*filters*: ``username``, ``email``, ``q``, ``enabled``, ``exact`` ...)."""
        params = {"search": search, "briefRepresentation": flag(brief), **filters}
        return self.list_page("/users", params, first=first, max=max)

    def iter_users(
        self, *, search: str | None = None, brief: bool = False, page_size: int | None = None, **filters: Scalar
    ) -> Iterator[JSON]:
        """All users matching the filters, page by page (service accounts are not listed)."""
        params = {"search": search, "briefRepresentation": flag(brief), **filters}
        return self.paged("/users", params, page_size=page_size)

    def count_users(self, **filters: Scalar) -> int:
        """Number of users (service accounts excluded)."""
        return self._count("/users/count", filters or None)

    def get_user_role_mappings(self, user_id: str) -> JSON:
        """The user's direct role mappings: ``{"realmMappings": [...], "clientMappings": {client: {...}}}``."""
        return self._get_object(f"/users/{seg(user_id)}/role-mappings")

    def list_user_groups(self, user_id: str, max: int = 10) -> list[JSON]:
        """The realm groups the user is in (organization groups are not listed)."""
        return self._get_list(f"/users/{seg(user_id)}/groups", {"first": 0, "max": max})

    # -- federated identities ---------------------------------------------------------------------

    def list_federated_identities(self, user_id: str) -> list[JSON]:
        """``[{identityProvider, userId, userName}, ...]`` for the user."""
        return self._get_list(f"/users/{seg(user_id)}/federated-identity")

    def add_federated_identity(self, user_id: str, alias: str, idp_user_id: str, idp_username: str) -> None:
        """Link the user to IdP *alias*. *idp_user_id* must be what the IdP reports at login (OIDC
        ``sub``). :class:`KeycloakConflict` if the user already has a link to that IdP.

        Keycloak 26.7 checks neither that the alias exists nor that the IdP identity is free: the same
        ``(alias, idp_user_id)`` can end up on two users. Check :meth:`find_users_by_idp_link` first.
        """
        body = {"identityProvider": alias, "userId": idp_user_id, "userName": idp_username}
        self._no_content("POST", f"/users/{seg(user_id)}/federated-identity/{seg(alias)}", body, True)

    def remove_federated_identity(self, user_id: str, alias: str) -> None:
        """Remove the user's link to IdP *alias*. :class:`NotFound` if there is none."""
        self._no_content("DELETE", f"/users/{seg(user_id)}/federated-identity/{seg(alias)}")
