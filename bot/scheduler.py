"""What runs besides updates, and when: every job of the bot, on PTB's JobQueue (APScheduler).

* ``nudge-scan``: every ``SCAN_INTERVAL_SECONDS`` (the first after at most
  :data:`FIRST_SCAN_DELAY`), :func:`handlers.nudges.nudge_scan_job` decides, claims and sends
  the nudges that are due;
* ``outbox-replay``: every :data:`REPLAY_INTERVAL_SECONDS` (the first after
  :data:`FIRST_REPLAY_DELAY`), :func:`handlers.outbox.replay_job` applies the writes kept
  during an outage and tells their authors;
* ``question:<chat>:<user>``: once, when an open question expires (10 minutes after it was
  asked), :func:`handlers.conversation.expire_job` closes it and tells the person;
* ``focus-tick:<session>``: every minute while a focus session runs,
  :func:`handlers.focus.tick_job` redraws its message when what it shows has changed;
* ``focus-alarm:<session>``: once, at a session's next reminder ("Time's up", "Still
  working?"), :func:`handlers.focus.reminder_job` sends it and arms the next.

All of them are added at start-up by :func:`start_jobs` (``post_init``, once the database is
open): the two repeating jobs, the expiry of every question still open (asked before a
restart, or by another instance), and the two jobs of every running focus session. A question
asked later arms its own expiry when it is asked (handlers/conversation.py), replacing the
chat's earlier one; a session started later arms its jobs once its message is sent.

JobQueue jobs live in memory only, so nothing about them needs rebuilding after a restart:
everything they decide lives in PostgreSQL (the nudge hints and ledger, the open questions)
or in the outbox file. Several instances may each run every job: the ``nudges`` ledger and
``SKIP LOCKED`` make every nudge go out once, an outbox entry is claimed in ``sync_queue``
before it applies, the instance whose delete claims an expired question tells the person, and
a focus session's redraw and reminders are claimed in ``focus_messages`` before they go out.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import Application, JobQueue

from handlers.conversation import arm_pending
from handlers.focus import arm_running
from handlers.nudges import nudge_scan_job
from handlers.outbox import replay_job

logger = logging.getLogger(__name__)

SCAN_JOB_NAME = "nudge-scan"
#: Seconds from start-up to the first scan (or the interval, if shorter).
FIRST_SCAN_DELAY = 10.0

REPLAY_JOB_NAME = "outbox-replay"
#: Seconds between two looks at the outbox (an empty outbox costs one count).
REPLAY_INTERVAL_SECONDS = 5.0
FIRST_REPLAY_DELAY = 1.0


async def start_jobs(
    app: Application[Any, Any, Any, Any, Any, Any], scan_interval_seconds: int
) -> None:
    """At start-up, once the database is open: the repeating jobs, the expiry of every open
    question and the jobs of every running focus session (a restart loses none)."""
    schedule_jobs(app, scan_interval_seconds)
    await arm_pending(app)
    await arm_running(app)


def schedule_jobs(app: Application[Any, Any, Any, Any, Any, Any], interval_seconds: int) -> None:
    """Add the repeating jobs: the nudge scan every ``interval_seconds`` and the outbox
    replay; scheduling again replaces them, never doubles them.

    The scan: ``max_instances=1``, a scan still running when the next is due makes that one
    skip; ``coalesce``, runs missed while the loop was busy collapse into one; a run more
    than one interval late is dropped (the next one catches up, the ledger keeps it exact).
    """
    if interval_seconds < 1:
        raise ValueError("the scan interval must be at least 1 second")
    queue = _queue(app)
    for name in (SCAN_JOB_NAME, REPLAY_JOB_NAME):
        for job in queue.get_jobs_by_name(name):
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
    queue.run_repeating(
        replay_job,
        interval=REPLAY_INTERVAL_SECONDS,
        first=FIRST_REPLAY_DELAY,
        name=REPLAY_JOB_NAME,
    )
    replay = REPLAY_INTERVAL_SECONDS
    logger.debug("nudge scan every %d s, outbox replay every %g s", interval_seconds, replay)


def _queue(app: Application[Any, Any, Any, Any, Any, Any]) -> JobQueue[Any]:
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("PTB's JobQueue is missing: install python-telegram-bot[job-queue]")
    return queue
