"""The worker: jobs behind SQLite leases, so two workers run each job once per interval (issue #5)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from orgscim.services import Services
from orgscim.store.db import Database
from orgscim.worker import Worker

ORGSCIM = str(Path(sys.executable).parent / "orgscim")


def test_lease_blocks_second_worker_within_interval(tmp_path: Path) -> None:
    db = Database(tmp_path / "w.sqlite3")
    db.upgrade()
    first, second = Worker(Services(db), {"housekeeping": 30}), Worker(Services(db), {"housekeeping": 30})
    second.holder = "other-host:1"
    job = next(j for j in first.jobs if j.name == "housekeeping")
    assert first.run_once(job) is True
    assert second.run_once(next(j for j in second.jobs if j.name == "housekeeping")) is False
    assert first.run_once(job) is True  # the holder itself may run again (e.g. --once)


def test_two_worker_processes_run_each_job_once_per_interval(tmp_path: Path) -> None:
    env = {**os.environ, "ORGSCIM_INSTANCE": str(tmp_path), "ORGSCIM_WORKER_OUTBOX_SECONDS": "2",
           "ORGSCIM_WORKER_HOUSEKEEPING_SECONDS": "2", "ORGSCIM_WORKER_RECONCILE_SECONDS": "2",
           "ORGSCIM_WORKER_JWKS_SECONDS": "2"}
    env.pop("ORGSCIM_KEYCLOAK_URL", None)
    subprocess.run([ORGSCIM, "db", "upgrade"], env=env, check=True, capture_output=True)
    procs = [subprocess.Popen([ORGSCIM, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    run_for = 9.0
    time.sleep(run_for)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(timeout=15) == 0, p.stderr.read().decode() if p.stderr else ""
    conn = sqlite3.connect(tmp_path / "orgscim.sqlite3")
    rows = conn.execute("SELECT kind, at, detail FROM events WHERE kind LIKE 'job.%' ORDER BY at").fetchall()
    by_job: dict[str, list[float]] = {}

    for kind, at, _detail in rows:
        t = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + at[20:26])
        by_job.setdefault(kind, []).append(t)
    assert set(by_job) == {"job.outbox", "job.housekeeping", "job.reconcile", "job.jwks"}
    for kind, times in by_job.items():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(times) <= run_for / 2 + 1, (kind, len(times))  # never twice per interval
        assert len(times) >= 3, (kind, len(times))  # but it does run every interval
        assert min(gaps) > 1.5, (kind, gaps)



def test_housekeeping_purges_vanished_orgs_after_retention(tmp_path: Path) -> None:
    db = Database(tmp_path / "h.sqlite3")
    db.upgrade()
    services = Services(db, {"RETENTION_DAYS": 30})
    services.orgs.set_realm("r", True)
    old = services.configure_org("r", "old", "EXTERNAL_SECRET")
    recent = services.configure_org("r", "recent", "EXTERNAL_SECRET")
    from orgscim.store.resources import ResourceStore

    for org in (old, recent):
        ResourceStore(db, org.pk).create("User", {"userName": "u"}, "u", None)
    services.orgs.set_vanished(old.pk, "2020-01-01T00:00:00.000000Z")
    services.orgs.set_vanished(recent.pk, "2999-01-01T00:00:00.000000Z")
    assert Worker(services).housekeeping()["orgs"] == 1
    assert services.orgs.org("r", "old") is None
    assert db.one("SELECT count(*) FROM resources WHERE org_pk = ?", (old.pk,))[0] == 0
    assert services.orgs.org_counts(recent.pk) == {"User": 1}  # still within retention: kept
