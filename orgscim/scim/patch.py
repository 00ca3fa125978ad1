"""PATCH (RFC 7644 §3.5.2) over a resource's attribute dict, and the same assignment rules for POST/PUT.

Every path form: none, ``attr``, ``attr.sub``, ``attr[filter]``, ``attr[filter].sub``, an extension URN
prefix (``urn:…:User:manager``) and a whole extension (``urn:…:enterprise:2.0:User``). Client habits from
conformance/QUIRKS.md are honoured: any case (#1), Entra's creating ``replace`` on a filter that matches
nothing (#3), member removal by value list (#4) and by filter (#5), path-less values with dotted and URN
keys (#6), manager shapes (#7). Group ``members`` are not kept in the dict: operations on them are folded
into a :class:`MembersDelta` the service applies through storage (groups can be large).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from orgscim.model import filter as flt
from orgscim.model.errors import InvalidPath, InvalidSyntax, InvalidValue, ModelError, Mutability, NoTarget
from orgscim.model.schemas import GROUP_TYPE, Attr, ResourceType, Schema
from orgscim.model.types import JSON, JSONValue

from .values import coerce, coerce_one, empty

READ_ONLY_COMMON = ("id", "meta", "schemas")
MAX_OPERATIONS = 1000
MAX_MEMBER_FILTERS = 10  # members[filter] removals per PATCH other than value eq (QUIRKS #5)


@dataclass
class Target:
    """Where an operation lands: ``schema`` None for core attributes, else the extension's URN."""

    schema: str | None
    attr: Attr | None  # None: the whole extension named by ``schema``
    sub: Attr | None = None
    filt: flt.Node | None = None


@dataclass
class MembersDelta:
    """Net effect of member operations: start from current (or empty) membership, add, remove."""

    reset: bool = False
    added: dict[str, JSON] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.reset or bool(self.added) or bool(self.removed)

    def replace(self, members: list[JSON]) -> None:
        self.reset, self.added, self.removed = True, {}, set()
        self.add(members)

    def add(self, members: list[JSON]) -> None:
        for m in members:
            self.added[m["value"]] = m
            self.removed.discard(m["value"])

    def remove(self, ids: list[str]) -> None:
        for i in ids:
            self.added.pop(i, None)
            if not self.reset:
                self.removed.add(i)


class _CannotSet(Exception):
    """A path that names nothing settable: ignored as a key of a path-less value, refused as a path."""

    def __init__(self, error: ModelError) -> None:
        super().__init__(error.detail)
        self.error = error


_BUILTIN_ATTR = Attr("externalId", case_exact=True)


def _member_attr() -> Attr:
    attr = GROUP_TYPE.schema.attr("members")
    assert attr is not None  # the published Group schema has members
    return attr


class Patcher:
    """Applies operations to a deep copy of ``data``; read the result from ``.data``."""

    def __init__(self, rtype: ResourceType, data: JSON,
                 current_members: Callable[[], list[JSON]] | None = None) -> None:
        self.rtype = rtype
        self.data = copy.deepcopy(data)
        self.members = MembersDelta()
        self._load_members = current_members or (lambda: [])
        self._loaded_members: list[JSON] | None = None
        self._member_filters = 0

    def _current_members(self) -> list[JSON]:
        """The group's members as stored, read once per PATCH however many operations filter them."""
        if self._loaded_members is None:
            self._loaded_members = self._load_members()
        return self._loaded_members

    # -- entry points ---------------------------------------------------------------------------
    def patch(self, body: JSONValue) -> None:
        """Apply a PatchOp message body (RFC 7644 §3.5.2)."""
        if not isinstance(body, dict):
            raise InvalidSyntax("PATCH body must be a JSON object with Operations")
        ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
        if not isinstance(ops, list) or not ops:
            raise InvalidSyntax("PATCH body needs a non-empty Operations array")
        if len(ops) > MAX_OPERATIONS:
            raise InvalidSyntax(f"at most {MAX_OPERATIONS} operations per PATCH")
        for i, op in enumerate(ops):
            if not isinstance(op, dict):
                raise InvalidSyntax(f"Operations[{i}] must be an object")
            low = {k.lower(): v for k, v in op.items()}
            kind = low.get("op")
            if not isinstance(kind, str) or kind.lower() not in ("add", "replace", "remove"):
                raise InvalidSyntax(f"Operations[{i}].op must be add, replace or remove")
            path = low.get("path")
            if path is not None and not isinstance(path, str):
                raise InvalidPath(f"Operations[{i}].path must be a string")
            if kind.lower() != "remove" and "value" not in low:
                raise InvalidValue(f"Operations[{i}] ({kind}) needs a value")
            self.operation(kind.lower(), path.strip() if path else None, low.get("value"))

    def assign_all(self, body: JSON) -> None:
        """POST/PUT: set every known writable attribute of ``body`` (unknown and read-only ignored)."""
        self.operation("replace", None, body)

    def operation(self, kind: str, path: str | None, value: JSONValue) -> None:
        if not path:
            if kind == "remove":
                raise NoTarget("remove needs a path")
            if not isinstance(value, dict):
                raise InvalidValue(f"{kind} without a path needs an object value")
            for key, v in value.items():
                target = self._key_target(key) if isinstance(key, str) else None
                if target is not None:
                    self.apply(kind, target, v)
            return
        self.apply(kind, self._target(path), value)

    # -- path resolution ------------------------------------------------------------------------
    def _target(self, path: str) -> Target:
        """A PATCH ``path``: what it names must be settable (RFC 7644 §3.5.2)."""
        try:
            return self._resolve(path)
        except _CannotSet as e:
            raise e.error from None

    def _key_target(self, key: str) -> Target | None:
        """A key of a path-less value; None for what cannot be set (ignored: QUIRKS #8, #11)."""
        try:
            return self._resolve(key)
        except _CannotSet:
            return None

    def _resolve(self, path: str) -> Target:
        filt_text = None
        tail = ""
        head = path
        if "[" in path:
            head, _, rest = path.partition("[")
            filt_text, close, tail = rest.rpartition("]")
            if not close or (tail and not tail.startswith(".")):
                raise _CannotSet(InvalidPath(f"malformed path {path!r}"))
            tail = tail[1:]
        schema: Schema | None = None
        if head.lower().startswith("urn:"):
            whole = next((s for s in self.rtype.all_schemas if s.id.lower() == head.lower()), None)
            if whole is not None and filt_text is None:
                return Target(whole.id if whole is not self.rtype.schema else None, None)
            urn, _, head = head.rpartition(":")
            schema = self.rtype.schema_for(urn)
            if schema is None:
                raise _CannotSet(InvalidPath(f"unknown schema in path {path!r}"))
        name, _, sub_name = head.partition(".")
        if tail:
            if sub_name:
                raise _CannotSet(InvalidPath(f"malformed path {path!r}"))
            sub_name = tail
        if schema is None and name.lower() in READ_ONLY_COMMON:
            raise _CannotSet(Mutability(f"{name} is read-only"))
        if schema is None and name.lower() == "externalid" and not sub_name and filt_text is None:
            return Target(None, _BUILTIN_ATTR)
        attr = None
        for s in [schema] if schema else self.rtype.all_schemas:
            attr = s.attr(name)
            if attr is not None:
                schema = s
                break
        if attr is None or schema is None:
            raise _CannotSet(InvalidPath(f"unknown attribute {name!r} in path {path!r}"))
        if attr.mutability == "readOnly":
            raise _CannotSet(Mutability(f"{attr.name} is read-only"))
        sub = None
        if sub_name:
            sub = attr.sub(sub_name)
            if sub is None:
                raise _CannotSet(InvalidPath(f"{attr.name} has no sub-attribute {sub_name!r}"))
            if sub.mutability == "readOnly":
                raise _CannotSet(Mutability(f"{attr.name}.{sub.name} is read-only"))
        filt = None
        if filt_text is not None:
            if not attr.complex:
                raise _CannotSet(InvalidPath(f"{attr.name} cannot take a value filter"))
            filt = flt.resolve(flt.parse(filt_text), self.rtype, parent=attr)
        return Target(schema.id if schema is not self.rtype.schema else None, attr, sub, filt)

    # -- operations -----------------------------------------------------------------------------
    def container(self, t: Target, create: bool) -> JSON | None:
        if t.schema is None:
            return self.data
        box: JSON | None = self.data.setdefault(t.schema, {}) if create else self.data.get(t.schema)
        return box

    def apply(self, kind: str, t: Target, value: JSONValue) -> None:
        if t.attr is None:  # whole extension object
            if kind == "remove":
                if t.schema is not None:
                    self.data.pop(t.schema, None)
                return
            if not isinstance(value, dict):
                raise InvalidValue(f"{t.schema} needs an object value")
            for key, v in value.items():
                target = self._key_target(f"{t.schema}:{key}") if isinstance(key, str) else None
                if target is not None:
                    self.apply(kind, target, v)
            return
        if self.rtype is GROUP_TYPE and t.attr.name == "members":
            self.apply_members(kind, t, value)
            return
        box = self.container(t, create=kind != "remove")
        if box is None:
            return
        try:
            self._apply_attr(kind, box, t, value)
        finally:
            if t.schema is not None and not self.data.get(t.schema):
                self.data.pop(t.schema, None)  # an emptied extension is unassigned, never returned as {}

    def _apply_attr(self, kind: str, box: JSON, t: Target, value: JSONValue) -> None:
        a = t.attr
        assert a is not None
        where = a.name + (f".{t.sub.name}" if t.sub else "")
        if a.multi:
            self.apply_multi(kind, box, t, value, where)
        elif a.complex and (t.sub or t.filt):
            current = box.get(a.name)
            if t.filt is not None and not (isinstance(current, dict) and flt.evaluate(t.filt, current)):
                if kind == "remove":
                    return
                current = {**flt.equalities(t.filt)}
            current = dict(current or {})
            if t.sub is None:
                if kind == "remove":
                    box.pop(a.name, None)
                    return
                current.update(coerce(a, value, where) or {})
            elif kind == "remove":
                current.pop(t.sub.name, None)
            else:
                self._set(current, t.sub.name, coerce(t.sub, value, where))
            self._set(box, a.name, current or None)
        elif a.complex:
            if kind == "remove":
                box.pop(a.name, None)
                return
            new = coerce(a, value, where)
            if kind == "replace" and value is not None and isinstance(value, dict):
                # replace on a complex attribute replaces the sub-attributes given (RFC 7644 §3.5.2.3)
                merged = dict(box.get(a.name) or {})
                for key, v in value.items():
                    sub = a.sub(key) if isinstance(key, str) else None
                    if sub is not None and sub.mutability != "readOnly":
                        self._set(merged, sub.name, coerce_one(sub, v, f"{where}.{sub.name}"))
                new = merged
            elif new is not None:
                new = {**(box.get(a.name) or {}), **new}
            self._set(box, a.name, new or None)
        else:
            self._set(box, a.name, None if kind == "remove" else coerce(a, value, where))

    def apply_multi(self, kind: str, box: JSON, t: Target, value: JSONValue, where: str) -> None:
        a = t.attr
        assert a is not None
        items: list[JSON] = [dict(x) for x in box.get(a.name) or []]
        if t.filt is None and t.sub is None:
            if kind == "remove":
                if empty(value):
                    items = []
                else:  # remove only the listed values (QUIRKS #4)
                    gone = {str(v.get("value") if isinstance(v, dict) else v).lower()
                            for v in (value if isinstance(value, list) else [value])}
                    items = [x for x in items if str(x.get("value")).lower() not in gone]
            else:
                new = coerce(a, value, where) or []
                items = new if kind == "replace" else items + [x for x in new if x not in items]
        else:
            hits = [x for x in items if t.filt is None or flt.evaluate(t.filt, x)]
            if not hits and kind == "remove":
                return  # no match is a no-op (QUIRKS #5)
            if not hits:  # add, and Entra's replace, create the element (QUIRKS #3)
                fresh = {k: v for k, v in flt.equalities(t.filt).items()} if t.filt else {}
                items.append(fresh)
                hits = [fresh]
            for x in hits:
                if t.sub is not None:
                    if kind == "remove":
                        x.pop(t.sub.name, None)
                    else:
                        self._set(x, t.sub.name, coerce_one(t.sub, value, where))
                elif kind == "remove":
                    x.clear()
                else:
                    new = coerce_one(a, value, where) or {}
                    if kind == "replace":
                        keep = {k: v for k, v in x.items() if k in flt.equalities(t.filt) and k not in new} \
                            if t.filt else {}
                        x.clear()
                        x.update({**keep, **new})
                    else:
                        x.update(new)
            items = [x for x in items if x]
        self._set(box, a.name, items or None)

    def apply_members(self, kind: str, t: Target, value: JSONValue) -> None:
        if t.sub is not None:
            raise Mutability("member sub-attributes are immutable; add or remove the member instead")
        if t.filt is not None:
            if kind != "remove":
                raise InvalidPath("members[filter] is only valid with remove")
            ids = _value_eq_ids(t.filt)
            if ids is None:
                self._member_filters += 1
                if self._member_filters > MAX_MEMBER_FILTERS:
                    raise InvalidValue(f"at most {MAX_MEMBER_FILTERS} members[filter] removals per PATCH (each "
                                        "scans every member); remove members by value instead")
                pool = self._current_members() + list(self.members.added.values())
                ids = [m["value"] for m in pool if flt.evaluate(t.filt, m)]
            self.members.remove(ids)
            return
        members = coerce(_member_attr(), value, "members") or []
        for m in members:
            if not isinstance(m.get("value"), str):
                raise InvalidValue("each member needs a string value (the member's id)")
        if kind == "replace":
            self.members.replace(members)
        elif kind == "add":
            self.members.add(members)
        elif members:
            self.members.remove([m["value"] for m in members])  # by value list (QUIRKS #4)
        else:
            self.members.replace([])

    @staticmethod
    def _set(box: JSON, key: str, value: JSONValue) -> None:
        if value is None:
            box.pop(key, None)
        else:
            box[key] = value


def _value_eq_ids(node: flt.Node) -> list[str] | None:
    """``value eq "a" or value eq "b"`` → ["a", "b"]; None for any other filter shape."""
    if isinstance(node, flt.Compare) and node.op == "eq" and node.path.name == "value":
        return [str(node.value)]
    if isinstance(node, flt.Or):
        left, right = _value_eq_ids(node.left), _value_eq_ids(node.right)
        return None if left is None or right is None else left + right
    return None
