"""/link (Supabase mode: an emailed one-time code) and /unlink.

/link is a guided form (flow "link", handlers/conversation.py): it asks the email (or takes
``/link you@example.com``), then the emailed code. The person is usually not linked yet, so
the flow is ``unlinked``: the engine answers it in a privileged transaction. The draft holds
the email once a code was sent there; never the code. The limits on code requests and wrong
codes live in PostgreSQL (services.linking), not in the draft: /cancel, the timeout, a restart
or another Telegram account must not reset them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler

from handlers.common import Context, args_of, deps, now, reply
from handlers.conversation import Flow, Turn, flow, start
from handlers.dashboard import offer_menu_button
from handlers.render import esc
from services import accounts, linking
from services.errors import DomainError, NotLinked

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


def render_bad_email(error: linking.InvalidEmail) -> str:
    return f"{esc(error.user_message)}\n{OTHER_EMAIL}"


def render_rejected(error: linking.CodeRejected) -> str:
    """A wrong code: how many tries are left (or how long until the next one)."""
    left = error.left
    if left == 0:
        too_many = linking.TooManyTries(error.wait_minutes).user_message
        return f"❌ {esc(error.user_message)} {esc(too_many)}"
    return (
        f"❌ {esc(error.user_message)} {left} {'try' if left == 1 else 'tries'} left:"
        " send the code again, or /link for a new one."
    )


@dataclass(frozen=True, slots=True)
class LinkDraft:
    """The address a code was sent to (None: still asking for it)."""

    email: str | None = None


async def _request_code(update: Update, context: Context, text: str) -> str:
    """Email a code to the typed address; the address (cleaned)."""
    assert update.effective_user is not None
    d = deps(context)
    assert d.supabase_url is not None and d.supabase_anon_key is not None
    return await linking.request_code(
        d.db, d.supabase_url, d.supabase_anon_key, update.effective_user.id, text, now(context)
    )


async def _email_text(turn: Turn[LinkDraft], text: str) -> None:
    """The typed email: send the code there and ask for it."""
    try:
        email = await _request_code(turn.update, turn.context, text)
    except linking.InvalidEmail as exc:
        turn.ask("email", turn.draft, render_bad_email(exc))
        return
    turn.ask("code", LinkDraft(email), render_code_sent(email))


async def _code_text(turn: Turn[LinkDraft], text: str) -> None:
    """The typed code: verify it (counting the try), then link."""
    email = turn.draft.email
    if not email:  # a code step without its address: ask for it again
        turn.ask("email", LinkDraft(), ASK_FOR_EMAIL)
        return
    chat = turn.update.effective_chat
    assert chat is not None
    d = deps(turn.context)
    assert d.supabase_url is not None and d.supabase_anon_key is not None
    try:
        user_id = await linking.check_code(
            d.db,
            d.supabase_url,
            d.supabase_anon_key,
            turn.who.telegram_user_id,
            email,
            text,
            turn.now,
        )
    except linking.CodeRejected as exc:
        turn.ask("code", turn.draft, render_rejected(exc))
        return
    try:
        await accounts.link_existing(d.db, turn.who.telegram_user_id, user_id, chat.id, turn.now)
    except DomainError as exc:
        turn.finish(esc(exc.user_message))
        return
    if d.outbox is not None:  # writes may wait out an outage from now on
        await d.outbox.remember_linked(turn.who.telegram_user_id)
    await offer_menu_button(turn.update, turn.context)
    turn.finish(f"✅ Linked to {esc(email)}. /nba shows what's next.")


async def _link_text(turn: Turn[LinkDraft], text: str) -> None:
    """A typed answer. The other errors of linking (not a code, too many wrong codes or
    codes, Supabase Auth unreachable) are said as they are, without "Try again": some are not
    something to retry now. The question stays as it was. Nothing of the step is to roll
    back: the limits are counted in transactions of their own, on purpose."""
    try:
        if turn.step == "email":
            await _email_text(turn, text)
        else:
            await _code_text(turn, text)
    except DomainError as exc:
        turn.say(esc(exc.user_message))


LINK = flow(Flow("link", LinkDraft, on_text=_link_text, unlinked=True))


async def link_start(update: Update, context: Context) -> None:
    """Ask for the email (or send the code at once with ``/link you@example.com``)."""
    assert update.effective_user is not None
    d = deps(context)
    if not d.supabase_url:
        await reply(update, LOCAL_MODE)
        return
    if d.allowed_user_ids and update.effective_user.id not in d.allowed_user_ids:
        await reply(update, PRIVATE_BOT)
        return
    if await accounts.find_link(d.db, update.effective_user.id) is not None:
        await reply(update, ALREADY_LINKED)
        return
    await linking.check_tries(d.db, update.effective_user.id, None, now(context))
    if not args_of(context):
        await start(update, context, LINK, "email", LinkDraft(), ASK_FOR_EMAIL)
        return
    try:
        email = await _request_code(update, context, " ".join(args_of(context)))
    except linking.InvalidEmail as exc:
        await start(update, context, LINK, "email", LinkDraft(), render_bad_email(exc))
        return
    await start(update, context, LINK, "code", LinkDraft(email), render_code_sent(email))


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
    app.add_handler(CommandHandler("link", link_start))
    app.add_handler(CommandHandler("unlink", unlink_command))
