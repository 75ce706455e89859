"""One nudge scan (:func:`run_scan`): decide and claim, take retries, deliver.

1. **Decide** (:func:`claim_due`, one privileged transaction). Four set-based queries
   (``services/repos/scan.py``) read only the rows whose "check at" hint has passed, through
   partial indexes, and lock them (``SKIP LOCKED``: a second scan running at the same moment
   takes other rows, never the same). SQL decides what is due by time and by the ledger; the
   local-time rules (quiet hours, the brief/review schedule across DST) are the pure functions
   of :mod:`services.nudges.planning`, applied to that small set. Each due nudge is
   **claimed**: ``insert into nudges ... on conflict (user_id, dedupe_key) do nothing
   returning id``. The hints move forward in the same transaction. Every user can write their
   own rows through the Supabase Data API, so one user's stored values may only ever skip that
   user: the queries never fail on them (``services/repos/scan.py``) and each candidate is
   decided on its own (:func:`services.nudges.planning.plan`).
2. **Retries**: claimed rows whose ``next_attempt_at`` passed (a crash after the claim, a
   passing send failure) are taken with ``FOR UPDATE SKIP LOCKED``.
3. **Deliver** (:func:`services.nudges.delivery.deliver`), per claimed row, in the user's own
   unit of work: re-check, send, record.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from services.db import Database
from services.nudges import planning
from services.nudges.delivery import DELIVERY_CONCURRENCY, LEASE, deliver
from services.nudges.messages import Send
from services.nudges.planning import (
    IDLE_MAX_PER_EPISODE,
    IDLE_REPEAT,
    OVERLOAD_REPEAT,
    OVERLOAD_RISE,
    SCHEDULE_KINDS,
    ScheduleKind,
)
from services.repos import nudges as ledger
from services.repos import scan as scan_sql
from services.repos.nudges import LedgerRow

__all__ = ["SCAN_LIMIT", "ScanReport", "claim_due", "due_count", "run_scan", "take_retries"]

#: Rows of each kind one scan looks at; the rest wait for the next scan.
SCAN_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What one scan did. ``due``: nudges found due now (claimed or already in the ledger);
    ``deferred``: due but in quiet hours; ``retried``: claimed rows taken again."""

    evaluated: int = 0
    due: int = 0
    deferred: int = 0
    claimed: int = 0
    retried: int = 0
    sent: int = 0
    cancelled: int = 0
    failed: int = 0
    blocked: int = 0
    retry_later: int = 0
    dry_run: bool = False
    by_kind: dict[str, int] = field(default_factory=dict)


async def claim_due(
    db: Database, now: datetime, *, limit: int = SCAN_LIMIT, dry_run: bool = False
) -> tuple[list[LedgerRow], ScanReport]:
    """Decide what is due for all users, claim it in the ledger and move the hints on.

    Returns the rows this call claimed (another instance's claims are not among them). With
    ``dry_run`` nothing is written: the decision runs and is counted, then rolled back.
    """
    async with db.privileged() as uow:
        await scan_sql.plan_for_now(uow)
        idle = await scan_sql.idle_candidates(
            uow,
            now,
            lease_until=now + LEASE,
            repeat=IDLE_REPEAT,
            max_per_episode=IDLE_MAX_PER_EPISODE,
            limit=limit,
        )
        overload = await scan_sql.overload_candidates(
            uow, now, lease_until=now + LEASE, repeat=OVERLOAD_REPEAT, rise=OVERLOAD_RISE,
            limit=limit,
        )  # fmt: skip
        schedules: dict[ScheduleKind, list[scan_sql.ScheduleCandidate]] = {
            kind: await scan_sql.schedule_candidates(uow, kind, now, limit=limit)
            for kind in SCHEDULE_KINDS
        }
        plan = planning.plan(now, idle, overload, schedules)
        by_kind: Counter[str] = Counter(c.kind for c in plan.claims)
        report = ScanReport(
            evaluated=plan.evaluated,
            due=len(plan.claims),
            deferred=plan.deferred,
            dry_run=dry_run,
            by_kind=dict(by_kind),
        )
        if dry_run:
            return [], report
        claimed = await ledger.claim(uow, plan.claims, now, now + LEASE)
        await scan_sql.set_overload_hints(uow, plan.overload_hints)
        await scan_sql.set_idle_hints(uow, plan.idle_hints)
        for kind, hints in plan.schedule_hints.items():
            await scan_sql.set_schedule_hints(uow, kind, hints)
        await uow.commit()
    return claimed, dataclasses.replace(report, claimed=len(claimed))


async def take_retries(db: Database, now: datetime, *, limit: int = SCAN_LIMIT) -> list[LedgerRow]:
    """Claimed rows due for another attempt, taken (leased) by this scan."""
    async with db.privileged() as uow:
        rows = await ledger.take_retries(uow, now, now + LEASE, limit)
        await uow.commit()
    return rows


async def run_scan(
    db: Database,
    now: datetime,
    send: Send | None,
    *,
    dry_run: bool = False,
    limit: int = SCAN_LIMIT,
    concurrency: int = DELIVERY_CONCURRENCY,
) -> ScanReport:
    """One scan: decide and claim, take retries, deliver. ``dry_run``: decide only."""
    claimed, report = await claim_due(db, now, limit=limit, dry_run=dry_run)
    if dry_run:
        async with db.privileged(read_only=True) as uow:
            retries = await ledger.count_retries(uow, now)
        return dataclasses.replace(report, retried=retries)
    if send is None:
        raise ValueError("send is required unless dry_run")
    retries_rows = await take_retries(db, now, limit=limit)
    outcomes = await deliver(db, [*claimed, *retries_rows], now, send, concurrency=concurrency)
    return dataclasses.replace(
        report,
        retried=len(retries_rows),
        sent=outcomes["sent"],
        cancelled=outcomes["cancelled"],
        failed=outcomes["failed"],
        blocked=outcomes["blocked"],
        retry_later=outcomes["retry"],
        deferred=report.deferred + outcomes["deferred"],
    )


async def due_count(db: Database, now: datetime) -> int:
    """How many nudges one scan at ``now`` would claim (nothing is written or sent)."""
    report = await run_scan(db, now, None, dry_run=True)
    return report.due
