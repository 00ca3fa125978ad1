"""When a new user may be created by Keycloak's partial import instead of ``POST /users`` (DESIGN §4 "Speed").

``POST /partialImport`` creates many users in one call and one transaction, at a fraction of the Keycloak CPU
of ``POST /users`` (measured on 26.7.3 by ``bench/keycloak_sync.py``: about a fifth per user in batches of 8).
It does not run the realm's user-profile validation, though, so orgscim only uses it for a user whose fields
it can show would pass that validation: the realm's declarations of the fields sent hold only validators
orgscim knows (:data:`KNOWN`), with their default parameters except ``length``, nothing orgscim does not send
is required of an administrator, the realm does not take usernames from emails, and each value passes a check
at least as strict as Keycloak's (:meth:`ImportRules.allows`). Every other user goes through ``POST /users``
and its validation, as before.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from orgscim.model.types import JSON

#: Keycloak validators orgscim checks itself (parameters: none, or ``min``/``max`` for ``length``)
KNOWN = frozenset({"length", "username-prohibited-characters", "up-username-not-idn-homograph", "email",
                   "person-name-prohibited-characters"})
CORE = ("username", "email", "firstName", "lastName")

# Stricter than Keycloak's validators: a value they would refuse never matches.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*", re.ASCII)
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*", re.ASCII)
_EMAIL_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
_NAME_PROHIBITED = set('<>&"$%!#?§;*~/\\|^=[]{}()')
# the ASCII part of that set, and the control characters (the only ASCII of Unicode categories C and Z but " ")
_ASCII_NAME_REFUSED = re.compile("[" + re.escape("".join(sorted(c for c in _NAME_PROHIBITED if c.isascii())))
                                 + r"\x00-\x1f\x7f]")


def _email_ok(value: str) -> bool:
    local, at, domain = value.partition("@")
    labels = domain.split(".")
    return (bool(at) and len(local) <= 64 and _EMAIL_LOCAL.fullmatch(local) is not None and len(labels) >= 2
            and all(_EMAIL_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit())


def _name_ok(value: str) -> bool:
    if value.isascii():  # most names: one regex instead of a Unicode lookup per character
        return _ASCII_NAME_REFUSED.search(value) is None
    return not any(c in _NAME_PROHIBITED or unicodedata.category(c)[0] in "CZ" and c != " " for c in value)


_CHECKS = {"username-prohibited-characters": lambda v: _USERNAME.fullmatch(v) is not None,
           "up-username-not-idn-homograph": str.isascii,
           "email": _email_ok,
           "person-name-prohibited-characters": _name_ok}


@dataclass(frozen=True)
class ImportRules:
    """What a realm's user profile asks of the fields orgscim sends, as far as orgscim checks it."""

    validators: dict[str, dict[str, JSON]] = field(default_factory=dict)  # attribute -> validator -> params

    @classmethod
    def from_realm(cls, profile: JSON, realm: JSON, sent: tuple[str, ...]) -> ImportRules | None:
        """The rules for users carrying the attributes ``sent`` (besides the core fields), or None when partial
        import must not be used in this realm (see the module docstring)."""
        if realm.get("registrationEmailAsUsername"):
            return None
        validators: dict[str, dict[str, JSON]] = {}
        for attr in profile.get("attributes") or []:
            name = attr.get("name")
            required = attr.get("required")
            of_admin = required is not None and (not required.get("roles") or "admin" in required["roles"])
            if name not in CORE + sent:
                if of_admin:
                    return None  # POST /users would refuse a user without it
                continue
            checks = dict(attr.get("validations") or {})
            for vname, params in checks.items():
                if vname not in KNOWN or (params and (vname != "length" or set(params) - {"min", "max"})):
                    return None
            if of_admin:
                checks["required"] = {}
            validators[name] = checks
        return cls(validators)

    def allows(self, rep: JSON) -> bool:
        """True when every field of ``rep`` (a user representation for ``POST /users``) passes the checks."""
        fields: dict[str, object] = {k: rep.get(k) for k in CORE}
        for key, values in (rep.get("attributes") or {}).items():
            fields[key] = values[0] if isinstance(values, list) and len(values) == 1 else values
        for name, checks in self.validators.items():
            value = fields.get(name)
            if value in (None, ""):
                if "required" in checks or name == "username":
                    return False
                continue
            if not isinstance(value, str) or value != value.strip():
                return False
            for vname, params in checks.items():
                if vname == "length":
                    size = len(value.encode("utf-16-le")) // 2  # Java counts UTF-16 units
                    if size < int(params.get("min", 0)) or size > int(params.get("max", 255)):
                        return False
                elif vname in _CHECKS and not _CHECKS[vname](value):
                    return False
        return True


def import_rep(rep: JSON) -> JSON:
    """``rep`` as partial import takes it: empty core fields left out, as ``POST /users`` stores them."""
    return {k: v for k, v in rep.items() if not (k in CORE and v in ("", None))}
