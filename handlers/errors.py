"""The error handler: domain errors become specific replies; the rest is logged, never shown."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from handlers.callbacks import STALE, BadCallback
from handlers.common import Context, Usage, deps, reply
from handlers.render import esc
from handlers.usage import USAGES
from services import accounts, sanity
from services.db import CommitUnknown, DatabaseBusy, DatabaseUnavailable
from services.durations import NotAClockTime, NotADuration
from services.errors import (
    DomainError,
    Empty,
    InvalidTheater,
    NotANumber,
    NotLinked,
    OutOfRange,
    TooLong,
)

logger = logging.getLogger(__name__)

UNREACHABLE = (
    "⚠️ I can't reach the database right now, so nothing was changed. Please try again in a minute."
)
UNCERTAIN = (
    "⚠️ I lost the database while saving this, so I can't tell whether it was saved."
    " Check /status or /nba before you try again."
)
BUSY = "⏳ I'm busy right now, so nothing was changed. Please try again in a moment."
INTERNAL = (
    "Sorry, something went wrong on my side and nothing was changed. It has been logged;"
    " please try again."
)


def describe(update: object) -> str:
    """Update id, user, chat and what was asked (a command name or callback area), no text."""
    if not isinstance(update, Update):
        return "no update"
    user = update.effective_user.id if update.effective_user else None
    chat = update.effective_chat.id if update.effective_chat else None
    what = "other"
    if update.callback_query is not None:
        what = "callback " + (update.callback_query.data or "").split(":", 2)[0]
    elif update.effective_message is not None and update.effective_message.text:
        words = update.effective_message.text.split(maxsplit=1)
        what = words[0] if words and words[0].startswith("/") else "text"
    return f"update={update.update_id} user={user} chat={chat} {what}"


# Errors about what was typed: a one-line command that causes one also gets its usage line.
INPUT_ERRORS = (
    OutOfRange,
    NotANumber,
    NotADuration,
    NotAClockTime,
    InvalidTheater,
    TooLong,
    Empty,
)


def usage_of(update: Update) -> str | None:
    """The usage line of the command this message is, if it is a command with arguments."""
    message = update.message
    if message is None or not message.text or not message.text.startswith("/"):
        return None
    words = message.text.split()
    if len(words) < 2:
        return None
    return USAGES.get(words[0][1:].split("@")[0].lower())


def not_linked_text(context: Context) -> str:
    if deps(context).supabase_url:
        return "You're not linked yet. Send /link to connect your Aelpher account."
    return "You're not set up yet. Send /start to begin."


async def on_error(update: object, context: Context) -> None:
    """Reply specifically to what the user can fix; log everything else with context."""
    error = context.error
    if isinstance(error, BadRequest) and "not modified" in str(error).lower():
        return
    if isinstance(error, Forbidden):
        chat = update.effective_chat if isinstance(update, Update) else None
        logger.info("bot blocked (%s)", describe(update))
        if chat is not None:
            await accounts.deactivate_chat(deps(context).db, chat.id)
        return
    if isinstance(error, RetryAfter | TimedOut | NetworkError) and not isinstance(
        error, BadRequest
    ):
        logger.warning("telegram unavailable: %s (%s)", type(error).__name__, describe(update))
        return
    if isinstance(error, BadCallback) and isinstance(update, Update) and update.callback_query:
        # Data this bot did not make, or no longer makes: not a fault (forged, or old).
        logger.info("button data refused: %s (%s)", error, describe(update))
        try:
            await update.callback_query.answer(STALE)
        except Exception:  # the answer itself failed: logged, never raised
            logger.warning("could not answer a stale button (%s)", describe(update), exc_info=True)
        return
    if not isinstance(update, Update):
        if isinstance(error, DatabaseUnavailable):
            logger.warning("database unavailable outside an update: %s", error)
        else:
            logger.error("error outside an update", exc_info=error)
        return
    if isinstance(error, Usage):
        text = f"{esc(error.problem)}\n" if error.problem else ""
        text += f"Usage: {error.usage}"
    elif isinstance(error, NotLinked):
        text = not_linked_text(context)
    elif isinstance(error, DomainError):
        text = esc(error.user_message)
        usage = usage_of(update)
        if usage is not None and isinstance(error, INPUT_ERRORS):
            text += f"\nUsage: {usage}"
    elif isinstance(error, DatabaseBusy):  # the database answers: not an outage
        logger.warning("database busy: no free connection (%s)", describe(update))
        text = BUSY
    elif isinstance(error, CommitUnknown):  # the write may have been applied
        logger.warning("database lost after a COMMIT was sent (%s)", describe(update))
        text = UNCERTAIN
    elif isinstance(error, DatabaseUnavailable):
        logger.warning("database unavailable (%s)", describe(update))
        text = UNREACHABLE
    elif (unreadable := sanity.explain(error)) is not None:
        # A write refused because the row still holds a value written outside the bot.
        logger.info("unusable stored value %s (%s)", unreadable.where, describe(update))
        text = esc(unreadable.user_message)
    else:
        logger.error("unhandled error (%s)", describe(update), exc_info=error)
        text = INTERNAL
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(_plain(text)[:200], show_alert=True)
        else:
            await reply(update, text)
    except Exception:  # the reply itself failed (Telegram down): logged, never raised
        logger.warning("could not send the error reply (%s)", describe(update), exc_info=True)


def _plain(text: str) -> str:
    """Callback answers are plain text: drop the few tags our messages use."""
    import re
    from html import unescape

    return unescape(re.sub(r"</?(b|i|code)>", "", text))


async def unknown_button(update: Update, context: Context) -> None:
    """A button no handler claims (an old message, or forged data): say so, change nothing."""
    if update.callback_query is not None:
        await update.callback_query.answer(f"{STALE} Send /help.")
