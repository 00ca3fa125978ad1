"""HTTP surfaces: the per-org SCIM blueprint and operations endpoints."""
