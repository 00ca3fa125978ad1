"""Prometheus metrics (``/metrics``) through ``prometheus_client``, in multiprocess mode under gunicorn.

Two kinds of numbers:

* **per process, summed by the library**: HTTP requests and latency per route *template* and status, Keycloak
  call latency and errors, auth failures by mode, Argon2id verifications, verified-cache hits. Each process
  writes them to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (one directory per ``orgscim serve`` run,
  :func:`prepare_multiprocess_dir`; :func:`child_exit` is the gunicorn hook for a dead worker); without that
  variable (tests, ``--dev``, the CLI) they live in this process.
* **from SQLite at scrape time** (:class:`StoreCollector`): outbox depth and age, open drift by kind, orgs,
  resources by type, failing JWK Sets. Aggregates only, each from an index or a maintained count, so a scrape
  costs the same at 2,000 orgs as at one.

Label values are bounded and never name a tenant (realm, org id, JWKS URI): routes are Flask URL rules
(``…/organizations/<org_id>/Users``), methods outside the standard set are ``other``, statuses are the codes
the app answers, auth modes are the installed plugins. The library escapes label values.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Metrics:
    """The process's metric objects (built on first use, after gunicorn forked the worker)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("orgscim_http_requests", "HTTP requests answered, by route template, method "
                                     "and status", ["route", "method", "status"], registry=r)
        self.http_seconds = Histogram("orgscim_http_request_duration_seconds", "time to answer an HTTP request",
                                      ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.keycloak_seconds = Histogram("orgscim_keycloak_request_duration_seconds", "Keycloak HTTP calls "
                                          "(admin API and token), by method and outcome (2xx…5xx, error)",
                                          ["method", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.keycloak_errors = Counter("orgscim_keycloak_request_errors", "Keycloak calls that failed: no answer "
                                       "(error), 429, or 5xx", ["outcome"], registry=r)
        self.auth_failures = Counter("orgscim_auth_failures", "SCIM authentication failures by auth mode and "
                                     "reason (rejected, throttled, missing)", ["mode", "reason"], registry=r)
        self.argon2 = Counter("orgscim_auth_argon2_verifications", "Argon2id verifications run (cache misses)",
                              registry=r)
        self.cache_hits = Counter("orgscim_auth_cache_hits", "credentials accepted without Argon2id, by where "
                                  "the verification was remembered (process, host)", ["level"], registry=r)


_lock = threading.Lock()
_metrics: dict[int, _Metrics] = {}


def get() -> _Metrics:
    """This process's metrics. Built lazily so the value class matches ``PROMETHEUS_MULTIPROC_DIR`` as the
    worker sees it (the CLI may import this module before ``serve`` sets the variable)."""
    pid = os.getpid()
    m = _metrics.get(pid)
    if m is None:
        with _lock:
            m = _metrics.get(pid)
            if m is None:
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # prometheus_client
                m = _metrics[pid] = _Metrics()
    return m


def multiprocess_dir() -> str | None:
    path = os.environ.get(ENV)
    return path if path and os.path.isdir(path) else None


# -- recording ---------------------------------------------------------------------------------------
def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request. ``route`` is the URL rule (None: no route matched)."""
    labels = (route or "unmatched", method if method in METHODS else "other", str(status))
    m = get()
    m.http_requests.labels(*labels).inc()
    m.http_seconds.labels(*labels).observe(seconds)


def keycloak_outcome(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


def observe_keycloak(method: str, status: int | None, seconds: float) -> None:
    """One Keycloak HTTP exchange (``status`` None: no answer: connection error or timeout)."""
    m = get()
    outcome = keycloak_outcome(status)
    m.keycloak_seconds.labels(method if method in METHODS else "other", outcome).observe(seconds)
    if status is None or status == 429 or status >= 500:
        m.keycloak_errors.labels("429" if status == 429 else outcome).inc()


def instrument_session(transport: Any) -> None:
    """Time every request the Keycloak admin client's transport sends (method and status, never URLs)."""
    if _observe_exchange not in transport.hooks:
        transport.hooks.append(_observe_exchange)


def _observe_exchange(exchange: Any) -> None:
    observe_keycloak(exchange.method, exchange.status, exchange.seconds)


def auth_failure(mode: str, reason: str) -> None:
    get().auth_failures.labels(mode, reason).inc()


def argon2_verification() -> None:
    get().argon2.inc()


def cache_hit(level: str) -> None:
    get().cache_hits.labels(level).inc()


# -- scraping ----------------------------------------------------------------------------------------
class StoreCollector(Collector):
    """Gauges read from SQLite at scrape time (``[(name, help, [(labels, value)])]`` from ``source``)."""

    def __init__(self, source: Callable[[], list[tuple[str, str, list[tuple[dict[str, str], float]]]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        for name, help_text, samples in self.source():
            labels = sorted({k for lbls, _ in samples for k in lbls})
            family = GaugeMetricFamily(f"orgscim_{name}", help_text, labels=labels)
            for lbls, value in samples:
                family.add_metric([lbls.get(k, "") for k in labels], value)
            yield family


class _Local(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def exposition(store_source: Callable[[], Any] | None = None) -> bytes:
    """The text exposition of every metric: all processes' (multiprocess mode) or this one's, plus the store's."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Local(get().registry))
    if store_source is not None:
        registry.register(StoreCollector(store_source))
    return generate_latest(registry)


# -- gunicorn ----------------------------------------------------------------------------------------
def prepare_multiprocess_dir(parent: str | None = None) -> str:
    """A fresh, empty directory for this server run, exported as ``PROMETHEUS_MULTIPROC_DIR`` for the workers.

    Call it in the gunicorn master before workers start (``orgscim serve`` / the gunicorn ``on_starting``
    hook); remove it with :func:`remove_multiprocess_dir` when the server stops. A directory left over by an
    earlier run is never reused: its counters would be added to this run's.
    """
    parent = parent or multiprocess_dir()  # an operator's PROMETHEUS_MULTIPROC_DIR holds one folder per run
    _remove_stale(parent or tempfile.gettempdir())
    path = tempfile.mkdtemp(prefix=f"orgscim-metrics-{os.getpid()}-", dir=parent)
    os.environ[ENV] = path
    return path


def _remove_stale(parent: str) -> None:
    """Remove the folders of earlier runs whose master is gone (killed before its ``on_exit`` ran)."""
    for entry in os.scandir(parent):
        parts = entry.name.split("-")
        if entry.name.startswith("orgscim-metrics-") and len(parts) >= 4 and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except PermissionError:
                pass  # alive, someone else's


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live-gauge files (its counters stay counted)."""
    path = multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(worker.pid, path)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(*_: Any) -> None:
    """gunicorn ``on_exit`` hook: remove this run's metrics directory."""
    path = multiprocess_dir()
    if path and os.path.basename(path).startswith("orgscim-metrics-"):
        shutil.rmtree(path, ignore_errors=True)
