"""What delivery raises when a change can never be applied."""

from __future__ import annotations

from orgscim.model.types import JSONValue


class Refused(Exception):
    """Keycloak (or a rule of orgscim) permanently refuses this change; it becomes drift (``kind``, with what
    orgscim expected and what it found). ``on_create``: refused while creating the resource."""

    def __init__(self, kind: str, detail: str, expected: JSONValue = None, actual: JSONValue = None,
                 on_create: bool = False) -> None:
        super().__init__(detail)
        self.kind, self.expected, self.actual, self.on_create = kind, expected, actual, on_create
