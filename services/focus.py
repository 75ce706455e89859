"""Focus sessions: the bot keeps the time while a person works on a theater's current item.

A session starts on an open item (the NBA card's ▶ Start, or ``/focus cs 50m``), may be
paused and resumed, and ends with a stop, which records an execution log of its working
minutes through the same path as the NBA card's Progress (:func:`services.nba.progress`: the
item's early-progress bonus, activity, the re-rank), or with done, which completes the item
like the card's Done (:func:`services.nba.done`) with those minutes.

Working time is (the pause, or the stop, or ``now``) − started_at − paused_seconds, rounded to
whole minutes, at least 1 and at most /log's limit (:data:`validation.MINUTES_RANGE`). More
than :data:`CONFIRM_OVER` of it is recorded only when confirmed (:class:`LongSession`).

At most one session per user is not stopped: the database enforces it (a partial unique
index), and starting a second raises :class:`AlreadyRunning`, which carries the first.

Every value is read as the user may have written it through the Data API, and clamped
before use (:func:`working_seconds`): a start in the future counts as now, a pause before
the start as the start, paused seconds beyond the elapsed ones as all of them.

Every public function takes ``now`` (the clock is injectable) and is one unit of work for the
user, under the user's write lock. A stop's log is written with the dedupe key
``focus:<session id>``, so a stop that is repeated (a double tap, a retry) records once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID

from services import nba, rules, sanity, state, tracking, validation
from services.commands import Command
from services.db import Database, Principal
from services.errors import Conflict, DomainError, NotFound, NotLinked
from services.models import Arm, ExecutionLog, FocusSession
from services.repos import focus_messages, focus_sessions, nba_items, user_settings

#: Working time above which a stop asks first (it is recorded only when confirmed).
CONFIRM_OVER = timedelta(hours=12)
#: The most a stop ever records: /log's limit.
MAX_MINUTES = validation.MINUTES_RANGE[1]
#: What a log says was done when the session's item is gone.
UNTITLED = "Focus session"
#: The largest paused_seconds the table accepts.
_MAX_PAUSED = 10 * 365 * 86400
#: Working time after which a session gets its one "Still working?" (unless its planned
#: length is as long: "Time's up" asks then).
STILL_AFTER = timedelta(hours=4)
#: What "+10 min" adds to the planned length.
EXTEND_BY = 10
#: A typed length that means none ("/focus cs no limit", "/settings focus off").
NO_LENGTH = ("no", "no limit", "none", "0", "off")


class NoSession(NotFound):
    """The session a button pointed at does not exist (deleted, or not the user's)."""

    def __init__(self) -> None:
        super().__init__("focus session")


class AlreadyStopped(Conflict):
    def __init__(self) -> None:
        super().__init__("That focus session has already ended.")


class NoCurrentItem(Conflict):
    def __init__(self, arm: Arm) -> None:
        super().__init__(
            f"No open Next Best Action in {arm} to focus on: add one with /add {arm} first."
        )
        self.arm = arm


class AlreadyRunning(Conflict):
    """A session is running already: the handler asks whether to stop and log it."""

    def __init__(self, session: FocusSession) -> None:
        super().__init__(f"You are already focusing on “{title_of(session)}”.")
        self.session = session


class LongSession(DomainError):
    """A stop of more than :data:`CONFIRM_OVER` of working time: recorded only when
    confirmed. ``minutes``: what a confirmed stop records."""

    def __init__(self, session: FocusSession, minutes: int) -> None:
        hours = CONFIRM_OVER.total_seconds() / 3600
        super().__init__(
            f"“{title_of(session)}” has been running for more than {hours:g} hours."
            f" Log {minutes} min anyway?"
        )
        self.session = session
        self.minutes = minutes


def title_of(session: FocusSession) -> str:
    return session.title or UNTITLED


def working_seconds(session: FocusSession, now: datetime) -> int:
    """The session's working seconds as of ``now``: elapsed time up to its pause (or stop,
    or ``now``) less its paused seconds, with every stored value clamped into sense."""
    start = min(session.started_at, now)
    end = session.stopped_at or session.paused_at or now
    end = min(max(end, start), now)
    elapsed = int((end - start).total_seconds())
    paused = min(max(session.paused_seconds, 0), elapsed)
    return elapsed - paused


def working_minutes(seconds: int) -> int:
    """Whole minutes (half a minute rounds up), at least 1, at most /log's limit."""
    return min(max((seconds + 30) // 60, 1), MAX_MINUTES)


def is_paused(session: FocusSession) -> bool:
    return session.paused_at is not None and session.stopped_at is None


def planned(minutes: int | None) -> int | None:
    """A planned length, checked like a log's minutes."""
    return None if minutes is None else validation.check_minutes(minutes)


def _running_since(session: FocusSession) -> datetime | None:
    """The instant working time would have started had there been no pause (None: paused
    or stopped, so nothing is due)."""
    if session.stopped_at is not None or session.paused_at is not None:
        return None
    return session.started_at + timedelta(seconds=max(session.paused_seconds, 0))


def times_up_at(session: FocusSession) -> datetime | None:
    """When the planned length of working time is reached (None: no length, or not
    running)."""
    since = _running_since(session)
    if since is None or session.planned_minutes is None:
        return None
    return since + timedelta(minutes=session.planned_minutes)


def still_at(session: FocusSession) -> datetime | None:
    """When the session has run :data:`STILL_AFTER` of working time (None: not running, or
    its planned length is that long or longer)."""
    since = _running_since(session)
    if since is None:
        return None
    if session.planned_minutes is not None and session.planned_minutes * 60 >= (
        STILL_AFTER.total_seconds()
    ):
        return None
    return since + STILL_AFTER


async def start(
    db: Database,
    who: Principal,
    arm: Arm,
    now: datetime,
    *,
    item_id: UUID | None = None,
    planned_minutes: int | None = None,
    default_length: bool = True,
) -> FocusSession:
    """Start a session on ``item_id`` (an open item of ``arm``), or on ``arm``'s current item,
    for ``planned_minutes`` (None: the user's default length if ``default_length``, else no
    length).

    NoCurrentItem if ``arm`` has no current item; ``nba.ItemGone`` if ``item_id`` is not an
    open item of ``arm``; then AlreadyRunning if a session is running."""
    planned_minutes = planned(planned_minutes)
    async with state.locked(db, who) as uow:
        if planned_minutes is None and default_length:
            settings = await user_settings.get(uow)
            # bounded by the table (1-1440) whatever wrote it
            planned_minutes = settings.focus_minutes if settings is not None else None
        found = (await nba_items.theaters_with_items(uow, [arm])).get(arm)
        if found is None:
            raise NotLinked()
        sanity.check([found.theater, *found.items])  # written outside the bot?
        if item_id is None:
            ranked = rules.rank(found.items, now)
            if not ranked or not ranked[0].is_current:
                raise NoCurrentItem(arm)
            item_id = ranked[0].item.id
        item = next((i for i in found.items if i.id == item_id), None)
        if item is None:
            raise nba.ItemGone()
        # asked only about a start that can happen (the theater has the item); the unique
        # index decides whether one is running already
        new_id = await focus_sessions.insert(uow, arm, item_id, planned_minutes, now)
        if new_id is None:
            existing = await focus_sessions.running(uow)
            assert existing is not None
            raise AlreadyRunning(existing)
        await uow.commit()
        return FocusSession(
            id=new_id, arm_type=arm, item_id=item_id, started_at=now, paused_at=None,
            paused_seconds=0, planned_minutes=planned_minutes, stopped_at=None, log_id=None,
            title=item.title,
        )  # fmt: skip


def _paused_through(session: FocusSession, now: datetime) -> int:
    """The session's paused seconds, its open pause (if any) counted up to ``now``, as the
    table bounds them."""
    paused = max(session.paused_seconds, 0)
    if session.paused_at is not None:
        pause_began = min(max(session.paused_at, session.started_at), now)
        paused += int((now - pause_began).total_seconds())
    return min(paused, _MAX_PAUSED)


def _not_ended(session: FocusSession | None) -> FocusSession:
    if session is None:
        raise NoSession()
    if session.stopped_at is not None:
        raise AlreadyStopped()
    return session


async def running(db: Database, who: Principal) -> FocusSession | None:
    """The user's session that has not ended, if any."""
    async with db.user_uow(who, read_only=True, single=True) as uow:
        return await focus_sessions.running(uow)


async def get(db: Database, who: Principal, session_id: UUID) -> FocusSession:
    """The user's session ``session_id``, if it has not ended (NoSession, AlreadyStopped)."""
    async with db.user_uow(who, read_only=True, single=True) as uow:
        session = await focus_sessions.get(uow, session_id)
    return _not_ended(session)


async def pause(db: Database, who: Principal, session_id: UUID, now: datetime) -> FocusSession:
    """Pause a running session (a paused one stays as it is)."""
    async with state.locked(db, who) as uow:
        session = _not_ended(await focus_sessions.get(uow, session_id))
        if session.paused_at is not None:
            return session
        await focus_sessions.pause(uow, session.id, now)
        await uow.commit()
        return replace(session, paused_at=now)


async def resume(db: Database, who: Principal, session_id: UUID, now: datetime) -> FocusSession:
    """Resume a paused session: the pause is added to its paused seconds."""
    async with state.locked(db, who) as uow:
        session = _not_ended(await focus_sessions.get(uow, session_id))
        if session.paused_at is None:
            return session
        total = _paused_through(session, now)
        await focus_sessions.resume(uow, session.id, total)
        await uow.commit()
        return replace(session, paused_at=None, paused_seconds=total)


async def extend(
    db: Database, who: Principal, session_id: UUID, now: datetime, minutes: int = EXTEND_BY
) -> FocusSession:
    """ "+10 min": the planned length becomes the working time so far (or the planned length,
    if longer) plus ``minutes``, so its "Time's up" comes ``minutes`` from now. A session
    whose time is not up (a second tap of the same button) stays as it is."""
    async with state.locked(db, who) as uow:
        session = _not_ended(await focus_sessions.get(uow, session_id))
        worked = working_seconds(session, now) // 60
        if session.planned_minutes is not None and session.planned_minutes > worked:
            return session
        length = min(max(session.planned_minutes or 0, worked) + minutes, MAX_MINUTES)
        await focus_sessions.set_planned(uow, session.id, length)
        await uow.commit()
        return replace(session, planned_minutes=length)


@dataclass(frozen=True, slots=True)
class Stopped:
    """A session that ended and what it recorded."""

    session: FocusSession
    minutes: int
    log: ExecutionLog
    #: the log's theater status and the overload risk (None: a repeated stop)
    overload: rules.Overload | None
    #: the item's theater after the change (None: the item was gone, a plain log)
    theater: nba.TheaterNba | None
    done: bool
    duplicate: bool = False


async def stop(
    db: Database,
    who: Principal,
    session_id: UUID,
    now: datetime,
    *,
    done: bool = False,
    confirmed: bool = False,
    long_day_confirmed: bool | None = None,
) -> Stopped:
    """End a session and record its working minutes: progress on its item (``done``: the
    item is completed) in one transaction with the end of the session.

    LongSession (nothing written) over :data:`CONFIRM_OVER` unless ``confirmed``; Implausible
    (nothing written) if the minutes would make the theater's day implausibly long, unless
    ``long_day_confirmed`` (None: as ``confirmed``). An item that is gone meanwhile gets a
    plain log in the session's theater.
    """
    key = f"focus:{session_id}"
    day_ok = confirmed if long_day_confirmed is None else long_day_confirmed
    async with state.locked(db, who) as uow:
        session = _not_ended(await focus_sessions.get(uow, session_id))
        seconds = working_seconds(session, now)
        minutes = working_minutes(seconds)
        if seconds > CONFIRM_OVER.total_seconds() and not confirmed:
            raise LongSession(session, minutes)
        item_result: nba.ItemResult | None = None
        with db.joined(uow):
            if session.item_id is not None and session.title is not None:
                try:
                    if done:
                        item_result = await nba.done(
                            db, who, session.item_id, now, minutes=minutes, dedupe_key=key,
                            confirmed=day_ok,
                        )  # fmt: skip
                    else:
                        item_result = await nba.progress(
                            db, who, session.item_id, minutes, now, dedupe_key=key,
                            confirmed=day_ok,
                        )  # fmt: skip
                except nba.ItemGone:
                    item_result = None
            if item_result is not None:
                assert item_result.log is not None
                log, overload = item_result.log, item_result.overload
                duplicate = item_result.duplicate
            else:
                logged = await tracking.log_time(
                    db, who, session.arm_type, minutes, title_of(session), now,
                    dedupe_key=key, confirmed=day_ok,
                )  # fmt: skip
                log, overload, duplicate = logged.log, logged.overload, logged.duplicate
        # stopped while paused: the pause counts as paused
        await focus_sessions.stop(uow, session.id, now, _paused_through(session, now), log.id)
        await uow.commit()
    theater = item_result.theater if item_result is not None else None
    return Stopped(session, minutes, log, overload, theater, done, duplicate)


# --- the writes as typed commands ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFocus(Command[FocusSession]):
    """▶ Start / /focus: a session on ``item_id`` or ``arm``'s current item (:func:`start`)."""

    name = "start_focus"
    operation = "INSERT"
    table_name = "focus_sessions"

    arm: Arm
    item_id: UUID | None = None
    planned_minutes: int | None = None
    #: without ``planned_minutes``: the user's default length (False: no length at all)
    default_length: bool = True

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> FocusSession:
        return await start(
            db, who, self.arm, now, item_id=self.item_id, planned_minutes=self.planned_minutes,
            default_length=self.default_length,
        )  # fmt: skip

    def describe(self) -> str:
        return f"focus session in {self.arm}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseFocus(Command[FocusSession]):
    """⏸ Pause (:func:`pause`); ``resume``: ▶ Resume (:func:`resume`)."""

    name = "pause_focus"
    operation = "UPDATE"
    table_name = "focus_sessions"

    session_id: UUID
    resume: bool = False

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> FocusSession:
        return await (resume if self.resume else pause)(db, who, self.session_id, now)

    def describe(self) -> str:
        return "resume of the focus session" if self.resume else "pause of the focus session"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendFocus(Command[FocusSession]):
    """+10 min on "Time's up" (:func:`extend`)."""

    name = "extend_focus"
    operation = "UPDATE"
    table_name = "focus_sessions"

    session_id: UUID

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> FocusSession:
        return await extend(db, who, self.session_id, now)

    def describe(self) -> str:
        return f"{EXTEND_BY} more minutes of the focus session"


@dataclass(frozen=True, slots=True, kw_only=True)
class StopFocus(Command[Stopped]):
    """⏹ Stop / ✅ Done (:func:`stop`)."""

    name = "stop_focus"
    operation = "UPDATE"
    table_name = "focus_sessions"

    session_id: UUID
    done: bool = False
    confirmed: bool = False
    #: the stop counts the session up to this moment (a question asked then showed its
    #: minutes, and the answer came later); None: up to the stop itself
    until: datetime | None = None

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> Stopped:
        # replayed: the person can't be asked whether an implausibly long day is right (as
        # for /log), but more than 12 hours of one session are never logged unasked
        at = now if self.until is None else min(self.until, now)
        return await stop(
            db, who, self.session_id, at, done=self.done, confirmed=self.confirmed,
            long_day_confirmed=self.confirmed or replayed,
        )  # fmt: skip

    def describe(self) -> str:
        return "end of the focus session"


# --- the session message and its reminders (privileged: the jobs serve every user) -----------


@dataclass(frozen=True, slots=True)
class Watched:
    """A session with the message the bot sent about it, as the jobs read it."""

    session: FocusSession
    user_id: UUID
    chat_id: int
    message_id: int
    #: the text the message shows now
    shown: str | None
    edits_stopped: bool
    #: the planned length whose "Time's up" went out
    times_up_for: int | None
    still_asked_at: datetime | None
    timezone: str
    quiet_start: time | None
    quiet_end: time | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Watched:
        session = FocusSession.from_row(row)
        rest = {k: row[k] for k in cls.__dataclass_fields__ if k != "session"}
        return cls(session=session, **rest)

    def times_up_due(self, now: datetime) -> bool:
        """The planned length is worked and its "Time's up" has not gone out."""
        length = self.session.planned_minutes
        return (
            length is not None
            and (self.times_up_for or 0) < length
            and self.session.stopped_at is None
            and working_seconds(self.session, now) >= length * 60
        )

    def still_due(self, now: datetime) -> bool:
        """Four hours worked, no "Still working?" yet, and no planned length that long."""
        return (
            self.still_asked_at is None
            and still_at(self.session) is not None
            and working_seconds(self.session, now) >= STILL_AFTER.total_seconds()
        )

    def next_reminder(self) -> datetime | None:
        """When the next reminder not yet sent is due (None: none, or the session is paused
        or stopped: a resume arms it again)."""
        due = []
        at = times_up_at(self.session)
        length = self.session.planned_minutes
        if at is not None and length is not None and (self.times_up_for or 0) < length:
            due.append(at)
        at = still_at(self.session)
        if at is not None and self.still_asked_at is None:
            due.append(at)
        return min(due, default=None)


def next_reminder(session: FocusSession) -> datetime | None:
    """When ``session``'s next reminder may be due, as far as the session alone tells (the
    job that runs then checks what already went out)."""
    return min((at for at in (times_up_at(session), still_at(session)) if at), default=None)


async def record_message(
    db: Database, session_id: UUID, chat_id: int, message_id: int, shown: str
) -> None:
    """The session message went to ``chat_id`` as ``message_id``, showing ``shown``."""
    async with db.privileged() as uow:
        await focus_messages.insert(uow, session_id, chat_id, message_id, shown)
        await uow.commit()


async def watch(db: Database, session_id: UUID) -> Watched | None:
    """The session with its message (None: no message, or the chat is no longer the
    user's)."""
    async with db.privileged(read_only=True, single=True) as uow:
        row = await focus_messages.watch(uow, session_id)
        await uow.commit()
    return Watched.from_row(row) if row else None


async def watched(db: Database) -> list[Watched]:
    """Every running session with a message: what the jobs watch after a start-up."""
    async with db.privileged(read_only=True, single=True) as uow:
        rows = await focus_messages.running(uow)
        await uow.commit()
    return [Watched.from_row(r) for r in rows]


async def claim_redraw(db: Database, session_id: UUID, text: str) -> tuple[int, int] | None:
    """Claim showing ``text``: (chat, message) to edit, or None (it shows that already, an
    instance drew it, or redraws stopped)."""
    async with db.privileged(single=True) as uow:
        row = await focus_messages.claim_redraw(uow, session_id, text)
        await uow.commit()
    return (int(row["chat_id"]), int(row["message_id"])) if row else None


async def stop_redraws(db: Database, session_id: UUID) -> None:
    """Telegram refused an edit of the session message: no instance tries again."""
    async with db.privileged(single=True) as uow:
        await focus_messages.stop_edits(uow, session_id)
        await uow.commit()


async def claim_times_up(db: Database, watched: Watched) -> bool:
    """Claim sending "Time's up" for the session's planned length (True: this caller sends
    it; with several instances, exactly one gets True)."""
    assert watched.session.planned_minutes is not None
    async with db.privileged(single=True) as uow:
        won = await focus_messages.claim_times_up(
            uow, watched.session.id, watched.session.planned_minutes
        )
        await uow.commit()
    return won


async def release_times_up(db: Database, watched: Watched) -> None:
    """The claimed "Time's up" could not be sent: a later run may send it."""
    assert watched.session.planned_minutes is not None
    async with db.privileged(single=True) as uow:
        await focus_messages.release_times_up(
            uow, watched.session.id, watched.session.planned_minutes
        )
        await uow.commit()


async def claim_still(db: Database, watched: Watched, now: datetime) -> bool:
    """Claim sending the session's one "Still working?"."""
    async with db.privileged(single=True) as uow:
        won = await focus_messages.claim_still(uow, watched.session.id, now)
        await uow.commit()
    return won


async def release_still(db: Database, watched: Watched) -> None:
    async with db.privileged(single=True) as uow:
        await focus_messages.release_still(uow, watched.session.id)
        await uow.commit()
