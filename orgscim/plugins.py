"""Plugin discovery through entry points (DESIGN §5, §6).

Built-in auth modes and federation behaviours in ``plugins/`` are registered in ``pyproject.toml`` under
the same entry-point groups a third-party package would use; nothing here knows their names.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

AUTH_GROUP = "orgscim.auth_modes"
FEDERATION_GROUP = "orgscim.federation"


@cache
def load(group: str) -> dict[str, Any]:
    """Name → loaded object for every entry point of ``group``."""
    return {ep.name: ep.load() for ep in entry_points(group=group)}


def auth_modes() -> dict[str, Any]:
    return load(AUTH_GROUP)


def federation_plugins() -> dict[str, Any]:
    return load(FEDERATION_GROUP)
