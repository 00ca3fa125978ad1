"""List and search parameters (RFC 7644 §3.4.2) and what a query asks to see (§3.4.2.5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orgscim.model.errors import InvalidFilter, InvalidValue
from orgscim.model.types import JSONValue


@dataclass
class Query:
    """List/search parameters (RFC 7644 §3.4.2)."""

    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    start_index: int = 1
    count: int | None = None
    attributes: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, get: Callable[[str], JSONValue]) -> Query:
        """From query-string or SearchRequest values; ``get`` looks a name up case-insensitively."""
        def num(name: str) -> int | None:
            raw = get(name)
            if raw is None or raw == "":
                return None
            try:
                return int(raw)
            except (TypeError, ValueError):
                raise InvalidValue(f"{name} must be an integer") from None

        def names(name: str) -> list[str]:
            raw = get(name)
            if raw is None:
                return []
            if isinstance(raw, list):
                return [str(x) for x in raw if isinstance(x, str)]
            if not isinstance(raw, str):
                raise InvalidValue(f"{name} must be a comma-separated string or a list")
            return [x.strip() for x in raw.split(",") if x.strip()]

        flt_ = get("filter")
        if flt_ is not None and not isinstance(flt_, str):
            raise InvalidFilter("filter must be a string")
        sort_by = get("sortBy")
        if sort_by is not None and not isinstance(sort_by, str):
            raise InvalidValue("sortBy must be a string")
        order = get("sortOrder")
        if order is not None and (not isinstance(order, str) or order.lower() not in ("ascending", "descending")):
            raise InvalidValue("sortOrder must be ascending or descending")
        start = num("startIndex")
        return cls(flt_ or None, sort_by or None, order, 1 if start is None or start < 1 else start,
                   num("count"), names("attributes"), names("excludedAttributes"))


def wants(query: Query | None, attr: str) -> bool:
    """Whether the answer to *query* includes the top-level attribute *attr* (``attributes`` /
    ``excludedAttributes``, RFC 7644 §3.4.2.5); without a query, everything is returned."""
    if query is None:
        return True
    if query.attributes:
        return any(a.split(".")[0].split(":")[-1].lower() == attr.lower() for a in query.attributes)
    return not any(a.split(".")[0].split(":")[-1].lower() == attr.lower() and "." not in a.split(":")[-1]
                   for a in query.excluded)
