"""Issue #4: what authentication costs per request, and what a flood of wrong secrets costs (DESIGN §5).

Builds a throw-away instance (temp folder, migrated SQLite, realm ``bench`` on) with one org per auth mode plus
a baseline org whose mode accepts every request without looking at it, and drives the real Flask app in-process
(the test client: no sockets, so the differences are the auth path and nothing else):

1. **Warm-cache overhead.** ``GET /ServiceProviderConfig`` under the baseline mode, ``EXTERNAL_SECRET``,
   ``EXTERNAL_BASIC`` and ``EXTERNAL_JWT`` (RS256, keys cached), interleaved in rounds so drift hits all alike.
   The baseline org bypasses the whole auth path (throttle, plugin, audit log). Reports the median per-request
   time of each mode and its overhead over the baseline in the same run (target for the issued-credential
   modes: < 0.5 ms). The audit log goes to a real handler (``/dev/null``), so formatting is counted.
2. **Wrong-secret flood.** CPU time (``time.process_time``) of 1,000 requests carrying a wrong secret with the
   *right* credential id (the worst case: each would cost one Argon2id verification) from one address,
   against the CPU time of 20 bare Argon2id verifications. Target: ratio <= ~1.

    .venv/bin/python bench/auth_overhead.py [--rounds 30] [--per-round 200] [--flood 1000]
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from orgscim.app import create_app
from orgscim.auth import AuthContext, AuthRequest, Outcome, Principal
from orgscim.model.contract import Org
from orgscim.store.db import Database

REALM = "bench"
PATH = "/ServiceProviderConfig"
JWKS_URI = "https://idp.bench.invalid/jwks"
ISSUER = "https://idp.bench.invalid"


class Baseline:
    """An auth mode that accepts everything without looking: the request without authentication."""

    name = "BASELINE"

    def authenticate(self, org: Org, req: AuthRequest) -> Principal:
        return Principal(self.name)

    def schemes(self, org: Org) -> list[dict[str, Any]]:
        return []


def bypass_for_baseline(ctx: AuthContext) -> None:
    """The baseline org skips the whole auth path (throttle, plugin, audit), not just the plugin."""
    wrapped = ctx.authenticate

    def authenticate(mode: Any, org: Org, req: AuthRequest) -> Outcome:
        if org.auth_mode == Baseline.name:
            return Outcome(Principal(Baseline.name))
        return wrapped(mode, org, req)

    ctx.authenticate = authenticate  # type: ignore[method-assign]


def rsa_jwk() -> tuple[str, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, {**jwk.construct(public, "RS256").to_dict(), "kid": "bench-1", "use": "sig"}


def setup(folder: Path) -> tuple[Any, Any, dict[str, str]]:
    """The app, its services and the Authorization header of each org (org id = mode name)."""
    db_path = folder / "orgscim.sqlite3"
    Database(db_path).upgrade()
    app = create_app({"TESTING": True, "DATABASE": str(db_path), "AUTH_CACHE_SECONDS": 3600})
    services = app.extensions["orgscim"]
    services.orgs.set_realm(REALM, True)
    services._modes["BASELINE"] = Baseline()
    bypass_for_baseline(services.auth_ctx)
    services.orgs.upsert_org(REALM, "BASELINE", "BASELINE", {})
    headers: dict[str, str] = {"BASELINE": "Bearer anything"}

    secret_org = services.configure_org(REALM, "EXTERNAL_SECRET", "EXTERNAL_SECRET")
    headers["EXTERNAL_SECRET"] = "Bearer " + services.auth_mode("EXTERNAL_SECRET").issue(secret_org).secret
    basic_org = services.configure_org(REALM, "EXTERNAL_BASIC", "EXTERNAL_BASIC")
    issued = services.auth_mode("EXTERNAL_BASIC").issue(basic_org)
    headers["EXTERNAL_BASIC"] = "Basic " + base64.b64encode(f"{issued.username}:{issued.secret}".encode()).decode()

    pem, public = rsa_jwk()
    services.auth_ctx.jwks.fetcher = lambda uri: {public["kid"]: public}
    services.configure_org(REALM, "EXTERNAL_JWT", "EXTERNAL_JWT",
                           {"issuer": ISSUER, "jwks_uri": JWKS_URI, "audience": "bench"})
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": "bench", "sub": "bench", "iat": now, "exp": now + 3600}, pem,
                       algorithm="RS256", headers={"kid": public["kid"]})
    headers["EXTERNAL_JWT"] = f"Bearer {token}"
    return app, services, headers


def url(org: str) -> str:
    return f"/realms/{REALM}/scim/v2/organizations/{org}{PATH}"


def overhead(app: Any, headers: dict[str, str], rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per request for each org, over ``rounds`` interleaved rounds of ``per_round`` requests."""
    client = app.test_client()
    for org, header in headers.items():  # warm-up: fills the verified cache, JWKS, code paths
        for _ in range(50):
            resp = client.get(url(org), headers={"Authorization": header})
            assert resp.status_code == 200, (org, resp.status_code, resp.get_data(as_text=True))
    samples: dict[str, list[float]] = {org: [] for org in headers}
    for r in range(rounds):
        order = list(headers) if r % 2 == 0 else list(reversed(headers))
        for org in order:
            hdrs = {"Authorization": headers[org]}
            target = url(org)
            start = time.perf_counter()
            for _ in range(per_round):
                client.get(target, headers=hdrs)
            samples[org].append((time.perf_counter() - start) / per_round)
    return {org: statistics.median(s) for org, s in samples.items()}


def flood(app: Any, services: Any, header: str, n: int) -> tuple[float, dict[int, int], float]:
    """CPU seconds of ``n`` wrong secrets (right credential id) from one address; statuses; 20 Argon2id."""
    wrong = header[:-6] + ("zzzzzz" if not header.endswith("zzzzzz") else "yyyyyy")
    client = app.test_client()
    statuses: dict[int, int] = {}
    start = time.process_time()
    for _ in range(n):
        code = client.get(url("EXTERNAL_SECRET"), headers={"Authorization": wrong},
                          environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code
        statuses[code] = statuses.get(code, 0) + 1
    flood_cpu = time.process_time() - start
    org = services.orgs.org(REALM, "EXTERNAL_SECRET")
    (cred,) = services.orgs.credentials(org.pk)
    start = time.process_time()
    for _ in range(20):
        try:
            services.auth_ctx.hasher.verify(cred.hash, wrong[len("Bearer "):])
        except VerificationError:
            pass
    return flood_cpu, statuses, time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--flood", type=int, default=1000)
    args = parser.parse_args()

    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    logging.getLogger("orgscim").addHandler(sink)
    with tempfile.TemporaryDirectory(prefix="orgscim-bench-auth-") as tmp:
        app, services, headers = setup(Path(tmp))
        print(f"# auth_overhead: Python {platform.python_version()}, {platform.machine()}, "
              f"{os.cpu_count()} CPUs; GET {PATH} via the Flask test client")
        print(f"# {args.rounds} interleaved rounds x {args.per_round} requests per mode; warm caches")
        medians = overhead(app, headers, args.rounds, args.per_round)
        base = medians["BASELINE"]
        print(f"{'mode':<18}{'ms/request':>12}{'overhead ms':>13}{'ratio':>8}")
        for org, m in medians.items():
            print(f"{org:<18}{m * 1e3:>12.3f}{(m - base) * 1e3:>13.3f}{m / base:>8.2f}")
        worst = max(medians["EXTERNAL_SECRET"], medians["EXTERNAL_BASIC"]) - base
        print(f"issued-credential modes add at most {worst * 1e3:.3f} ms/request over the baseline "
              f"(target < 0.5 ms): {'OK' if worst < 0.5e-3 else 'OVER'}")

        flood_cpu, statuses, argon_cpu = flood(app, services, headers["EXTERNAL_SECRET"], args.flood)
        throttle = services.auth_ctx.throttle
        print(f"\n# {args.flood} wrong secrets (right credential id) from one address; throttle burst "
              f"{throttle.burst}, refill 1 per {throttle.refill_seconds:g} s")
        print("statuses: " + ", ".join(f"{code} x {count}" for code, count in sorted(statuses.items())))
        print(f"CPU {args.flood} wrong secrets: {flood_cpu:.3f} s; CPU 20 Argon2id verifications: {argon_cpu:.3f} s; "
              f"ratio {flood_cpu / argon_cpu:.2f} (target <= ~1): {'OK' if flood_cpu <= argon_cpu * 1.1 else 'OVER'}")
        print(f"without the throttle the same flood would cost ~{args.flood / 20 * argon_cpu:.1f} s of CPU "
              f"({args.flood} Argon2id verifications)")
        services.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
