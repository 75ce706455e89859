"""/export (JSON document + zip of CSVs) and /delete (with an explicit confirmation)."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from handlers import render
from handlers.callbacks import BadCallback, decode, encode, pattern
from handlers.common import Context, deps, edit, me, now, reply, user_data
from handlers.conversation import PENDING_CONFIRMATIONS, close_open_questions
from services import erase, export

#: user_data key of the pending /delete confirmation: {"nonce": str, "at": epoch seconds}
PENDING = "delete_confirm"
PENDING_CONFIRMATIONS[PENDING] = "delete"  # a later command or /cancel closes it
#: how long a /delete confirmation button stays valid
CONFIRM_SECONDS = 600
CONFIRM_LABEL = "Yes, delete everything"
KEEP_LABEL = "Keep my data"

TABLE_LABELS = {
    "theaters": "theaters",
    "nba_items": "Next Best Actions",
    "execution_logs": "time logs",
    "reflections": "reflections",
    "global_metrics": "metrics",
    "user_settings": "settings",
    "telegram_links": "Telegram link",
    "nudges": "nudge records",
    "sync_queue": "sync queue entries",
}

KEPT = "👍 Kept. Nothing was deleted."
STALE = "That confirmation is no longer valid (used or expired). Send /delete to start again."


def render_counts(counts: Mapping[str, int]) -> str:
    """One line per table: "• time logs: 12 (execution_logs)"."""
    return "\n".join(
        f"• {TABLE_LABELS.get(name, name)}: {n} <i>({name})</i>" for name, n in counts.items()
    )


#: what /delete does to the account, per mode
LOCAL_ACCOUNT_GOES = (
    "This chat is unlinked and the account the bot made for you (your name and Telegram id)"
    " is deleted too."
)
SUPABASE_LOGIN_STAYS = (
    "This chat is unlinked too. Your Aelpher login (your Supabase Auth user) stays: it belongs"
    " to the Supabase project, not to this bot, so the bot doesn't delete it."
)
LOCAL_ACCOUNT_GONE = "This chat is unlinked and your account is deleted."
SUPABASE_LOGIN_KEPT = (
    "This chat is unlinked. Your Aelpher login (your Supabase Auth user) stays: it belongs to"
    " the Supabase project, not to this bot."
)


def render_delete_prompt(counts: Mapping[str, int], supabase_mode: bool) -> str:
    account = SUPABASE_LOGIN_STAYS if supabase_mode else LOCAL_ACCOUNT_GOES
    return (
        "⚠️ <b>Delete all your Aelpher data?</b>\n"
        "This removes, for good:\n"
        f"{render_counts(counts)}\n\n"
        f"{account}\n"
        "Want a copy first? Send /export before you confirm.\n"
        f"Nothing is deleted unless you tap “{CONFIRM_LABEL}”."
    )


def delete_keyboard(nonce: str) -> InlineKeyboardMarkup:
    return render.keyboard(
        [[(CONFIRM_LABEL, encode("del", "yes", nonce)), (KEEP_LABEL, encode("del", "no"))]]
    )


def render_deleted(counts: Mapping[str, int], supabase_mode: bool) -> str:
    again = (
        "Send /link to connect this chat to your account again."
        if supabase_mode
        else "Send /start whenever you want to begin afresh."
    )
    account = SUPABASE_LOGIN_KEPT if supabase_mode else LOCAL_ACCOUNT_GONE
    total = sum(counts.values())
    return f"🗑 Deleted {total} rows:\n{render_counts(counts)}\n\n{account} {again}"


async def export_command(update: Update, context: Context) -> None:
    """Send all of the user's data: a JSON document and a zip with one CSV per table."""
    result = await export.export_data(deps(context).db, me(update), now(context))
    document, archive = await asyncio.to_thread(lambda: (result.json_bytes(), result.zip_bytes()))
    chat = update.effective_chat
    assert chat is not None
    await chat.send_document(
        document,
        filename=f"{result.basename}.json",
        caption=(
            f"📦 Your Aelpher data: {result.total_rows} rows from {len(result.tables)} tables."
            " Times in UTC; decimals as text."
        ),
    )
    await chat.send_document(
        archive,
        filename=f"{result.basename}.zip",
        caption="The same data as CSV, one file per table.",
    )


async def delete_command(update: Update, context: Context) -> None:
    """Show what /delete would remove and ask for an explicit confirmation."""
    counts = await erase.count_data(deps(context).db, me(update))
    nonce = secrets.token_hex(6)
    user_data(context)[PENDING] = {"nonce": nonce, "at": now(context).timestamp()}
    supabase_mode = bool(deps(context).supabase_url)
    await reply(update, render_delete_prompt(counts, supabase_mode), delete_keyboard(nonce))


def _confirmed(context: Context, nonce: str) -> bool:
    """Whether ``nonce`` is the pressing user's own, still-fresh confirmation (single use).

    The nonce lives in the presser's user_data, so a button forged from another user's
    confirmation (clients can send any callback data) matches nothing.
    """
    pending = user_data(context).get(PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("nonce"), str):
        return False
    fresh = now(context).timestamp() - float(pending.get("at", 0)) <= CONFIRM_SECONDS
    if not (fresh and hmac.compare_digest(pending["nonce"], nonce)):
        return False
    user_data(context).pop(PENDING, None)
    return True


async def delete_button(update: Update, context: Context) -> None:
    """del:yes:<nonce> deletes the presser's data (if the nonce is theirs); del:no keeps it."""
    query = update.callback_query
    assert query is not None
    try:
        cb = decode(query.data)
        nonce = cb.text(0) if cb.verb == "yes" else ""
    except BadCallback:
        await query.answer("That button is no longer valid.")
        return
    if cb.verb == "no":
        user_data(context).pop(PENDING, None)
        await query.answer("Kept.")
        await edit(update, KEPT)
        return
    if cb.verb != "yes" or not _confirmed(context, nonce):
        await query.answer(STALE, show_alert=True)
        return
    d = deps(context)
    supabase_mode = bool(d.supabase_url)
    erased = await erase.delete_everything(d.db, me(update), local_account=not supabase_mode)
    if d.outbox is not None:  # writes still kept from an outage go too
        await d.outbox.drop_user(me(update).telegram_user_id)
    close_open_questions(update, context)  # and any question left half answered
    await query.answer("Deleted.")
    await edit(update, render_deleted(erased.rows, supabase_mode))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("export", export_command))
    app.add_handler(CommandHandler("delete", delete_command))
    app.add_handler(CallbackQueryHandler(delete_button, pattern=pattern("del")))
