"""Nudges (SPEC §5): the scan that finds what is due, the ledger that sends each once, the
local-time rules, and the user's nudge settings.

How one scan goes (:func:`run_scan`):

1. **Decide** (:func:`claim_due`, one privileged transaction). Four set-based queries
   (``services/repos/scan.py``) read only the rows whose "check at" hint has passed, through
   partial indexes, and lock them (``SKIP LOCKED``: a second scan running at the same moment
   takes other rows, never the same). SQL decides what is due by time and by the ledger; the
   local-time rules (quiet hours, the brief/review schedule across DST) are the pure functions
   below, applied to that small set. Each due nudge is **claimed**:
   ``insert into nudges ... on conflict (user_id, dedupe_key) do nothing returning id``.
   The hints move forward in the same transaction. Every user can write their own rows
   through the Supabase Data API, so one user's stored values may only ever skip that user
   (logged once, :func:`skip_user`): the queries never fail on them (``services/repos/scan.py``)
   and each candidate is decided on its own (:func:`_plan`).
2. **Retries**: claimed rows whose ``next_attempt_at`` passed (a crash after the claim, a
   passing send failure) are taken with ``FOR UPDATE SKIP LOCKED``.
3. **Deliver** (:func:`deliver`), per claimed row, in the user's own unit of work: take the
   user's write lock, refresh stale days, statuses and risk, **re-check** (a theater active
   again, snoozed or blocked, a risk under the threshold, an overload snooze, a schedule turned
   off: the claim is *deleted*, so the key is free should the nudge become due again, and
   nothing is sent), defer an idle/overload nudge that now falls into quiet hours, build the
   message data, count the attempt, commit; then send outside any transaction and record the
   outcome: ``sent`` (final), a passing failure (retried later, at most
   :data:`MAX_ATTEMPTS` attempts), ``failed`` (permanent error, or 403: the link is switched
   off too and the scan ignores the user until they write again). Each user's rows are
   delivered on their own: a failure never reaches another user's delivery, and data the
   bot cannot use (``services/sanity.py``) marks that nudge ``failed``.

Dedupe keys (``nudges.dedupe_key``, unique per user):

- ``idle:<arm>:<last_activity, UTC ISO with microseconds>:<n>``, n = 1..3: the episode is the
  last activity that began it; n counts the nudges of that episode (claimed, sent or failed).
- ``overload:after:<id of the previous overload nudge, 32 hex>`` (``overload:after:none`` for
  the first): each overload nudge is the successor of the previous one, so all instances
  compute the same key however the 24 h / +10 points rule was met.
- ``brief:<local date>`` (the scheduled local day) and ``review:<ISO year>-W<week>``.

This module never imports ``telegram``: :func:`run_scan` takes a ``send`` callable that
raises :class:`SendFailed` or :class:`Blocked`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services import accounts, rules, sanity, state, validation
from services.db import Database, Principal, UnitOfWork
from services.errors import DomainError, InvalidSetting, NotLinked, OutOfRange
from services.models import ARMS, Arm, NbaItem, Theater, TheaterStatus, UserSettings
from services.repos import execution_logs, global_metrics, nba_items, scan, telegram_links
from services.repos import nudges as ledger
from services.repos import theaters as theaters_repo
from services.repos import user_settings as settings_repo
from services.repos.nudges import LedgerRow, NewClaim, NudgeKind

logger = logging.getLogger(__name__)

# --- the rules' numbers -------------------------------------------------------------------

IDLE_REPEAT = timedelta(hours=24)
IDLE_MAX_PER_EPISODE = 3
OVERLOAD_REPEAT = timedelta(hours=24)
OVERLOAD_RISE = Decimal(10)
#: A claim's lease: a claimed row untouched for this long is retried by a later scan.
LEASE = timedelta(minutes=5)
#: Attempts to send one nudge before it is given up (status 'failed').
MAX_ATTEMPTS = 5
#: Wait before retrying a passing failure (or Telegram's retry_after, if longer).
RETRY_DELAY = timedelta(minutes=1)
#: A due nudge for a user whose link is off is looked at again this much later.
UNLINKED_RECHECK = timedelta(days=1)
#: A brief/review missed while the bot was down is sent late if less than this old.
BRIEF_GRACE = timedelta(hours=12)
REVIEW_GRACE = timedelta(days=3, hours=12)
#: Rows of each kind one scan looks at; the rest wait for the next scan.
SCAN_LIMIT = 5000
#: Users whose nudges are delivered at the same time (each holds a pool connection briefly).
DELIVERY_CONCURRENCY = 4
#: The hint value the triggers use for "settings changed: compute the next instant".
RESCHEDULE = datetime(1970, 1, 1, tzinfo=UTC)
#: How far back the weekly review looks.
REVIEW_WINDOW = timedelta(days=7)
_REVIEW_SAMPLE = 3

ScheduleKind = Literal["brief", "review"]
SCHEDULE_KINDS: tuple[ScheduleKind, ...] = ("brief", "review")
_KIND_ORDER: dict[str, int] = {"brief": 0, "review": 1, "overload": 2, "idle": 3}


# --- what send raises -----------------------------------------------------------------------


class SendFailed(Exception):
    """The message did not go out. ``permanent``: retrying cannot help (a bad request)."""

    def __init__(
        self, permanent: bool, reason: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(reason or ("permanent failure" if permanent else "passing failure"))
        self.permanent = permanent
        self.retry_after = retry_after


class Blocked(Exception):
    """The user blocked the bot (Telegram 403)."""


# --- what the messages need -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NbaLine:
    """A theater's current Next Best Action, as a nudge shows it."""

    item_id: UUID
    title: str
    explanation: str


@dataclass(frozen=True, slots=True)
class IdleNudge:
    """A theater has been idle: how long, and what to do next."""

    kind: ClassVar[str] = "idle"
    nudge_id: UUID
    user_id: UUID
    arm: Arm
    days_idle: Decimal
    last_activity: datetime
    timezone: str
    current: NbaLine | None


@dataclass(frozen=True, slots=True)
class OverloadNudge:
    """The overload risk is at or over the user's threshold."""

    kind: ClassVar[str] = "overload"
    nudge_id: UUID
    user_id: UUID
    overload: rules.Overload
    threshold: int


@dataclass(frozen=True, slots=True)
class TheaterBrief:
    arm: Arm
    status: TheaterStatus
    progress: Decimal
    energy: int
    current: NbaLine | None
    blocked_reason: str | None


@dataclass(frozen=True, slots=True)
class BriefNudge:
    """The daily brief: both theaters, their current NBAs, the overload risk."""

    kind: ClassVar[str] = "brief"
    nudge_id: UUID
    user_id: UUID
    local_date: date
    theaters: tuple[TheaterBrief, ...]
    overload: rules.Overload
    combined_progress: Decimal


@dataclass(frozen=True, slots=True)
class TheaterReview:
    arm: Arm
    minutes: int
    minute_share: Decimal
    energy_share: int
    done: int
    done_titles: tuple[str, ...]
    reflections: int
    evidence: tuple[str, ...]

    @property
    def drift(self) -> Decimal:
        """Points of logged share over (+) or under (−) the planned energy share."""
        return self.minute_share - self.energy_share


@dataclass(frozen=True, slots=True)
class ReviewNudge:
    """The weekly review of the last 7 days.

    ``drifted`` is the theater whose share of the logged minutes exceeded its planned energy
    share the most (None with nothing logged or no drift of a point or more); the review offers
    to shift 10 points of energy to it, so the plan follows where the time went.
    ``energy_ibm`` is the ibm share when the review was made (the button checks it).
    """

    kind: ClassVar[str] = "review"
    nudge_id: UUID
    user_id: UUID
    week: str
    theaters: tuple[TheaterReview, ...]
    total_minutes: int
    drifted: Arm | None
    drift_points: Decimal
    energy_ibm: int
    overload: rules.Overload

    @property
    def can_shift(self) -> bool:
        if self.drifted is None:
            return False
        return self.energy_ibm < 100 if self.drifted == "ibm" else self.energy_ibm > 0


Nudge = IdleNudge | OverloadNudge | BriefNudge | ReviewNudge
Send = Callable[[int, Nudge], Awaitable[None]]


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


# --- local time -----------------------------------------------------------------------------


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The user's zone; UTC if the stored name is unknown here (logged, never fatal)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        logger.warning("unknown time zone %r, using UTC", name)
        return ZoneInfo("UTC")


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def wall_instants(day: date, at: time, tz: ZoneInfo) -> list[datetime]:
    """Every instant (UTC) at which the local clock in ``tz`` reads ``day`` ``at``.

    One instant normally; two in a fall-back overlap (earlier first); in a spring-forward gap,
    where that reading never happens, the first valid instant after it (the transition).
    """
    naive = datetime.combine(day, at.replace(tzinfo=None))
    found: list[datetime] = []
    for fold in (0, 1):
        utc = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if _wall(utc, tz) == naive and utc not in found:
            found.append(utc)
    if found:
        return sorted(found)
    # A gap: the clock jumps from before ``naive`` to after it at one instant; find it.
    a = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)  # wall(lo) < naive < wall(hi)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if _wall(mid, tz) > naive:
            hi = mid
        else:
            lo = mid
    return [hi]


def occurrence(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The one instant a daily/weekly event set for ``at`` happens on local ``day``: the first
    reading of the clock (so a repeated fall-back hour fires once), or the first valid
    instant after a spring-forward gap (so it is never skipped)."""
    return wall_instants(day, at, tz)[0]


def in_quiet(now: datetime, tz: ZoneInfo, start: time | None, end: time | None) -> bool:
    """Whether ``now`` is within quiet hours [start, end) on the local clock (may wrap
    midnight). Both None, or start == end: no quiet hours."""
    if start is None or end is None or start == end:
        return False
    clock = _wall(now, tz).time()
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_end(now: datetime, tz: ZoneInfo, start: time | None, end: time | None) -> datetime:
    """The first instant after ``now`` outside quiet hours (``now`` if not in them)."""
    if not in_quiet(now, tz, start, end):
        return now
    assert end is not None
    today = _wall(now, tz).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        for instant in wall_instants(day, end, tz):
            if instant > now and not in_quiet(instant, tz, start, end):
                return instant
    return now + timedelta(hours=1)  # pragma: no cover - unreachable with real zones


def latest_daily(now: datetime, at: time, tz: ZoneInfo) -> tuple[date, datetime] | None:
    """The most recent daily occurrence at or before ``now``: (local day, instant)."""
    today = _wall(now, tz).date()
    for day in (today, today - timedelta(days=1), today - timedelta(days=2)):
        instant = occurrence(day, at, tz)
        if instant <= now:
            return day, instant
    return None  # pragma: no cover


def next_daily(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first daily occurrence strictly after ``after``."""
    today = _wall(after, tz).date()
    for offset in range(-1, 4):
        instant = occurrence(today + timedelta(days=offset), at, tz)
        if instant > after:
            return instant
    raise AssertionError("no daily occurrence within four days")  # pragma: no cover


def latest_weekly(
    now: datetime, weekday: int, at: time, tz: ZoneInfo
) -> tuple[date, datetime] | None:
    """The most recent weekly occurrence (``weekday`` 0 = Monday) at or before ``now``."""
    today = _wall(now, tz).date()
    day = today - timedelta(days=(today.weekday() - weekday) % 7)
    for candidate in (day, day - timedelta(days=7)):
        instant = occurrence(candidate, at, tz)
        if instant <= now:
            return candidate, instant
    return None  # pragma: no cover


def next_weekly(after: datetime, weekday: int, at: time, tz: ZoneInfo) -> datetime:
    """The first weekly occurrence strictly after ``after``."""
    today = _wall(after, tz).date()
    day = today + timedelta(days=(weekday - today.weekday()) % 7) - timedelta(days=7)
    for weeks in range(4):
        instant = occurrence(day + timedelta(days=7 * weeks), at, tz)
        if instant > after:
            return instant
    raise AssertionError("no weekly occurrence within four weeks")  # pragma: no cover


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _next_schedule(
    kind: str, after: datetime, at: time, day: int | None, tz: ZoneInfo
) -> datetime:
    if kind == "brief":
        return next_daily(after, at, tz)
    assert day is not None
    return next_weekly(after, day, at, tz)


# --- planning: candidates -> claims and hints --------------------------------------------------


@dataclass
class _Plan:
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


def _plan(
    now: datetime,
    idle: Iterable[scan.IdleCandidate],
    overload: Iterable[scan.OverloadCandidate],
    schedules: dict[ScheduleKind, list[scan.ScheduleCandidate]],
) -> _Plan:
    """Decide each candidate on its own: a value one user stored that cannot be used skips
    that user (logged once), and never the others. A row that breaks its constraints is not
    written to at all; any other row gets a hint :data:`UNREADABLE_RECHECK` later."""
    plan = _Plan()
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


# --- the scan -------------------------------------------------------------------------------


async def claim_due(
    db: Database, now: datetime, *, limit: int = SCAN_LIMIT, dry_run: bool = False
) -> tuple[list[LedgerRow], ScanReport]:
    """Decide what is due for all users, claim it in the ledger and move the hints on.

    Returns the rows this call claimed (another instance's claims are not among them). With
    ``dry_run`` nothing is written: the decision runs and is counted, then rolled back.
    """
    async with db.privileged() as uow:
        await scan.plan_for_now(uow)
        idle = await scan.idle_candidates(
            uow,
            now,
            lease_until=now + LEASE,
            repeat=IDLE_REPEAT,
            max_per_episode=IDLE_MAX_PER_EPISODE,
            limit=limit,
        )
        overload = await scan.overload_candidates(
            uow, now, lease_until=now + LEASE, repeat=OVERLOAD_REPEAT, rise=OVERLOAD_RISE,
            limit=limit,
        )  # fmt: skip
        schedules: dict[ScheduleKind, list[scan.ScheduleCandidate]] = {
            kind: await scan.schedule_candidates(uow, kind, now, limit=limit)
            for kind in SCHEDULE_KINDS
        }
        plan = _plan(now, idle, overload, schedules)
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
        await scan.set_overload_hints(uow, plan.overload_hints)
        await scan.set_idle_hints(uow, plan.idle_hints)
        for kind, hints in plan.schedule_hints.items():
            await scan.set_schedule_hints(uow, kind, hints)
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


# --- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ready:
    nudge: Nudge
    chat_id: int
    attempts: int


async def deliver(
    db: Database,
    rows: Sequence[LedgerRow],
    now: datetime,
    send: Send,
    *,
    concurrency: int = DELIVERY_CONCURRENCY,
) -> Counter[str]:
    """Re-check, send and record each claimed row; one user's nudges go out in order."""
    by_user: dict[UUID, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one_user(user_rows: list[LedgerRow]) -> None:
        async with gate:
            for row in sorted(user_rows, key=lambda r: (_KIND_ORDER[r.kind], str(r.dedupe_key))):
                try:
                    outcome = await deliver_one(db, row, now, send)
                except Exception as exc:  # never another user's delivery
                    logger.warning("nudge %s: %s", row.id, type(exc).__name__)
                    outcome = "error"
                outcomes[outcome] += 1

    await asyncio.gather(*(one_user(r) for r in by_user.values()))
    return outcomes


async def deliver_one(db: Database, row: LedgerRow, now: datetime, send: Send) -> str:
    """One claimed row: re-check, send, record. Returns the outcome's name."""
    try:
        ready = await _prepare(db, row, now)
    except Exception as exc:
        unreadable = exc if isinstance(exc, sanity.UnreadableData) else sanity.explain(exc)
        if unreadable is not None:  # what the user stored: skip them, final for this one
            skip_user(row.user_id, unreadable.where)
            reason = f"unreadable data: {unreadable.where}"
            await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, reason))
            return "failed"
        # Counted as an attempt (bounded); a later scan tries again.
        logger.exception("could not prepare nudge %s (%s)", row.id, row.kind)
        reason = f"{type(exc).__name__}: {exc}"
        await _record(
            db,
            row,
            lambda uow: ledger.note_error(uow, row.id, reason, now + RETRY_DELAY, MAX_ATTEMPTS),
        )
        return "error"
    if isinstance(ready, str):
        return ready
    try:
        await send(ready.chat_id, ready.nudge)
    except Blocked as exc:
        blocked = f"blocked: {exc}"
        await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, blocked))
        await accounts.deactivate_chat(db, ready.chat_id)
        logger.info("nudge %s: the user blocked the bot; link switched off", row.id)
        return "blocked"
    except SendFailed as exc:
        return await _after_failure(db, row, ready, now, exc, exc.permanent, exc.retry_after)
    except Exception as exc:  # a fault in the sender itself: treat as passing, bounded
        logger.exception("nudge %s: sender raised", row.id)
        return await _after_failure(db, row, ready, now, exc, False, None)
    await _record(db, row, lambda uow: ledger.mark_sent(uow, row.id, now))
    return "sent"


async def _after_failure(
    db: Database,
    row: LedgerRow,
    ready: _Ready,
    now: datetime,
    exc: BaseException,
    permanent: bool,
    retry_after: float | None,
) -> str:
    reason = str(exc) if isinstance(exc, SendFailed) else f"{type(exc).__name__}: {exc}"
    if permanent or ready.attempts >= MAX_ATTEMPTS:
        logger.warning("nudge %s given up after %d attempts: %s", row.id, ready.attempts, reason)
        await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, reason))
        return "failed"
    delay = max(RETRY_DELAY, timedelta(seconds=retry_after or 0))
    await _record(db, row, lambda uow: ledger.retry_later(uow, row.id, now + delay, reason))
    return "retry"


async def _record(
    db: Database, row: LedgerRow, write: Callable[[UnitOfWork], Awaitable[None]]
) -> None:
    """Write an outcome, retrying briefly: a sent nudge must not stay 'claimed'."""
    for pause in (0.2, 0.5, 1.0, None):
        try:
            async with db.user_uow(row.user_id) as uow:
                await write(uow)
                await uow.commit()
            return
        except Exception:
            if pause is None:
                logger.exception("could not record the outcome of nudge %s", row.id)
                return
            await asyncio.sleep(pause)


async def _prepare(db: Database, row: LedgerRow, now: datetime) -> _Ready | str:
    async with db.user_uow(row.user_id) as uow:
        try:
            settings = await state.begin_write(uow)
        except NotLinked:  # the account lost its settings or metrics row
            await ledger.mark_failed(uow, row.id, "account incomplete")
            await uow.commit()
            return "failed"
        sanity.check([settings], zone=False)  # an unknown zone: UTC, as the scan decided
        current = await ledger.lock(uow, row.id)
        if current is None or current.status != "claimed":
            return "skipped"  # another scan finished it
        link = await telegram_links.by_user(uow, row.user_id)
        if link is None or not link.active:
            await ledger.mark_failed(uow, row.id, "no active Telegram link")
            await uow.commit()
            return "failed"
        if current.attempts >= MAX_ATTEMPTS:
            await ledger.mark_failed(uow, row.id, f"gave up after {current.attempts} attempts")
            await uow.commit()
            return "failed"
        both, overload = await _refresh(uow, settings, now)
        reason = _recheck(current, settings, both, overload, now)
        if reason is not None:
            await _withdraw(uow, current, settings, both, now)
            await uow.commit()
            logger.info("nudge %s withdrawn: %s", row.id, reason)
            return "cancelled"
        if current.kind in ("idle", "overload"):
            tz = zone(settings.timezone)
            if in_quiet(now, tz, settings.quiet_start, settings.quiet_end):
                end = quiet_end(now, tz, settings.quiet_start, settings.quiet_end)
                await ledger.retry_later(uow, row.id, end)
                await uow.commit()
                return "deferred"
        nudge = await _build(uow, current, settings, both, overload, now)
        risk = overload.risk if current.kind == "overload" else None
        await ledger.start_attempt(uow, row.id, now + LEASE, risk)
        await uow.commit()
        return _Ready(nudge, link.chat_id, current.attempts + 1)


async def _refresh(
    uow: UnitOfWork, settings: UserSettings, now: datetime
) -> tuple[dict[Arm, Theater], rules.Overload]:
    """Fresh stale days, current items, statuses and risk for the user (under their lock).

    What the user stored is checked as it is read (``state.rerank`` and ``state.theater``
    raise UnreadableData), before the refresh computes with it or writes to those rows."""
    for arm in ARMS:
        await state.rerank(uow, arm, now)
        await state.refresh_status(uow, await state.theater(uow, arm), now, settings)
    overload = await state.recompute_risk(uow, now, settings)
    return await theaters_repo.get_all(uow), overload


def _recheck(
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    overload: rules.Overload,
    now: datetime,
) -> str | None:
    """Why this nudge must not go out now (None: send it)."""
    if row.kind == "idle":
        assert row.arm_type is not None
        theater = both[row.arm_type]
        if theater.status == "blocked":
            return "theater blocked"
        if theater.snoozed_until is not None and theater.snoozed_until > now:
            return "theater snoozed"
        if row.episode_at is not None and theater.last_activity != row.episode_at:
            return "new activity"
        if rules.theater_status(theater.last_activity, now, settings.idle_after_hours) != "idle":
            return "not idle"
    elif row.kind == "overload":
        if overload.risk < settings.overload_threshold:
            return "risk below threshold"
        if settings.overload_snoozed_until is not None and settings.overload_snoozed_until > now:
            return "overload snoozed"
    elif row.kind == "brief" and settings.brief_time is None:
        return "brief turned off"
    elif row.kind == "review" and (settings.review_day is None or settings.review_time is None):
        return "review turned off"
    return None


async def _withdraw(
    uow: UnitOfWork,
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    now: datetime,
) -> None:
    """Delete the claim (its key is free again) and point the hint at the next chance."""
    await ledger.delete(uow, row.id)
    if row.kind == "idle" and row.arm_type is not None:
        theater = both[row.arm_type]
        at = theater.last_activity + timedelta(hours=settings.idle_after_hours)
        if theater.snoozed_until is not None and theater.snoozed_until > now:
            at = max(at, theater.snoozed_until)
        await scan.pull_idle_hint(uow, row.arm_type, at)
    elif row.kind == "overload":
        snooze = settings.overload_snoozed_until
        await scan.set_own_overload_hint(uow, snooze if snooze and snooze > now else None)


def _nba_line(items: Sequence[NbaItem], now: datetime) -> NbaLine | None:
    ranked = rules.rank(items, now)
    if not ranked or not ranked[0].is_current:
        return None
    top = ranked[0]
    return NbaLine(top.item.id, top.item.title, top.explanation)


async def _build(
    uow: UnitOfWork,
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    overload: rules.Overload,
    now: datetime,
) -> Nudge:
    if row.kind == "idle":
        assert row.arm_type is not None
        theater = both[row.arm_type]
        items = await nba_items.open_items(uow, row.arm_type)
        return IdleNudge(
            nudge_id=row.id,
            user_id=row.user_id,
            arm=row.arm_type,
            days_idle=rules.stale_days(theater.last_activity, now),
            last_activity=theater.last_activity,
            timezone=settings.timezone if sanity.known_zone(settings.timezone) else "UTC",
            current=_nba_line(items, now),
        )
    if row.kind == "overload":
        return OverloadNudge(row.id, row.user_id, overload, settings.overload_threshold)
    metrics = await global_metrics.get(uow)
    assert metrics is not None
    items = await nba_items.open_items_all(uow)
    if row.kind == "brief":
        briefs = tuple(
            TheaterBrief(
                arm=arm,
                status=rules.theater_status(
                    both[arm].last_activity,
                    now,
                    settings.idle_after_hours,
                    blocked=both[arm].status == "blocked",
                ),
                progress=both[arm].total_progress,
                energy=both[arm].energy_allocation,
                current=_nba_line([i for i in items if i.arm_type == arm], now),
                blocked_reason=both[arm].blocked_reason,
            )
            for arm in ARMS
        )
        local_day = date.fromisoformat(row.dedupe_key.removeprefix("brief:"))
        combined = rules.combined_progress(both["ibm"].total_progress, both["cs"].total_progress)
        return BriefNudge(row.id, row.user_id, local_day, briefs, overload, combined)
    return await _build_review(uow, row, both, metrics.energy_allocation_ibm, overload, now)


async def _build_review(
    uow: UnitOfWork,
    row: LedgerRow,
    both: dict[Arm, Theater],
    energy_ibm: int,
    overload: rules.Overload,
    now: datetime,
) -> ReviewNudge:
    since = now - REVIEW_WINDOW
    minutes = await execution_logs.minutes_by_arm(uow, since, now)
    shares = rules.minute_shares(minutes)
    week = await scan.week_in_review(uow, since, now, _REVIEW_SAMPLE)
    reviews = tuple(
        TheaterReview(
            arm=arm,
            minutes=minutes[arm],
            minute_share=shares[arm],
            energy_share=both[arm].energy_allocation,
            done=week[arm].done,
            done_titles=week[arm].done_titles,
            reflections=week[arm].reflections,
            evidence=week[arm].evidence,
        )
        for arm in ARMS
    )
    total = sum(minutes.values())
    drifted: Arm | None = None
    points = Decimal(0)
    if total > 0:
        top = max(reviews, key=lambda r: r.drift)
        if top.drift >= 1:
            drifted, points = top.arm, top.drift
    return ReviewNudge(
        nudge_id=row.id,
        user_id=row.user_id,
        week=row.dedupe_key.removeprefix("review:"),
        theaters=reviews,
        total_minutes=total,
        drifted=drifted,
        drift_points=points,
        energy_ibm=energy_ibm,
        overload=overload,
    )


# --- the user's nudge settings ----------------------------------------------------------------


class EnergyChanged(DomainError):
    """The energy split changed since the button was made."""

    def __init__(self, ibm: int, cs: int) -> None:
        self.ibm, self.cs = ibm, cs
        super().__init__(f"That changed: your energy is now ibm {ibm}% · cs {cs}%.")


SETTING_NAMES = frozenset(
    {
        "timezone",
        "quiet_start",
        "quiet_end",
        "brief_time",
        "review_day",
        "review_time",
        "idle_after_hours",
        "overload_threshold",
        "weekly_capacity_hours",
    }
)


def _validate(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - SETTING_NAMES
    if unknown:
        raise ValueError(f"not a nudge setting: {sorted(unknown)}")
    clean = dict(changes)
    if "timezone" in clean:
        clean["timezone"] = validation.check_timezone(str(clean["timezone"]))
    for name in ("quiet_start", "quiet_end", "brief_time", "review_time"):
        if clean.get(name) is not None:
            value = clean[name]
            if not isinstance(value, time):
                raise TypeError(f"{name} must be a datetime.time")
            clean[name] = value.replace(second=0, microsecond=0, tzinfo=None)
    if clean.get("review_day") is not None and not 0 <= int(clean["review_day"]) <= 6:
        raise OutOfRange("review day", clean["review_day"], 0, 6)
    if "idle_after_hours" in clean:
        clean["idle_after_hours"] = validation.check_hours(int(clean["idle_after_hours"]))
    if "overload_threshold" in clean:
        clean["overload_threshold"] = validation.check_threshold(int(clean["overload_threshold"]))
    if "weekly_capacity_hours" in clean:
        clean["weekly_capacity_hours"] = validation.check_capacity_hours(
            int(clean["weekly_capacity_hours"])
        )
    return clean


def _check_pairs(merged: UserSettings) -> None:
    if (merged.quiet_start is None) != (merged.quiet_end is None):
        raise InvalidSetting("Quiet hours need both a start and an end (or off).")
    if merged.quiet_start is not None and merged.quiet_start == merged.quiet_end:
        raise InvalidSetting("Quiet hours need different start and end times (or send off).")
    if (merged.review_day is None) != (merged.review_time is None):
        raise InvalidSetting("The weekly review needs both a day and a time (or off).")


async def get_settings(db: Database, principal: Principal) -> UserSettings:
    """The user's nudge settings."""
    async with db.user_uow(principal, read_only=True) as uow:
        return await state.begin_read(uow)


async def update_settings(
    db: Database, principal: Principal, *, now: datetime, **changes: Any
) -> UserSettings:
    """Change nudge settings (validated; pairs such as quiet start/end checked together).

    A new capacity recomputes the overload risk and a new idle threshold the theaters'
    status at once; a new brief or review schedule takes effect from ``now`` on.
    """
    clean = _validate(changes)
    async with db.user_uow(principal) as uow:
        before = await state.begin_write(uow)
        merged = dataclasses.replace(before, **clean)
        _check_pairs(merged)
        if clean:
            await settings_repo.update(uow, **clean)
        if merged.weekly_capacity_hours != before.weekly_capacity_hours:
            await state.recompute_risk(uow, now, merged)
        if merged.idle_after_hours != before.idle_after_hours:
            for theater in (await theaters_repo.get_all(uow)).values():
                await state.refresh_status(uow, theater, now, merged)
        await _reschedule_own(uow, before, merged, now)
        await uow.commit()
        return merged


async def _reschedule_own(
    uow: UnitOfWork, before: UserSettings, after: UserSettings, now: datetime
) -> None:
    """Set the brief/review hints to their next instant at or after ``now`` (the triggers
    only mark them for the scan to recompute, a scan later)."""
    zone_changed = before.timezone != after.timezone
    tz = zone(after.timezone)
    since = now - timedelta(microseconds=1)
    brief = None
    if after.brief_time is not None:
        brief = next_daily(since, after.brief_time, tz)
    review = None
    if after.review_day is not None and after.review_time is not None:
        review = next_weekly(since, after.review_day, after.review_time, tz)
    if zone_changed or before.brief_time != after.brief_time:
        await scan.set_own_schedule_hint(uow, "brief", brief)
    if zone_changed or (before.review_day, before.review_time) != (
        after.review_day,
        after.review_time,
    ):
        await scan.set_own_schedule_hint(uow, "review", review)


async def set_capacity(
    db: Database, principal: Principal, hours: int, now: datetime
) -> rules.Overload:
    """Set the weekly capacity (1-168 h) and return the overload risk it gives now."""
    hours = validation.check_capacity_hours(hours)
    async with db.user_uow(principal) as uow:
        before = await state.begin_write(uow)
        await settings_repo.update(uow, weekly_capacity_hours=hours)
        after = dataclasses.replace(before, weekly_capacity_hours=hours)
        overload = await state.recompute_risk(uow, now, after)
        await uow.commit()
        return overload


async def snooze_overload(
    db: Database, principal: Principal, until: datetime, now: datetime
) -> datetime:
    """No overload nudges until ``until``."""
    async with db.user_uow(principal) as uow:
        await state.begin_write(uow)
        await settings_repo.update(uow, overload_snoozed_until=until)
        await uow.commit()
    return until


async def shift_energy_toward(
    db: Database,
    principal: Principal,
    towards: Arm,
    points: int,
    expected_ibm: int,
    now: datetime,
) -> tuple[int, int]:
    """Move ``points`` of energy to ``towards`` if the split is still ``expected_ibm`` (the
    review's button): a second tap, or a split changed meanwhile, raises EnergyChanged."""
    async with db.user_uow(principal) as uow:
        await state.begin_write(uow)
        metrics = await global_metrics.get(uow)
        if metrics is None:
            raise NotLinked()
        if metrics.energy_allocation_ibm != expected_ibm:
            raise EnergyChanged(metrics.energy_allocation_ibm, metrics.energy_allocation_cs)
        delta = points if towards == "ibm" else -points
        ibm, cs = rules.energy_split(min(100, max(0, expected_ibm + delta)))
        await theaters_repo.set_energy(uow, ibm, cs, now)
        await global_metrics.set_energy(uow, ibm, cs, now)
        await uow.commit()
        return ibm, cs


__all__ = [
    "Blocked",
    "BriefNudge",
    "EnergyChanged",
    "IdleNudge",
    "NbaLine",
    "Nudge",
    "NudgeKind",
    "OverloadNudge",
    "ReviewNudge",
    "ScanReport",
    "Send",
    "SendFailed",
    "claim_due",
    "deliver",
    "due_count",
    "get_settings",
    "run_scan",
    "set_capacity",
    "shift_energy_toward",
    "snooze_overload",
    "update_settings",
]
