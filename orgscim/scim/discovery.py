"""Service discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas of one org's base URL."""

from __future__ import annotations

from orgscim.model.errors import NotFound
from orgscim.model.schemas import LIST_RESPONSE, RESOURCE_TYPES, SCHEMAS, SPC_URN
from orgscim.model.types import JSON

from .limits import MAX_BULK_OPERATIONS, MAX_BULK_PAYLOAD, MAX_COUNT
from .result import Result


class Discovery:
    """The discovery endpoints of one org; ``base`` is its SCIM base URL without a trailing slash and
    ``auth_schemes`` the ``authenticationSchemes`` of its auth mode (RFC 7643 §5)."""

    def __init__(self, base: str, auth_schemes: list[JSON]) -> None:
        self.base = base
        self.auth_schemes = auth_schemes

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
        return _listed(items, name, "ResourceType")

    def schemas(self, urn: str | None = None) -> Result:
        items = [s.to_json(f"{self.base}/Schemas/{s.id}") for s in SCHEMAS.values()]
        return _listed(items, urn, "Schema")


def _listed(items: list[JSON], wanted: str | None, kind: str) -> Result:
    """All items as a ListResponse, or the one whose id is *wanted* (case-insensitively)."""
    if wanted is None:
        return Result(200, {"schemas": [LIST_RESPONSE], "totalResults": len(items), "startIndex": 1,
                            "itemsPerPage": len(items), "Resources": items})
    for item in items:
        if item["id"].lower() == wanted.lower():
            return Result(200, item)
    raise NotFound(f"{kind} {wanted} not found")
