"""/log, /reflect, /progress, /energy, /block, /unblock, /undo, /status, /history."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from handlers import render
from handlers.callbacks import decode, encode
from handlers.common import (
    Context,
    Usage,
    args_of,
    ask,
    deps,
    me,
    message_key,
    now,
    perform,
    reply,
    user_data,
)
from handlers.conversation import conversation
from handlers.usage import (
    BLOCK_USAGE,
    ENERGY_USAGE,
    HISTORY_USAGE,
    PROGRESS_USAGE,
    UNBLOCK_USAGE,
)
from services import status, tracking
from services.durations import parse_minutes
from services.errors import DomainError
from services.models import parse_arm
from services.status import HISTORY_MAX
from services.validation import check_energy, check_minutes, parse_decimal, parse_int

LOG_ARM, LOG_MINUTES, LOG_ACTION, LOG_DETAILS = (
    "LOG_ARM",
    "LOG_MINUTES",
    "LOG_ACTION",
    "LOG_DETAILS",
)
REFLECT_ARM, REFLECT_EVIDENCE, REFLECT_CONTEXT = (
    "REFLECT_ARM",
    "REFLECT_EVIDENCE",
    "REFLECT_CONTEXT",
)


# --- /log -------------------------------------------------------------------------------


async def _save_log(update: Update, context: Context, draft: dict[str, Any]) -> None:
    result = await perform(
        update,
        context,
        "log_time",
        arm=parse_arm(draft["arm"]),
        minutes=draft.get("minutes"),
        action=draft["action"],
        details=draft.get("details"),
        dedupe_key=message_key(update),
    )
    if result is not None:
        await reply(update, render.render_log(result), render.log_keyboard(result))


#: A word that can only continue a duration: a unit ("h", "hours", "min") or minutes with
#: their unit ("30m", "30 min" is two words: "30" and "min").
_DURATION_TAIL = re.compile(r"(?i)^(\d{1,4}\s*)?(h|hr|hrs|hours?|m|min|mins|minutes?)$")


def _minutes_from(words: list[str]) -> tuple[int, int]:
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


async def log_start(update: Update, context: Context) -> str | int:
    """Log at once with all arguments; otherwise ask for what is missing."""
    args = args_of(context)
    draft: dict[str, Any] = {}
    if args:
        draft["arm"] = parse_arm(args[0])
    if len(args) >= 2:
        draft["minutes"], used = _minutes_from(args[1:])
        if len(args) > 1 + used:
            draft["action"] = " ".join(args[1 + used :])
    if "action" in draft:
        await _save_log(update, context, draft)
        return ConversationHandler.END
    user_data(context)["log"] = draft
    return await _log_next(update, context)


async def _log_next(update: Update, context: Context) -> str | int:
    draft = user_data(context)["log"]
    if "arm" not in draft:
        await ask(
            update, "Log time in which theater?", render.keyboard([render.arm_buttons("log")])
        )
        return LOG_ARM
    if "minutes" not in draft:
        row = [(f"{m}", encode("log", "min", m)) for m in render.MINUTE_CHOICES]
        await ask(
            update,
            f"<b>{draft['arm']}</b>: how long? Tap, or type it: 45, 1h30, 1.5h or 1:30"
            " (up to 24 h).",
            render.keyboard([row]),
        )
        return LOG_MINUTES
    await ask(update, f"<b>{draft['arm']}</b>, {draft['minutes']} min: what did you do?")
    return LOG_ACTION


async def log_pick(update: Update, context: Context) -> str | int:
    """Theater or minutes from a button: the question is redrawn as the next one."""
    query = update.callback_query
    assert query is not None
    cb = decode(query.data)
    draft = user_data(context).setdefault("log", {})
    if cb.verb == "arm":
        draft["arm"] = cb.arm()
    elif cb.verb == "min":
        draft["minutes"] = cb.number(0, 1, 1440)
    return await _log_next(update, context)


async def log_typed_minutes(update: Update, context: Context) -> str | int:
    """Minutes typed as a number."""
    assert update.effective_message is not None
    minutes = check_minutes(parse_minutes(update.effective_message.text or ""))
    user_data(context)["log"]["minutes"] = minutes
    return await _log_next(update, context)


async def log_action(update: Update, context: Context) -> str | int:
    """The action text: the log is saved now (details can follow with a button)."""
    assert update.effective_message is not None
    draft = user_data(context)["log"]
    draft["action"] = update.effective_message.text or ""
    await _save_log(update, context, draft)
    user_data(context).pop("log", None)
    return ConversationHandler.END


async def _ask_follow_up(update: Update, context: Context, draft: str, prompt: str) -> None:
    """A button under a saved record (log, reflection): remember which, ask for the text."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    user_data(context)[draft] = {"id": decode(query.data).uuid().hex}
    await reply(update, prompt)


def _follow_up(update: Update, context: Context, draft: str) -> tuple[UUID, str]:
    """The record the user is adding text to, and the text. The draft stays until the text
    is saved, so a text that is too long can be sent again."""
    assert update.effective_message is not None
    record = UUID(hex=user_data(context)[draft]["id"])
    return record, update.effective_message.text or ""


async def details_start(update: Update, context: Context) -> str | int:
    """The "Add details" button under a log: ask for them."""
    await _ask_follow_up(
        update,
        context,
        "log",
        "Send the details for that log (up to 2000 characters), or /cancel.",
    )
    return LOG_DETAILS


async def log_details(update: Update, context: Context) -> str | int:
    """Store the typed details on the log."""
    log_id, text = _follow_up(update, context, "log")
    result = await tracking.set_log_details(deps(context).db, me(update), log_id, text)
    user_data(context).pop("log", None)
    await reply(update, f"📝 Details added to “{render.esc(result.log.action)}”.")
    return ConversationHandler.END


# --- /reflect ---------------------------------------------------------------------------


async def _save_reflection(update: Update, context: Context, arm: str, evidence: str) -> None:
    found = await perform(update, context, "reflect", arm=parse_arm(arm), evidence=evidence)
    if found is None:
        return
    await reply(
        update,
        f"💡 Reflection saved in <b>{found.arm_type}</b>: {render.esc(found.evidence)}",
        render.keyboard([[("➕ Add context", encode("r", "ctx", found.id))]]),
    )


async def reflect_start(update: Update, context: Context) -> str | int:
    """Save at once with theater and evidence; otherwise ask."""
    args = args_of(context)
    if len(args) >= 2:
        await _save_reflection(update, context, args[0], " ".join(args[1:]))
        return ConversationHandler.END
    draft: dict[str, Any] = {}
    if args:
        draft["arm"] = parse_arm(args[0])
    user_data(context)["reflect"] = draft
    return await _reflect_next(update, context)


async def _reflect_next(update: Update, context: Context) -> str | int:
    draft = user_data(context)["reflect"]
    if "arm" not in draft:
        await ask(
            update,
            "A reflection for which theater?",
            render.keyboard([render.arm_buttons("reflect")]),
        )
        return REFLECT_ARM
    await ask(
        update,
        f"<b>{draft['arm']}</b>: what's the evidence? An objective fact, like "
        "<i>mock exam 78%</i> or <i>PR #12 merged</i>.",
    )
    return REFLECT_EVIDENCE


async def reflect_pick(update: Update, context: Context) -> str | int:
    query = update.callback_query
    assert query is not None
    user_data(context).setdefault("reflect", {})["arm"] = decode(query.data).arm()
    return await _reflect_next(update, context)


async def reflect_evidence(update: Update, context: Context) -> str | int:
    assert update.effective_message is not None
    draft = user_data(context)["reflect"]
    await _save_reflection(update, context, draft["arm"], update.effective_message.text or "")
    user_data(context).pop("reflect", None)
    return ConversationHandler.END


async def context_start(update: Update, context: Context) -> str | int:
    """The "Add context" button: ask for the text."""
    await _ask_follow_up(
        update, context, "reflect", "Send the context for that reflection (up to 2000 characters)."
    )
    return REFLECT_CONTEXT


async def context_text(update: Update, context: Context) -> str | int:
    """Store the typed context on the reflection."""
    reflection_id, text = _follow_up(update, context, "reflect")
    found = await tracking.add_context(deps(context).db, me(update), reflection_id, text)
    user_data(context).pop("reflect", None)
    await reply(update, f"💡 Context added to “{render.esc(found.evidence)}”.")
    return ConversationHandler.END


# --- one-line setters -------------------------------------------------------------------


async def progress_command(update: Update, context: Context) -> None:
    """Set a theater's progress."""
    args = args_of(context)
    if len(args) != 2:
        raise Usage(PROGRESS_USAGE)
    arm = parse_arm(args[0])
    value = parse_decimal(args[1], "progress", percent=True)
    combined = await perform(update, context, "set_progress", arm=arm, value=str(value))
    if combined is None:
        return
    await reply(
        update,
        f"📈 <b>{arm}</b> progress set to {render.num(value)}%."
        f" Combined progress {render.num(combined)}%.",
    )


async def energy_command(update: Update, context: Context) -> None:
    """Split energy between the theaters."""
    args = args_of(context)
    if len(args) != 1:
        raise Usage(ENERGY_USAGE)
    share = check_energy(parse_int(args[0], "energy", percent=True))
    result = await perform(update, context, "set_energy", ibm_share=share)
    if result is None:
        return
    ibm, cs = result
    await reply(update, f"⚡ Energy: ibm {ibm}% · cs {cs}%.")


async def block_command(update: Update, context: Context) -> None:
    """Block a theater (no idle nudges) with an optional reason."""
    args = args_of(context)
    if not args:
        raise Usage(BLOCK_USAGE)
    arm = parse_arm(args[0])
    reason = " ".join(args[1:]) or None
    if await perform(update, context, "block", arm=arm, reason=reason) is None:
        return
    why = f" ({render.esc(reason)})" if reason else ""
    await reply(update, f"⛔ <b>{arm}</b> is blocked{why}. No idle nudges until /unblock {arm}.")


async def unblock_command(update: Update, context: Context) -> None:
    """Unblock a theater."""
    args = args_of(context)
    if len(args) != 1:
        raise Usage(UNBLOCK_USAGE)
    arm = parse_arm(args[0])
    state = await perform(update, context, "unblock", arm=arm)
    if state is None:
        return
    await reply(update, f"✅ <b>{arm}</b> is unblocked; it is {state} now.")


async def undo_command(update: Update, context: Context) -> None:
    """Remove the latest log (under 24 hours old)."""
    result = await tracking.undo_last(deps(context).db, me(update), now(context))
    await reply(update, render.render_undo(result))


async def status_command(update: Update, context: Context) -> None:
    """Both theaters, energy planned vs logged, overload risk with its inputs."""
    view = await status.status_view(deps(context).db, me(update), now(context))
    await reply(update, render.render_status(view))


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
                from services.errors import OutOfRange

                raise OutOfRange("count", limit, 1, HISTORY_MAX)
        else:
            arm = parse_arm(arg)
    found = await status.history(deps(context).db, me(update), arm, limit)
    await reply(update, render.render_history(found.entries, found.timezone, arm))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    text = filters.TEXT & ~filters.COMMAND
    app.add_handler(
        conversation(
            "log",
            entry_points=[
                CommandHandler("log", log_start),
                CallbackQueryHandler(details_start, pattern=r"^l:det:"),
            ],
            states={
                LOG_ARM: [CallbackQueryHandler(log_pick, pattern=r"^log:arm:")],
                LOG_MINUTES: [
                    CallbackQueryHandler(log_pick, pattern=r"^log:min:"),
                    MessageHandler(text, log_typed_minutes),
                ],
                LOG_ACTION: [MessageHandler(text, log_action)],
                LOG_DETAILS: [MessageHandler(text, log_details)],
            },
        )
    )
    app.add_handler(
        conversation(
            "reflect",
            entry_points=[
                CommandHandler("reflect", reflect_start),
                CallbackQueryHandler(context_start, pattern=r"^r:ctx:"),
            ],
            states={
                REFLECT_ARM: [CallbackQueryHandler(reflect_pick, pattern=r"^reflect:arm:")],
                REFLECT_EVIDENCE: [MessageHandler(text, reflect_evidence)],
                REFLECT_CONTEXT: [MessageHandler(text, context_text)],
            },
        )
    )
    for name, callback in (
        ("progress", progress_command),
        ("energy", energy_command),
        ("block", block_command),
        ("unblock", unblock_command),
        ("undo", undo_command),
        ("status", status_command),
        ("history", history_command),
    ):
        app.add_handler(CommandHandler(name, callback))
