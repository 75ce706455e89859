"""One way to build the guided conversations: persistent, 10-minute timeout, one question open
at a time, /cancel anywhere."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    ConversationHandler,
    TypeHandler,
)
from telegram.warnings import PTBUserWarning

from handlers.common import Context, reply

TIMEOUT_SECONDS = 600
# Conversation names double as the keys their drafts use in user_data.
DRAFT_KEYS = ("add", "log", "reflect", "link", "settings", "onboard")


CANCELLED = "Cancelled. Nothing was saved. /help lists what I can do."
NOTHING_TO_CANCEL = "Nothing to cancel: I'm not waiting for an answer. /help lists what I do."
#: What /cancel says when it closes a conversation's question (default: CANCELLED).
CANCEL_REPLIES: dict[str, str] = {}
#: Questions asked outside a conversation and kept in ``user_data`` until answered (the
#: /delete confirmation): their key there → their name. Closed like the others.
PENDING_CONFIRMATIONS: dict[str, str] = {}


def close_open_questions(update: Update, context: Context) -> list[str]:
    """End every conversation open for this user in this chat; return their names.

    A person sees one question at a time: a new command abandons what was asked before (it
    never takes a later answer), and /cancel closes it. PTB's ConversationHandler keeps its
    state per conversation, so each one is ended here, its timeout job dropped (no "timed
    out" message for a question already left) and its draft removed; persistence records the
    change like any other.
    """
    closed: list[str] = []
    for group in context.application.handlers.values():
        for handler in group:
            if not isinstance(handler, ConversationHandler) or handler.name is None:
                continue
            try:
                key = handler._get_key(update)
            except RuntimeError:  # no user or chat: nothing of anyone's to close
                continue
            if key not in handler._conversations:
                continue
            job = handler.timeout_jobs.pop(key, None)
            if job is not None:
                job.schedule_removal()
            handler._update_state(ConversationHandler.END, key)
            closed.append(handler.name)
    drafts = context.user_data
    if drafts is not None:
        for name in closed:
            drafts.pop(name, None)
        for draft_key, name in PENDING_CONFIRMATIONS.items():
            if drafts.pop(draft_key, None) is not None:
                closed.append(name)
    return closed


async def one_question_at_a_time(update: Update, context: Context) -> None:
    """Before any command is handled: close the questions still open (group -1, after the
    gate). /cancel ends here, saying what it closed, or that nothing was open."""
    closed = close_open_questions(update, context)
    message = update.effective_message
    command = (message.text or "").split(maxsplit=1)[0].split("@")[0].lower() if message else ""
    if command != "/cancel":
        return
    if not closed:
        await reply(update, NOTHING_TO_CANCEL)
    else:
        await reply(update, CANCEL_REPLIES.get(closed[0], CANCELLED))
    raise ApplicationHandlerStop


async def timed_out(update: Update, context: Context) -> None:
    """Tell the user the conversation expired (drafts are dropped)."""
    for key in DRAFT_KEYS:
        context.user_data.pop(key, None)  # type: ignore[union-attr]
    await reply(update, "⌛ That conversation timed out after 10 minutes; nothing was saved.")


def conversation(
    name: str,
    entry_points: Sequence[BaseHandler[Any, Any, Any]],
    states: dict[object, list[BaseHandler[Any, Any, Any]]],
) -> ConversationHandler[Any]:
    """A persistent ConversationHandler named ``name`` with /cancel and a timeout.

    Conversations are per user and chat (not per message): a button pressed in a step belongs
    to that user's conversation, which is what PTB's per_message warning is about.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*per_message.*", category=PTBUserWarning)
        return _build(name, entry_points, states)


def _build(
    name: str,
    entry_points: Sequence[BaseHandler[Any, Any, Any]],
    states: dict[object, list[BaseHandler[Any, Any, Any]]],
) -> ConversationHandler[Any]:
    return ConversationHandler(
        entry_points=list(entry_points),
        states={
            **states,
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[],  # /cancel: one_question_at_a_time, before any conversation
        name=name,
        persistent=True,
        conversation_timeout=TIMEOUT_SECONDS,
        allow_reentry=True,
    )
