"""Authentication (DESIGN §5): what auth-mode plugins implement and the shared machinery they use.

* :mod:`.api` — the plugin protocol: :class:`AuthMode`, :class:`AuthRequest`, :class:`Principal`,
  :class:`AuthFailed`, ``Authorization`` header parsing.
* :mod:`.context` — :class:`AuthContext`, built once per process: the throttle-audit wrapper around every plugin
  call and Argon2id verification of stored credentials.
* :mod:`.cache` — the host-wide verified-credential cache; :mod:`.hashing` — Argon2id and generated secrets.
* :mod:`.issuing` — credentials orgscim issues itself (rotation with grace, revocation).
* :mod:`.jwt` — JWT verification shared by the token modes and the config API; :mod:`.realm_tokens` and
  :mod:`.caller` — Keycloak realm tokens of realm admins.

Plugins import what they need from this package (the names below), never from orgscim's other packages'
internals; orgscim itself never imports a plugin.
"""

from __future__ import annotations

from .api import AuthFailed, AuthMode, AuthRequest, Outcome, Principal, bearer, challenge, credential_parts
from .context import AuthContext
from .hashing import HASHER, new_credential_id, new_secret
from .issuing import CredentialIssuer, IssuedCredential, IssuingMode, Rotation, grace_hours

__all__ = ["HASHER", "AuthContext", "AuthFailed", "AuthMode", "AuthRequest", "CredentialIssuer", "IssuedCredential",
           "IssuingMode", "Outcome", "Principal", "Rotation", "bearer", "challenge", "credential_parts",
           "grace_hours", "new_credential_id", "new_secret"]
