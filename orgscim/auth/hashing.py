"""Secrets orgscim generates, and the Argon2id hashes it keeps of them (RFC 9106).

Only the hash of a credential is ever stored; the secret is shown once when issued.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError
from argon2.profiles import RFC_9106_LOW_MEMORY

#: RFC 9106 §4 second recommended option: t=3, m=64 MiB, p=4 (above OWASP's minimums: m=19 MiB, t=2, p=1).
HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def needs_rehash(hasher: PasswordHasher, hash_: str) -> bool:
    """True when ``hash_`` was made with weaker parameters than ``hasher``'s (RFC 9106 §4).

    Only ever upwards: a hash made with stronger parameters than today's is kept.
    """
    try:
        p = extract_parameters(hash_)
    except InvalidHashError:
        return False
    return p.type is not Type.ID or any(
        have < want for have, want in ((p.time_cost, hasher.time_cost), (p.memory_cost, hasher.memory_cost),
                                       (p.parallelism, hasher.parallelism), (p.hash_len, hasher.hash_len),
                                       (p.salt_len, hasher.salt_len)))


def new_credential_id() -> str:
    """A credential's public id: 48 random bits, hex."""
    return secrets.token_hex(6)


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe (no '.', so it can follow a credential id)."""
    return secrets.token_urlsafe(32)
