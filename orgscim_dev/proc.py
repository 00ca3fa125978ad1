"""What ``/proc`` says of a process (Linux): the tests' and benchmarks' memory figures."""

from __future__ import annotations

from pathlib import Path


def vm_kib(pid: int, key: str) -> int | None:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``: the peak RSS of the process since its
    exec); None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None
