"""Long ``IN (…)`` lists in batches: SQLite caps the parameters of one statement (999 before 3.32)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

BATCH = 500


def chunks(items: Sequence[T], size: int = BATCH) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, in order."""
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def marks(items: Sequence[object]) -> str:
    """The ``?, ?, …`` placeholders of an ``IN (…)`` list of ``items``."""
    return ",".join("?" * len(items))
