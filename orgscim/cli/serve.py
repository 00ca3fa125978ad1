"""``orgscim serve`` (gunicorn, or Flask's server with ``--dev``) and ``orgscim worker``: the two processes."""

from __future__ import annotations

from typing import Any

import click

from .common import config, database, services


@click.command()
@click.option("--once", is_flag=True, help="run every job once (respecting the leases) and exit")
def worker(once: bool) -> None:
    """Run the background jobs (outbox delivery, reconcile, JWKS refresh, housekeeping) until SIGTERM."""
    import logging

    from ..worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    w = Worker(services())
    if once:
        for job in w.jobs:
            click.echo(f"{job.name}: {'ran' if w.run_once(job) else 'skipped (another worker ran it this interval)'}")
        return
    w.serve()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=16, show_default=True, type=int, help="requests in flight per worker")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
def serve(host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Serve the web app (gunicorn, settings in orgscim.gunicorn_conf; --dev for Flask's server)."""
    if dev:
        from ..app import create_app

        try:
            app = create_app()
        except RuntimeError as e:
            raise click.ClickException(str(e)) from None
        app.run(host=host, port=port)
        return
    database(config()).close()  # refuse a database to migrate or newer than this code; keep nothing open
    from gunicorn.app.base import BaseApplication

    from .. import gunicorn_conf

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_conf.settings(bind=[f"{host}:{port}"], workers=workers).items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:  # in each worker after the fork (no preload_app)
            from ..asgi import create

            return create(threads)

    _Gunicorn().run()
