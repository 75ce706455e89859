"""/export (JSON document + zip of CSVs) and /delete (with an explicit confirmation)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler

from handlers.callbacks import BadCallback, Callback
from handlers.common import Context, deps, me, now
from handlers.conversation import Buttons, Flow, Turn, flow, start
from services import erase, export

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
CANCELLED = "Cancelled. Nothing was deleted."
USE_THE_BUTTONS = (
    f"Nothing is deleted unless you tap “{CONFIRM_LABEL}” above. Tap “{KEEP_LABEL}”, or send"
    " /cancel, to keep your data."
)


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


DELETE_BUTTONS: Buttons = [[(CONFIRM_LABEL, ("yes",)), (KEEP_LABEL, ("no",))]]


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


@dataclass(frozen=True, slots=True)
class DeleteDraft:
    """The /delete confirmation holds nothing: its question's token is the confirmation."""


async def delete_command(update: Update, context: Context) -> None:
    """Show what /delete would remove and ask for an explicit confirmation (a question: a
    later command or /cancel closes it, and its buttons then change nothing)."""
    counts = await erase.count_data(deps(context).db, me(update))
    supabase_mode = bool(deps(context).supabase_url)
    prompt = render_delete_prompt(counts, supabase_mode)
    await start(update, context, DELETE, "confirm", DeleteDraft(), prompt, DELETE_BUTTONS)


async def _delete_button(turn: Turn[DeleteDraft], press: Callback) -> None:
    """The "Yes" button deletes the presser's data, in the question's own transaction; "Keep"
    closes the question.

    The token of the presser's own open question is the confirmation: a button of another
    person's prompt (clients can send any callback data), of an earlier prompt, or of one
    closed by a command, /cancel or the timeout matches nothing ("This question is closed")."""
    if press.verb == "no":
        turn.finish(KEPT, toast="Kept.")
        return
    if press.verb != "yes":
        raise BadCallback("not a button of /delete")
    d = deps(turn.context)
    supabase_mode = bool(d.supabase_url)
    erased = await erase.delete_everything(d.db, turn.who, local_account=not supabase_mode)
    # Writes still kept from an outage go too (before the commit: there is no hook after it;
    # if the commit failed, the data stays and only those kept writes are lost).
    if d.outbox is not None:
        await d.outbox.drop_user(turn.who.telegram_user_id)
    turn.finish(render_deleted(erased.rows, supabase_mode), toast="Deleted.")


#: typed answers that keep the data (deleting needs the tap: a typed "yes" never deletes)
_KEEP_WORDS = ("no", "n", "keep", "keep it", "keep my data", "don't", "dont", "stop")


async def _delete_text(turn: Turn[DeleteDraft], text: str) -> None:
    if text.strip().lower().rstrip(".!") in _KEEP_WORDS:
        turn.finish(KEPT, in_place=False)
    else:
        turn.say(USE_THE_BUTTONS)


DELETE = flow(
    Flow(
        "delete",
        DeleteDraft,
        on_text=_delete_text,
        on_button=_delete_button,
        cancel_reply=CANCELLED,
        timeout_reply=None,  # nothing was deleted: the prompt's buttons just stop working
        typed_hint=USE_THE_BUTTONS,
    )
)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("export", export_command))
    app.add_handler(CommandHandler("delete", delete_command))
