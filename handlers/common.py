"""Helpers every handler module shares: dependencies, the user, replies, and usage errors."""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import datetime
from typing import TypeVar

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from handlers.deps import Deps, get_deps
from handlers.render import ARM_NAME, split_message
from services import sync
from services.commands import Command
from services.db import UPDATE_SCOPE, TelegramUser
from services.models import Arm, parse_arm

logger = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


class Usage(Exception):
    """Malformed arguments: the error handler replies with the command's usage line."""

    def __init__(self, usage: str, problem: str | None = None) -> None:
        super().__init__(problem or usage)
        self.usage = usage
        self.problem = problem


def deps(context: Context) -> Deps:
    return get_deps(context.bot_data)


def now(context: Context) -> datetime:
    return deps(context).clock()


def me(update: Update) -> TelegramUser:
    """The pressing/sending user as a principal for the services (resolved under RLS)."""
    assert update.effective_user is not None
    return TelegramUser(update.effective_user.id)


def message_key(update: Update) -> str:
    """An idempotency key for this update: the same message or button press twice → one write.

    A button press is keyed on the message it sits on and its data, so a double tap on the
    same button of the same message records once.
    """
    query = update.callback_query
    if query is not None and query.message is not None:
        return f"cb:{query.message.chat.id}:{query.message.message_id}:{query.data}"
    msg = update.effective_message
    assert msg is not None
    return f"msg:{msg.chat.id}:{msg.message_id}"


async def reply(
    update: Update, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Send ``text`` (split at 4096 characters); the keyboard goes on the last part."""
    await _question_settled()
    chat = update.effective_chat
    if chat is None:
        return None
    parts = split_message(text)
    sent: Message | None = None
    for n, part in enumerate(parts, 1):
        sent = await chat.send_message(part, reply_markup=markup if n == len(parts) else None)
    return sent


async def reply_with(
    update: Update, result: str | tuple[str, InlineKeyboardMarkup | None] | None
) -> None:
    """Reply with a write's rendered result (text, or text and keyboard); None: nothing to
    say (the write was kept for later, and the user told so already)."""
    if result is None:
        return
    if isinstance(result, str):
        await reply(update, result)
    else:
        await reply(update, *result)


async def edit(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Redraw the pressed message in place (or send anew if it can't be edited)."""
    await _question_settled()
    query = update.callback_query
    assert query is not None
    parts = split_message(text)
    try:
        await query.edit_message_text(parts[0], reply_markup=markup if len(parts) == 1 else None)
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            return
        if "can't be edited" not in str(exc) and "not found" not in str(exc):
            raise
        await reply(update, text, markup)
        return
    chat = query.message.chat if query.message is not None else update.effective_chat
    assert chat is not None  # a press always comes from a chat's message
    for n, part in enumerate(parts[1:], 2):
        await query.get_bot().send_message(
            chat.id, part, reply_markup=markup if n == len(parts) else None
        )


async def answer_and_edit(
    update: Update, toast: str | None, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Answer the pressed button (``toast``: its notice, None for none) and redraw its message,
    both requests in flight at once: the user waits for one Bot API round trip, not two.

    An answer refused because the press is too old (Telegram gives 15 s or so) is only
    logged: the redraw is what matters then. Any other failure is raised after both finish.
    """
    query = update.callback_query
    assert query is not None
    # The redraw goes out first: it is what the user is waiting to see; the answer's request
    # is built while the redraw is on its way.
    edited, answered = await asyncio.gather(
        edit(update, text, markup), query.answer(toast), return_exceptions=True
    )
    if isinstance(edited, BaseException):
        raise edited
    if isinstance(answered, BadRequest) and "query is too old" in str(answered).lower():
        logger.info("button answered too late: %s", answered)
    elif isinstance(answered, BaseException):
        raise answered


async def ask(
    update: Update, text: str, markup: InlineKeyboardMarkup | None = None, *, in_place: bool = True
) -> None:
    """The next question of a guided form: for a pressed button, in place of its message and
    answered along with it (``in_place=False``: answered, and asked in a new message, so the
    pressed message stays as it was); for typed input, a new message."""
    query = update.callback_query
    if query is not None and in_place:
        await answer_and_edit(update, None, text, markup)
        return
    if query is not None:
        await query.answer()
    await reply(update, text, markup)


async def _question_settled() -> None:
    """Before a reply: a command's close of the open question is done (another instance
    may take the person's next message as soon as they read this one)."""
    scope = UPDATE_SCOPE.get()
    if scope is not None:
        await scope.settle()


def is_private(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == ChatType.PRIVATE


def args_of(context: Context) -> list[str]:
    return list(context.args or [])


QUEUED = (
    "📴 I can't reach the database right now. Your {what} is saved on this server and will"
    " sync as soon as the database is back; I'll tell you when it has."
)


R = TypeVar("R")


async def perform(update: Update, context: Context, command: Command[R]) -> R | sync.Queued:
    """Run a write that may wait out an outage (``LogTime(...)``, ``AddItem(...)`` …): the
    command's own result, or ``Queued`` (after telling the user) if it was kept for later."""
    assert update.effective_chat is not None
    d = deps(context)
    result = await sync.perform(
        d.db, d.outbox, me(update), update.effective_chat.id, command, d.clock()
    )
    if isinstance(result, sync.Queued):
        await reply(update, QUEUED.format(what=html.escape(result.description, quote=False)))
    return result


def arm_and_rest(text: str) -> tuple[Arm, str]:
    """A typed theater and what follows it: "cs 40" → (cs, "40"); a button's label typed
    as shown ("cs · study") leaves nothing."""
    words = text.split()
    if not words:
        return parse_arm(""), ""
    arm = parse_arm(words[0])
    rest = words[1:]
    if rest and rest[0] == "·" and " ".join(rest) == ARM_NAME[arm].split(" ", 1)[1]:
        rest = []
    return arm, " ".join(rest)
