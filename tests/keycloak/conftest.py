"""Tests against a real Keycloak; the fixtures (``keycloak``, ``kc_admin``, ``acme``, ``temp_org``,
``scim_for`` …) live in ``tests/fixtures_keycloak.py`` and are registered by the top-level ``conftest.py``."""
