"""/link (Supabase mode: an emailed one-time code) and /unlink."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from telegram import Update
from telegram.ext import Application, CommandHandler, ConversationHandler, MessageHandler, filters

from handlers.common import Context, args_of, deps, now, reply, user_data
from handlers.conversation import conversation
from handlers.render import esc
from services import accounts, linking
from services.db import TelegramUser
from services.errors import DomainError, NotLinked

ASK_EMAIL, ASK_CODE = "LINK_EMAIL", "LINK_CODE"
#: the conversation's draft: {"email": str} once a code was sent
DRAFT = "link"
#: verification tries (epoch seconds). Kept outside the draft on purpose: /cancel and the
#: timeout drop drafts, and leaving and restarting /link must not reset the limit.
TRIES = "link_tries"

LOCAL_MODE = "This bot runs in local mode: your account was created at /start."
ALREADY_LINKED = (
    "This chat is already linked to an Aelpher account. Send /unlink first to link another one."
)
ASK_FOR_EMAIL = "Which email does your Aelpher account use? Send it here, or /cancel."
OTHER_EMAIL = "Send the email of your Aelpher account, or /cancel."
NOT_LINKED = "This chat isn't linked."
UNLINKED = "Unlinked. Your Aelpher data stays in your account; /link (or /start) to connect again."
LOCAL_UNLINK = (
    "This bot runs in local mode: your account lives in this chat and can't be linked again"
    " after an unlink, so I keep it. /delete erases your data instead."
)
PRIVATE_BOT = "Sorry, this Aelpher bot is private. Ask its owner to let you in."


def _tries(context: Context) -> list[float]:
    """This user's recent verification tries (pruned, stored back JSON-safe)."""
    data = user_data(context)
    tries = linking.recent_tries(data.get(TRIES, []), now(context).timestamp())
    data[TRIES] = tries
    return tries


async def link_start(update: Update, context: Context) -> str | int:
    """Ask for the email (or send the code at once with ``/link you@example.com``)."""
    assert update.effective_user is not None
    d = deps(context)
    if not d.supabase_url:
        await reply(update, LOCAL_MODE)
        return ConversationHandler.END
    if d.allowed_user_ids and update.effective_user.id not in d.allowed_user_ids:
        await reply(update, PRIVATE_BOT)
        return ConversationHandler.END
    if await accounts.find_link(d.db, update.effective_user.id) is not None:
        await reply(update, ALREADY_LINKED)
        return ConversationHandler.END
    linking.check_tries(_tries(context), now(context).timestamp())
    user_data(context)[DRAFT] = {}
    if not args_of(context):
        await reply(update, ASK_FOR_EMAIL)
        return ASK_EMAIL
    return await _send_code(update, context, " ".join(args_of(context)))


async def link_email(update: Update, context: Context) -> str | int:
    """The typed email: send the code."""
    assert update.effective_message is not None
    return await _send_code(update, context, update.effective_message.text or "")


async def _send_code(update: Update, context: Context, text: str) -> str | int:
    d = deps(context)
    assert d.supabase_url is not None and d.supabase_anon_key is not None
    try:
        email = linking.clean_email(text)
        await linking.send_code(d.supabase_url, d.supabase_anon_key, email)
    except (linking.InvalidEmail, linking.UnknownEmail) as exc:
        await reply(update, f"{esc(exc.user_message)}\n{OTHER_EMAIL}")
        return ASK_EMAIL
    user_data(context)[DRAFT] = {"email": email}
    await reply(
        update,
        f"📧 I sent a one-time code to <b>{esc(email)}</b>.\n"
        "Send me the 6-digit code from that email, or /cancel.",
    )
    return ASK_CODE


async def link_code(update: Update, context: Context) -> str | int:
    """The typed code: verify it (counting the try), then link."""
    assert update.effective_message is not None and update.effective_user is not None
    d = deps(context)
    assert d.supabase_url is not None and d.supabase_anon_key is not None
    email = user_data(context).get(DRAFT, {}).get("email")
    if not email:  # a draft lost to an old version: start over
        await reply(update, ASK_FOR_EMAIL)
        return ASK_EMAIL
    code = linking.clean_code(update.effective_message.text or "")
    moment = now(context).timestamp()
    tries = _tries(context)
    linking.check_tries(tries, moment)
    try:
        user_id = await linking.verify_code(d.supabase_url, d.supabase_anon_key, email, code)
    except linking.CodeRejected as exc:
        tries.append(moment)  # only a code Supabase Auth actually checked counts as a try
        left = linking.tries_left(tries, moment)
        if left == 0:
            too_many = linking.TooManyTries().user_message
            await reply(update, f"❌ {esc(exc.user_message)} {esc(too_many)}")
        else:
            await reply(
                update,
                f"❌ {esc(exc.user_message)} {left} {'try' if left == 1 else 'tries'} left:"
                " send the code again, or /link for a new one.",
            )
        return ASK_CODE
    return await _link(update, context, user_id, email)


async def _link(update: Update, context: Context, user_id: UUID, email: str) -> int:
    assert update.effective_user is not None and update.effective_chat is not None
    user_data(context).pop(DRAFT, None)
    try:
        await accounts.link_existing(
            deps(context).db,
            update.effective_user.id,
            user_id,
            update.effective_chat.id,
            now(context),
        )
    except DomainError as exc:
        await reply(update, esc(exc.user_message))
        return ConversationHandler.END
    user_data(context).pop(TRIES, None)
    outbox = deps(context).outbox
    if outbox is not None:  # writes may wait out an outage from now on
        await outbox.remember_linked(update.effective_user.id)
    await reply(update, f"✅ Linked to {esc(email)}. /nba shows what's next.")
    return ConversationHandler.END


async def unlink_command(update: Update, context: Context) -> None:
    """Remove this Telegram user's link; the Aelpher data stays."""
    assert update.effective_user is not None
    d = deps(context)
    if not d.supabase_url:
        await reply(update, LOCAL_UNLINK)
        return
    tg = update.effective_user.id
    try:
        removed = await accounts.unlink(d.db, TelegramUser(tg), tg)
    except NotLinked:
        removed = False
    if d.outbox is not None:  # no longer linked: nothing of theirs is kept during an outage
        await d.outbox.forget_linked(tg)
    await reply(update, UNLINKED if removed else NOT_LINKED)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    text = filters.TEXT & ~filters.COMMAND
    app.add_handler(
        conversation(
            "link",
            entry_points=[CommandHandler("link", link_start)],
            states={
                ASK_EMAIL: [MessageHandler(text, link_email)],
                ASK_CODE: [MessageHandler(text, link_code)],
            },
        )
    )
    app.add_handler(CommandHandler("unlink", unlink_command))
