"""Planning: the rules that turn the scan's due candidates into claims and hints.

SQL (``services/repos/scan.py``) finds the candidates whose "check at" hint has passed; the
functions here apply the local-time rules to that small set and decide, for each candidate on
its own (:func:`plan`), whether a nudge is claimed now and when to look again. Every user can
write their own rows through the Supabase Data API, so a value one user stored may only ever
skip that user (logged once, :func:`skip_user`).

Dedupe keys (``nudges.dedupe_key``, unique per user):

- ``idle:<arm>:<last_activity, UTC ISO with microseconds>:<n>``, n = 1..3: the episode is the
  last activity that began it; n counts the nudges of that episode (claimed, sent or failed).
- ``overload:after:<id of the previous overload nudge, 32 hex>`` (``overload:after:none`` for
  the first): each overload nudge is the successor of the previous one, so all instances
  compute the same key however the 24 h / +10 points rule was met.
- ``brief:<local date>`` (the scheduled local day) and ``review:<ISO year>-W<week>``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from services.models import Arm
from services.nudges.localtime import (
    in_quiet,
    iso_week,
    latest_daily,
    latest_weekly,
    next_daily,
    next_weekly,
    quiet_end,
    zone,
)
from services.repos import scan
from services.repos.nudges import NewClaim

__all__ = [
    "BRIEF_GRACE",
    "IDLE_MAX_PER_EPISODE",
    "IDLE_REPEAT",
    "OVERLOAD_REPEAT",
    "OVERLOAD_RISE",
    "RESCHEDULE",
    "REVIEW_GRACE",
    "SCHEDULE_KINDS",
    "Plan",
    "ScheduleKind",
    "plan",
    "skip_user",
]

logger = logging.getLogger(__name__)

IDLE_REPEAT = timedelta(hours=24)
IDLE_MAX_PER_EPISODE = 3
OVERLOAD_REPEAT = timedelta(hours=24)
OVERLOAD_RISE = Decimal(10)
#: A due nudge for a user whose link is off is looked at again this much later.
UNLINKED_RECHECK = timedelta(days=1)
#: A brief/review missed while the bot was down is sent late if less than this old.
BRIEF_GRACE = timedelta(hours=12)
REVIEW_GRACE = timedelta(days=3, hours=12)
#: The hint value the triggers use for "settings changed: compute the next instant".
RESCHEDULE = datetime(1970, 1, 1, tzinfo=UTC)

ScheduleKind = Literal["brief", "review"]
SCHEDULE_KINDS: tuple[ScheduleKind, ...] = ("brief", "review")


def _next_schedule(
    kind: str, after: datetime, at: time, day: int | None, tz: ZoneInfo
) -> datetime:
    if kind == "brief":
        return next_daily(after, at, tz)
    assert day is not None
    return next_weekly(after, day, at, tz)


@dataclass
class Plan:
    claims: list[NewClaim] = field(default_factory=list)
    idle_hints: list[tuple[UUID, Arm, datetime | None]] = field(default_factory=list)
    overload_hints: list[tuple[UUID, datetime | None]] = field(default_factory=list)
    schedule_hints: dict[ScheduleKind, list[tuple[UUID, datetime | None]]] = field(
        default_factory=lambda: {"brief": [], "review": []}
    )
    evaluated: int = 0
    deferred: int = 0


def _reachable(reach: scan.Reach, now: datetime) -> tuple[bool, datetime | None]:
    """(may write now, else the next look) for an idle/overload nudge that is due."""
    if not reach.linked or reach.chat_id is None:
        return False, now + UNLINKED_RECHECK
    tz = zone(reach.timezone)
    if in_quiet(now, tz, reach.quiet_start, reach.quiet_end):
        return False, quiet_end(now, tz, reach.quiet_start, reach.quiet_end)
    return True, None


#: A user skipped because of what they stored is looked at again this much later.
UNREADABLE_RECHECK = timedelta(days=1)
_skipped: set[UUID] = set()


def skip_user(user_id: UUID, why: str) -> None:
    """Log, once per process and user, that a user's nudges are skipped: the user id and
    where (a table and column, or an error's type), never the value they stored."""
    if user_id not in _skipped:
        _skipped.add(user_id)
        logger.warning("nudges for user %s skipped: %s", user_id, why)


def plan(
    now: datetime,
    idle: Iterable[scan.IdleCandidate],
    overload: Iterable[scan.OverloadCandidate],
    schedules: dict[ScheduleKind, list[scan.ScheduleCandidate]],
) -> Plan:
    """Decide each candidate on its own: a value one user stored that cannot be used skips
    that user (logged once), and never the others. A row that breaks its constraints is not
    written to at all; any other row gets a hint :data:`UNREADABLE_RECHECK` later."""
    plan = Plan()
    later = now + UNREADABLE_RECHECK
    for c in idle:
        plan.evaluated += 1
        if not c.writable:
            skip_user(c.user_id, "a theaters row holds values outside the constraints")
            continue
        try:
            claim, hint, deferred = _plan_idle(c, now)
        except Exception as exc:
            skip_user(c.user_id, f"idle nudge: {type(exc).__name__}")
            claim, hint, deferred = None, later, 0
        plan.claims += [claim] if claim else []
        plan.idle_hints.append((c.user_id, c.arm_type, hint))
        plan.deferred += deferred
    for o in overload:
        plan.evaluated += 1
        if not o.writable:
            skip_user(o.user_id, "a global_metrics row holds values outside the constraints")
            continue
        try:
            claim, hint, deferred = _plan_overload(o, now)
        except Exception as exc:
            skip_user(o.user_id, f"overload nudge: {type(exc).__name__}")
            claim, hint, deferred = None, later, 0
        plan.claims += [claim] if claim else []
        plan.overload_hints.append((o.user_id, hint))
        plan.deferred += deferred
    for kind, rows in schedules.items():
        for s in rows:
            plan.evaluated += 1
            if not s.writable:
                skip_user(s.user_id, "a user_settings row holds values outside the constraints")
                continue
            try:
                claim, hint = _plan_schedule(kind, s, now)
            except Exception as exc:
                skip_user(s.user_id, f"{kind}: {type(exc).__name__}")
                claim, hint = None, later
            plan.claims += [claim] if claim else []
            plan.schedule_hints[kind].append((s.user_id, hint))
    return plan


def _plan_idle(
    c: scan.IdleCandidate, now: datetime
) -> tuple[NewClaim | None, datetime | None, int]:
    """(claim, next hint, deferred) for one idle theater."""
    if c.due_from is None or c.due_from > now:
        return None, c.due_from, 0
    ok, later = _reachable(c.reach, now)
    if not ok:
        return None, later, 1 if c.reach.linked else 0  # quiet hours (else: link off)
    n = c.sent_count + 1
    claim = NewClaim(c.user_id, "idle", c.arm_type, f"{c.key_prefix}{n}", c.last_activity)
    return claim, now + IDLE_REPEAT if n < IDLE_MAX_PER_EPISODE else None, 0


def _plan_overload(
    o: scan.OverloadCandidate, now: datetime
) -> tuple[NewClaim | None, datetime | None, int]:
    """(claim, next hint, deferred) for one user at or over the overload threshold."""
    if o.due_from is None or o.due_from > now:
        return None, o.due_from, 0
    ok, later = _reachable(o.reach, now)
    if not ok:
        return None, later, 1 if o.reach.linked else 0  # quiet hours (else: link off)
    previous = o.previous_id.hex if o.previous_id else "none"
    claim = NewClaim(o.user_id, "overload", None, f"overload:after:{previous}", risk=o.risk)
    return claim, now + OVERLOAD_REPEAT, 0


def _plan_schedule(
    kind: ScheduleKind, s: scan.ScheduleCandidate, now: datetime
) -> tuple[NewClaim | None, datetime | None]:
    if s.at is None or (kind == "review" and s.day is None):
        return None, None  # turned off
    tz = zone(s.reach.timezone)
    hint = _next_schedule(kind, now, s.at, s.day, tz)
    if s.check_at <= RESCHEDULE:  # settings changed: only compute the next instant
        return None, hint
    if kind == "brief":
        latest = latest_daily(now, s.at, tz)
        grace = BRIEF_GRACE
    else:
        assert s.day is not None
        latest = latest_weekly(now, s.day, s.at, tz)
        grace = REVIEW_GRACE
    if latest is None or now - latest[1] >= grace or not s.reach.linked:
        return None, hint  # missed long ago (catch up once, never every missed day)
    day, instant = latest
    key = f"brief:{day.isoformat()}" if kind == "brief" else f"review:{iso_week(day)}"
    return NewClaim(s.user_id, kind, None, key, episode_at=instant), hint
