"""Coercion of client values to the published schemas: lenient on input, exact on output.

QUIRKS.md #1 (any case), #2 (booleans as strings), #7 (manager as a bare string or a one-element list),
#8 (read-only and client-sent ``meta`` ignored, ``password`` dropped), #9 (``""``/``null`` = unassigned),
#11 (unknown attributes ignored).
"""

from __future__ import annotations

from orgscim.model.errors import InvalidValue
from orgscim.model.schemas import Attr
from orgscim.model.types import JSONValue

_UNSET = None


def empty(value: JSONValue) -> bool:
    return value is None or value == "" or value == [] or value == {}


def coerce(defn: Attr, value: JSONValue, where: str) -> JSONValue:
    """The value stored for ``defn``; ``None`` means unassigned. Raises 400 invalidValue on wrong types."""
    if empty(value):
        return _UNSET
    if defn.multi:
        items = value if isinstance(value, list) else [value]
        out = [v for v in (coerce_one(defn, item, where) for item in items) if v is not None]
        return out or _UNSET
    if isinstance(value, list) and defn.complex and len(value) == 1:
        value = value[0]  # manager sent as [ {...} ]  (QUIRKS #7)
    return coerce_one(defn, value, where)


def coerce_one(defn: Attr, value: JSONValue, where: str) -> JSONValue:
    """One (non-list) value of ``defn``."""
    if empty(value):
        return _UNSET
    if defn.complex:
        if isinstance(value, str) and defn.sub("value") and not defn.multi:
            value = {"value": value}  # manager: "271"  (QUIRKS #7); never for multi-valued ("emails": "x")
        if not isinstance(value, dict):
            raise InvalidValue(f"{where} must be an object")
        out = {}
        for key, v in value.items():
            sub = defn.sub(key)
            if sub is None or sub.mutability == "readOnly":
                continue
            cv = coerce_one(sub, v, f"{where}.{sub.name}")
            if cv is not None:
                out[sub.name] = cv
        return out or _UNSET
    if defn.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"  # QUIRKS #2
        raise InvalidValue(f"{where} must be a boolean")
    if defn.type in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue(f"{where} must be a number")
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"{where} must be a string")
    return value
