"""Logging time, undo, reflections, progress, energy, blocking.

The writes a person may make during a database outage are also commands
(:mod:`services.commands`), each next to its function: :class:`LogTime`, :class:`Reflect`,
:class:`SetProgress`, :class:`SetEnergy`, :class:`Block`, :class:`Unblock`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import cast
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import psycopg

from services import rules, sanity, state, stats, validation
from services.commands import Command
from services.db import Database, Principal, UnitOfWork, in_joined_unit
from services.errors import Implausible, NotFound, NothingToUndo, NotLinked, Superseded
from services.models import Arm, ExecutionLog, Reflection, TheaterStatus
from services.repos import execution_logs, global_metrics, reflections, theaters


@dataclass(frozen=True, slots=True)
class LogResult:
    """A recorded log (or the earlier one, for a repeated key) and what it changed."""

    log: ExecutionLog
    status: TheaterStatus
    overload: rules.Overload
    duplicate: bool = False


#: One theater's minutes in one local day above which a log is saved only when confirmed.
PLAUSIBLE_DAY_MINUTES = 16 * 60
#: Reaches back past the start of the local day of any instant, in any time zone (a local
#: day lasts at most 26 hours).
DAY_REACH = timedelta(days=2)


def local_day(at: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The local day of ``at`` in ``timezone`` (UTC if the zone is unknown): when it began,
    and when the next one begins."""
    zone = ZoneInfo(timezone if sanity.known_zone(timezone) else "UTC")
    day = at.astimezone(zone).date()
    return stats.local_midnight(day, zone), stats.local_midnight(day + timedelta(days=1), zone)


def implausible(
    arm: Arm,
    minutes: int,
    logged: Iterable[tuple[datetime, int]],
    day: tuple[datetime, datetime],
) -> Implausible | None:
    """The refusal of ``minutes`` more in ``arm`` on ``day`` (see :func:`local_day`) if they
    would take the day over :data:`PLAUSIBLE_DAY_MINUTES`; None if they would not.
    ``logged``: the (time, minutes) of the theater's other logs, reaching the whole day."""
    start, end = day
    total = minutes + sum(m for at, m in logged if start <= at < end)
    if total <= PLAUSIBLE_DAY_MINUTES:
        return None
    return Implausible(arm, total, minutes, PLAUSIBLE_DAY_MINUTES)


async def log_time(
    db: Database,
    user_id: Principal,
    arm: Arm,
    minutes: int | None,
    action: str,
    now: datetime,
    *,
    details: str | None = None,
    dedupe_key: str | None = None,
    confirmed: bool = False,
) -> LogResult:
    """Record what the user did in ``arm``; the theater becomes active (unless blocked).

    A log that would take ``arm``'s minutes for the user's local day (``now`` in their time
    zone) over :data:`PLAUSIBLE_DAY_MINUTES` raises :class:`Implausible` and writes nothing,
    unless ``confirmed``. A repeated ``dedupe_key`` returns the earlier log either way.

    One round trip: the opening, the write lock and one statement that checks, writes and
    commits (``execution_logs.log_once``); the reply's status and risk come from the rules
    over what it returns. A time zone the database does not know (set outside the bot) takes
    the way of several statements, which reads the day in UTC as the rules do; so does a
    log the statement refused on the reading of the day the rules do not take (the UTC day
    for a zone the bot knows, the zone's day for one it does not)."""
    action = validation.clean_action(action)
    details = validation.clean_details(details)
    if minutes is not None:
        minutes = validation.check_minutes(minutes)
    try:
        async with state.locked(db, user_id) as uow:  # the statement sees every earlier write
            done = await execution_logs.log_once(
                uow, arm=arm, action=action, details=details, duration=minutes, now=now,
                dedupe_key=dedupe_key, week_since=now - state.WEEK,
                recent_since=now - DAY_REACH, day_limit=PLAUSIBLE_DAY_MINUTES,
                confirmed=confirmed,
            )  # fmt: skip
    except psycopg.errors.DataError:
        if in_joined_unit():  # the answer's transaction failed with it: nothing to retry in
            raise
        return await _log_time_in_steps(
            db, user_id, arm, minutes, action, now,
            details=details, dedupe_key=dedupe_key, confirmed=confirmed,
        )  # fmt: skip
    if done.capacity is None or not done.theater_found:
        raise NotLinked()
    if done.log is not None:
        blocked = done.theater_status == "blocked"
        status = rules.theater_status(now, now, blocked=blocked)  # activity now
        return LogResult(
            done.log, status, rules.overload(done.week_minutes + (minutes or 0), done.capacity)
        )
    if done.earlier is not None:  # a repeated key: the earlier log, and nothing written
        status = cast(TheaterStatus, done.earlier_status)
        return LogResult(
            done.earlier, status, rules.overload(done.week_minutes, done.capacity), True
        )
    assert minutes is not None and not done.plausible
    # the statement asks both readings of the day; the rules read it in the user's zone, or
    # in UTC where the bot does not know the zone (the database may: "UTC+12", a lower-case
    # name, an abbreviation)
    known = done.timezone is not None and sanity.known_zone(done.timezone)
    day_minutes = done.day_minutes if known else done.utc_day_minutes
    if day_minutes + minutes > PLAUSIBLE_DAY_MINUTES:
        raise Implausible(arm, day_minutes + minutes, minutes, PLAUSIBLE_DAY_MINUTES)
    # only the other reading refused it (a day near the limit on both sides of midnight)
    return await _log_time_in_steps(
        db, user_id, arm, minutes, action, now,
        details=details, dedupe_key=dedupe_key, confirmed=confirmed,
    )  # fmt: skip


async def _log_time_in_steps(
    db: Database,
    user_id: Principal,
    arm: Arm,
    minutes: int | None,
    action: str,
    now: datetime,
    *,
    details: str | None,
    dedupe_key: str | None,
    confirmed: bool,
) -> LogResult:
    """:func:`log_time` in several statements, with the rules in Python (a local day in
    UTC where the time zone is unknown)."""
    async with state.locked(db, user_id) as uow:  # the read below sees every earlier write
        inputs = await execution_logs.log_inputs(uow, now - state.WEEK, now, now - DAY_REACH)
        settings = inputs.settings
        if settings is None:
            raise NotLinked()
        capacity = settings.weekly_capacity_hours
        theater = inputs.theaters.get(arm)
        if theater is None:
            raise NotLinked()
        if minutes is not None and not confirmed:
            today = local_day(now, settings.timezone)
            refused = implausible(arm, minutes, inputs.recent.get(arm, ()), today)
            if refused is not None:
                # a repeat of a log already recorded: its minutes are in the total already
                earlier = await _earlier(uow, dedupe_key)
                if earlier is not None:
                    return _duplicate(inputs, earlier, capacity)
                raise refused
        status = state.logged_status(theater, now, settings)
        overload = rules.overload(inputs.minutes + (minutes or 0), capacity)
        recorded = await execution_logs.record(
            uow,
            arm=arm,
            action=action,
            details=details,
            duration=minutes,
            now=now,
            dedupe_key=dedupe_key,
            status=status,
            risk=overload.risk,
        )
        if recorded is None:  # a repeated key: the earlier log, and nothing written
            assert dedupe_key is not None
            earlier = await execution_logs.by_dedupe_key(uow, dedupe_key)
            assert earlier is not None
            return _duplicate(inputs, earlier, capacity)
        await uow.commit()
        return LogResult(recorded[0], status, overload)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogTime(Command[LogResult]):
    """/log: what the user did in ``arm`` and for how long (None: no time), see
    :func:`log_time`."""

    name = "log_time"
    operation = "INSERT"
    table_name = "execution_logs"

    arm: Arm
    action: str
    minutes: int | None = None
    details: str | None = None
    dedupe_key: str | None = None
    confirmed: bool = False

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> LogResult:
        return await log_time(
            db, who, self.arm, self.minutes, self.action, now,
            details=self.details, dedupe_key=self.dedupe_key,
            # replayed: the user can't be asked whether an implausibly long day is right
            confirmed=self.confirmed or replayed,
        )  # fmt: skip

    def describe(self) -> str:
        return f"log “{self.action}” in {self.arm}"


async def _earlier(uow: UnitOfWork, dedupe_key: str | None) -> ExecutionLog | None:
    """The log recorded under ``dedupe_key`` (None: no key, or nothing under it)."""
    return None if dedupe_key is None else await execution_logs.by_dedupe_key(uow, dedupe_key)


def _duplicate(
    inputs: execution_logs.LogInputs, earlier: ExecutionLog, capacity: int
) -> LogResult:
    """The result of a log already recorded under the same key."""
    theater = inputs.theaters.get(earlier.arm_type)
    if theater is None:
        raise NotLinked()
    return LogResult(earlier, theater.status, rules.overload(inputs.minutes, capacity), True)


async def set_log_minutes(
    db: Database,
    user_id: Principal,
    log_id: UUID,
    minutes: int,
    now: datetime,
    *,
    confirmed: bool = False,
) -> LogResult:
    """Attach minutes to a log after the fact (the Done confirmation's buttons).

    Minutes that would take the log's theater over :data:`PLAUSIBLE_DAY_MINUTES` on the
    log's local day raise :class:`Implausible` and change nothing, unless ``confirmed``."""
    minutes = validation.check_minutes(minutes)
    async with state.locked(db, user_id) as uow:  # the read below sees every earlier write
        found = await execution_logs.log_day(uow, log_id, DAY_REACH)
        if found is None:
            raise NotLinked()
        settings, log, others = found
        if log is None:
            raise NotFound("log")
        day = local_day(log.timestamp, settings.timezone)
        refused = None if confirmed else implausible(log.arm_type, minutes, others, day)
        if refused is not None:
            raise refused
        changed = await execution_logs.set_duration(uow, log_id, minutes)
        if changed is None:
            raise NotFound("log")
        overload = await state.recompute_risk(uow, now, settings)
        theater = await state.theater(uow, changed.arm_type)
        await uow.commit()
        return LogResult(changed, theater.status, overload)


async def set_log_details(
    db: Database, user_id: Principal, log_id: UUID, details: str
) -> LogResult:
    """Add details to one of the user's logs (the risk stays as it was when it was written)."""
    cleaned = validation.clean_details(details)
    async with db.user_uow(user_id) as uow:
        settings = await state.begin_write(uow)
        changed = await execution_logs.set_details(uow, log_id, cleaned)
        if changed is None:
            raise NotFound("log")
        overload = await state.risk_at(uow, changed.timestamp, settings.weekly_capacity_hours)
        theater = await state.theater(uow, changed.arm_type)
        await uow.commit()
        return LogResult(changed, theater.status, overload)


@dataclass(frozen=True, slots=True)
class UndoResult:
    log: ExecutionLog
    last_activity: datetime
    status: TheaterStatus
    overload: rules.Overload
    timezone: str


async def undo_last(db: Database, user_id: Principal, now: datetime) -> UndoResult:
    """Remove the latest log if under 24 h old; last activity goes back to what remains."""
    async with db.user_uow(user_id) as uow:
        settings = await state.begin_write(uow)
        log = await execution_logs.latest(uow)
        if log is None:
            raise NothingToUndo("you have no logs yet")
        if not rules.undo_allowed(log.timestamp, now):
            raise NothingToUndo("your latest log is more than 24 hours old")
        await execution_logs.delete(uow, log.id)
        theater = await state.theater(uow, log.arm_type)
        previous = await execution_logs.latest_time(uow, log.arm_type)
        if previous is None:
            previous = await theaters.created_at(uow, log.arm_type) or log.timestamp
        await state.refresh_status(uow, theater, now, settings, last_activity=previous)
        overload = await state.recompute_risk(uow, now, settings)
        await uow.commit()
        status = rules.theater_status(
            previous, now, settings.idle_after_hours, blocked=theater.status == "blocked"
        )
        return UndoResult(log, previous, status, overload, settings.timezone)


async def reflect(
    db: Database,
    user_id: Principal,
    arm: Arm,
    evidence: str,
    now: datetime,
    context: str | None = None,
    *,
    reflection_id: UUID | None = None,
) -> Reflection:
    """Record a reflection backed by an objective fact: the opening, the write lock, the
    insert and COMMIT in one round trip. ``reflection_id``: its id; a reflection of the
    user's already under it (the same command applied before, its answer lost) is returned
    and nothing is written."""
    evidence = validation.clean_evidence(evidence)
    context = validation.clean_context(context)
    async with state.locked(db, user_id) as uow:
        return await reflections.insert(uow, reflection_id or uuid4(), arm, evidence, context, now)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reflect(Command[Reflection]):
    """/reflect: a reflection in ``arm`` backed by ``evidence`` (:func:`reflect`)."""

    name = "reflect"
    operation = "INSERT"
    table_name = "reflections"

    arm: Arm
    evidence: str
    context: str | None = None
    #: the reflection's id, chosen once, so that the command applied again (kept in the
    #: outbox after its answer was lost) writes nothing more
    reflection_id: UUID = field(default_factory=uuid4)

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> Reflection:
        return await reflect(
            db, who, self.arm, self.evidence, now, self.context, reflection_id=self.reflection_id
        )

    def describe(self) -> str:
        return f"reflection “{self.evidence}” in {self.arm}"


async def add_context(
    db: Database, user_id: Principal, reflection_id: UUID, context: str
) -> Reflection:
    """Set the context of an existing reflection."""
    cleaned = validation.clean_context(context)
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        if await reflections.set_context(uow, reflection_id, cleaned) == 0:
            raise NotFound("reflection")
        found = await reflections.get(uow, reflection_id)
        assert found is not None
        await uow.commit()
        return found


async def set_progress(
    db: Database,
    user_id: Principal,
    arm: Arm,
    value: int | Decimal,
    now: datetime,
    *,
    replayed: bool = False,
) -> Decimal:
    """Set a theater's progress (0-100); returns the new combined progress.

    ``replayed`` (a change kept during an outage, ``now`` the time the user sent it): raises
    ``Superseded`` if the progress was set live at or after that time."""
    progress = validation.check_progress(value)
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        if not await theaters.set_progress(uow, arm, progress, now, replayed=replayed):
            raise Superseded(f"{arm} progress") if replayed else sanity.missing_theater(arm)
        combined = await state.recompute_progress(uow, now)
        await uow.commit()
        return combined


@dataclass(frozen=True, slots=True, kw_only=True)
class SetProgress(Command[Decimal]):
    """/progress: ``arm``'s progress in percent; the result is the combined progress
    (:func:`set_progress`)."""

    name = "set_progress"
    operation = "UPDATE"
    table_name = "theaters"

    arm: Arm
    value: Decimal

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> Decimal:
        return await set_progress(db, who, self.arm, self.value, now, replayed=replayed)

    def describe(self) -> str:
        return f"{self.arm} progress {self.value}%"


async def set_energy(
    db: Database, user_id: Principal, ibm_share: int, now: datetime, *, replayed: bool = False
) -> tuple[int, int]:
    """Split energy: ibm gets ``ibm_share`` %, cs the rest.

    ``replayed``: raises ``Superseded`` if the split was changed live at or after ``now``."""
    ibm, cs = rules.energy_split(validation.check_energy(ibm_share))
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        if not await global_metrics.set_energy(uow, ibm, cs, now, replayed=replayed):
            raise Superseded("energy split") if replayed else sanity.missing_metrics()
        await theaters.set_energy(uow, ibm, cs, now)
        await uow.commit()
        return ibm, cs


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEnergy(Command[tuple[int, int]]):
    """/energy: ibm's share of the energy in percent; the result is (ibm, cs)
    (:func:`set_energy`)."""

    name = "set_energy"
    operation = "UPDATE"
    table_name = "global_metrics"

    ibm_share: int

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> tuple[int, int]:
        return await set_energy(db, who, self.ibm_share, now, replayed=replayed)

    def describe(self) -> str:
        return f"energy split ibm {self.ibm_share}%"


async def block(
    db: Database,
    user_id: Principal,
    arm: Arm,
    reason: str | None,
    now: datetime,
    *,
    replayed: bool = False,
) -> TheaterStatus:
    """Block a theater: no idle nudges; it stays blocked through logging until unblocked.

    ``replayed``: raises ``Superseded`` if it was blocked or unblocked live at or after
    ``now``."""
    cleaned = validation.clean_block_reason(reason)
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        if not await theaters.set_blocked(uow, arm, cleaned, "blocked", now, replayed=replayed):
            raise Superseded(f"{arm} block") if replayed else sanity.missing_theater(arm)
        await uow.commit()
        return "blocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Command[TheaterStatus]):
    """/block: no idle nudges for ``arm`` until it is unblocked (:func:`block`)."""

    name = "block"
    operation = "UPDATE"
    table_name = "theaters"

    arm: Arm
    reason: str | None = None

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> TheaterStatus:
        return await block(db, who, self.arm, self.reason, now, replayed=replayed)

    def describe(self) -> str:
        return f"blocking {self.arm}"


async def unblock(
    db: Database, user_id: Principal, arm: Arm, now: datetime, *, replayed: bool = False
) -> TheaterStatus:
    """Unblock a theater; its status follows its last activity again.

    ``replayed``: raises ``Superseded`` if it was blocked or unblocked live at or after
    ``now``."""
    async with db.user_uow(user_id) as uow:
        settings = await state.begin_write(uow)
        theater = await state.theater(uow, arm)
        status = rules.theater_status(theater.last_activity, now, settings.idle_after_hours)
        if not await theaters.set_blocked(uow, arm, None, status, now, replayed=replayed):
            raise Superseded(f"{arm} block") if replayed else sanity.missing_theater(arm)
        await uow.commit()
        return status


@dataclass(frozen=True, slots=True, kw_only=True)
class Unblock(Command[TheaterStatus]):
    """/unblock: ``arm``'s status follows its last activity again; the result is that
    status (:func:`unblock`)."""

    name = "unblock"
    operation = "UPDATE"
    table_name = "theaters"

    arm: Arm

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> TheaterStatus:
        return await unblock(db, who, self.arm, now, replayed=replayed)

    def describe(self) -> str:
        return f"unblocking {self.arm}"


async def snooze(
    db: Database, user_id: Principal, arm: Arm, until: datetime, now: datetime
) -> None:
    """No idle nudges for ``arm`` until ``until``."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        await theaters.set_snooze(uow, arm, until, now)
        await uow.commit()
