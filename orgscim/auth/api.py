"""What an auth-mode plugin implements and what it is handed (DESIGN §5).

A plugin is a class registered under the ``orgscim.auth_modes`` entry-point group. It is constructed once per
process with an :class:`~orgscim.auth.context.AuthContext` and asked to :meth:`AuthMode.authenticate` each
request with an :class:`AuthRequest`; it answers with a :class:`Principal`, or None / :class:`AuthFailed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..model.contract import Org
from ..model.types import JSON

if TYPE_CHECKING:
    from .context import AuthContext

DEFAULT_CHALLENGE = 'Bearer realm="orgscim"'


def _no_wait() -> float:
    return 0.0


@dataclass
class AuthRequest:
    """The parts of an HTTP request an auth mode may look at, and its hooks into the failure throttle.

    ``cheap_only`` is true for a client that is being throttled: the mode may accept what it can check
    without expensive work (a remembered verification, a signature against cached keys) but must not run
    Argon2id or fetch anything. It is read from the shared throttle on first use only, so a request served
    from the verified cache never reads it. :meth:`spend` takes an attempt before expensive work.
    """

    authorization: str | None
    remote_addr: str
    throttle_wait: Callable[[], float] = field(default=_no_wait, repr=False)
    throttle_take: Callable[[], float] = field(default=_no_wait, repr=False)
    spent: bool = False  # an attempt was taken for expensive work (given back on success)
    retry_after: float = 0.0  # > 0: the client is throttled
    _wait: float | None = field(default=None, repr=False)

    @property
    def cheap_only(self) -> bool:
        """The client is throttled: only checks without Argon2id or a fetch may run."""
        if self._wait is None:
            self._wait = self.throttle_wait()
        return self._wait > 0

    def spend(self) -> bool:
        """Take one attempt before Argon2id; False (and ``retry_after`` set) when the client is throttled."""
        if self.cheap_only:
            self.retry_after = self._wait or 0.0
            return False
        wait = self.throttle_take()
        if wait > 0:
            self.retry_after = wait
            return False
        self.spent = True
        return True


@dataclass
class Principal:
    """Who was authenticated: for audit only."""

    mode: str
    credential_id: str | None = None
    subject: str | None = None


@dataclass
class Outcome:
    """Result of :meth:`AuthContext.authenticate`: a principal, or a failure (``retry_after`` > 0: throttled)."""

    principal: Principal | None = None
    retry_after: float = 0.0


class AuthFailed(Exception):
    """A plugin may raise this instead of returning None, to put ``reason`` into the audit log.

    The reason is never shown to the client (every failure answers the same 401), and must not contain any
    part of the presented credential.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthMode(Protocol):
    """An auth-mode plugin. It may also define ``challenge(org) -> str`` (see :func:`challenge`)."""

    name: ClassVar[str]

    def __init__(self, ctx: AuthContext) -> None: ...

    def validate_config(self, config: JSON) -> JSON:
        """Return the normalised config or raise ``ValueError`` with a message for the operator."""

    def authenticate(self, org: Org, req: AuthRequest) -> Principal | None:
        """A principal, or None (or :class:`AuthFailed`) for any failure; callers answer the same 401 for all."""

    def schemes(self, org: Org) -> list[JSON]:
        """``authenticationSchemes`` entries for ServiceProviderConfig (RFC 7643 §5)."""


def challenge(mode: AuthMode, org: Org) -> str:
    """``WWW-Authenticate`` for a 401 (RFC 9110 §11.6.1); a mode may define ``challenge(org)``."""
    fn: Callable[[Org], str] | None = getattr(mode, "challenge", None)
    return fn(org) if fn is not None else DEFAULT_CHALLENGE


def credential_parts(header: str | None, scheme: str) -> str | None:
    """The credentials after ``scheme`` in an ``Authorization`` header (scheme case-insensitive, RFC 9110 §11.1)."""
    if not header:
        return None
    got, _, value = header.strip().partition(" ")
    if got.lower() != scheme or not value.strip():
        return None
    return value.strip()


def bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), or None."""
    return credential_parts(header, "bearer")
