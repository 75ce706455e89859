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
from services.errors import DomainError, NotLinked

ASK_EMAIL, ASK_CODE = "LINK_EMAIL", "LINK_CODE"
#: the conversation's draft: {"email": str} once a code was asked for. The limits on code
#: requests and wrong codes live in PostgreSQL (services.linking), not here: /cancel, the
#: timeout, a restart or another Telegram account must not reset them.
DRAFT = "link"

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


def render_code_sent(email: str) -> str:
    """The same words whether or not the address has an account."""
    return (
        f"📧 If an Aelpher account uses <b>{esc(email)}</b>, I've sent a one-time code there.\n"
        "Send me the 6-digit code from that email, or /cancel."
    )


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
    await linking.check_tries(d.db, update.effective_user.id, None, now(context))
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
    assert update.effective_user is not None
    d = deps(context)
    assert d.supabase_url is not None and d.supabase_anon_key is not None
    try:
        email = await linking.request_code(
            d.db, d.supabase_url, d.supabase_anon_key, update.effective_user.id, text, now(context)
        )
    except linking.InvalidEmail as exc:
        await reply(update, f"{esc(exc.user_message)}\n{OTHER_EMAIL}")
        return ASK_EMAIL
    user_data(context)[DRAFT] = {"email": email}
    await reply(update, render_code_sent(email))
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
    try:
        user_id = await linking.check_code(
            d.db,
            d.supabase_url,
            d.supabase_anon_key,
            update.effective_user.id,
            email,
            update.effective_message.text or "",
            now(context),
        )
    except linking.CodeRejected as exc:
        left = exc.left
        if left == 0:
            too_many = linking.TooManyTries(exc.wait_minutes).user_message
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
        removed = await accounts.unlink(d.db, tg)
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
