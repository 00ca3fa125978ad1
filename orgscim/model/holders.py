"""Lease holders (:class:`orgscim.model.contract.Leases`): who holds a lease, and whether it still can.

A holder is ``host:pid`` (a process) or ``host:pid:token`` (a thread or a run of its own). Every backend takes
over a lease at once when its holder is a process of this host that is gone, so the format is part of the
contract, made and read only here.
"""

from __future__ import annotations

import os
import secrets
import socket


def process_holder() -> str:
    """This process as a lease holder (``host:pid``): leases it keeps across runs of a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_holder() -> str:
    """A new holder of this process (``host:pid:token``): a thread, or one run, of its own."""
    return f"{process_holder()}:{secrets.token_hex(8)}"


def holder_alive(holder: str) -> bool:
    """False when ``holder`` names a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
