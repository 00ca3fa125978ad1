"""SCIM filter expressions: parser and schema resolution (RFC 7644 §3.4.2.2).

The parser builds a small AST; :func:`resolve` checks every attribute path against a resource type and
attaches the attribute definitions, so storage can compile the tree without knowing SCIM schemas.
Lenient on input (conformance/QUIRKS.md #1, #12): operators, keywords and attribute names in any case,
unquoted values, and Entra's ``emails[type eq "work"].value eq "…"`` form.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import InvalidFilter
from .schemas import COMMON, META_SUBS, Attr, ResourceType
from .types import JSON, JSONValue, Scalar

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 50
MAX_TERMS = 200  # comparisons per filter: IdPs send a handful; each one costs SQL to compile and run


@dataclass(frozen=True)
class AttrRef:
    """``[urn:]attr[.sub]`` as written; ``attr``/``sub`` are resolved by :func:`resolve`."""

    urn: str | None
    name: str
    sub_name: str | None = None
    # filled by resolve():
    attr: Attr | None = None
    sub: Attr | None = None
    schema: str | None = None

    @property
    def common(self) -> bool:
        """True for ``id``, ``externalId`` and ``meta.*``, which live outside the schemas."""
        return self.attr is None


@dataclass(frozen=True)
class Compare:
    path: AttrRef
    op: str
    value: Scalar


@dataclass(frozen=True)
class Present:
    path: AttrRef


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    expr: Node


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some element of multi-valued ``attr`` matches ``filter`` (paths in it are subs)."""

    path: AttrRef
    expr: Node


Node = Compare | Present | And | Or | Not | ValuePath

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[()\[\]])|(?P<word>[^\s()\[\]"]+))')


def _tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"filter longer than {MAX_FILTER_LENGTH} characters")
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidFilter(f"unexpected character at position {pos} in filter")
        kind = m.lastgroup or "word"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_attr_path(text: str) -> AttrRef:
    """Split ``[urn:]attr[.sub]`` (RFC 7644 §3.10). The URN is everything up to the last colon."""
    urn = None
    rest = text
    if text.lower().startswith("urn:"):
        urn, _, rest = text.rpartition(":")
        if not rest:
            raise InvalidFilter(f"attribute path {text!r} ends with ':'")
    name, _, sub = rest.partition(".")
    if not name or not re.fullmatch(r"\$?[A-Za-z][\w$-]*", name) or (sub and not re.fullmatch(
            r"\$?[A-Za-z][\w$-]*", sub)):
        raise InvalidFilter(f"{text!r} is not an attribute path")
    return AttrRef(urn, name, sub or None)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0
        self.depth = 0
        self.terms = 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise InvalidFilter("filter ends too early")
        self.i += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return tok[1].lower()
        return None

    def expect(self, punct: str) -> None:
        tok = self.take()
        if tok != ("punct", punct):
            raise InvalidFilter(f"expected {punct!r}, found {tok[1]!r}")

    def parse(self) -> Node:
        node = self.or_expr(inside_brackets=False)
        extra = self.peek()
        if extra is not None:
            raise InvalidFilter(f"unexpected {extra[1]!r} in filter")
        return node

    def or_expr(self, inside_brackets: bool) -> Node:
        node = self.and_expr(inside_brackets)
        while self.keyword("or"):
            node = Or(node, self.and_expr(inside_brackets))
        return node

    def and_expr(self, inside_brackets: bool) -> Node:
        node = self.unary(inside_brackets)
        while self.keyword("and"):
            node = And(node, self.unary(inside_brackets))
        return node

    def unary(self, inside_brackets: bool) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter("filter nested too deeply")
        try:
            if self.keyword("not"):
                self.expect("(")
                negated = Not(self.or_expr(inside_brackets))
                self.expect(")")
                return negated
            tok = self.peek()
            if tok == ("punct", "("):
                self.take()
                grouped = self.or_expr(inside_brackets)
                self.expect(")")
                return grouped
            return self.attr_expr(inside_brackets)
        finally:
            self.depth -= 1

    def attr_expr(self, inside_brackets: bool) -> Node:
        kind, word = self.take()
        if kind != "word":
            raise InvalidFilter(f"expected an attribute path, found {word!r}")
        path = parse_attr_path(word)
        if self.peek() == ("punct", "["):
            if inside_brackets or path.sub_name:
                raise InvalidFilter("value filters cannot be nested")
            self.take()
            inner = self.or_expr(inside_brackets=True)
            self.expect("]")
            tok = self.peek()
            if tok and tok[0] == "word" and tok[1].startswith("."):
                # Entra: emails[type eq "work"].value eq "x" == emails[type eq "work" and value eq "x"]
                self.take()
                sub = AttrRef(None, tok[1][1:])
                parse_attr_path(sub.name)
                inner = And(inner, self.comparison(sub))
            return ValuePath(path, inner)
        return self.comparison(path)

    def comparison(self, path: AttrRef) -> Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise InvalidFilter(f"filter has more than {MAX_TERMS} comparisons")
        tok = self.take()
        op = tok[1].lower()
        if tok[0] != "word" or (op not in COMPARE_OPS and op != "pr"):
            raise InvalidFilter(f"unknown operator {tok[1]!r}")
        if op == "pr":
            return Present(path)
        return Compare(path, op, self.value())

    def value(self) -> Scalar:
        kind, text = self.take()
        if kind == "str":
            try:
                literal: str = json.loads(text)  # the token is a JSON string literal
                return literal
            except ValueError as e:
                raise InvalidFilter(f"bad string literal {text}") from e
        if kind != "word":
            raise InvalidFilter(f"expected a value, found {text!r}")
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.\d+([eE][-+]?\d+)?", text):
            return float(text)
        return text  # unquoted value (QUIRKS #12)


def parse(text: str) -> Node:
    """Parse a filter string into an AST; raises ``400 invalidFilter`` on anything malformed."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilter("empty filter")
    return _Parser(_tokenize(text)).parse()


def _resolve_ref(ref: AttrRef, rtype: ResourceType, parent: Attr | None) -> AttrRef:
    if parent is not None:  # inside a value filter: names are sub-attributes of parent
        sub = parent.sub(ref.name)
        if ref.urn or ref.sub_name or sub is None:
            raise InvalidFilter(f"{parent.name} has no sub-attribute {ref.name!r}")
        return AttrRef(None, sub.name, None, parent, sub, ref.schema)
    name_l = ref.name.lower()
    if ref.urn is None and name_l in {c.lower() for c in COMMON}:
        canon = next(c for c in COMMON if c.lower() == name_l)
        if canon == "meta":
            subs = {s.lower(): s for s in META_SUBS}
            if not ref.sub_name or ref.sub_name.lower() not in subs:
                raise InvalidFilter("meta filters need one of " + ", ".join(META_SUBS))
            return AttrRef(None, "meta", subs[ref.sub_name.lower()])
        if ref.sub_name or canon == "schemas":
            raise InvalidFilter(f"cannot filter on {ref.name}.{ref.sub_name}")
        return AttrRef(None, canon)
    schemas = list(rtype.all_schemas)
    if ref.urn:
        named = rtype.schema_for(ref.urn)
        schemas = [named] if named else []
    for schema in schemas:
        attr = schema.attr(ref.name)
        if attr is None:
            continue
        sub = None
        if ref.sub_name:
            sub = attr.sub(ref.sub_name)
            if sub is None:
                raise InvalidFilter(f"{attr.name} has no sub-attribute {ref.sub_name!r}")
        elif attr.complex and attr.sub("value"):
            sub = attr.sub("value")  # RFC 7644 §3.4.2.2: "emails eq x" compares emails.value
        elif attr.complex:
            raise InvalidFilter(f"{attr.name} is complex; name a sub-attribute")
        return AttrRef(schema.id, attr.name, sub.name if sub else None, attr, sub, schema.id)
    raise InvalidFilter(f"unknown attribute {ref.name!r} for {rtype.name}")


def resolve_path(text: str, rtype: ResourceType) -> AttrRef:
    """An attribute path (e.g. ``sortBy``, RFC 7644 §3.4.2.3) bound to its definition in ``rtype``."""
    return _resolve_ref(parse_attr_path(text), rtype, None)


def resolve(node: Node, rtype: ResourceType, parent: Attr | None = None) -> Node:
    """Bind every attribute path of ``node`` to its definition in ``rtype``; 400 for unknown ones."""
    if isinstance(node, (And, Or)):
        return type(node)(resolve(node.left, rtype, parent), resolve(node.right, rtype, parent))
    if isinstance(node, Not):
        return Not(resolve(node.expr, rtype, parent))
    if isinstance(node, ValuePath):
        ref = _resolve_ref(AttrRef(node.path.urn, node.path.name), rtype, None)
        if ref.attr is None or not ref.attr.multi or not ref.attr.complex:
            raise InvalidFilter(f"{node.path.name}[…] needs a multi-valued complex attribute")
        ref = AttrRef(ref.urn, ref.name, None, ref.attr, None, ref.schema)
        return ValuePath(ref, resolve(node.expr, rtype, ref.attr))
    ref = _resolve_ref(node.path, rtype, parent)
    if isinstance(node, Present):
        return Present(ref)
    defn = ref.sub or ref.attr
    op, value = node.op, node.value
    if defn is not None:
        if defn.type == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"  # QUIRKS #2
        if defn.type == "complex":
            raise InvalidFilter(f"cannot compare complex attribute {defn.name}")
        if op in ("gt", "ge", "lt", "le") and defn.type in ("boolean", "binary"):
            raise InvalidFilter(f"{op} is not defined for {defn.type} attribute {defn.name}")
        if op in ("co", "sw", "ew") and not isinstance(value, str):
            raise InvalidFilter(f"{op} needs a string value")
    return Compare(ref, op, value)


def evaluate(node: Node, element: JSON) -> bool:
    """Evaluate a resolved value filter (``emails[type eq "work"]``) against one element in memory."""
    if isinstance(node, And):
        return evaluate(node.left, element) and evaluate(node.right, element)
    if isinstance(node, Or):
        return evaluate(node.left, element) or evaluate(node.right, element)
    if isinstance(node, Not):
        return not evaluate(node.expr, element)
    if isinstance(node, ValuePath):
        raise InvalidFilter("value filters cannot be nested")
    defn = node.path.sub
    name = defn.name if defn else node.path.name
    got = next((v for k, v in element.items() if k.lower() == name.lower()), None)
    if isinstance(node, Present):
        return got not in (None, "", [])
    want = node.value
    if got is None or want is None:
        return (got is None) == (want is None) if node.op == "eq" else (got is None) != (want is None)
    if isinstance(got, str) and isinstance(want, str) and not (defn and defn.case_exact):
        got, want = got.lower(), want.lower()
    if isinstance(got, bool) or isinstance(want, bool):
        if node.op in ("eq", "ne"):
            same = isinstance(got, bool) and isinstance(want, bool) and got == want
            return same if node.op == "eq" else not same
        return False
    if not isinstance(got, type(want)) and not (isinstance(got, (int, float)) and isinstance(want, (int, float))):
        got, want = str(got), str(want)
    return _compare(node.op, got, want)


def _compare(op: str, got: JSONValue, want: JSONValue) -> bool:
    """``got op want`` for two values of one kind; values that do not order compare false."""
    try:
        if op in ("eq", "ne"):
            return bool(got == want) == (op == "eq")
        if op == "co":
            return str(want) in str(got)
        if op == "sw":
            return str(got).startswith(str(want))
        if op == "ew":
            return str(got).endswith(str(want))
        if op == "gt":
            return bool(got > want)
        if op == "ge":
            return bool(got >= want)
        if op == "lt":
            return bool(got < want)
        return op == "le" and bool(got <= want)
    except TypeError:
        return False


def equalities(node: Node) -> dict[str, Scalar]:
    """``sub eq value`` conjuncts of a value filter: what a new element needs to match it (QUIRKS #3)."""
    if isinstance(node, Compare) and node.op == "eq" and node.path.sub is not None:
        return {node.path.sub.name: node.value}
    if isinstance(node, And):
        return {**equalities(node.left), **equalities(node.right)}
    return {}
