"""``orgscim jwks refresh``: the JWK Sets of the orgs that authenticate with JWTs."""

from __future__ import annotations

import sys

import click

from .common import emit, json_option, services


@click.group()
def jwks() -> None:
    """JWK Sets of the orgs that authenticate with JWTs (KEYCLOAK, EXTERNAL_JWT)."""


@jwks.command("refresh")
@json_option
def jwks_refresh(as_json: bool) -> None:
    """Fetch every JWK Set in use now (the worker does it every WORKER_JWKS_SECONDS); exit 1 if one fails."""
    from ..store.jwks import JwksStore

    svc = services()
    results = svc.refresh_jwks()
    stored = {s.uri: s.public() for s in JwksStore(svc.db).all()}
    rows = [{**stored.get(uri, {"uri": uri}), "result": result} for uri, result in results.items()]
    emit(rows, as_json, "\n".join(
        f"{'ok  ' if r['result'] == 'ok' else 'FAIL'} {r['uri']}\tkids {', '.join(r.get('kids') or []) or '-'}"
        + ("" if r["result"] == "ok" else f"\t{r['result']} (last good keys kept)") for r in rows)
        or "no org uses a JWT auth mode")
    sys.exit(0 if all(r["result"] == "ok" for r in rows) else 1)
