"""Compile a resolved SCIM filter (``orgscim.model.filter``) into SQL over the ``resources`` table.

Case-insensitive attributes compare lower-cased: ``lower()``, or for non-ASCII values ``unicode_lower()`` (Python's
``str.lower``, registered by :mod:`.db`: the folding used for stored keys). ``userName``/group ``displayName``, ``id``,
``externalId`` and ``emails.value`` hit indexed columns or the ``emails`` side table, so the lookups IdPs
make before every create never scan an org (issue #2, "Filters run in SQL").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from orgscim.model.clock import TIME_FORMAT
from orgscim.model.errors import InvalidFilter
from orgscim.model.filter import And, AttrRef, Compare, Node, Not, Or, Present, ValuePath
from orgscim.model.schemas import GROUP, USER, Attr

_PLUS_AS_SPACE = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)")


def parse_time(value: object) -> str:
    """Normalise a filter's dateTime (any offset, Entra's odd zones included) to our stored UTC form."""
    if not isinstance(value, str):
        raise InvalidFilter("dateTime comparisons need a string value")
    text = value.strip()
    m = _PLUS_AS_SPACE.fullmatch(text)
    if m:  # an unencoded "+05:30" arrives as " 05:30" after form decoding (QUIRKS #12)
        text = f"{m.group(1)}T{m.group(2)}+{m.group(3)}"
    text = text.replace(" ", "T")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidFilter(f"{value!r} is not an xsd:dateTime") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime(TIME_FORMAT)


@dataclass
class Expr:
    """A SQL expression for one attribute, and how to compare it."""

    sql: str
    kind: str  # string | boolean | dateTime | lc (already lower-cased) | exact


def _json_path(*names: str) -> str:
    return "$" + "".join('."' + n.replace('"', '') + '"' for n in names)


class Compiler:
    """Turns a resolved filter into ``(sql, params)`` for resources aliased ``r``.

    With ``org_pk``, :meth:`where` also decides the table clause (:attr:`table`): a filter whose top-level
    conjuncts hold an ``emails`` value equality is driven from the ``emails`` index by rowid, because SQLite's
    planner (no statistics) would otherwise walk every resource of the org's ``(org_pk, type)`` index.
    """

    def __init__(self, rtype: str, org_pk: int | None = None) -> None:
        self.rtype = rtype
        self.org_pk = org_pk
        self.params: list[object] = []
        # inside ``attr[...]``: how a sub-attribute of the element reads (see ``_element_exists``)
        self.element: Callable[[Attr], Expr] | None = None
        self.by_pk = False

    @property
    def table(self) -> str:
        """The FROM clause for ``resources r`` that the compiled condition is meant for."""
        return "resources r NOT INDEXED" if self.by_pk else "resources r"

    def where(self, node: Node) -> str:
        """Compile a whole filter (the top level of a WHERE clause) and choose :attr:`table`."""
        self.by_pk = self.org_pk is not None and _email_lookup(node)
        return self.compile(node)

    def compile(self, node: Node) -> str:
        if isinstance(node, And | Or):
            # one flat "(a OR b OR c)" per chain: nested parentheses per term overflow SQLite's parser stack
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.compile(n) for n in _chain(node)) + ")"
        if isinstance(node, Not):
            return f"(NOT COALESCE({self.compile(node.expr)}, 0))"
        if isinstance(node, ValuePath):
            return self.value_path(node.path, node.expr)
        ref = node.path
        if ref.attr is not None and ref.attr.multi and self.element is None:
            if isinstance(node, Present) and ref.sub_name is None:
                return self.multi_present(ref)
            # "emails.value eq x" == "emails[value eq x]"
            inner_ref = AttrRef(None, _resolved(ref.sub).name, None, ref.attr, ref.sub)
            inner = Compare(inner_ref, node.op, node.value) if isinstance(node, Compare) else Present(inner_ref)
            return self.value_path(AttrRef(ref.urn, ref.name, None, ref.attr, None, ref.schema), inner)
        expr = self.scalar(ref)
        return self.leaf(node, expr)

    # -- leaves ---------------------------------------------------------------------------------
    def scalar(self, ref: AttrRef) -> Expr:
        if self.element is not None:
            return self.element(_resolved(ref.sub))
        if ref.common:
            if ref.name == "id":
                return Expr("r.id", "exact")
            if ref.name == "externalId":
                return Expr("r.external_id", "exact")
            return {
                "created": Expr("r.created", "dateTime"),
                "lastModified": Expr("r.modified", "dateTime"),
                "resourceType": Expr("r.type", "exact"),
                "version": Expr("('W/\"' || r.version || '\"')", "exact"),
                "location": Expr("NULL", "exact"),
            }[ref.sub_name or ""]
        if (self.rtype, ref.name) in (("User", "userName"), ("Group", "displayName")):
            return Expr("r.name_lc", "lc")
        attr = _resolved(ref.attr)
        names = _ext_prefix(ref) + [attr.name] + ([ref.sub.name] if ref.sub else [])
        defn = ref.sub or attr
        return Expr(f"json_extract(r.data, '{_json_path(*names)}')", _kind(defn))

    def leaf(self, node: Compare | Present, expr: Expr) -> str:
        if isinstance(node, Present):
            if expr.kind == "boolean":
                return f"({expr.sql} IS NOT NULL)"
            return f"({expr.sql} IS NOT NULL AND {expr.sql} <> '')"
        op, value = node.op, node.value
        if value is None:
            if op == "eq":
                return f"({expr.sql} IS NULL)"
            if op == "ne":
                return f"({expr.sql} IS NOT NULL)"
            raise InvalidFilter(f"{op} null is not a comparison")
        sql, val = self.operand(expr, value)
        if op in ("co", "sw", "ew"):
            if val == "":
                return f"({sql} IS NOT NULL)"
            self.params.append(val)
            if op == "co":
                return f"(instr({sql}, ?) > 0)"
            self.params.append(val)
            if op == "sw":
                return f"(substr({sql}, 1, length(?)) = ?)"
            return f"(substr({sql}, -length(?)) = ?)"
        self.params.append(val)
        sym = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}.get(op)
        if sym:
            return f"({sql} {sym} ?)"
        return f"({sql} IS NULL OR {sql} <> ?)"  # ne

    def operand(self, expr: Expr, value: object) -> tuple[str, object]:
        if expr.kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidFilter("boolean attributes compare with true or false")
            return expr.sql, int(value)
        if expr.kind == "dateTime":
            return expr.sql, parse_time(value)
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value) if not isinstance(value, str) else value
        if expr.kind == "string":
            # unicode_lower (str.lower, see db.py) where SQLite's ASCII-only lower() would disagree with it
            fold = "lower" if value.isascii() else "unicode_lower"
            return f"{fold}({expr.sql})", value.lower()
        if expr.kind == "lc":
            return expr.sql, value.lower()
        return expr.sql, value

    # -- multi-valued ---------------------------------------------------------------------------
    def multi_present(self, ref: AttrRef) -> str:
        name = _resolved(ref.attr).name
        if name == "members":
            return "EXISTS (SELECT 1 FROM members m WHERE m.group_pk = r.pk)"
        if name == "groups":
            return "EXISTS (SELECT 1 FROM members m WHERE m.member_pk = r.pk)"
        return f"(json_array_length(r.data, '{_json_path(name)}') > 0)"

    def value_path(self, ref: AttrRef, inner: Node) -> str:
        name = _resolved(ref.attr).name
        if name == "members":
            return self._element_exists(
                "SELECT 1 FROM members m JOIN resources e ON e.pk = m.member_pk WHERE m.group_pk = r.pk",
                inner, lambda sub: {"value": Expr("e.id", "exact"), "type": Expr("e.type", "exact"),
                                    "display": Expr("json_extract(m.attrs, '$.display')", "string"),
                                    "$ref": Expr("NULL", "exact")}[sub.name])
        if name == "groups":
            return self._element_exists(
                "SELECT 1 FROM members m JOIN resources e ON e.pk = m.group_pk WHERE m.member_pk = r.pk",
                inner, lambda sub: {"value": Expr("e.id", "exact"), "display": Expr("e.name_lc", "lc"),
                                    "type": Expr("'direct'", "exact"),
                                    "$ref": Expr("NULL", "exact")}[sub.name])
        names = _ext_prefix(ref) + [name]
        first_param = len(self.params)
        sql = self._element_exists(
            f"SELECT 1 FROM json_each(r.data, '{_json_path(*names)}') j WHERE 1",
            inner, lambda sub: Expr(f"json_extract(j.value, '{_json_path(sub.name)}')", _kind(sub)))
        if name == "emails" and not _ext_prefix(ref):
            value = _indexed_email(inner)
            if value is not None:  # its "?"s come before the EXISTS
                if self.org_pk is None:
                    self.params.insert(first_param, value.lower())
                    org = "r.org_pk"
                else:  # not correlated: the emails index can drive the query (see ``where``)
                    self.params[first_param:first_param] = [self.org_pk, value.lower()]
                    org = "?"
                sql = f"(r.pk IN (SELECT res_pk FROM emails WHERE org_pk = {org} AND value_lc = ?) AND {sql})"
        return sql

    def _element_exists(self, base: str, inner: Node, column: Callable[[Attr], Expr]) -> str:
        outer, self.element = self.element, column
        try:
            cond = self.compile(inner)
        finally:
            self.element = outer
        return f"EXISTS ({base} AND {cond})"

    # -- sorting --------------------------------------------------------------------------------
    def sort_expr(self, ref: AttrRef) -> str:
        """ORDER BY expression; multi-valued attributes sort by their primary (else first) value."""
        if ref.attr is not None and ref.attr.multi:
            if ref.attr.name in ("members", "groups"):
                raise InvalidFilter(f"cannot sort by {ref.attr.name}")
            sub = ref.sub.name if ref.sub else "value"
            return (f"(SELECT lower(json_extract(j.value, '{_json_path(sub)}')) FROM json_each(r.data, "
                    f"'{_json_path(ref.attr.name)}') j ORDER BY json_extract(j.value, '$.primary') DESC "
                    "LIMIT 1)")
        expr = self.scalar(ref)
        return f"lower({expr.sql})" if expr.kind == "string" else expr.sql


def _chain(node: And | Or) -> list[Node]:
    """The operands of a chain of the same connective, left to right (``a or b or c`` parses as
    ``Or(Or(a, b), c)``)."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if type(n) is type(node):
            stack += [n.right, n.left]
        else:
            out.append(n)
    return out


def _resolved(attr: Attr | None) -> Attr:
    """The definition :func:`orgscim.model.filter.resolve` put on a reference (the compiler gets resolved trees)."""
    if attr is None:
        raise TypeError("the filter was not resolved against a resource type")
    return attr


def _ext_prefix(ref: AttrRef) -> list[str]:
    """Extension attributes are stored under their schema URN (RFC 7643 §3.3)."""
    return [ref.schema] if ref.schema and ref.schema not in (USER, GROUP) else []


def _kind(defn: Attr) -> str:
    if defn.type == "boolean":
        return "boolean"
    if defn.type == "dateTime":
        return "dateTime"
    if defn.type in ("string", "reference", "binary") and not defn.case_exact:
        return "string"
    return "exact"


def _email_lookup(node: Node) -> bool:
    """True if a top-level conjunct of ``node`` is an indexed ``emails`` value equality."""
    if isinstance(node, And):
        return _email_lookup(node.left) or _email_lookup(node.right)
    if isinstance(node, ValuePath):
        ref, inner = node.path, node.expr
    elif isinstance(node, Compare) and node.path.attr is not None and node.path.attr.multi:
        ref = node.path
        inner = Compare(AttrRef(None, ref.sub.name if ref.sub else "", None, ref.attr, ref.sub), node.op, node.value)
    else:
        return False
    return ref.attr is not None and ref.attr.name == "emails" and not _ext_prefix(ref) and \
        _indexed_email(inner) is not None


def _indexed_email(node: Node) -> str | None:
    """The value of an ``value eq "…"`` conjunct inside an emails value filter, if there is one."""
    if isinstance(node, Compare) and node.op == "eq" and node.path.name == "value" and isinstance(
            node.value, str):
        return node.value
    if isinstance(node, And):
        return _indexed_email(node.left) or _indexed_email(node.right)
    return None
