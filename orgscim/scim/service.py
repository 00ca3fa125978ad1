"""The SCIM service of one organization: pure protocol over a resource store (no Flask, no SQL).

RFC 7644 §3.3 (create), §3.4 (retrieve, filter, sort, page, search), §3.5 (PUT, PATCH), §3.6 (DELETE),
§3.14 (versions). Bulk (§3.7) is :mod:`.bulk`, discovery (§4) :mod:`.discovery`. Input follows
conformance/QUIRKS.md; output follows exactly the schemas published by :mod:`orgscim.model.schemas`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from orgscim.model import filter as flt
from orgscim.model.contract import Member, MemberChange, OutboxEntry, Resource, Resources
from orgscim.model.errors import InvalidFilter, InvalidSyntax, InvalidValue, NotFound, Uniqueness, VersionConflict
from orgscim.model.schemas import GROUP_TYPE, LIST_RESPONSE, RESOURCE_TYPES, USER_TYPE, ResourceType
from orgscim.model.types import JSON, JSONValue

from . import limits
from .bulk import run_bulk
from .discovery import Discovery
from .patch import MembersDelta, Patcher
from .query import Query, wants
from .render import project, resource_json
from .result import Result, check_if_match, version_tag

log = logging.getLogger("orgscim.scim")


class Provisioner(Protocol):
    """Turns a SCIM write into outbox entries for Keycloak (none when running standalone); ``committed`` is
    told each write once it is committed with its entries (the web layer may then deliver them inline)."""

    def entries(self, action: str, rtype: str, rid: str, before: JSON | None,
                after: JSON | None) -> list[OutboxEntry]: ...

    def committed(self, action: str, rtype: str, rid: str) -> None: ...


class NoProvisioning:
    def entries(self, action: str, rtype: str, rid: str, before: JSON | None,
                after: JSON | None) -> list[OutboxEntry]:
        return []

    def committed(self, action: str, rtype: str, rid: str) -> None:
        pass


class ScimService:
    """SCIM operations for one org. ``base_url`` is the org's SCIM base, without a trailing slash."""

    def __init__(self, store: Resources, base_url: str, auth_schemes: list[JSON] | None = None,
                 provisioner: Provisioner | None = None) -> None:
        self.store = store
        self.base = base_url.rstrip("/")
        self.provisioner: Provisioner = provisioner or NoProvisioning()
        self.discovery = Discovery(self.base, auth_schemes or [])

    # -- representation -------------------------------------------------------------------------
    @staticmethod
    def rtype(name: str) -> ResourceType:
        return RESOURCE_TYPES[name]

    def location(self, rtype: ResourceType, rid: str) -> str:
        return f"{self.base}{rtype.endpoint}/{rid}"

    def render(self, rtype: ResourceType, rows: list[Resource], query: Query | None = None,
               created: bool = False) -> list[JSON]:
        """Rows → SCIM JSON; members/groups fetched for the whole page in one query each (``created``: rows
        this request made, which no group can hold yet)."""
        want = wants(query, "members" if rtype is GROUP_TYPE else "groups")
        pks = [r.pk for r in rows]
        members = self.store.members(pks) if want and rtype is GROUP_TYPE else {}
        groups = self.store.groups_of(pks) if want and rtype is not GROUP_TYPE and not created else {}
        out = []
        for row in rows:
            data = dict(row.data)
            if members.get(row.pk):
                data["members"] = [_member_json(m) for m in members[row.pk]]
            elif groups.get(row.pk):
                data["groups"] = [{"value": gid, "$ref": self.location(GROUP_TYPE, gid), "display": name,
                                   "type": "direct"} for gid, name in groups[row.pk]]
            meta = {"resourceType": rtype.name, "created": row.created, "lastModified": row.modified,
                    "location": self.location(rtype, row.id), "version": version_tag(row.version)}
            res = resource_json(rtype, row.id, data, meta)
            out.append(project(res, rtype, query.attributes, query.excluded) if query else res)
        return out

    def _load(self, rtype: ResourceType, rid: str) -> Resource:
        row = self.store.get(rtype.name, rid) if isinstance(rid, str) else None
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return row

    def _members(self, delta: MembersDelta) -> MemberChange:
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

    # -- CRUD -----------------------------------------------------------------------------------
    def create(self, type_name: str, body: JSONValue) -> Result:
        rtype = self.rtype(type_name)
        patcher = Patcher(rtype, {})
        patcher.assign_all(_object(body))
        data = patcher.data
        name = _name(rtype, data)
        members = self._members(patcher.members) if rtype is GROUP_TYPE else None
        outbox = self.provisioner.entries("create", rtype.name, "", None, data)
        try:  # the store's Uniqueness; the provisioner's (a Keycloak name taken) keeps its own detail
            row = self.store.create(rtype.name, data, name, data.get("externalId"),
                                    members.replace if members else None, outbox=outbox)
        except Uniqueness as e:
            raise Uniqueness(f"a {rtype.name} with this {_unique_attr(rtype)} already exists") from e
        self.provisioner.committed("create", rtype.name, row.id)
        res = self.render(rtype, [row], created=True)[0]
        return Result(201, res, res["meta"]["location"])

    def get(self, type_name: str, rid: str, query: Query) -> Result:
        rtype = self.rtype(type_name)
        return Result(200, self.render(rtype, [self._load(rtype, rid)], query)[0])

    def replace(self, type_name: str, rid: str, body: JSONValue, if_match: str | None = None) -> Result:
        rtype = self.rtype(type_name)
        body = _object(body)
        for _ in range(limits.PATCH_RETRIES):
            row = self._load(rtype, rid)
            check_if_match(if_match, version_tag(row.version))
            patcher = Patcher(rtype, {})
            patcher.assign_all(body)
            if rtype is GROUP_TYPE and not patcher.members:
                patcher.members.replace([])  # PUT replaces the whole resource (RFC 7644 §3.5.1)
            new = self._write(rtype, row, patcher)
            if new is not None:
                return Result(200, self.render(rtype, [new])[0])
        raise VersionConflict("resource changed concurrently; retry")

    def patch(self, type_name: str, rid: str, body: JSONValue, if_match: str | None = None) -> Result:
        rtype = self.rtype(type_name)
        for _ in range(limits.PATCH_RETRIES):
            row = self._load(rtype, rid)
            check_if_match(if_match, version_tag(row.version))
            patcher = Patcher(rtype, row.data, current_members=self._current_members(row))
            patcher.patch(body)
            new = self._write(rtype, row, patcher)
            if new is not None:
                return Result(200, self.render(rtype, [new])[0])
        raise VersionConflict("resource changed concurrently; retry")

    def _current_members(self, row: Resource) -> Callable[[], list[JSON]]:
        return lambda: [_member_json(m) for m in self.store.members([row.pk])[row.pk]]

    def _write(self, rtype: ResourceType, row: Resource, patcher: Patcher) -> Resource | None:
        data = patcher.data
        name = _name(rtype, data)
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
        for _ in range(limits.PATCH_RETRIES):
            row = self._load(rtype, rid)
            check_if_match(if_match, version_tag(row.version))
            if self.store.delete(row, outbox=self.provisioner.entries("delete", rtype.name, row.id, row.data,
                                                                      None)):
                self.provisioner.committed("delete", rtype.name, row.id)
                return Result(204, None)
        raise VersionConflict("resource changed concurrently; retry")

    # -- query ----------------------------------------------------------------------------------
    def search(self, type_names: list[str], query: Query) -> Result:
        """Filtered, sorted, paged list over one type, or over several for root searches (§3.4.3)."""
        count = limits.DEFAULT_COUNT if query.count is None else max(0, min(query.count, limits.MAX_COUNT))
        start = query.start_index - 1
        total = 0
        resources: list[JSON] = []
        for name in type_names:
            rtype = self.rtype(name)
            try:
                where = flt.resolve(flt.parse(query.filter), rtype) if query.filter else None
                sort = flt.resolve_path(query.sort_by, rtype) if query.sort_by else None
            except InvalidFilter as e:
                if len(type_names) > 1 and "unknown attribute" in e.detail:
                    continue  # root search: a type without that attribute simply has no matches
                raise
            desc = (query.sort_order or "ascending").lower() == "descending"
            sub_start = max(0, start - total)
            sub_total, rows = self.store.search(name, where, sort, desc, sub_start, count - len(resources))
            total += sub_total
            if rtype is GROUP_TYPE and len(rows) > 1 and wants(query, "members"):
                kept = self._within_member_budget(rows)
                if len(kept) < len(rows):
                    rows, count = kept, len(resources) + len(kept)  # a shorter page (RFC 7644 §3.4.2.4)
            resources += self.render(rtype, rows, query)
        return Result(200, {"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": query.start_index,
                            "itemsPerPage": len(resources), "Resources": resources})

    def _within_member_budget(self, rows: list[Resource]) -> list[Resource]:
        """The leading groups of a page whose members add up to at most MAX_LISTED_MEMBERS (at least one):
        one list request must not load every member of a thousand large groups."""
        counts = self.store.member_counts([r.pk for r in rows])
        kept: list[Resource] = []
        seen = 0
        for row in rows:
            seen += counts.get(row.pk, 0)
            if kept and seen > limits.MAX_LISTED_MEMBERS:
                break
            kept.append(row)
        return kept

    def search_request(self, type_names: list[str], body: JSONValue) -> Result:
        """POST …/.search with a SearchRequest (RFC 7644 §3.4.3)."""
        low = {k.lower(): v for k, v in _object(body).items()}
        return self.search(type_names, Query.from_params(lambda n: low.get(n.lower())))

    # -- discovery (RFC 7644 §4) and bulk (§3.7) --------------------------------------------------
    def service_provider_config(self) -> Result:
        return self.discovery.service_provider_config()

    def resource_types(self, name: str | None = None) -> Result:
        return self.discovery.resource_types(name)

    def schemas(self, urn: str | None = None) -> Result:
        return self.discovery.schemas(urn)

    def bulk(self, body: JSONValue) -> Result:
        return run_bulk(self, _object(body))


def _object(body: JSONValue) -> JSON:
    if not isinstance(body, dict):
        raise InvalidSyntax("request body must be a JSON object")
    return body


def _member_json(m: Member) -> JSON:
    return {"value": m.id, **m.attrs}


def _name(rtype: ResourceType, data: JSON) -> str:
    key = _unique_attr(rtype)
    name = data.get(key)
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue(f"{key} is required" if key not in data else f"{key} must be a non-empty string")
    return name


def _unique_attr(rtype: ResourceType) -> str:
    return "userName" if rtype is USER_TYPE else "displayName"
