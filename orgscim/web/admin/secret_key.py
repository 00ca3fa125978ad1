"""The key that signs the admin session cookie when the config sets no ``SECRET_KEY``: generated once into
``<instance>/secret_key`` (mode 0600) and shared by every process of the instance."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SECRET_KEY_FILE = "secret_key"


def instance_secret_key(folder: Path) -> str:
    """The key in ``folder/secret_key``, created (0600, 256 random bits) by the first process that needs it."""
    path = folder / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        # another process is writing it right now
        for _ in range(50):
            time.sleep(0.05)
            key = path.read_text().strip()
            if key:
                return key
        raise RuntimeError(f"{path} is empty: delete it and restart orgscim") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
