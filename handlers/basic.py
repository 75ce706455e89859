"""/start, /help, the private-chat gate, unknown commands and non-text messages."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers.common import Context, args_of, deps, is_private, now, reply
from handlers.conversation import one_question_at_a_time
from handlers.dashboard import offer_menu_button
from handlers.onboarding import begin_onboarding
from services import accounts

HELP = """<b>Aelpher</b> keeps two theaters: <b>ibm</b> (your job) and <b>cs</b> (your study).

<b>Next Best Actions</b>
/nba · <code>/nba cs</code> — the current NBA and its score, with buttons
  to lock it, log progress, finish it or choose another
/add — <code>/add cs 4 Read SICP chapter 3</code> (theater, gap 0-5, title)

<b>Recording</b>
/log — <code>/log cs 45 read chapter 3</code> (theater, minutes, what you did)
/reflect — <code>/reflect cs Passed the mock exam, 78%</code>
/undo — remove your latest log (within 24 h)

<b>Overview</b>
/status — both theaters, energy planned vs logged, overload risk
/history — <code>/history cs 10</code>
/stats — chart of the last 14 days

<b>Settings</b>
/progress — <code>/progress cs 40</code>
/energy — <code>/energy 60</code> (ibm 60%, cs 40%)
/block — <code>/block ibm travelling</code> · /unblock — <code>/unblock ibm</code>
/settings — time zone, quiet hours, daily brief, weekly review, thresholds

<b>Your data</b>
/export — everything as JSON and CSV · /delete — erase it
/link · /unlink — connect this chat to your Aelpher account
/cancel — leave any question I asked

Any command without its arguments asks for them step by step."""

WELCOME_NEW = (
    "👋 Welcome to <b>Aelpher</b>! Your two theaters, <b>ibm</b> and <b>cs</b>, are ready.\n"
    "Start by adding a Next Best Action: <code>/add cs 4 Read SICP chapter 3</code>\n"
    "/help shows everything."
)
WELCOME_BACK = "👋 Welcome back! /nba shows what's next, /help everything else."


PRIVATE_BOT = "Sorry, this Aelpher bot is private. Ask its owner to let you in."


async def private_only(update: Update, context: Context) -> None:
    """Outside private chats, say so once per message and handle nothing else."""
    if update.effective_chat is not None and not is_private(update):
        try:
            text = update.effective_message.text if update.effective_message else None
            if text and text.startswith("/"):
                await reply(update, "I only work in private chats: please message me directly.")
        finally:  # nothing else runs, even if the reply failed
            raise ApplicationHandlerStop


async def allowed_only(update: Update, context: Context) -> None:
    """With ``ALLOWED_TELEGRAM_USER_IDS`` set, anyone else's update (a command, a button, an
    answer to a question, anything) gets the polite refusal once (a message: a reply; a
    button: the refusal as its answer, the message stays as it was) and nothing else runs."""
    allowed = deps(context).allowed_user_ids
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(PRIVATE_BOT, show_alert=True)
        elif update.message is not None:
            await reply(update, PRIVATE_BOT)
    finally:  # nothing else runs, even if the refusal could not be sent
        raise ApplicationHandlerStop


async def gate(update: Update, context: Context) -> None:
    """Group −1, before every handler: private chats only, then the allow-list."""
    await private_only(update, context)
    await allowed_only(update, context)


async def start(update: Update, context: Context) -> None:
    """Create or find the account (local mode) or point to /link (Supabase mode); a
    just-created account is welcomed with the first onboarding question (handlers/onboarding.py)
    in the same message."""
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None and chat is not None
    d = deps(context)
    if d.allowed_user_ids and user.id not in d.allowed_user_ids:  # the gate refuses first
        await reply(update, PRIVATE_BOT)
        return
    if d.supabase_url:
        link = await accounts.find_link(d.db, user.id)
        if link is None:
            await reply(
                update,
                "👋 Welcome to <b>Aelpher</b>. Send /link to connect your "
                "Aelpher account with a one-time code sent to your email.",
            )
            return
        await accounts.reactivate(d.db, user.id, chat.id, now(context))
        created = False
    else:
        _, created = await accounts.create_local_account(
            d.db, user.id, chat.id, user.first_name.replace("\x00", ""), now(context)
        )
    if d.outbox is not None:  # linked: writes may wait out an outage from now on
        await d.outbox.remember_linked(user.id)
    await offer_menu_button(update, context)
    if created:  # the welcome and the first onboarding question, in one message
        await begin_onboarding(update, context, intro=WELCOME_NEW)
    else:
        await reply(update, WELCOME_BACK)
    payload = args_of(context)
    if payload and payload[0] in ("help",):
        await reply(update, HELP)


async def help_command(update: Update, context: Context) -> None:
    """Every command with a one-line example."""
    await reply(update, HELP)


async def unknown_command(update: Update, context: Context) -> None:
    """A command I don't know: a short help."""
    await reply(update, "I don't know that command. Try /nba, /log, /status — or /help for all.")


async def non_text(update: Update, context: Context) -> None:
    """Photos, stickers, voice… outside a conversation."""
    await reply(update, "I can only read text. Try <code>/log cs 25 what you did</code> or /help.")


def register_gate(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The gate (private chats, the allow-list) first; then, for a command, the questions
    still open are closed (``handlers/conversation.py``), so a command never leaves an
    earlier question waiting to take a later answer."""
    app.add_handler(TypeHandler(Update, gate), group=-2)
    app.add_handler(MessageHandler(filters.COMMAND, one_question_at_a_time), group=-1)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("help", help_command))


def register_fallbacks(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Last in order: anything no other handler took."""
    app.add_handler(MessageHandler(filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(~filters.TEXT & ~filters.StatusUpdate.ALL, non_text))
