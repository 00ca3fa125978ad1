"""Bulk (RFC 7644 §3.7): operations in dependency order, ``bulkId`` references, ``failOnErrors`` and the
status of each operation (§3.7.3)."""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import Iterator
from typing import Protocol

from orgscim.model.errors import InvalidSyntax, InvalidValue, ModelError, NotFound, TooMany, UnresolvedReference
from orgscim.model.schemas import BULK_RESPONSE
from orgscim.model.types import JSON, JSONValue

from . import limits
from .errors import error_body, model_error_body, status_of
from .result import Result

log = logging.getLogger("orgscim.scim")

_BULK_REF = re.compile(r"bulkId:([\w.\-]+)")


class Writes(Protocol):
    """The writes a Bulk request may hold (:class:`~orgscim.scim.service.ScimService` offers them)."""

    @property
    def base(self) -> str: ...
    def create(self, type_name: str, body: JSONValue) -> Result: ...
    def replace(self, type_name: str, rid: str, body: JSONValue, if_match: str | None = None) -> Result: ...
    def patch(self, type_name: str, rid: str, body: JSONValue, if_match: str | None = None) -> Result: ...
    def delete(self, type_name: str, rid: str, if_match: str | None = None) -> Result: ...


def run_bulk(service: Writes, body: JSON) -> Result:
    """Run a BulkRequest's operations against *service*; the BulkResponse lists each operation's outcome."""
    low = {k.lower(): v for k, v in body.items()}
    ops = low.get("operations")
    if not isinstance(ops, list):
        raise InvalidSyntax("BulkRequest needs an Operations array")
    if len(ops) > limits.MAX_BULK_OPERATIONS:
        raise TooMany(f"at most {limits.MAX_BULK_OPERATIONS} operations per bulk request")
    fail_on = low.get("failonerrors")
    if fail_on is not None and (isinstance(fail_on, bool) or not isinstance(fail_on, int) or fail_on < 1):
        raise InvalidValue("failOnErrors must be a positive integer")
    ids: dict[str, str] = {}
    results: list[JSON | None] = [None] * len(ops)
    refs = [_bulk_refs(op) for op in ops]
    errors = 0
    for i, circular in _bulk_order(ops, refs):
        if circular:
            result = _bulk_error(ops[i], UnresolvedReference("circular bulkId references"))
        else:
            result = _bulk_one(service, ops[i], ids, refs[i])
        results[i] = result
        if int(result["status"]) >= 400:
            errors += 1
            if fail_on is not None and errors >= fail_on:
                break
    return Result(200, {"schemas": [BULK_RESPONSE], "Operations": [r for r in results if r is not None]})


def _bulk_one(service: Writes, op: JSONValue, ids: dict[str, str], refs: set[str]) -> JSON:
    try:
        if len(refs) > limits.MAX_BULK_REFERENCES:
            raise InvalidValue(f"a bulk operation may reference at most {limits.MAX_BULK_REFERENCES} bulkIds")
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
            res = service.create(type_name, data)
            ids[bulk_id] = (res.body or {})["id"]
        elif method == "PUT":
            res = service.replace(type_name, m.group(2), data, version)
        elif method == "PATCH":
            res = service.patch(type_name, m.group(2), data, version)
        else:
            res = service.delete(type_name, m.group(2), version)
        out: JSON = {"method": method, "status": str(res.status)}
        if bulk_id is not None:
            out["bulkId"] = bulk_id
        loc = res.location or (res.body or {}).get("meta", {}).get("location") or (
            f"{service.base}{path}" if method == "DELETE" else None)
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


def _bulk_error(op: JSONValue, e: ModelError) -> JSON:
    """The result of an operation the model refused: its status and Error body (RFC 7644 §3.7.3)."""
    return _bulk_failure(op, status_of(e), model_error_body(e))


def _bulk_failure(op: JSONValue, status: int, response: JSON) -> JSON:
    low = {k.lower(): v for k, v in op.items()} if isinstance(op, dict) else {}
    out: JSON = {"method": str(low.get("method") or ""), "status": str(status), "response": response}
    if low.get("bulkid") is not None:
        out["bulkId"] = low["bulkid"]
    return out


def _bulk_refs(op: JSONValue) -> set[str]:
    found: set[str] = set()

    def walk(x: JSONValue) -> None:
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


def _bulk_order(ops: list[JSONValue], refs: list[set[str]]) -> Iterator[tuple[int, bool]]:
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
        if len(wanted) > limits.MAX_BULK_REFERENCES:
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


def _bulk_id(op: JSONValue) -> JSONValue:
    return next((v for k, v in op.items() if k.lower() == "bulkid"), None) if isinstance(op, dict) else None


def _substitute(x: JSONValue, ids: dict[str, str]) -> JSONValue:
    if isinstance(x, str):
        return _BULK_REF.sub(lambda m: ids.get(m.group(1), m.group(0)), x)
    if isinstance(x, list):
        return [_substitute(v, ids) for v in x]
    if isinstance(x, dict):
        return {k: _substitute(v, ids) for k, v in x.items()}
    return x
