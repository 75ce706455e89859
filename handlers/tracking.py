"""/log, /reflect, /progress, /energy, /block, /unblock, /undo, /status, /history."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, NoReturn
from uuid import UUID

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from handlers import render
from handlers.callbacks import BadCallback, Callback, decode, encode, pattern
from handlers.common import (
    Context,
    Usage,
    args_of,
    arm_and_rest,
    deps,
    me,
    message_key,
    now,
    perform,
    reply,
    reply_with,
)
from handlers.conversation import Button, Buttons, Flow, Turn, answered_by, flow, start
from handlers.dashboard import with_dashboard
from handlers.usage import (
    ENERGY_USAGE,
    HISTORY_USAGE,
    PROGRESS_USAGE,
    UNBLOCK_USAGE,
)
from services import status, tracking
from services.durations import parse_minutes
from services.errors import DomainError, Implausible, OutOfRange
from services.models import ARMS, Arm, parse_arm
from services.status import HISTORY_MAX
from services.sync import Queued
from services.tracking import Block, LogTime, Reflect, SetEnergy, SetProgress, Unblock
from services.validation import (
    check_energy,
    check_minutes,
    clean_action,
    clean_evidence,
    parse_decimal,
    parse_int,
)

ARM_BUTTONS: Buttons = [[(render.ARM_NAME[arm], ("arm", arm)) for arm in ARMS]]


def _arm_answer(turn: Turn[Any], press: Callback | None, text: str | None) -> Arm:
    """A theater, tapped or typed ("cs", "IBM", or a button's label "cs · study")."""
    if press is not None:
        return press.arm(0) if press.verb == "arm" else _bad()
    return arm_and_rest(text or "")[0]


def theater_step(turn: Turn[Any], press: Callback | None, text: str) -> tuple[Arm, str | None]:
    """For a flow that first asks the theater: the theater, and the answer to the step
    after it (None: not given yet). At the theater step, typed text may carry both
    ("cs 40" to /progress); at a later step the draft holds the theater."""
    if turn.step != "arm":
        assert turn.draft.arm is not None
        return turn.draft.arm, text
    if press is not None:
        return _arm_answer(turn, press, None), None
    arm, rest = arm_and_rest(text)
    return arm, rest or None


def _bad() -> NoReturn:
    raise BadCallback("unexpected button")


# --- /log -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogDraft:
    """A log being asked for: what is known so far."""

    arm: Arm | None = None
    minutes: int | None = None
    action: str | None = None


def _log_question(draft: LogDraft) -> tuple[str, str, Buttons]:
    """The step, text and buttons that ask for what the draft lacks."""
    if draft.arm is None:
        return "arm", "Log time in which theater?", ARM_BUTTONS
    if draft.minutes is None:
        row: list[Button] = [(f"{m}", ("minutes", m)) for m in render.MINUTE_CHOICES]
        return (
            "minutes",
            f"<b>{draft.arm}</b>: how long? Tap, or type it: 45, 1h30, 1.5h or 1:30 (up to 24 h).",
            [row],
        )
    return "action", f"<b>{draft.arm}</b>, {draft.minutes} min: what did you do?", ()


async def _log_saved(
    update: Update, context: Context, draft: LogDraft, *, confirmed: bool = False
) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """Save the complete draft; the reply (None: it was kept for later, the user was told).
    Implausible (the day would pass 16 h in that theater) unless ``confirmed``."""
    assert draft.arm is not None and draft.action is not None
    log = LogTime(
        arm=draft.arm,
        minutes=draft.minutes,
        action=draft.action,
        dedupe_key=message_key(update),
        confirmed=confirmed,
    )
    result = await perform(update, context, log)
    if isinstance(result, Queued):
        return None
    return render.render_log(result), render.log_keyboard(result)


CONFIRM_BUTTONS: Buttons = [[("Yes, save it", ("yes",)), ("No", ("no",))]]
#: what a confirmation says to a typed answer other than yes or no
CONFIRM_HINT = "Tap Yes, save it or No above (or type yes or no)."


def confirm_text(error: Implausible) -> str:
    return f"🤔 {render.esc(error.user_message)}"


async def _log_or_confirm(turn: Turn[Any], draft: LogDraft) -> None:
    """Save the log, or (a day over 16 h in that theater) ask to confirm it first."""
    turn.closes_with_write()
    try:
        saved = await _log_saved(turn.update, turn.context, draft)
    except Implausible as exc:
        turn.ask("confirm", draft, confirm_text(exc), CONFIRM_BUTTONS, flow=LOG, in_place=False)
        return
    if saved is None:
        turn.finish()
    else:
        turn.finish(*saved, in_place=False)


async def _confirmed(turn: Turn[LogDraft], yes: bool) -> None:
    if not yes:
        turn.finish("OK, not saved.", toast="Not saved.")
        return
    turn.closes_with_write()
    saved = await _log_saved(turn.update, turn.context, turn.draft, confirmed=True)
    if saved is None:
        turn.finish()
    else:
        turn.finish(*saved)


async def log_from(turn: Turn[Any], arm: Arm, minutes: int, action: str) -> None:
    """Finish ``turn`` by saving a log (or asking to confirm an implausible day: the question
    becomes /log's confirmation)."""
    await _log_or_confirm(turn, LogDraft(arm, minutes, action))


async def _log_step(turn: Turn[LogDraft], draft: LogDraft) -> None:
    """Ask for what is missing, or save the log."""
    if draft.action is None:
        step, text, buttons = _log_question(draft)
        turn.ask(step, draft, text, buttons)
        return
    await _log_or_confirm(turn, draft)


def _fill(draft: LogDraft, text: str) -> LogDraft:
    """Fill the draft from typed text in the one-line form's order, from its first missing
    field: at the theater step "cs 45 read" is the whole log, at the minutes step "45 read"."""
    rest = text
    if draft.arm is None:
        arm, rest = arm_and_rest(text)
        draft = replace(draft, arm=arm)
    words = rest.split()
    if draft.minutes is None and words:
        minutes, used = minutes_from(words)
        draft = replace(draft, minutes=minutes)
        words = words[used:]
    if draft.action is None and words:
        draft = replace(draft, action=clean_action(" ".join(words)))
    return draft


async def _log_text(turn: Turn[LogDraft], text: str) -> None:
    draft = turn.draft
    if turn.step in ("arm", "minutes"):
        draft = _fill(draft, text)
    elif turn.step == "action":
        draft = replace(draft, action=clean_action(text))
    elif turn.step == "confirm":
        yes = confirm_answer(None, text)
        if yes is None:
            turn.say(CONFIRM_HINT)
            return
        await _confirmed(turn, yes)
        return
    await _log_step(turn, draft)


async def _log_button(turn: Turn[LogDraft], press: Callback) -> None:
    draft = turn.draft
    if turn.step == "arm":
        draft = replace(draft, arm=_arm_answer(turn, press, None))
    elif turn.step == "minutes" and press.verb == "minutes":
        draft = replace(draft, minutes=press.number(0, 1, 1440))
    elif turn.step == "confirm" and press.verb in ("yes", "no"):
        await _confirmed(turn, press.verb == "yes")
        return
    else:
        raise BadCallback("not a button of this step")
    await _log_step(turn, draft)


LOG = flow(Flow("log", LogDraft, on_text=_log_text, on_button=_log_button))


YES = ("yes", "y", "ok", "save", "sure")
NO = ("no", "n", "nope", "don't", "dont")


def confirm_answer(press: Callback | None, text: str) -> bool | None:
    """A yes/no question's answer: its Yes/No button, or yes or no typed (None: neither,
    say :data:`CONFIRM_HINT`)."""
    if press is not None:
        if press.verb not in ("yes", "no"):
            raise BadCallback("not a button of this question")
        return press.verb == "yes"
    typed = text.strip().lower()
    return (typed in YES) if typed in YES + NO else None


#: A word that can only continue a duration: a unit ("h", "hours", "min") or minutes with
#: their unit ("30m", "30 min" is two words: "30" and "min").
_DURATION_TAIL = re.compile(r"(?i)^(\d{1,4}\s*)?(h|hr|hrs|hours?|m|min|mins|minutes?)$")


def minutes_from(words: list[str]) -> tuple[int, int]:
    """The duration at the start of ``words`` in minutes, and how many words it took:
    "45", "1h30", "1.5h", "1:30", or over several words "2 hours", "90 min", "1h 30m",
    "1.5 h". A bare number is minutes; the words after the duration are the action."""
    for n in (3, 2):
        if len(words) > n - 1 and all(_DURATION_TAIL.match(w) for w in words[1:n]):
            try:
                return check_minutes(parse_minutes(" ".join(words[:n]))), n
            except DomainError:
                continue
    return check_minutes(parse_minutes(words[0])), 1


async def log_start(update: Update, context: Context) -> None:
    """Log at once with all arguments; otherwise ask for what is missing."""
    args = args_of(context)
    draft = _fill(LogDraft(), " ".join(args)) if args else LogDraft()
    if draft.action is not None:
        try:
            saved = await _log_saved(update, context, draft)
        except Implausible as exc:
            await start(update, context, LOG, "confirm", draft, confirm_text(exc), CONFIRM_BUTTONS)
            return
        await reply_with(update, saved)
        return
    step, text, buttons = _log_question(draft)
    await start(update, context, LOG, step, draft, text, buttons)


# --- follow-ups: details of a log, context of a reflection ------------------------------


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Text to add to a saved record: which one."""

    record: UUID


async def _details_text(turn: Turn[FollowUp], text: str) -> None:
    result = await tracking.set_log_details(turn.db, turn.who, turn.draft.record, text)
    turn.finish(f"📝 Details added to “{render.esc(result.log.action)}”.")


async def _context_text(turn: Turn[FollowUp], text: str) -> None:
    found = await tracking.add_context(turn.db, turn.who, turn.draft.record, text)
    turn.finish(f"💡 Context added to “{render.esc(found.evidence)}”.")


DETAILS = flow(Flow("log-details", FollowUp, on_text=_details_text))
CONTEXT = flow(Flow("reflect-context", FollowUp, on_text=_context_text))


async def details_start(update: Update, context: Context) -> None:
    """The "Add details" button under a log: ask for them."""
    query = update.callback_query
    assert query is not None
    record = decode(query.data).uuid()
    text = "Send the details for that log (up to 2000 characters), or /cancel."
    await start(update, context, DETAILS, "text", FollowUp(record), text)


async def context_start(update: Update, context: Context) -> None:
    """The "Add context" button under a reflection: ask for the text."""
    query = update.callback_query
    assert query is not None
    record = decode(query.data).uuid()
    text = "Send the context for that reflection (up to 2000 characters), or /cancel."
    await start(update, context, CONTEXT, "text", FollowUp(record), text)


# --- /reflect ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TheaterDraft:
    """A form about one theater: which, once known."""

    arm: Arm | None = None


async def reflection_saved(
    update: Update, context: Context, arm: Arm, evidence: str
) -> tuple[str, InlineKeyboardMarkup] | None:
    found = await perform(update, context, Reflect(arm=arm, evidence=evidence))
    if isinstance(found, Queued):
        return None
    return (
        f"💡 Reflection saved in <b>{found.arm_type}</b>: {render.esc(found.evidence)}",
        render.keyboard([[("➕ Add context", encode("reflection", "context", found.id))]]),
    )


def _ask_evidence(arm: Arm) -> str:
    return (
        f"<b>{arm}</b>: what's the evidence? An objective fact, like "
        "<i>mock exam 78%</i> or <i>PR #12 merged</i>."
    )


async def _reflect_answer(turn: Turn[TheaterDraft], press: Callback | None, text: str) -> None:
    arm, evidence = theater_step(turn, press, text)
    if evidence is None:
        turn.ask("evidence", TheaterDraft(arm), _ask_evidence(arm))
        return
    if press is not None:
        raise BadCallback("no buttons at this step")
    turn.closes_with_write()
    saved = await reflection_saved(turn.update, turn.context, arm, clean_evidence(evidence))
    turn.finish(*(saved or (None, None)), in_place=False)


REFLECT = answered_by("reflect", TheaterDraft, _reflect_answer)


async def reflect_start(update: Update, context: Context) -> None:
    """Save at once with theater and evidence; otherwise ask."""
    args = args_of(context)
    if len(args) >= 2:
        saved = await reflection_saved(update, context, parse_arm(args[0]), " ".join(args[1:]))
        await reply_with(update, saved)
        return
    if args:
        arm = parse_arm(args[0])
        await start(update, context, REFLECT, "evidence", TheaterDraft(arm), _ask_evidence(arm))
        return
    text = "A reflection for which theater?"
    await start(update, context, REFLECT, "arm", TheaterDraft(), text, ARM_BUTTONS)


# --- /progress, /energy, /block, /unblock: one line, or step by step -----------------------


async def _progress_saved(update: Update, context: Context, arm: Arm, text: str) -> str | None:
    value = parse_decimal(text.strip(), "progress", percent=True)
    combined = await perform(update, context, SetProgress(arm=arm, value=value))
    if isinstance(combined, Queued):
        return None
    return (
        f"📈 <b>{arm}</b> progress set to {render.num(value)}%."
        f" Combined progress {render.num(combined)}%."
    )


_PROGRESS_BUTTONS: Buttons = [[(f"{p}%", ("percent", p)) for p in (0, 25, 50, 75, 100)]]


def _ask_progress(arm: Arm) -> str:
    return f"<b>{arm}</b>: progress in percent? Tap, or type it (0-100, like 40 or 62.5)."


async def _progress_answer(turn: Turn[TheaterDraft], press: Callback | None, text: str) -> None:
    arm, value = theater_step(turn, press, text)
    if value is None:
        turn.ask("value", TheaterDraft(arm), _ask_progress(arm), _PROGRESS_BUTTONS)
        return
    if press is not None:
        value = str(press.number(0, 0, 100)) if press.verb == "percent" else _bad()
    turn.finish(await _progress_saved(turn.update, turn.context, arm, value))


PROGRESS = answered_by("progress", TheaterDraft, _progress_answer)


async def progress_command(update: Update, context: Context) -> None:
    """Set a theater's progress: /progress cs 40, or step by step."""
    args = args_of(context)
    if len(args) > 2:
        raise Usage(PROGRESS_USAGE)
    if len(args) == 2:
        done = await _progress_saved(update, context, parse_arm(args[0]), args[1])
        await reply_with(update, done)
        return
    if args:
        arm = parse_arm(args[0])
        await start(
            update, context, PROGRESS, "value", TheaterDraft(arm), _ask_progress(arm),
            _PROGRESS_BUTTONS,
        )  # fmt: skip
        return
    text = "Set the progress of which theater?"
    await start(update, context, PROGRESS, "arm", TheaterDraft(), text, ARM_BUTTONS)


#: "60/40", as the buttons show it: ibm's share first
_SPLIT = re.compile(r"^\s*(\d{1,3})\s*%?\s*/\s*(\d{1,3})\s*%?\s*$")


async def _energy_saved(update: Update, context: Context, text: str) -> str | None:
    split = _SPLIT.match(text)
    if split and int(split[1]) + int(split[2]) != 100:
        raise DomainError(f"ibm/cs must add up to 100% (got {split[1]}/{split[2]}).")
    share = check_energy(parse_int(split[1] if split else text.strip(), "energy", percent=True))
    result = await perform(update, context, SetEnergy(ibm_share=share))
    if isinstance(result, Queued):
        return None
    ibm, cs = result
    return f"⚡ Energy: ibm {ibm}% · cs {cs}%."


@dataclass(frozen=True, slots=True)
class NoDraft:
    """A one-question form: nothing to remember between steps."""


async def _energy_answer(turn: Turn[NoDraft], press: Callback | None, text: str) -> None:
    if press is not None:
        text = str(press.number(0, 0, 100)) if press.verb == "percent" else _bad()
    turn.finish(await _energy_saved(turn.update, turn.context, text))


ENERGY = answered_by("energy", NoDraft, _energy_answer)


async def energy_command(update: Update, context: Context) -> None:
    """Split energy between the theaters: /energy 60, or asked."""
    args = args_of(context)
    if len(args) > 1:
        raise Usage(ENERGY_USAGE)
    if args:
        done = await _energy_saved(update, context, args[0])
        await reply_with(update, done)
        return
    buttons: Buttons = [[(f"{p}/{100 - p}", ("percent", p)) for p in (20, 40, 50, 60, 80)]]
    await start(
        update, context, ENERGY, "share", NoDraft(),
        "How much of your energy goes to <b>ibm</b>, in percent? cs gets the rest."
        " Tap ibm/cs, or type it (0-100).", buttons,
    )  # fmt: skip


async def _blocked(update: Update, context: Context, arm: Arm, reason: str | None) -> str | None:
    reason = reason.strip() if reason else None
    if isinstance(await perform(update, context, Block(arm=arm, reason=reason or None)), Queued):
        return None
    why = f" ({render.esc(reason)})" if reason else ""
    return f"⛔ <b>{arm}</b> is blocked{why}. No idle nudges until /unblock {arm}."


_NO_REASON: Buttons = [[("No reason", ("none",))]]


def _ask_reason(arm: Arm) -> str:
    return f"Why is <b>{arm}</b> blocked? Type the reason, or tap No reason."


#: typed for "no reason"
_NONE = ("no reason", "none", "no", "-", "skip")


async def _block_answer(turn: Turn[TheaterDraft], press: Callback | None, text: str) -> None:
    arm, reason = theater_step(turn, press, text)
    if reason is None and turn.step == "arm":
        turn.ask("reason", TheaterDraft(arm), _ask_reason(arm), _NO_REASON)
        return
    if press is not None and press.verb != "none":
        _bad()
    if press is not None or (reason or "").strip().lower() in _NONE:
        reason = None
    turn.finish(await _blocked(turn.update, turn.context, arm, reason))


BLOCK = answered_by("block", TheaterDraft, _block_answer)


async def block_command(update: Update, context: Context) -> None:
    """Block a theater (no idle nudges) with an optional reason, or step by step."""
    args = args_of(context)
    if len(args) >= 2:
        done = await _blocked(update, context, parse_arm(args[0]), " ".join(args[1:]))
        await reply_with(update, done)
        return
    if args:
        arm = parse_arm(args[0])
        await start(
            update, context, BLOCK, "reason", TheaterDraft(arm), _ask_reason(arm), _NO_REASON
        )
        return
    await start(update, context, BLOCK, "arm", TheaterDraft(), "Block which theater?", ARM_BUTTONS)


async def _unblocked(update: Update, context: Context, arm: Arm) -> str | None:
    state = await perform(update, context, Unblock(arm=arm))
    if isinstance(state, Queued):
        return None
    return f"✅ <b>{arm}</b> is unblocked; it is {state} now."


async def _unblock_answer(turn: Turn[NoDraft], press: Callback | None, text: str) -> None:
    arm = _arm_answer(turn, press, text)
    turn.finish(await _unblocked(turn.update, turn.context, arm))


UNBLOCK = answered_by("unblock", NoDraft, _unblock_answer)


async def unblock_command(update: Update, context: Context) -> None:
    """Unblock a theater: /unblock ibm, or asked."""
    args = args_of(context)
    if len(args) > 1:
        raise Usage(UNBLOCK_USAGE)
    if args:
        done = await _unblocked(update, context, parse_arm(args[0]))
        await reply_with(update, done)
        return
    await start(update, context, UNBLOCK, "arm", NoDraft(), "Unblock which theater?", ARM_BUTTONS)


async def undo_command(update: Update, context: Context) -> None:
    """Remove the latest log (under 24 hours old)."""
    result = await tracking.undo_last(deps(context).db, me(update), now(context))
    await reply(update, render.render_undo(result))


async def status_command(update: Update, context: Context) -> None:
    """Both theaters, energy planned vs logged, overload risk with its inputs."""
    view = await status.status_view(deps(context).db, me(update), now(context))
    await reply(update, render.render_status(view), with_dashboard(context, None))


async def history_command(update: Update, context: Context) -> None:
    """Recent logs and reflections."""
    args = args_of(context)
    if len(args) > 2:
        raise Usage(HISTORY_USAGE)
    arm = None
    limit = 10
    for arg in args:
        if arg.isdigit():
            limit = parse_int(arg, "count")
            if not 1 <= limit <= HISTORY_MAX:
                raise OutOfRange("count", limit, 1, HISTORY_MAX)
        else:
            arm = parse_arm(arg)
    found = await status.history(deps(context).db, me(update), arm, limit)
    await reply(update, render.render_history(found.entries, found.timezone, arm))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CallbackQueryHandler(details_start, pattern=pattern("log", "details")))
    app.add_handler(CallbackQueryHandler(context_start, pattern=pattern("reflection", "context")))
    for name, callback in (
        ("log", log_start),
        ("reflect", reflect_start),
        ("progress", progress_command),
        ("energy", energy_command),
        ("block", block_command),
        ("unblock", unblock_command),
        ("undo", undo_command),
        ("status", status_command),
        ("history", history_command),
    ):
        app.add_handler(CommandHandler(name, callback))
