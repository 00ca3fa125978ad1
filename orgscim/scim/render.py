"""Resource representations (RFC 7643 §3) and ``attributes``/``excludedAttributes`` (RFC 7644 §3.4.2.5)."""

from __future__ import annotations

from functools import lru_cache

from orgscim.model.schemas import RESOURCE_TYPES, ResourceType, Schema
from orgscim.model.types import JSON, JSONValue


def resource_json(rtype: ResourceType, rid: str, data: JSON, meta: JSON) -> JSON:
    """Schemas, id, externalId, the stored attributes (extensions under their URN) and meta."""
    out: JSON = {"schemas": [rtype.schema.id] + [e.id for e in rtype.extensions if e.id in data],
                           "id": rid}
    if data.get("externalId") is not None:
        out["externalId"] = data["externalId"]
    for key, value in data.items():
        if key != "externalId":
            out[key] = value
    out["meta"] = meta
    return out


@lru_cache(maxsize=256)
def _paths(type_name: str, names: tuple[str, ...]) -> frozenset[tuple[str, str, str | None]]:
    """Resolve attribute names to (schema urn, attr, sub) triples; unknown names are ignored. Cached: a list
    page projects every resource with the same names."""
    rtype = RESOURCE_TYPES[type_name]
    out: set[tuple[str, str, str | None]] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        schema: Schema | None = None
        if name.lower().startswith("urn:"):
            whole = rtype.schema_for(name)
            if whole is not None:
                out.update((whole.id, a.name, None) for a in whole.attrs)
                continue
            urn, _, name = name.rpartition(":")
            schema = rtype.schema_for(urn)
            if schema is None:
                continue
        attr_name, _, sub_name = name.partition(".")
        if schema is None and attr_name.lower() in ("id", "externalid", "meta", "schemas"):
            canon = {"id": "id", "externalid": "externalId", "meta": "meta", "schemas": "schemas"}
            out.add(("", canon[attr_name.lower()], sub_name or None))
            continue
        for s in [schema] if schema else rtype.all_schemas:
            attr = s.attr(attr_name)
            if attr is None:
                continue
            sub = attr.sub(sub_name) if sub_name else None
            if sub_name and sub is None:
                break
            out.add((s.id, attr.name, sub.name if sub else None))
            break
    return frozenset(out)


def project(resource: JSON, rtype: ResourceType, attributes: list[str] | None,
            excluded: list[str] | None) -> JSON:
    """Apply ``attributes`` (keep only these, plus ``returned: always``) or ``excludedAttributes``."""
    if not attributes and not excluded:
        return resource
    core = rtype.schema.id
    always = {("", "id", None), ("", "schemas", None)}
    keep = _paths(rtype.name, tuple(attributes)) if attributes else None
    drop = _paths(rtype.name, tuple(excluded or ())) - always if not attributes else set()

    def wanted(schema: str, attr: str, sub: str | None) -> bool:
        if (schema, attr, None) in always:
            return True
        if keep is not None:
            return (schema, attr, None) in keep or (sub is not None and (schema, attr, sub) in keep) or (
                sub is None and any(k[0] == schema and k[1] == attr for k in keep))
        return (schema, attr, None) not in drop and (sub is None or (schema, attr, sub) not in drop)

    def filter_value(schema: str, attr: str, value: JSONValue) -> JSONValue:
        if isinstance(value, dict):
            inner = {k: v for k, v in value.items() if wanted(schema, attr, k)}
            return inner or None
        if isinstance(value, list):
            items = [filter_value(schema, attr, v) if isinstance(v, dict) else v for v in value]
            items = [v for v in items if v is not None]
            return items or None
        return value

    out: JSON = {}
    for key, value in resource.items():
        ext = rtype.schema_for(key) if key.startswith("urn:") else None
        if ext is not None and isinstance(value, dict):
            inner = {}
            for attr, v in value.items():
                if wanted(ext.id, attr, None):
                    fv = filter_value(ext.id, attr, v)
                    if fv is not None:
                        inner[attr] = fv
            if inner:
                out[key] = inner
            continue
        schema = "" if key in ("id", "externalId", "meta", "schemas") else core
        if wanted(schema, key, None):
            fv = filter_value(schema, key, value)
            if fv is not None:
                out[key] = fv
    present = [s for s in out.get("schemas", []) if s == core or s in out]
    out["schemas"] = present
    return out
