"""gunicorn settings of ``orgscim serve`` (also usable directly:
``gunicorn -c python:orgscim.gunicorn_conf 'orgscim.asgi:create()'``).

* ``asgi`` worker (gunicorn's own asyncio worker) in front of :class:`orgscim.asgi.BufferedWsgi`: slow
  clients wait on the event loop, whole requests are handed to a thread pool (``--threads`` per worker).
* No ``preload_app``: the app, its SQLite connections, lease holders, caches and thread pools are built in
  each worker after the fork; the master opens nothing.
* The access log records method, path (no query string: filters carry emails), status and duration; never
  the Basic user name (``%(u)s``) or the request line (``%(r)s``).
* gunicorn's pure-Python HTTP parser, not its C one (``gunicorn_h1c``): bytes of the next request that arrive
  while the previous one is being answered (a pipelined request, or a client that sends at once on its
  keep-alive connection) are kept by the C parser up to 64 KiB only, and the connection is closed without an
  answer when more came (gunicorn 27.0.1, gunicorn_h1c 0.6.10): a Bulk or a large PATCH right after another
  request was lost that way. The Python parser keeps them under the worker's read back-pressure (256 KiB, then
  reading pauses). It costs about 0.06 ms of CPU per request more.
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
http_parser = "python"
control_socket_disable = True  # gunicorn 27+: no control socket under $HOME

SETTINGS = ("worker_class", "asgi_lifespan", "preload_app", "workers", "timeout", "graceful_timeout", "keepalive",
            "worker_connections", "accesslog", "access_log_format", "http_parser", "control_socket_disable",
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
