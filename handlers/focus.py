"""/focus, the NBA card's ▶ Start, the session message's ⏸ Pause / ▶ Resume / ⏹ Stop /
✅ Done, and the session's reminders: "Time's up" and "Still working?" (services/focus.py).

The session message is drawn when it is sent, redrawn on every press of its buttons, and
redrawn once a minute by a job (``focus-tick:<session>``) while the session runs, when what
it shows has changed: the time worked, the time left. Where it went is kept in
``focus_messages`` (the bot's own table), and an instance draws a text only after claiming it
there, so several instances running the same job edit it once. When Telegram refuses an edit
(the message was deleted, or is too old to edit) the redraws stop for good, quietly; a 429 or
a network failure only skips that minute.

The reminders are one job per session (``focus-alarm:<session>``) armed at the next one due:
"Time's up" when the planned working time is reached (sent even in quiet hours: the person
asked for it), "Still working?" once after four hours of working time (silent during quiet
hours). Each is claimed in ``focus_messages`` before it is sent, so it goes out once whichever
instances run the job; a send that fails for a moment gives the claim back and tries again a
minute later. A pause, a resume or "+10 min" re-arms the job; at start-up every instance arms
both jobs for every running session (:func:`arm_running`), so a restart loses nothing.

Every button carries the session's id (``focus:<verb>:<session>``), so they work after a
restart, from any instance, and a press on an ended session's message only says so.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from telegram import Bot, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, JobQueue

from handlers import render
from handlers.callbacks import BadCallback, Callback, decode, encode, pattern
from handlers.common import (
    Context,
    Usage,
    answer_and_edit,
    args_of,
    arm_and_rest,
    deps,
    me,
    now,
    perform,
    reply,
)
from handlers.conversation import Buttons, Sent, Turn, answered_by, start
from handlers.deps import get_deps
from handlers.tracking import CONFIRM_BUTTONS, CONFIRM_HINT, confirm_answer
from handlers.usage import FOCUS_USAGE
from services import focus
from services.db import Database, DatabaseUnavailable, TelegramUser
from services.durations import parse_minutes
from services.errors import DomainError, Implausible
from services.focus import ExtendFocus, PauseFocus, StartFocus, StopFocus
from services.models import ARMS, Arm, FocusSession, parse_arm
from services.nudges.localtime import in_quiet, zone
from services.sync import Queued

logger = logging.getLogger(__name__)

#: Seconds between two redraws of a running session's message (it changes once a minute).
TICK_SECONDS = 60
#: Seconds before a reminder that could not be sent (or read) is tried again.
RETRY_SECONDS = 60

# --- what the person sees --------------------------------------------------------------------


def session_keyboard(session: FocusSession) -> InlineKeyboardMarkup:
    toggle = (
        ("▶ Resume", encode("focus", "resume", session.id))
        if focus.is_paused(session)
        else ("⏸ Pause", encode("focus", "pause", session.id))
    )
    return render.keyboard(
        [[toggle, ("⏹ Stop", encode("focus", "stop", session.id)),
          ("✅ Done", encode("focus", "done", session.id))]]
    )  # fmt: skip


def render_stopped(stopped: focus.Stopped) -> tuple[str, InlineKeyboardMarkup | None]:
    """The end of a session, like /log's reply: the log, the overload risk, what is next."""
    log = stopped.log
    head = "✅ Done" if stopped.done else "⏹ Focus ended"
    if stopped.duplicate:
        head = "Already logged"
    lines = [f"{head}: <b>{render.esc(focus.title_of(stopped.session))}</b>",
             f"📝 Logged in <b>{render.esc(log.arm_type)}</b>: {render.esc(log.action)}"
             f" ({log.duration} min)"]  # fmt: skip
    if stopped.overload is not None:
        lines.append(
            f"Overload risk {render.num(stopped.overload.risk)}%: "
            f"{render.esc(stopped.overload.describe())}."
        )
    theater = stopped.theater
    if theater is not None and stopped.done:
        current = theater.current
        lines.append(
            f"Next up in {render.esc(theater.arm)}: <b>{render.esc(current.item.title)}</b>"
            if current is not None
            else f"No open items left in {render.esc(theater.arm)}."
        )
    lines.append("Wrong? /undo removes it.")
    markup = render.keyboard([[(f"View {log.arm_type}", render.view_data(log.arm_type))]])
    return "\n".join(lines), markup


# --- starting ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FocusDraft:
    """/focus being asked for: the theater, and (None) no planned length yet."""

    arm: Arm | None = None


LENGTHS = (25, 50, 90)


def _length_buttons() -> Buttons:
    return [[(f"{m} min", ("length", m)) for m in LENGTHS] + [("No limit", ("length", 0))]]


def _typed_length(text: str) -> int | None:
    """A typed planned length; None for no length ("no limit", "off", "0")."""
    text = text.strip().lower()
    if text in ("", *focus.NO_LENGTH):
        return None
    return focus.planned(parse_minutes(text, "length"))


@dataclass(frozen=True, slots=True)
class Started:
    """A session just started and its message."""

    session: FocusSession
    text: str
    markup: InlineKeyboardMarkup
    #: the clock when it was drawn
    at: datetime

    @classmethod
    def of(cls, session: FocusSession, at: datetime) -> Started:
        return cls(session, render.render_session(session, at), session_keyboard(session), at)

    def watched_by(self, context: Context) -> Sent:
        """Once the message is sent: remember where, and start its jobs."""
        return _watching(context, self.session, self.text, self.at)


async def _start(update: Update, context: Context, command: StartFocus) -> Started | None:
    """Start the session: it and its message (None: kept for later, and the person told
    so)."""
    session = await perform(update, context, command)
    if isinstance(session, Queued):
        return None
    return Started.of(session, now(context))


def _finish_started(turn: Turn[Any], started: Started | None, toast: str | None = None) -> None:
    if started is None:
        turn.finish(toast=toast)
    else:
        then = started.watched_by(turn.context)
        turn.finish(started.text, started.markup, in_place=False, toast=toast, then=then)


async def _focus_answer(turn: Turn[FocusDraft], press: Callback | None, text: str) -> None:
    draft, length, rest = turn.draft, None, ""
    if press is not None:
        if turn.step == "arm" and press.verb == "arm":
            draft = replace(draft, arm=press.arm(0))
        elif turn.step == "length" and press.verb == "length":
            length = press.number(0, 0, 1440) or None
            rest = "given"
        else:
            raise BadCallback("not a button of this step")
    elif turn.step == "arm":
        arm, rest = arm_and_rest(text)
        draft = replace(draft, arm=arm)
        length = _typed_length(rest) if rest else None
    else:
        length, rest = _typed_length(text), "given"
    if not rest:
        turn.ask("length", draft, _length_text(draft), _length_buttons())
        return
    assert draft.arm is not None
    # the length was asked: "No limit" is no length, not the default one
    command = StartFocus(arm=draft.arm, planned_minutes=length, default_length=False)
    try:
        started = await _start(turn.update, turn.context, command)
    except focus.AlreadyRunning as exc:
        _ask_switch(turn, exc, command)
        return
    _finish_started(turn, started)


def _length_text(draft: FocusDraft) -> str:
    return f"<b>{draft.arm}</b>: for how long? Tap, type a length (25m, 1h), or No limit."


FOCUS = answered_by("focus", FocusDraft, _focus_answer)


async def focus_command(update: Update, context: Context) -> None:
    """/focus [theater] [length]: start at once with a theater; otherwise ask."""
    args = args_of(context)
    if len(args) > 3:  # a theater and a length ("no limit" is two words)
        raise Usage(FOCUS_USAGE)
    if not args:
        arms: Buttons = [[(render.ARM_NAME[a], ("arm", a)) for a in ARMS]]
        await start(update, context, FOCUS, "arm", FocusDraft(), "Focus on which theater?", arms)
        return
    arm = parse_arm(args[0])
    length = _typed_length(" ".join(args[1:])) if len(args) > 1 else None
    # /focus cs: the default length (if set); /focus cs 0 or "no limit": none
    command = StartFocus(arm=arm, planned_minutes=length, default_length=len(args) == 1)
    await begin(update, context, command)


async def begin(update: Update, context: Context, command: StartFocus) -> None:
    """Start a session from a command or the NBA card; a running one is asked about first."""
    try:
        started = await _start(update, context, command)
    except focus.AlreadyRunning as exc:
        text, buttons = _switch_question(exc.session, now(context))
        draft = _switch_draft(exc, command, now(context))
        await start(update, context, SWITCH, "switch", draft, text, buttons)
        return
    if update.callback_query is not None:
        await update.callback_query.answer(None if started is None else "Focus started.")
    if started is not None:
        sent = await reply(update, started.text, started.markup)
        if sent is not None:
            await started.watched_by(context)(sent.chat_id, sent.message_id)


# --- a second start: stop and log the first? -----------------------------------------------


@dataclass(frozen=True, slots=True)
class SwitchDraft:
    """A start refused because ``running`` runs: what to start once it is stopped."""

    running: UUID
    arm: Arm
    item_id: UUID | None = None
    planned_minutes: int | None = None
    default_length: bool = True
    #: when the question was asked: the running session is logged up to then (the minutes
    #: the question showed), however late the answer comes
    asked_at: datetime | None = None


def _switch_draft(
    exc: focus.AlreadyRunning, command: StartFocus, asked_at: datetime
) -> SwitchDraft:
    return SwitchDraft(
        exc.session.id, command.arm, command.item_id, command.planned_minutes,
        command.default_length, asked_at,
    )  # fmt: skip


def _switch_question(session: FocusSession, at: datetime) -> tuple[str, Buttons]:
    minutes = focus.working_minutes(focus.working_seconds(session, at))
    long = focus.working_seconds(session, at) > focus.CONFIRM_OVER.total_seconds()
    warning = " It has been running for more than 12 hours." if long else ""
    text = (
        f"You are already focusing on “{render.esc(focus.title_of(session))}”.{warning}"
        f" Stop and log it ({minutes} min), and start the new one?"
    )
    return text, [[("⏹ Stop & log it", ("yes",)), ("Keep it going", ("no",))]]


def _ask_switch(turn: Turn[Any], exc: focus.AlreadyRunning, command: StartFocus) -> None:
    text, buttons = _switch_question(exc.session, turn.now)
    draft = _switch_draft(exc, command, turn.now)
    turn.ask("switch", draft, text, buttons, in_place=False, flow=SWITCH)


async def _switch_answer(turn: Turn[SwitchDraft], press: Callback | None, text: str) -> None:
    yes = confirm_answer(press, text)
    if yes is None:
        turn.say(CONFIRM_HINT)
        return
    if not yes:
        try:
            await focus.get(turn.db, turn.who, turn.draft.running)
        except (focus.AlreadyStopped, focus.NoSession):  # its own ⏹ Stop, another device
            turn.finish(
                "That session has already ended: nothing is running now. /focus starts one.",
                toast="Ended.",
            )
            return
        turn.finish("OK, the running session goes on.", toast="Kept.")
        return
    draft = turn.draft
    # the question showed the minutes (and a warning past 12 hours): yes confirms them
    stop = StopFocus(session_id=draft.running, confirmed=True, until=draft.asked_at)
    try:
        stopped = await perform(turn.update, turn.context, stop)
    except (focus.AlreadyStopped, focus.NoSession):
        stopped = None  # it ended meanwhile (its own ⏹ Stop, another device): nothing to log
    if stopped is not None and not isinstance(stopped, Queued):
        turn.say(*render_stopped(stopped))
    # kept for later (an outage), the start is kept too, after the stop: both replay in order
    command = StartFocus(
        arm=draft.arm, item_id=draft.item_id, planned_minutes=draft.planned_minutes,
        default_length=draft.default_length,
    )  # fmt: skip
    started = await _start(turn.update, turn.context, command)
    _finish_started(turn, started, toast="Started.")


SWITCH = answered_by("focus-switch", SwitchDraft, _switch_answer)


# --- the session message's buttons -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopDraft:
    """A stop that needs a yes first (over 12 hours, or an implausibly long day)."""

    session_id: UUID
    done: bool = False
    #: the press of ⏹ Stop: the session is logged up to then (the minutes the question showed)
    pressed_at: datetime | None = None


async def _stop_answer(turn: Turn[StopDraft], press: Callback | None, text: str) -> None:
    yes = confirm_answer(press, text)
    if yes is None:
        turn.say(CONFIRM_HINT)
        return
    if not yes:
        turn.finish("OK, not logged: the session goes on.", toast="Not logged.")
        return
    draft = turn.draft
    command = StopFocus(
        session_id=draft.session_id, done=draft.done, confirmed=True, until=draft.pressed_at
    )
    stopped = await perform(turn.update, turn.context, command)
    if isinstance(stopped, Queued):
        turn.finish()
        return
    turn.finish(*render_stopped(stopped), toast="Logged.")


STOP = answered_by("focus-stop", StopDraft, _stop_answer)


async def focus_button(update: Update, context: Context) -> None:
    """focus:<verb>:<session>: pause, resume, stop, done (the session message, or a
    reminder's), extend ("+10 min"), keep ("Keep going"); then redraw the pressed message."""
    query = update.callback_query
    assert query is not None
    at = now(context)
    # data this bot did not make (BadCallback) is answered by the error handler
    cb = decode(query.data).arity(1)
    session_id = cb.uuid(0)
    try:
        if cb.verb in ("pause", "resume"):
            command = PauseFocus(session_id=session_id, resume=cb.verb == "resume")
            session = await perform(update, context, command)
            if isinstance(session, Queued):
                await query.answer()
                return
            toast = "Resumed." if cb.verb == "resume" else "Paused."
            await answer_and_edit(update, toast, render.render_session(session, at),
                                  session_keyboard(session))  # fmt: skip
            _arm_reminder(context, session, at)
        elif cb.verb == "extend":
            session = await perform(update, context, ExtendFocus(session_id=session_id))
            if isinstance(session, Queued):
                await query.answer()
                return
            await answer_and_edit(update, f"+{focus.EXTEND_BY} min.", *render_extended(session))
            _arm_reminder(context, session, at)
            await _redraw_now(context, session_id)
        elif cb.verb == "keep":
            text = "▶ OK, the session goes on."
            with contextlib.suppress(DatabaseUnavailable):  # unknown: it goes on, as it was
                session = await focus.get(deps(context).db, me(update), session_id)
                text = f"▶ OK, “{render.esc(focus.title_of(session))}” goes on."
            await answer_and_edit(update, "Keep going.", text)
        elif cb.verb in ("stop", "done"):
            done = cb.verb == "done"
            try:
                stopped = await perform(
                    update, context, StopFocus(session_id=session_id, done=done)
                )
            except (focus.LongSession, Implausible) as asked:
                text = render.esc(asked.user_message)
                if isinstance(asked, Implausible):
                    text += " Log it anyway?"
                draft = StopDraft(session_id, done, at)
                await start(update, context, STOP, "confirm", draft, text, CONFIRM_BUTTONS)
                return
            if isinstance(stopped, Queued):
                await query.answer()
                return
            await answer_and_edit(update, "Done!" if done else "Logged.", *render_stopped(stopped))
            await _after_stop(context, session_id, query.message)
        else:
            raise BadCallback("unknown verb")
    except (focus.AlreadyStopped, focus.NoSession) as exc:
        # the message stays as it is: after a double tap it shows what the stop logged
        await query.answer(exc.user_message[:200])
    except DomainError as exc:
        await query.answer(exc.user_message[:200], show_alert=True)


def render_extended(session: FocusSession) -> tuple[str, InlineKeyboardMarkup | None]:
    """A reminder after "+10 min": what the new length is."""
    length = session.planned_minutes or 0
    return (
        f"⏱ {focus.EXTEND_BY} more minutes on <b>{render.esc(focus.title_of(session))}</b>:"
        f" time's up at {render.hours_minutes(length)} worked.",
        None,
    )


def render_times_up(session: FocusSession, at: datetime) -> tuple[str, InlineKeyboardMarkup]:
    worked = focus.working_seconds(session, at) // 60
    text = (
        f"⏰ Time's up: <b>{render.esc(focus.title_of(session))}</b>\n"
        f"{render.hours_minutes(session.planned_minutes or 0)} planned ·"
        f" {render.hours_minutes(worked)} worked in {render.esc(session.arm_type)}."
    )
    markup = render.keyboard(
        [[(f"+{focus.EXTEND_BY} min", encode("focus", "extend", session.id)),
          ("⏹ Stop & log", encode("focus", "stop", session.id)),
          ("✅ Done", encode("focus", "done", session.id))]]
    )  # fmt: skip
    return text, markup


def render_still(session: FocusSession, at: datetime) -> tuple[str, InlineKeyboardMarkup]:
    worked = focus.working_seconds(session, at) // 60
    text = (
        f"🤔 Still working on “{render.esc(focus.title_of(session))}”?"
        f" {render.hours_minutes(worked)} worked in {render.esc(session.arm_type)} so far."
    )
    markup = render.keyboard(
        [[("⏹ Stop & log", encode("focus", "stop", session.id)),
          ("Keep going", encode("focus", "keep", session.id))]]
    )  # fmt: skip
    return text, markup


# --- the jobs: the once-a-minute redraw and the reminders --------------------------------------


def _tick_name(session_id: UUID) -> str:
    return f"focus-tick:{session_id}"


def _alarm_name(session_id: UUID) -> str:
    return f"focus-alarm:{session_id}"


def arm(
    job_queue: JobQueue[Any], session_id: UUID, at: datetime, reminder: datetime | None
) -> None:
    """Redraw the session message every minute (unless a job does already) and run the
    reminder job at ``reminder`` (replacing an earlier one; None: none)."""
    if not job_queue.get_jobs_by_name(_tick_name(session_id)):
        job_queue.run_repeating(
            tick_job, interval=TICK_SECONDS, first=TICK_SECONDS, data=session_id,
            name=_tick_name(session_id),
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": TICK_SECONDS},
        )  # fmt: skip
    _arm_at(job_queue, session_id, at, reminder)


def _arm_at(
    job_queue: JobQueue[Any], session_id: UUID, at: datetime, reminder: datetime | None
) -> None:
    for job in job_queue.get_jobs_by_name(_alarm_name(session_id)):
        job.schedule_removal()
    if reminder is not None:
        delay = max(0.0, (reminder - at).total_seconds())
        job_queue.run_once(reminder_job, when=delay, data=session_id, name=_alarm_name(session_id))


def _arm_reminder(context: Context, session: FocusSession, at: datetime) -> None:
    """After a press that moves the reminders (pause, resume, +10 min)."""
    if context.job_queue is not None:
        _arm_at(context.job_queue, session.id, at, focus.next_reminder(session))


def _watching(context: Context, session: FocusSession, shown: str, at: datetime) -> Sent:
    async def sent(chat_id: int, message_id: int) -> None:
        try:
            await focus.record_message(deps(context).db, session.id, chat_id, message_id, shown)
        except DatabaseUnavailable:  # the message stays as sent; the session is safe
            logger.info("focus message not recorded: database unreachable")
            return
        if context.job_queue is not None:
            arm(context.job_queue, session.id, at, focus.next_reminder(session))

    return sent


async def show_synced(
    context: Context, chat_id: int, telegram_user_id: int, started_at: datetime
) -> None:
    """A start kept during an outage has been saved: send its session message and start its
    jobs, as a live start does (nothing if it has ended: a stop kept after it)."""
    d = deps(context)
    try:
        session = await focus.running(d.db, TelegramUser(telegram_user_id))
    except (DatabaseUnavailable, DomainError):
        return  # the session is saved; /status shows it, /focus stops it
    if session is None or session.started_at != started_at:
        return
    at = d.clock()
    started = Started.of(session, at)
    try:
        sent = await context.bot.send_message(chat_id, started.text, reply_markup=started.markup)
    except TelegramError as exc:
        logger.info("focus message of a synced start not sent: %s", exc)
        return
    await started.watched_by(context)(sent.chat_id, sent.message_id)


async def arm_running(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """At start-up: the redraw and the next reminder of every running session (a restart
    loses none; with several instances, the claims make each message go out once)."""
    assert app.job_queue is not None
    d = get_deps(app.bot_data)
    at = d.clock()
    for watched in await focus.watched(d.db):
        arm(app.job_queue, watched.session.id, at, watched.next_reminder())


def _job_session(context: ContextTypes.DEFAULT_TYPE) -> UUID:
    assert context.job is not None
    data = context.job.data
    assert isinstance(data, UUID)
    return data


async def tick_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Redraw the session message if what it shows has changed; end with the session."""
    session_id = _job_session(context)
    d = deps(context)
    try:
        watched = await focus.watch(d.db, session_id)
    except DatabaseUnavailable:
        return  # next minute
    if watched is None or watched.edits_stopped:
        _drop(context, _tick_name(session_id))
        return
    at = d.clock()
    if not watched.times_up_due(at):  # else the reminder job draws it, before its message
        await _redraw(context.bot, d.db, watched, at)
    if watched.session.stopped_at is not None:
        _drop(context, _tick_name(session_id))
        return
    # a resume written elsewhere (an app, through the Data API) armed nothing: the next
    # reminder the table holds is armed here
    queue, reminder = context.job_queue, watched.next_reminder()
    if queue is not None and reminder and not queue.get_jobs_by_name(_alarm_name(session_id)):
        _arm_at(queue, session_id, at, reminder)


def _drop(context: ContextTypes.DEFAULT_TYPE, name: str) -> None:
    if context.job_queue is not None:
        for job in context.job_queue.get_jobs_by_name(name):
            job.schedule_removal()


async def _redraw(bot: Bot, db: Database, watched: focus.Watched, at: datetime) -> None:
    """Draw the session as of ``at`` if this instance claims the change (one edit at most)."""
    session = watched.session
    text = render.render_session(session, at)
    markup = None if session.stopped_at is not None else session_keyboard(session)
    target = await focus.claim_redraw(db, session.id, text)
    if target is None:
        return
    chat_id, message_id = target
    try:
        await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id,
                                    reply_markup=markup)  # fmt: skip
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return
        logger.info("focus message redraws stop: %s", exc)
        await focus.stop_redraws(db, session.id)
    except Forbidden as exc:
        logger.info("focus message redraws stop: %s", exc)
        await focus.stop_redraws(db, session.id)
    except (RetryAfter, NetworkError) as exc:  # a moment's refusal: the next minute draws
        logger.info("focus message redraw skipped: %s", exc)


async def _redraw_now(context: Context, session_id: UUID) -> None:
    d = deps(context)
    try:
        watched = await focus.watch(d.db, session_id)
        if watched is not None and not watched.edits_stopped:
            await _redraw(context.bot, d.db, watched, d.clock())
    except DatabaseUnavailable:
        pass  # the tick draws it later


async def _after_stop(context: Context, session_id: UUID, pressed: Any) -> None:
    """The session ended from a press: its message shows it ended (if the press was on
    another message, a reminder), or, pressed on itself, keeps the stop's reply."""
    d = deps(context)
    try:
        watched = await focus.watch(d.db, session_id)
        if watched is None or watched.edits_stopped:
            return
        if pressed is not None and pressed.message_id == watched.message_id:
            await focus.stop_redraws(d.db, session_id)
        else:
            await _redraw(context.bot, d.db, watched, d.clock())
    except DatabaseUnavailable:
        pass


async def reminder_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send what is due ("Time's up", "Still working?"), each once across instances, and arm
    the next one."""
    session_id = _job_session(context)
    assert context.job_queue is not None
    d = deps(context)
    at = d.clock()
    try:
        watched = await focus.watch(d.db, session_id)
        if watched is None or watched.session.stopped_at is not None:
            return
        retry = False
        if watched.times_up_due(at) and await focus.claim_times_up(d.db, watched):
            # the session message shows "time's up" first, so the reminder is the newest
            await _redraw(context.bot, d.db, watched, at)
            text, markup = render_times_up(watched.session, at)
            if not await _remind(context.bot, watched, text, markup, silent=False):
                await focus.release_times_up(d.db, watched)
                retry = True
        if watched.still_due(at) and await focus.claim_still(d.db, watched, at):
            tz = zone(watched.timezone)
            silent = in_quiet(at, tz, watched.quiet_start, watched.quiet_end)
            text, markup = render_still(watched.session, at)
            if not await _remind(context.bot, watched, text, markup, silent=silent):
                await focus.release_still(d.db, watched)
                retry = True
        after = await focus.watch(d.db, session_id)
    except DatabaseUnavailable:
        logger.info("focus reminder postponed: database unreachable")
        _arm_at(context.job_queue, session_id, at, at + timedelta(seconds=RETRY_SECONDS))
        return
    reminder = after.next_reminder() if after is not None else None
    if retry:
        reminder = at + timedelta(seconds=RETRY_SECONDS)
    _arm_at(context.job_queue, session_id, at, reminder)


async def _remind(
    bot: Bot,
    watched: focus.Watched,
    text: str,
    markup: InlineKeyboardMarkup,
    *,
    silent: bool,
) -> bool:
    """Send a reminder to the session's chat. False: a failure worth another try; a chat
    that refuses the bot (blocked, gone) counts as done."""
    try:
        await bot.send_message(watched.chat_id, text, reply_markup=markup,
                               disable_notification=silent)  # fmt: skip
    except (BadRequest, Forbidden) as exc:
        logger.info("focus reminder not delivered: %s", exc)
    except (RetryAfter, NetworkError) as exc:
        logger.info("focus reminder failed, will retry: %s", exc)
        return False
    return True


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("focus", focus_command))
    app.add_handler(
        CallbackQueryHandler(
            focus_button,
            pattern=pattern("focus", "pause", "resume", "stop", "done", "extend", "keep"),
        )
    )
