"""Host header validation (``ALLOWED_HOSTS``): URLs orgscim builds from the request (``meta.location`` and the
admin login's ``redirect_uri`` when ``PUBLIC_BASE_URL`` is unset) must not come from a Host a client made up.

Allowed: the names in ``ALLOWED_HOSTS`` (a list or a comma-separated string; ``.example.com`` matches its
subdomains; ``*`` allows any), plus always the loopback names and the host of ``PUBLIC_BASE_URL``. Anything
else is a 400 before routing. ``/healthz`` and ``/readyz`` answer whatever the Host (load-balancer probes use
addresses). With ``TRUSTED_PROXIES`` the host checked is the proxy's ``X-Forwarded-Host``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request

from ..config import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})
HOST = re.compile(r"(?P<name>[a-z0-9.-]+|\[(?P<v6>[a-f0-9:.]+)\])(?::[0-9]{1,5})?", re.IGNORECASE)


def allowed_hosts(config: Settings) -> list[str] | None:
    """The host names to accept, or None for any (``ALLOWED_HOSTS`` holds ``*``)."""
    raw = config.get("ALLOWED_HOSTS") or []
    names = [n.strip() for n in (raw.split(",") if isinstance(raw, str) else raw) if str(n).strip()]
    if "*" in names:
        return None
    public = urlsplit(str(config.get("PUBLIC_BASE_URL") or "")).hostname
    return [*LOOPBACK_NAMES, *([public] if public else []), *names]


def trusted(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (a Host header, ``name[:port]`` or ``[v6]:port``) names one of ``allowed``."""
    m = HOST.fullmatch(host or "")
    if m is None:
        return False
    name = (m.group("v6") or m.group("name")).lower()
    for ref in (a.strip("[]").lower() for a in allowed):
        if name == ref or (ref.startswith(".") and name.endswith(ref)):
            return True
    return False


def init_app(app: Flask) -> None:
    allowed = allowed_hosts(app.config)
    if allowed is None:
        return

    @app.before_request
    def check_host() -> tuple[Response, int] | None:
        if request.path in UNCHECKED_PATHS or trusted(request.host, allowed):
            return None
        resp = jsonify(error="untrusted_host", detail="this Host is not served here; the operator sets "
                       "ALLOWED_HOSTS or PUBLIC_BASE_URL (README, Configuration)")
        resp.headers["Cache-Control"] = "no-store"
        return resp, 400
