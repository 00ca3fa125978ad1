"""Keeping Keycloak in step with SCIM state (DESIGN §4): mapping, outbox entries, delivery."""
