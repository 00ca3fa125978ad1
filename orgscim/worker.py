"""``orgscim worker``: APScheduler in its own process, never inside the web workers (DESIGN §7).

Every job takes a lease in SQLite named after it for (almost) one interval and does not give it back, so
two workers started by mistake still run each job once per interval. Reconcile runs every
``WORKER_RECONCILE_TICK_SECONDS`` and takes a share of the orgs each time, so that every org is reconciled once
per ``WORKER_RECONCILE_SECONDS`` without all of them hitting Keycloak at once (``Reconciler.run_due``).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from .keycloak.client import KeycloakAdmin
from .model.holders import process_holder
from .model.types import JSONValue
from .provision.reconcile import Pacer, Reconciler
from .services import Services

log = logging.getLogger("orgscim.worker")

DEFAULT_INTERVALS = {"outbox": 5, "reconcile": 3600, "jwks": 900, "housekeeping": 3600}
DEFAULT_RECONCILE_TICK = 60.0
DEFAULT_RECONCILE_CALLS_PER_SECOND = 20.0


#: a job's body; what it returns (a count, a summary) is recorded with the job's audit event
JobFunction = Callable[[], object]


@dataclass
class Job:
    """One scheduled job: it runs every ``interval`` seconds, at most once per interval across workers."""

    name: str
    interval: float
    run: JobFunction


class Worker:
    """The jobs of one ``orgscim worker`` process (intervals from ``WORKER_<JOB>_SECONDS``)."""

    def __init__(self, services: Services, intervals: dict[str, float] | None = None) -> None:
        self.services = services
        cfg = services.config
        self.intervals = {k: float(cfg.get(f"WORKER_{k.upper()}_SECONDS", v)) for k, v in DEFAULT_INTERVALS.items()}
        self.intervals.update(intervals or {})
        self.holder = process_holder()
        # reconcile wakes up every tick and does a share of the orgs (each org once per reconcile interval)
        self.reconcile_tick = min(self.intervals["reconcile"],
                                  float(cfg.get("WORKER_RECONCILE_TICK_SECONDS", DEFAULT_RECONCILE_TICK)))
        self._reconcile_admins: dict[str, KeycloakAdmin | None] = {}
        self._pacers: dict[str, Pacer] = {}
        self.jobs = [Job(name, self.reconcile_tick if name == "reconcile" else self.intervals[name], fn)
                     for name, fn in self.job_functions().items()]
        self.runs: dict[str, int] = {j.name: 0 for j in self.jobs}

    def job_functions(self) -> dict[str, JobFunction]:
        return {"outbox": self.services.deliverer.deliver_all, "reconcile": self.reconcile,
                "jwks": self.services.refresh_jwks, "housekeeping": self.housekeeping}

    def reconcile(self) -> dict[str, int]:
        """One tick of reconcile: the orgs that are due, oldest first, through a paced client of its own."""
        if not self.services.keycloak_configured:
            return {}
        calls = sum(p.calls for p in self._pacers.values())
        reconciler = Reconciler(self.services, "report", admin_for=self.reconcile_admin)
        summary = reconciler.run_due(self.intervals["reconcile"], self.reconcile_tick)
        summary.calls = sum(p.calls for p in self._pacers.values()) - calls
        return {"orgs": summary.orgs, "drift": len(summary.findings), "repaired": summary.repaired,
                "keycloakCalls": summary.calls, "due": summary.due}

    def reconcile_admin(self, realm: str) -> KeycloakAdmin | None:
        """Reconcile's own Keycloak client per realm (made in this process), its calls capped at
        ``RECONCILE_CALLS_PER_SECOND`` so that reconcile never crowds out delivery."""
        if realm not in self._reconcile_admins:
            shared = self.services.keycloak(realm)
            admin = None
            if shared is not None:
                admin = KeycloakAdmin(shared.base_url, realm, shared.client_id, self.services.keycloak_secret(),
                                      timeout=shared.timeout)
                rate = float(self.services.config.get("RECONCILE_CALLS_PER_SECOND",
                                                      DEFAULT_RECONCILE_CALLS_PER_SECOND))
                self._pacers[realm] = Pacer(rate)
                admin.session.hooks.append(self._pacers[realm])
            self._reconcile_admins[realm] = admin
        return self._reconcile_admins[realm]

    def run_once(self, job: Job) -> bool:
        """Run ``job`` if no other worker ran it during this interval; True if it ran here."""
        if not self.services.leases.acquire(f"job:{job.name}", self.holder, job.interval * 0.9):
            return False
        try:
            result = job.run()
            self.runs[job.name] += 1
            log.debug("job %s: %s", job.name, result)
            self.services.orgs.event(None, f"job.{job.name}", {"worker": self.holder, "result": _plain(result)})
        except Exception as e:  # noqa: BLE001 - a failing job must not stop the scheduler
            log.exception("job %s failed; it runs again next interval", job.name)
            self.services.orgs.event(None, f"job.{job.name}.failed", {"worker": self.holder, "error": str(e)[:300]})
        return True

    def housekeeping(self) -> dict[str, int]:
        """Prune delivered outbox entries and old events past retention."""
        days = int(self.services.config.get("RETENTION_DAYS", 30))
        return self.services.housekeeping.prune(days)

    def serve(self) -> None:
        scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        for job in self.jobs:
            scheduler.add_job(self.run_once, "interval", args=[job], seconds=job.interval, id=job.name,
                              next_run_time=datetime.now())

        def stop(signum: int, _frame: object) -> None:
            log.info("signal %s: stopping after the running job", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker %s started: %s", self.holder, ", ".join(f"{j.name} every {j.interval:g}s" for j in self.jobs))
        scheduler.start()


def _plain(result: object) -> JSONValue:
    """Job results as JSON-able data for the audit event."""
    if result is None or isinstance(result, (int, float, str, dict, list)):
        return result
    return getattr(result, "__dict__", str(result))
