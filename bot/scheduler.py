"""The repeating jobs: the nudge scan, on PTB's JobQueue (APScheduler underneath).

JobQueue jobs live in memory only, so nothing about them needs rebuilding after a restart:
the job is added again at start-up, and everything the scan decides lives in PostgreSQL (the
hints and the ``nudges`` ledger). Several instances may each run the scan; the ledger and
``SKIP LOCKED`` make every nudge go out once.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import Application

from handlers.nudges import nudge_scan_job

logger = logging.getLogger(__name__)

SCAN_JOB_NAME = "nudge-scan"
#: Seconds from start-up to the first scan (or the interval, if shorter).
FIRST_SCAN_DELAY = 10.0


def schedule_jobs(app: Application[Any, Any, Any, Any, Any, Any], interval_seconds: int) -> None:
    """Add the nudge scan every ``interval_seconds`` (first run shortly after start).

    ``max_instances=1``: a scan still running when the next is due makes that one skip;
    ``coalesce``: runs missed while the loop was busy collapse into one; a run more than one
    interval late is dropped (the next one catches up, the ledger keeps it exact).
    """
    if interval_seconds < 1:
        raise ValueError("the scan interval must be at least 1 second")
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("PTB's JobQueue is missing: install python-telegram-bot[job-queue]")
    for job in queue.get_jobs_by_name(SCAN_JOB_NAME):
        job.schedule_removal()
    queue.run_repeating(
        nudge_scan_job,
        interval=interval_seconds,
        first=min(FIRST_SCAN_DELAY, float(interval_seconds)),
        name=SCAN_JOB_NAME,
        job_kwargs={
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": interval_seconds,
        },
    )
    logger.debug("nudge scan every %d s", interval_seconds)
