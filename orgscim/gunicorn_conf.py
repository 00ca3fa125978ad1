"""gunicorn settings of ``orgscim serve`` (also usable directly:
``gunicorn -c python:orgscim.gunicorn_conf 'orgscim.asgi:create()'``).

* ``asgi`` worker (gunicorn's own asyncio worker) in front of :class:`orgscim.asgi.BufferedWsgi`: slow
  clients wait on the event loop, whole requests are handed to a thread pool (``--threads`` per worker).
* No ``preload_app``: the app, its SQLite connections, lease holders, caches and thread pools are built in
  each worker after the fork; the master opens nothing.
* The access log records method, path (no query string: filters carry emails), status and duration; never
  the Basic user name (``%(u)s``) or the request line (``%(r)s``).
"""

from __future__ import annotations

from typing import Any

worker_class = "asgi"
asgi_lifespan = "on"  # the app is built at lifespan startup; a failure stops gunicorn with its message
preload_app = False
workers = 2
timeout = 60  # a worker that stops answering the master's heartbeat is restarted
graceful_timeout = 30
keepalive = 5
worker_connections = 1000  # open connections per worker, slow ones included (they hold no thread)
accesslog = "-"
access_log_format = '"%(m)s %(U)s" %(s)s %(M)sms'
control_socket_disable = True  # gunicorn 27+: no control socket under $HOME

SETTINGS = ("worker_class", "asgi_lifespan", "preload_app", "workers", "timeout", "graceful_timeout", "keepalive",
            "worker_connections", "accesslog", "access_log_format", "control_socket_disable",
            "on_starting", "child_exit", "on_exit")


# Prometheus multiprocess mode (orgscim.metrics): one fresh metrics directory per run, made in the master before
# the workers fork; a dead worker's live files dropped; the directory removed when the server stops.
def on_starting(server: Any) -> None:
    from . import metrics

    metrics.prepare_multiprocess_dir()


def child_exit(server: Any, worker: Any) -> None:
    from . import metrics

    metrics.child_exit(server, worker)


def on_exit(server: Any) -> None:
    from . import metrics

    metrics.remove_multiprocess_dir()


def settings(**overrides: Any) -> dict[str, Any]:
    """The settings above as a dict (those this gunicorn knows are applied by ``orgscim serve``)."""
    values = {name: globals()[name] for name in SETTINGS}
    values.update(overrides)
    return values
