"""The SCIM service of one organization: pure protocol over a resource store (no Flask, no SQL).

RFC 7644 §3.3 (create), §3.4 (retrieve, filter, sort, page, search), §3.5 (PUT, PATCH), §3.6 (DELETE),
§3.7 (Bulk), §3.14 (versions), §4 (discovery). Input follows conformance/QUIRKS.md; output follows
exactly the schemas published by :mod:`orgscim.model.schemas`.
"""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orgscim.model import filter as flt
from orgscim.model.contract import MemberChange
from orgscim.model.errors import (
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    ModelError,
    NotFound,
    PreconditionFailed,
    TooMany,
    Uniqueness,
    UnresolvedReference,
    VersionConflict,
)
from orgscim.model.schemas import (
    BULK_RESPONSE,
    GROUP_TYPE,
    LIST_RESPONSE,
    RESOURCE_TYPES,
    SCHEMAS,
    SPC_URN,
    USER_TYPE,
    ResourceType,
)

from .errors import error_body, model_error_body, status_of
from .patch import MembersDelta, Patcher
from .render import project, resource_json

log = logging.getLogger("orgscim.scim")

DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_BULK_OPERATIONS = 1000
MAX_BULK_PAYLOAD = 1_048_576
MAX_LISTED_MEMBERS = 10_000  # member rows per list page of groups; the page is cut short (itemsPerPage) past it
MAX_BULK_REFERENCES = 1000  # bulkId references per operation (a group may list every user of the request)
PATCH_RETRIES = 5


class Store(Protocol):
    """What the service needs from storage (see ``orgscim.store.resources.ResourceStore``)."""

    def get(self, rtype: str, rid: str) -> Any: ...
    def search(self, rtype: str, where: Any, sort: Any, descending: bool, start: int, count: int) -> Any: ...
    def members(self, group_pks: Sequence[int]) -> dict[int, list[Any]]: ...
    def member_counts(self, group_pks: Sequence[int]) -> dict[int, int]: ...
    def groups_of(self, member_pks: Sequence[int]) -> dict[int, list[tuple[str, str]]]: ...
    def resolve(self, ids: Any) -> dict[str, Any]: ...
    def create(self, rtype: str, data: dict, name: str, external_id: str | None, members: Any = None,
               outbox: Any = ()) -> Any: ...
    def update(self, row: Any, data: dict, name: str, external_id: str | None, members: Any = None,
               outbox: Any = ()) -> Any: ...
    def delete(self, row: Any, outbox: Any = ()) -> bool: ...


class Provisioner(Protocol):
    """Turns a SCIM write into outbox entries for Keycloak (none when running standalone); ``committed`` is
    told each write once it is committed with its entries (the web layer may then deliver them inline)."""

    def entries(self, action: str, rtype: str, rid: str, before: Any, after: Any) -> list[Any]: ...

    def committed(self, action: str, rtype: str, rid: str) -> None: ...


class NoProvisioning:
    def entries(self, action: str, rtype: str, rid: str, before: Any, after: Any) -> list[Any]:
        return []

    def committed(self, action: str, rtype: str, rid: str) -> None:
        pass


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
    def from_params(cls, get: Callable[[str], Any]) -> Query:
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


@dataclass
class Result:
    """A service answer: HTTP status, JSON body (None for 204) and a Location for 201."""

    status: int
    body: dict[str, Any] | None
    location: str | None = None

    @property
    def etag(self) -> str | None:
        meta = (self.body or {}).get("meta") or {}
        return meta.get("version") if meta.get("resourceType") in RESOURCE_TYPES else None


def etag_matches(header: str | None, version: str) -> bool:
    if header is None:
        return True
    if not isinstance(header, str):
        raise InvalidValue("a version (ETag) must be a string such as W/\"3\" (RFC 7644 §3.14)")
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or version in tags or any(t.removeprefix("W/") == version.removeprefix("W/") for t in tags)


def _check_if_match(if_match: str | None, version: str) -> None:
    if if_match is not None and not etag_matches(if_match, version):
        raise PreconditionFailed(f"resource version is {version}, If-Match was {if_match}")


class ScimService:
    """SCIM operations for one org. ``base_url`` is the org's SCIM base, without a trailing slash."""

    def __init__(self, store: Store, base_url: str, auth_schemes: list[dict[str, Any]] | None = None,
                 provisioner: Provisioner | None = None) -> None:
        self.store = store
        self.base = base_url.rstrip("/")
        self.auth_schemes = auth_schemes or []
        self.provisioner = provisioner or NoProvisioning()

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def rtype(name: str) -> ResourceType:
        return RESOURCE_TYPES[name]

    def location(self, rtype: ResourceType, rid: str) -> str:
        return f"{self.base}{rtype.endpoint}/{rid}"

    def render(self, rtype: ResourceType, rows: list[Any], query: Query | None = None) -> list[dict[str, Any]]:
        """Rows → SCIM JSON; members/groups fetched for the whole page in one query each."""
        want = _wants(rtype, query, "members" if rtype is GROUP_TYPE else "groups")
        extra: dict[int, Any] = {}
        if want:
            pks = [r.pk for r in rows]
            extra = self.store.members(pks) if rtype is GROUP_TYPE else self.store.groups_of(pks)
        out = []
        for row in rows:
            data = dict(row.data)
            if want and rtype is GROUP_TYPE and extra.get(row.pk):
                data["members"] = [self._member_json(m) for m in extra[row.pk]]
            elif want and extra.get(row.pk):
                data["groups"] = [{"value": gid, "$ref": self.location(GROUP_TYPE, gid), "display": name,
                                   "type": "direct"} for gid, name in extra[row.pk]]
            meta = {"resourceType": rtype.name, "created": row.created, "lastModified": row.modified,
                    "location": self.location(rtype, row.id), "version": f'W/"{row.version}"'}
            res = resource_json(rtype, row.id, data, meta)
            out.append(project(res, rtype, query.attributes, query.excluded) if query else res)
        return out

    def _member_json(self, m: Any) -> dict[str, Any]:
        return {"value": m.id, **m.attrs}

    def _load(self, rtype: ResourceType, rid: str) -> Any:
        row = self.store.get(rtype.name, rid) if isinstance(rid, str) else None
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return row

    def _name(self, rtype: ResourceType, data: dict[str, Any]) -> str:
        key = "userName" if rtype is USER_TYPE else "displayName"
        name = data.get(key)
        if not isinstance(name, str) or not name.strip():
            raise InvalidValue(f"{key} is required" if key not in data else f"{key} must be a non-empty string")
        return name

    def _members(self, delta: MembersDelta) -> Any:
        """MembersDelta (ids) → store MemberChange (pks); unknown ids are skipped and logged (QUIRKS #17)."""
        known = self.store.resolve(list(delta.added) + list(delta.removed))
        unknown = [i for i in list(delta.added) + list(delta.removed) if i not in known]
        if unknown:
            log.info("skipping %d unknown member id(s): %s", len(unknown), ", ".join(unknown[:20]))
        add = []
        for mid, m in delta.added.items():
            if mid in known:
                member = known[mid]
                member.attrs = {k: v for k, v in m.items() if k != "value"}
                add.append(member)
        remove = {known[i].pk for i in delta.removed if i in known}
        return MemberChange(replace=add if delta.reset else None, add=[] if delta.reset else add, remove=remove)

    def _body(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidSyntax("request body must be a JSON object")
        return body

    # -- CRUD -----------------------------------------------------------------------------------
    def create(self, type_name: str, body: Any) -> Result:
        rtype = self.rtype(type_name)
        patcher = Patcher(rtype, {})
        patcher.assign_all(self._body(body))
        data = patcher.data
        name = self._name(rtype, data)
        members = self._members(patcher.members) if rtype is GROUP_TYPE else None
        outbox = self.provisioner.entries("create", rtype.name, "", None, data)
        try:  # the store's Uniqueness; the provisioner's (a Keycloak name taken) keeps its own detail
            row = self.store.create(rtype.name, data, name, data.get("externalId"),
                                    members.replace if members else None, outbox=outbox)
        except Uniqueness as e:
            raise Uniqueness(f"a {rtype.name} with this {_unique_attr(rtype)} already exists") from e
        self.provisioner.committed("create", rtype.name, row.id)
        res = self.render(rtype, [row])[0]
        return Result(201, res, res["meta"]["location"])

    def get(self, type_name: str, rid: str, query: Query) -> Result:
        rtype = self.rtype(type_name)
        return Result(200, self.render(rtype, [self._load(rtype, rid)], query)[0])

    def replace(self, type_name: str, rid: str, body: Any, if_match: str | None = None) -> Result:
        rtype = self.rtype(type_name)
        body = self._body(body)
        for _ in range(PATCH_RETRIES):
            row = self._load(rtype, rid)
            _check_if_match(if_match, f'W/"{row.version}"')
            patcher = Patcher(rtype, {})
            patcher.assign_all(body)
            if rtype is GROUP_TYPE and not patcher.members:
                patcher.members.replace([])  # PUT replaces the whole resource (RFC 7644 §3.5.1)
            new = self._write(rtype, row, patcher)
            if new is not None:
                return Result(200, self.render(rtype, [new])[0])
        raise VersionConflict("resource changed concurrently; retry")

    def patch(self, type_name: str, rid: str, body: Any, if_match: str | None = None) -> Result:
        rtype = self.rtype(type_name)
        for _ in range(PATCH_RETRIES):
            row = self._load(rtype, rid)
            _check_if_match(if_match, f'W/"{row.version}"')
            patcher = Patcher(rtype, row.data, current_members=self._current_members(row))
            patcher.patch(body)
            new = self._write(rtype, row, patcher)
            if new is not None:
                return Result(200, self.render(rtype, [new])[0])
        raise VersionConflict("resource changed concurrently; retry")

    def _current_members(self, row: Any) -> Callable[[], list[dict[str, Any]]]:
        return lambda: [self._member_json(m) for m in self.store.members([row.pk])[row.pk]]

    def _write(self, rtype: ResourceType, row: Any, patcher: Patcher) -> Any:
        data = patcher.data
        name = self._name(rtype, data)
        members = self._members(patcher.members) if rtype is GROUP_TYPE and patcher.members else None
        if data == row.data and not members:
            return row  # nothing changed: keep the version (RFC 7644 §3.14 weak ETag)
        outbox = self.provisioner.entries("update", rtype.name, row.id, row.data, data)
        try:  # the store's Uniqueness; the provisioner's (a Keycloak name taken) keeps its own detail
            new = self.store.update(row, data, name, data.get("externalId"), members, outbox=outbox)
        except Uniqueness as e:
            raise Uniqueness(f"a {rtype.name} with this {_unique_attr(rtype)} already exists") from e
        if new is not None:
            self.provisioner.committed("update", rtype.name, row.id)
        return new

    def delete(self, type_name: str, rid: str, if_match: str | None = None) -> Result:
        rtype = self.rtype(type_name)
        for _ in range(PATCH_RETRIES):
            row = self._load(rtype, rid)
            _check_if_match(if_match, f'W/"{row.version}"')
            if self.store.delete(row, outbox=self.provisioner.entries("delete", rtype.name, row.id, row.data,
                                                                      None)):
                self.provisioner.committed("delete", rtype.name, row.id)
                return Result(204, None)
        raise VersionConflict("resource changed concurrently; retry")

    # -- query ----------------------------------------------------------------------------------
    def list(self, type_names: list[str], query: Query) -> Result:
        """Filtered, sorted, paged list over one type, or over several for root searches (§3.4.3)."""
        count = DEFAULT_COUNT if query.count is None else max(0, min(query.count, MAX_COUNT))
        start = query.start_index - 1
        total = 0
        resources: list[dict[str, Any]] = []
        for name in type_names:
            rtype = self.rtype(name)
            try:
                where = flt.resolve(flt.parse(query.filter), rtype) if query.filter else None
                sort = flt.resolve(flt.Present(flt.parse_attr_path(query.sort_by)), rtype).path \
                    if query.sort_by else None
            except InvalidFilter as e:
                if len(type_names) > 1 and "unknown attribute" in e.detail:
                    continue  # root search: a type without that attribute simply has no matches
                raise
            desc = (query.sort_order or "ascending").lower() == "descending"
            sub_start = max(0, start - total)
            sub_total, rows = self.store.search(name, where, sort, desc, sub_start,
                                                count - len(resources))
            total += sub_total
            if rtype is GROUP_TYPE and len(rows) > 1 and _wants(rtype, query, "members"):
                kept = self._within_member_budget(rows)
                if len(kept) < len(rows):
                    rows, count = kept, len(resources) + len(kept)  # a shorter page (RFC 7644 §3.4.2.4)
            resources += self.render(rtype, rows, query)
        return Result(200, {"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": query.start_index,
                            "itemsPerPage": len(resources), "Resources": resources})

    def _within_member_budget(self, rows: list[Any]) -> list[Any]:
        """The leading groups of a page whose members add up to at most MAX_LISTED_MEMBERS (at least one):
        one list request must not load every member of a thousand large groups."""
        counts = self.store.member_counts([r.pk for r in rows])
        kept, seen = [], 0
        for row in rows:
            seen += counts.get(row.pk, 0)
            if kept and seen > MAX_LISTED_MEMBERS:
                break
            kept.append(row)
        return kept

    def search(self, type_names: list[str], body: Any) -> Result:
        """POST …/.search with a SearchRequest (RFC 7644 §3.4.3)."""
        body = self._body(body)
        low = {k.lower(): v for k, v in body.items()}
        return self.list(type_names, Query.from_params(lambda n: low.get(n.lower())))

    # -- discovery (RFC 7644 §4) ----------------------------------------------------------------
    def service_provider_config(self) -> Result:
        return Result(200, {
            "schemas": [SPC_URN],
            "documentationUri": "https://github.com/orgscim/orgscim#readme",
            "patch": {"supported": True},
            "bulk": {"supported": True, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_BULK_PAYLOAD},
            "filter": {"supported": True, "maxResults": MAX_COUNT},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": True},
            "authenticationSchemes": self.auth_schemes,
            "meta": {"resourceType": "ServiceProviderConfig",
                     "location": f"{self.base}/ServiceProviderConfig"},
        })

    def resource_types(self, name: str | None = None) -> Result:
        items = [t.to_json(f"{self.base}/ResourceTypes/{t.name}") for t in RESOURCE_TYPES.values()]
        return self._discovery(items, name, "ResourceType")

    def schemas(self, urn: str | None = None) -> Result:
        items = [s.to_json(f"{self.base}/Schemas/{s.id}") for s in SCHEMAS.values()]
        return self._discovery(items, urn, "Schema")

    def _discovery(self, items: list[dict[str, Any]], wanted: str | None, kind: str) -> Result:
        if wanted is None:
            return Result(200, {"schemas": [LIST_RESPONSE], "totalResults": len(items), "startIndex": 1,
                                "itemsPerPage": len(items), "Resources": items})
        for item in items:
            if item["id"].lower() == wanted.lower():
                return Result(200, item)
        raise NotFound(f"{kind} {wanted} not found")

    # -- bulk (RFC 7644 §3.7) -------------------------------------------------------------------
    def bulk(self, body: Any) -> Result:
        body = self._body(body)
        low = {k.lower(): v for k, v in body.items()}
        ops = low.get("operations")
        if not isinstance(ops, list):
            raise InvalidSyntax("BulkRequest needs an Operations array")
        if len(ops) > MAX_BULK_OPERATIONS:
            raise TooMany(f"at most {MAX_BULK_OPERATIONS} operations per bulk request")
        fail_on = low.get("failonerrors")
        if fail_on is not None and (isinstance(fail_on, bool) or not isinstance(fail_on, int) or fail_on < 1):
            raise InvalidValue("failOnErrors must be a positive integer")
        ids: dict[str, str] = {}
        results: list[dict[str, Any] | None] = [None] * len(ops)
        refs = [_bulk_refs(op) for op in ops]
        errors = 0
        for i, circular in _bulk_order(ops, refs):
            if circular:
                results[i] = _bulk_error(ops[i], UnresolvedReference("circular bulkId references"))
            else:
                results[i] = self._bulk_one(ops[i], ids, refs[i])
            if int(results[i]["status"]) >= 400:  # type: ignore[index]
                errors += 1
                if fail_on is not None and errors >= fail_on:
                    break
        return Result(200, {"schemas": [BULK_RESPONSE], "Operations": [r for r in results if r is not None]})

    def _bulk_one(self, op: Any, ids: dict[str, str], refs: set[str]) -> dict[str, Any]:
        try:
            if len(refs) > MAX_BULK_REFERENCES:
                raise InvalidValue(f"a bulk operation may reference at most {MAX_BULK_REFERENCES} bulkIds")
            if not isinstance(op, dict):
                raise InvalidSyntax("each bulk operation must be an object")
            low = {k.lower(): v for k, v in op.items()}
            method = str(low.get("method") or "").upper()
            path = low.get("path")
            bulk_id = low.get("bulkid")
            if method not in ("POST", "PUT", "PATCH", "DELETE") or not isinstance(path, str):
                raise InvalidSyntax("bulk operations need a method (POST/PUT/PATCH/DELETE) and a path")
            missing = refs - ids.keys()
            if missing:
                raise UnresolvedReference(f"bulkId:{sorted(missing)[0]} is not defined by any operation")
            path = _substitute(path, ids)
            data = _substitute(low.get("data"), ids)
            m = re.fullmatch(r"/(Users|Groups)(?:/([^/]+))?", path.split("?")[0])
            if not m or (method == "POST") == bool(m.group(2)):
                raise NotFound(f"bulk path {path} is not a resource endpoint for {method}")
            type_name = "User" if m.group(1) == "Users" else "Group"
            version = low.get("version")
            if version is not None and not isinstance(version, str):
                raise InvalidValue("version must be a string (the resource's ETag, e.g. W/\"3\")")
            if method == "POST":
                if not isinstance(bulk_id, str) or not bulk_id:
                    raise InvalidSyntax("bulk POST operations need a bulkId")
                res = self.create(type_name, data)
                ids[bulk_id] = res.body["id"]  # type: ignore[index]
            elif method == "PUT":
                res = self.replace(type_name, m.group(2), data, version)
            elif method == "PATCH":
                res = self.patch(type_name, m.group(2), data, version)
            else:
                res = self.delete(type_name, m.group(2), version)
            out: dict[str, Any] = {"method": method, "status": str(res.status)}
            if bulk_id is not None:
                out["bulkId"] = bulk_id
            loc = res.location or (res.body or {}).get("meta", {}).get("location") or (
                f"{self.base}{path}" if method == "DELETE" else None)
            if loc:
                out["location"] = loc
            if res.etag:
                out["version"] = res.etag
            return out
        except ModelError as e:
            return _bulk_error(op, e)
        except Exception:  # a bug must not hide the results of the operations already committed
            log.exception("bulk operation failed unexpectedly")
            return _bulk_failure(op, 500, error_body(500, "internal error in this operation; read the resource to "
                                                          "see whether it was applied"))


def _bulk_error(op: Any, e: ModelError) -> dict[str, Any]:
    """The result of an operation the model refused: its status and Error body (RFC 7644 §3.7.3)."""
    return _bulk_failure(op, status_of(e), model_error_body(e))


def _bulk_failure(op: Any, status: int, response: dict[str, Any]) -> dict[str, Any]:
    low = {k.lower(): v for k, v in op.items()} if isinstance(op, dict) else {}
    out: dict[str, Any] = {"method": str(low.get("method") or ""), "status": str(status), "response": response}
    if low.get("bulkid") is not None:
        out["bulkId"] = low["bulkid"]
    return out


_BULK_REF = re.compile(r"bulkId:([\w.\-]+)")


def _bulk_refs(op: Any) -> set[str]:
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, str):
            found.update(_BULK_REF.findall(x))
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, dict):
            for k, v in x.items():
                if str(k).lower() != "bulkid":
                    walk(v)
    walk(op)
    return found


def _bulk_order(ops: list[Any], refs: list[set[str]]) -> Iterator[tuple[int, bool]]:
    """Operation indexes in run order (RFC 7644 §3.7.2): request order, except that an operation referencing a
    ``bulkId`` defined by another operation runs after it. Linear in the references: each bulkId is indexed
    once. Operations left waiting on a cycle come last, flagged ``True``."""
    definer: dict[str, int] = {}
    for i, op in enumerate(ops):
        bulk_id = _bulk_id(op)
        if isinstance(bulk_id, str):
            definer.setdefault(bulk_id, i)
    waiting = [0] * len(ops)
    dependents: list[list[int]] = [[] for _ in ops]
    for i, wanted in enumerate(refs):
        if len(wanted) > MAX_BULK_REFERENCES:
            continue  # refused when it runs; it waits for nothing
        for d in {definer[r] for r in wanted if r in definer} - {i}:
            waiting[i] += 1
            dependents[d].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    while ready:
        i = heapq.heappop(ready)
        yield i, False
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    for i, n in enumerate(waiting):
        if n:
            yield i, True


def _bulk_id(op: Any) -> Any:
    return next((v for k, v in op.items() if k.lower() == "bulkid"), None) if isinstance(op, dict) else None


def _substitute(x: Any, ids: dict[str, str]) -> Any:
    if isinstance(x, str):
        return _BULK_REF.sub(lambda m: ids.get(m.group(1), m.group(0)), x)
    if isinstance(x, list):
        return [_substitute(v, ids) for v in x]
    if isinstance(x, dict):
        return {k: _substitute(v, ids) for k, v in x.items()}
    return x


def _wants(rtype: ResourceType, query: Query | None, attr: str) -> bool:
    if query is None:
        return True
    if query.attributes:
        return any(a.split(".")[0].split(":")[-1].lower() == attr.lower() for a in query.attributes)
    return not any(a.split(".")[0].split(":")[-1].lower() == attr.lower() and "." not in a.split(":")[-1]
                   for a in query.excluded)


def _unique_attr(rtype: ResourceType) -> str:
    return "userName" if rtype is USER_TYPE else "displayName"

