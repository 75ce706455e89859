"""/focus, the NBA card's ▶ Start, and the session message's ⏸ Pause / ▶ Resume / ⏹ Stop /
✅ Done (services/focus.py).

The session message is drawn when it is sent and redrawn on every press of its buttons (the
once-a-minute redraw is not built yet). Its buttons carry the session's id
(``f:<verb>:<session>``), so they work after a restart, from any instance, and a press on an
ended session's message only says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from handlers import render
from handlers.callbacks import STALE, BadCallback, Callback, decode, encode, pattern
from handlers.common import (
    Context,
    Usage,
    answer_and_edit,
    args_of,
    arm_and_rest,
    now,
    perform,
    reply,
)
from handlers.conversation import Buttons, Turn, answered_by, start
from handlers.tracking import CONFIRM_BUTTONS, CONFIRM_HINT, NO, YES
from handlers.usage import FOCUS_USAGE
from services import focus
from services.durations import parse_minutes
from services.errors import DomainError, Implausible
from services.focus import PauseFocus, StartFocus, StopFocus
from services.models import ARMS, Arm, FocusSession, parse_arm
from services.sync import Queued

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
    markup = render.keyboard([[(f"View {log.arm_type}", encode("nba", "view", log.arm_type))]])
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
    text = text.strip().lower()
    if text in ("", "no", "no limit", "none", "0"):
        return None
    return focus.planned(parse_minutes(text, "length"))


async def _start(
    update: Update, context: Context, command: StartFocus
) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """Start the session: its message (None: kept for later, and the person told so)."""
    session = await perform(update, context, command)
    if isinstance(session, Queued):
        return None
    return render.render_session(session, now(context)), session_keyboard(session)


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
    command = StartFocus(arm=draft.arm, planned_minutes=length)
    try:
        started = await _start(turn.update, turn.context, command)
    except focus.AlreadyRunning as exc:
        _ask_switch(turn, exc, command)
        return
    turn.finish(*(started or (None, None)), in_place=False)


def _length_text(draft: FocusDraft) -> str:
    return f"<b>{draft.arm}</b>: for how long? Tap, type a length (25m, 1h), or No limit."


FOCUS = answered_by("focus", FocusDraft, _focus_answer)


async def focus_command(update: Update, context: Context) -> None:
    """/focus [theater] [length]: start at once with a theater; otherwise ask."""
    args = args_of(context)
    if len(args) > 2:
        raise Usage(FOCUS_USAGE)
    if not args:
        arms: Buttons = [[(render.ARM_NAME[a], ("arm", a)) for a in ARMS]]
        await start(update, context, FOCUS, "arm", FocusDraft(), "Focus on which theater?", arms)
        return
    arm = parse_arm(args[0])
    length = _typed_length(args[1]) if len(args) == 2 else None
    await begin(update, context, StartFocus(arm=arm, planned_minutes=length))


async def begin(update: Update, context: Context, command: StartFocus) -> None:
    """Start a session from a command or the NBA card; a running one is asked about first."""
    try:
        started = await _start(update, context, command)
    except focus.AlreadyRunning as exc:
        draft = SwitchDraft(exc.session.id, command.arm, command.item_id, command.planned_minutes)
        text, buttons = _switch_question(exc.session, now(context))
        await start(update, context, SWITCH, "switch", draft, text, buttons)
        return
    if update.callback_query is not None:
        await update.callback_query.answer(None if started is None else "Focus started.")
    if started is not None:
        await reply(update, *started)


# --- a second start: stop and log the first? -----------------------------------------------


@dataclass(frozen=True, slots=True)
class SwitchDraft:
    """A start refused because ``running`` runs: what to start once it is stopped."""

    running: UUID
    arm: Arm
    item_id: UUID | None = None
    planned_minutes: int | None = None


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
    draft = SwitchDraft(exc.session.id, command.arm, command.item_id, command.planned_minutes)
    text, buttons = _switch_question(exc.session, turn.now)
    turn.ask("switch", draft, text, buttons, in_place=False, flow=SWITCH)


def _yes(press: Callback | None, text: str) -> bool | None:
    if press is not None:
        if press.verb not in ("yes", "no"):
            raise BadCallback("not a button of this question")
        return press.verb == "yes"
    typed = text.strip().lower()
    return (typed in YES) if typed in YES + NO else None


async def _switch_answer(turn: Turn[SwitchDraft], press: Callback | None, text: str) -> None:
    yes = _yes(press, text)
    if yes is None:
        turn.say(CONFIRM_HINT)
        return
    if not yes:
        turn.finish("OK, the running session goes on.", toast="Kept.")
        return
    draft = turn.draft
    # the question showed the minutes (and a warning past 12 hours): yes confirms them
    stopped = await perform(
        turn.update, turn.context, StopFocus(session_id=draft.running, confirmed=True)
    )
    if isinstance(stopped, Queued):
        turn.finish()
        return
    turn.say(*render_stopped(stopped))
    command = StartFocus(
        arm=draft.arm, item_id=draft.item_id, planned_minutes=draft.planned_minutes
    )
    started = await _start(turn.update, turn.context, command)
    turn.finish(*(started or (None, None)), in_place=False, toast="Started.")


SWITCH = answered_by("focus-switch", SwitchDraft, _switch_answer)


# --- the session message's buttons -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopDraft:
    """A stop that needs a yes first (over 12 hours, or an implausibly long day)."""

    session_id: UUID
    done: bool = False


async def _stop_answer(turn: Turn[StopDraft], press: Callback | None, text: str) -> None:
    yes = _yes(press, text)
    if yes is None:
        turn.say(CONFIRM_HINT)
        return
    if not yes:
        turn.finish("OK, not logged: the session goes on.", toast="Not logged.")
        return
    command = StopFocus(session_id=turn.draft.session_id, done=turn.draft.done, confirmed=True)
    stopped = await perform(turn.update, turn.context, command)
    if isinstance(stopped, Queued):
        turn.finish()
        return
    turn.finish(*render_stopped(stopped), toast="Logged.")


STOP = answered_by("focus-stop", StopDraft, _stop_answer)


async def focus_button(update: Update, context: Context) -> None:
    """focus:pause|resume|stop|done:<session>: act on the session, then redraw its message
    in place."""
    query = update.callback_query
    assert query is not None
    at = now(context)
    try:
        cb = decode(query.data).arity(1)
        session_id = cb.uuid(0)
        if cb.verb in ("pause", "resume"):
            command = PauseFocus(session_id=session_id, resume=cb.verb == "resume")
            session = await perform(update, context, command)
            if isinstance(session, Queued):
                await query.answer()
                return
            toast = "Resumed." if cb.verb == "resume" else "Paused."
            await answer_and_edit(update, toast, render.render_session(session, at),
                                  session_keyboard(session))  # fmt: skip
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
                draft = StopDraft(session_id, done)
                await start(update, context, STOP, "confirm", draft, text, CONFIRM_BUTTONS)
                return
            if isinstance(stopped, Queued):
                await query.answer()
                return
            await answer_and_edit(update, "Done!" if done else "Logged.", *render_stopped(stopped))
        else:
            raise BadCallback("unknown verb")
    except BadCallback:
        await query.answer(STALE)
    except (focus.AlreadyStopped, focus.NoSession) as exc:
        # the message stays as it is: after a double tap it shows what the stop logged
        await query.answer(exc.user_message[:200])
    except DomainError as exc:
        await query.answer(exc.user_message[:200], show_alert=True)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("focus", focus_command))
    app.add_handler(
        CallbackQueryHandler(
            focus_button, pattern=pattern("focus", "pause", "resume", "stop", "done")
        )
    )
