"""What to enter in each IdP's provisioning settings for one org (the org page shows it; ``docs/idp/`` explains
it at length, and ``tests/test_idp_docs.py`` replays each IdP's requests against an org configured this way).

Values are templates over the org's SCIM base URL (``{base}``); the credential itself is never part of a guide.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Guide:
    slug: str  # docs/idp/<slug>.md
    name: str
    where: str  # where in the IdP's admin console
    fields: tuple[tuple[str, str], ...]  # (field as the IdP labels it, what to enter)
    mappings: tuple[tuple[str, str], ...]  # (IdP attribute, SCIM attribute)
    notes: tuple[str, ...] = ()
    auth_modes: tuple[str, ...] = ("EXTERNAL_SECRET",)

    def render_fields(self, base: str) -> list[tuple[str, str]]:
        return [(label, value.replace("{base}", base)) for label, value in self.fields]


SECRET = "the secret of a credential created on this page (shown once)"
SCIM_MAIL = 'emails[type eq "work"].value'

GUIDES: tuple[Guide, ...] = (
    Guide(
        "okta", "Okta",
        "Admin Console → Applications → your app (App Integration Wizard, SAML 2.0 or OIDC) → General → "
        "Provisioning: SCIM; then the Provisioning tab → Integration",
        (("SCIM connector base URL", "{base}"),
         ("Unique identifier field for users", "userName"),
         ("Supported provisioning actions", "Push New Users, Push Profile Updates, Push Groups"),
         ("Authentication Mode", "HTTP Header"),
         ("Authorization (Bearer)", SECRET),
         ("Provisioning → To App", "enable Create Users, Update User Attributes, Deactivate Users")),
        (("user.login (Username)", "userName"), ("user.firstName", "name.givenName"),
         ("user.lastName", "name.familyName"), ("user.email", SCIM_MAIL), ("user.displayName", "displayName")),
        ("Okta never deletes: Deactivate sends active=false and the user stays readable; orgscim ends the user's "
         "access to this organization only.",
         "With Authentication Mode Basic Auth use auth mode EXTERNAL_BASIC and its username and password."),
        ("EXTERNAL_SECRET", "EXTERNAL_BASIC"),
    ),
    Guide(
        "entra-id", "Microsoft Entra ID",
        "Entra admin center → Enterprise applications → your app → Provisioning → Provisioning Mode: Automatic "
        "→ Admin Credentials",
        (("Tenant URL", "{base}?aadOptscim062020"),
         ("Secret Token", SECRET),
         ("Mappings → Provision Microsoft Entra ID Users", "Enabled; matching attribute userName"),
         ("Mappings → Provision Microsoft Entra ID Groups", "Enabled (optional); matching attribute displayName"),
         ("Settings → Scope", "Sync only assigned users and groups")),
        (("userPrincipalName", "userName"), ("Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", \"False\")",
                                             "active"),
         ("mail", SCIM_MAIL), ("givenName", "name.givenName"), ("surname", "name.familyName"),
         ("displayName", "displayName"), ("objectId", "externalId"), ("displayName (group)", "displayName"),
         ("members (group)", "members")),
        ("?aadOptscim062020 turns on Entra's RFC-compliant PATCH behaviour; orgscim accepts both forms.",
         "For sign-in through the org's Entra IdP with federation link-org-idp, set id_attribute=externalId when "
         "the Keycloak IdP uses the object id as the user id."),
    ),
    Guide(
        "jumpcloud", "JumpCloud",
        "Admin Portal → SSO Applications → your app → Identity Management → Configuration settings: SCIM 2.0",
        (("Base URL", "{base}"),
         ("Token Key", SECRET),
         ("Test Email", "an address that does not exist yet in this organization"),
         ("Group Management", "enabled to push user groups as SCIM groups")),
        (("username", "userName"), ("firstname", "name.givenName"), ("lastname", "name.familyName"),
         ("email", SCIM_MAIL), ("displayname", "displayName")),
        ("JumpCloud sends the token as Authorization: Bearer and removes group members by value list.",),
    ),
    Guide(
        "onelogin", "OneLogin",
        "Administration → Applications → Add App: SCIM Provisioner with SAML (SCIM v2 Enterprise) → Configuration "
        "and Provisioning tabs",
        (("SCIM Base URL", "{base}"),
         ("SCIM Bearer Token", SECRET),
         ("SCIM JSON Template", '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], '
                                '"userName": "{$parameters.scimusername}", "name": {"givenName": '
                                '"{$user.firstname}", "familyName": "{$user.lastname}"}, "emails": [{"value": '
                                '"{$user.email}", "type": "work", "primary": true}]}'),
         ("Provisioning tab", "Enable provisioning; Create user, Delete user, Update user: enabled"),
         ("Parameters → scimusername", "Email (or Username); Include in User Provisioning")),
        (("{$parameters.scimusername}", "userName"), ("{$user.firstname}", "name.givenName"),
         ("{$user.lastname}", "name.familyName"), ("{$user.email}", SCIM_MAIL)),
        ("Unmapped template fields arrive as \"\" and mean unassigned; OneLogin's SCIM 1.0 schema URN is "
         "tolerated.",),
    ),
    Guide(
        "google-workspace", "Google Workspace",
        "Google Workspace provisions only apps from its own catalog; a custom SAML app has no SCIM settings. Use a "
        "SCIM bridge that reads the Directory API and speaks RFC 7644 (as in the generic guide), or let users "
        "arrive through the organization's Google IdP in Keycloak",
        (("SCIM base URL (in the bridge)", "{base}"),
         ("Authorization header (in the bridge)", "Bearer + " + SECRET),
         ("Match users on", "userName = primaryEmail")),
        (("primaryEmail", "userName"), ("name.givenName", "name.givenName"), ("name.familyName", "name.familyName"),
         ("primaryEmail", SCIM_MAIL), ("suspended (negated)", "active"), ("id", "externalId")),
        ("Users who sign in through the org's Google IdP without SCIM become managed members; orgscim leaves them "
         "alone and reports them as unmanaged drift when SCIM does not know them.",),
    ),
    Guide(
        "generic", "Any RFC 7644 client",
        "the client's SCIM 2.0 settings",
        (("Base URL", "{base}"),
         ("Authentication", "Authorization: Bearer <secret> (EXTERNAL_SECRET) or Basic (EXTERNAL_BASIC)"),
         ("Discovery", "{base}/ServiceProviderConfig, {base}/Schemas, {base}/ResourceTypes"),
         ("Match before create", 'GET {base}/Users?filter=userName eq "<name>"')),
        (("login name", "userName"), ("first name", "name.givenName"), ("last name", "name.familyName"),
         ("email", SCIM_MAIL), ("enabled", "active"), ("id at the IdP", "externalId")),
        ("Paging is 1-based startIndex/count (at most 1000 per page); PATCH, Bulk, ETags and /.search are "
         "supported.",),
        ("EXTERNAL_SECRET", "EXTERNAL_BASIC", "EXTERNAL_JWT", "KEYCLOAK"),
    ),
)
