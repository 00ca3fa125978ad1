"""What a SCIM operation answers, and resource versions (ETags, RFC 7644 §3.14)."""

from __future__ import annotations

from dataclasses import dataclass

from orgscim.model.errors import InvalidValue, PreconditionFailed
from orgscim.model.schemas import RESOURCE_TYPES
from orgscim.model.types import JSON


@dataclass
class Result:
    """A service answer: HTTP status, JSON body (None for 204) and a Location for 201."""

    status: int
    body: JSON | None
    location: str | None = None

    @property
    def etag(self) -> str | None:
        """The resource's ``meta.version`` when the body is a User or Group (RFC 7644 §3.14)."""
        meta = (self.body or {}).get("meta") or {}
        version = meta.get("version") if meta.get("resourceType") in RESOURCE_TYPES else None
        return version if isinstance(version, str) else None


def version_tag(version: int) -> str:
    """The weak ETag of a stored version number (RFC 7232 §2.3)."""
    return f'W/"{version}"'


def etag_matches(header: object, version: str) -> bool:
    """Whether an ``If-Match``/``If-None-Match`` value (or a Bulk ``version``) names *version*; no header
    matches anything. Weak and strong forms of the same tag match (RFC 7644 §3.14)."""
    if header is None:
        return True
    if not isinstance(header, str):
        raise InvalidValue("a version (ETag) must be a string such as W/\"3\" (RFC 7644 §3.14)")
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or version in tags or any(t.removeprefix("W/") == version.removeprefix("W/") for t in tags)


def check_if_match(if_match: str | None, version: str) -> None:
    """Refuse a write whose ``If-Match`` names another version (412, RFC 7644 §3.14)."""
    if if_match is not None and not etag_matches(if_match, version):
        raise PreconditionFailed(f"resource version is {version}, If-Match was {if_match}")
