"""Credentials orgscim issues itself (``EXTERNAL_SECRET``, ``EXTERNAL_BASIC``; DESIGN §5).

Generated values, Argon2id hashes (RFC 9106), several per org, rotation with a grace deadline, revocation
(:meth:`orgscim.auth.context.AuthContext.revoke`). :class:`IssuingMode` is the base class of those plugins;
:class:`CredentialIssuer` is what callers (CLI, config API, admin pages) may ask of any such plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..model.clock import later
from ..model.contract import Credential, Org
from ..model.types import JSON, JSONValue
from .context import AuthContext
from .hashing import new_credential_id

DEFAULT_GRACE_HOURS = 24.0
MAX_GRACE_HOURS = 24.0 * 30


@dataclass
class IssuedCredential:
    """A new credential with its secret (and username for Basic), which exist nowhere else."""

    credential: Credential
    secret: str
    username: str | None = None

    def public(self) -> JSON:
        """The one time a credential is shown with its secret (and username for Basic): its listing form plus
        those. Callers show this once and never store it."""
        data = {**self.credential.public(), "secret": self.secret}
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class Rotation:
    """A rotation's new credential and the ones that now expire at ``deadline``."""

    issued: IssuedCredential
    superseded: list[Credential]
    deadline: str


class CredentialIssuer(Protocol):
    """An auth-mode plugin whose credentials orgscim generates."""

    def issue(self, org: Org, expires: str | None = None) -> IssuedCredential: ...

    def rotate(self, org: Org, grace_seconds: float | None = None) -> Rotation: ...


class IssuingMode:
    """Base of the modes whose credentials orgscim generates (DESIGN §5): ``EXTERNAL_SECRET``, ``EXTERNAL_BASIC``.

    Subclasses set ``name`` and ``kind`` and implement :meth:`generate`, ``authenticate`` and ``schemes``
    (:class:`~orgscim.auth.api.AuthMode`). The only setting is ``grace_hours``: how long a rotated-out
    credential keeps working.
    """

    name: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def validate_config(self, config: JSON) -> JSON:
        """Only ``grace_hours`` (0 … 720)."""
        unknown = set(config) - {"grace_hours"}
        if unknown:
            raise ValueError(f"{self.name} takes no settings named {', '.join(sorted(unknown))}; "
                             "it knows grace_hours")
        out = dict(config)
        if "grace_hours" in out:
            out["grace_hours"] = grace_hours(out["grace_hours"])
        return out

    def generate(self, cred_id: str) -> tuple[str | None, str, str]:
        """(username or None, the secret to show once, the value to hash) for a new credential."""
        raise NotImplementedError

    def issue(self, org: Org, expires: str | None = None) -> IssuedCredential:
        """Create a credential; the returned secret exists nowhere else (only its Argon2id hash is stored)."""
        cred_id = new_credential_id()
        username, secret, hashed = self.generate(cred_id)
        cred = self.ctx.orgs.add_credential(org.pk, cred_id, self.kind, self.ctx.hash_secret(hashed),
                                            username=username, expires=expires)
        self.ctx.orgs.event(org.pk, "credential.created", {"credential": cred_id, "kind": self.kind})
        return IssuedCredential(cred, secret, username)

    def rotate(self, org: Org, grace_seconds: float | None = None) -> Rotation:
        """Issue a new credential; the org's other active ones of this kind expire at now + grace.

        Default grace: the org's ``grace_hours`` setting, else 24 h. A credential that already expires
        earlier keeps its earlier deadline.
        """
        if grace_seconds is None:
            grace_seconds = float(org.auth_config.get("grace_hours", DEFAULT_GRACE_HOURS)) * 3600
        issued = self.issue(org)
        deadline = later(grace_seconds)
        superseded = self.ctx.orgs.supersede_credentials(org.pk, self.kind, deadline, issued.credential.pk)
        for cred in superseded:
            self.ctx.forget(cred.pk)
        self.ctx.orgs.event(org.pk, "credential.rotated", {
            "credential": issued.credential.cred_id, "superseded": [c.cred_id for c in superseded],
            "deadline": deadline})
        return Rotation(issued, superseded, deadline)


def grace_hours(value: JSONValue) -> float:
    """A validated grace period in hours (0 … 720), from a JSON or command-line value."""
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"grace_hours must be a number of hours, not {value!r}") from None
    if not 0 <= hours <= MAX_GRACE_HOURS:
        raise ValueError(f"grace_hours must be between 0 and {MAX_GRACE_HOURS:g}")
    return hours
