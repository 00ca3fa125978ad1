"""The schemas orgscim publishes (RFC 7643 §4, §7, §8.7) and case-insensitive lookup over them.

What ``/Schemas`` publishes is exactly what the server stores and returns: every attribute listed here
round-trips, and nothing else is ever returned (RFC 7643 §7; conformance/QUIRKS.md "Responses").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import JSON

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


@dataclass(frozen=True)
class Attr:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: str = "string"
    multi: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    canonical: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    subs: tuple[Attr, ...] = ()
    _by_lower: dict[str, Attr] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({s.name.lower(): s for s in self.subs})

    def sub(self, name: str) -> Attr | None:
        """Sub-attribute by case-insensitive name (RFC 7644 §3.10: attribute names are case-insensitive)."""
        return self._by_lower.get(name.lower())

    @property
    def complex(self) -> bool:
        return self.type == "complex"

    def to_json(self) -> JSON:
        out: JSON = {
            "name": self.name, "type": self.type, "multiValued": self.multi,
            "description": self.description or self.name, "required": self.required,
        }
        if self.type in ("string", "reference", "binary"):
            out["caseExact"] = self.case_exact
        if self.canonical:
            out["canonicalValues"] = list(self.canonical)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        out.update(mutability=self.mutability, returned=self.returned, uniqueness=self.uniqueness)
        if self.subs:
            out["subAttributes"] = [s.to_json() for s in self.subs]
        return out


@dataclass(frozen=True)
class Schema:
    """A schema: its URN, name and top-level attributes."""

    id: str
    name: str
    description: str
    attrs: tuple[Attr, ...]
    _by_lower: dict[str, Attr] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({a.name.lower(): a for a in self.attrs})

    def attr(self, name: str) -> Attr | None:
        return self._by_lower.get(name.lower())

    def to_json(self, location: str) -> JSON:
        return {
            "schemas": [SCHEMA_URN], "id": self.id, "name": self.name, "description": self.description,
            "attributes": [a.to_json() for a in self.attrs],
            "meta": {"resourceType": "Schema", "location": location},
        }


def _s(name: str, **kw: Any) -> Attr:
    return Attr(name, **kw)


def _multi(name: str, types: tuple[str, ...], value_type: str = "string",
           refs: tuple[str, ...] = (), desc: str = "") -> Attr:
    """The usual {value, display, type, primary} multi-valued complex attribute (RFC 7643 §2.4)."""
    return Attr(name, "complex", multi=True, description=desc, subs=(
        Attr("value", value_type, reference_types=refs, description=f"{name} value"),
        Attr("display", description="A human-readable name, primarily used for display purposes."),
        Attr("type", canonical=types, description="A label indicating the attribute's function."),
        Attr("primary", "boolean", description="Indicates the primary value; at most one is true."),
    ))


USER_SCHEMA = Schema(USER, "User", "User Account", (
    _s("userName", required=True, uniqueness="server",
       description="Unique identifier for the User, typically used to authenticate."),
    Attr("name", "complex", description="The components of the user's real name.", subs=tuple(
        _s(n) for n in ("formatted", "familyName", "givenName", "middleName", "honorificPrefix",
                        "honorificSuffix"))),
    _s("displayName"), _s("nickName"),
    _s("profileUrl", type="reference", reference_types=("external",)),
    _s("title"), _s("userType"), _s("preferredLanguage"), _s("locale"), _s("timezone"),
    _s("active", type="boolean"),
    _multi("emails", ("work", "home", "other"), desc="Email addresses for the user."),
    _multi("phoneNumbers", ("work", "home", "mobile", "fax", "pager", "other"),
           desc="Phone numbers for the User."),
    _multi("ims", ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
           desc="Instant messaging addresses for the User."),
    _multi("photos", ("photo", "thumbnail"), value_type="reference", refs=("external",),
           desc="URLs of photos of the User."),
    Attr("addresses", "complex", multi=True, description="A physical mailing address for this User.",
         subs=tuple(_s(n) for n in ("formatted", "streetAddress", "locality", "region", "postalCode",
                                     "country")) + (
             _s("type", canonical=("work", "home", "other")), _s("primary", type="boolean"))),
    Attr("groups", "complex", multi=True, mutability="readOnly",
         description="Groups to which the user belongs (read-only; change membership on the Group).",
         subs=(
             Attr("value", mutability="readOnly", description="The id of the Group."),
             Attr("$ref", "reference", mutability="readOnly", reference_types=("Group",),
                  description="The URI of the Group."),
             Attr("display", mutability="readOnly", description="The displayName of the Group."),
             Attr("type", mutability="readOnly", canonical=("direct", "indirect"),
                  description="How the membership was derived."),
         )),
    _multi("entitlements", (), desc="Entitlements of the User."),
    _multi("roles", (), desc="Roles of the User."),
    _multi("x509Certificates", (), value_type="binary", desc="X.509 certificates of the User."),
))

ENTERPRISE_SCHEMA = Schema(ENTERPRISE, "EnterpriseUser", "Enterprise User", (
    _s("employeeNumber"), _s("costCenter"), _s("organization"), _s("division"), _s("department"),
    Attr("manager", "complex", description="The User's manager.", subs=(
        Attr("value", description="The id of the SCIM resource representing the User's manager."),
        Attr("$ref", "reference", reference_types=("User",), description="The URI of the manager."),
        Attr("displayName", mutability="readOnly", description="The displayName of the manager."),
    )),
))

GROUP_SCHEMA = Schema(GROUP, "Group", "Group", (
    _s("displayName", required=True, uniqueness="server",
       description="A human-readable name for the Group."),
    Attr("members", "complex", multi=True, description="A list of members of the Group.", subs=(
        Attr("value", mutability="immutable", description="Identifier of the member."),
        Attr("$ref", "reference", mutability="immutable", reference_types=("User", "Group"),
             description="The URI of the member."),
        Attr("type", mutability="immutable", canonical=("User", "Group"),
             description="The type of the member."),
        Attr("display", mutability="immutable", description="A human-readable name of the member."),
    )),
))


@dataclass(frozen=True)
class ResourceType:
    """A resource type (RFC 7643 §6)."""

    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    def schema_for(self, urn: str) -> Schema | None:
        urn = urn.lower()
        for s in (self.schema, *self.extensions):
            if s.id.lower() == urn:
                return s
        return None

    @property
    def all_schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def to_json(self, location: str) -> JSON:
        return {
            "schemas": [RESOURCE_TYPE_URN], "id": self.name, "name": self.name,
            "description": self.schema.description, "endpoint": self.endpoint,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


USER_TYPE = ResourceType("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA,))
GROUP_TYPE = ResourceType("Group", "/Groups", GROUP_SCHEMA)
RESOURCE_TYPES: dict[str, ResourceType] = {"User": USER_TYPE, "Group": GROUP_TYPE}
SCHEMAS: dict[str, Schema] = {s.id: s for s in (USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA)}

# Attributes every resource has outside its schema's attribute list (RFC 7643 §3.1).
COMMON = ("id", "externalId", "meta", "schemas")
META_SUBS = ("resourceType", "created", "lastModified", "location", "version")


def schema_by_urn(urn: str) -> Schema | None:
    for s in SCHEMAS.values():
        if s.id.lower() == urn.lower():
            return s
    return None
