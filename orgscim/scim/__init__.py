"""SCIM 2.0 protocol rules (RFC 7643 / RFC 7644), apart from storage and from the web layer."""
