"""One way to build the guided conversations: persistent, 10-minute timeout, /cancel anywhere."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CommandHandler,
    ConversationHandler,
    TypeHandler,
)
from telegram.warnings import PTBUserWarning

from handlers.common import Context, reply

TIMEOUT_SECONDS = 600
# Conversation names double as the keys their drafts use in user_data.
DRAFT_KEYS = ("add", "log", "reflect", "link", "settings", "onboard")


async def cancel(update: Update, context: Context) -> int:
    """Leave whatever conversation is open; nothing half-typed is saved."""
    for key in DRAFT_KEYS:
        context.user_data.pop(key, None)  # type: ignore[union-attr]
    await reply(update, "Cancelled. Nothing was saved. /help lists what I can do.")
    return ConversationHandler.END


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
        fallbacks=[CommandHandler("cancel", cancel)],
        name=name,
        persistent=True,
        conversation_timeout=TIMEOUT_SECONDS,
        allow_reentry=True,
    )
