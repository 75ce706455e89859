"""The outbox replay job: apply writes kept during an outage and tell their authors."""

from __future__ import annotations

import logging
from collections import defaultdict

from telegram.error import TelegramError

from handlers.common import Context, deps
from handlers.focus import show_synced
from handlers.render import esc
from services import sync
from services.focus import StartFocus
from services.outbox import OutboxEntry

logger = logging.getLogger(__name__)

#: Changes listed in one notice at most (the rest are counted).
NOTICE_LINES = 10
#: A change's description in a notice is cut to this many characters.
DESCRIPTION_MAX = 120


async def replay_job(context: Context) -> None:
    """Replay the outbox if it holds anything; report what synced, was skipped or parked
    (a repeating job: bot/scheduler.py)."""
    d = deps(context)
    if d.outbox is None or await d.outbox.count_pending() == 0:
        return
    report = await sync.replay(d.db, d.outbox, d.allowed_user_ids)
    if report.synced or report.skipped or report.parked or report.superseded:
        logger.info(
            "outbox replay: %d synced, %d already applied, %d superseded, %d parked",
            len(report.synced),
            len(report.skipped),
            len(report.superseded),
            len(report.parked),
        )
    for entry in report.synced:
        await _tell(
            context, entry.chat_id, f"✅ Synced: your {esc(sync.describe(entry))} is saved."
        )
        if isinstance(sync.command_of(entry.payload), StartFocus):
            # a focus session started during the outage: its message, buttons and reminders
            await show_synced(context, entry.chat_id, entry.telegram_user_id, entry.timestamp)
    for chat_id, lines in _by_chat(report.superseded).items():
        await _tell(
            context,
            chat_id,
            _notice("⏭ Skipped, because a newer change of yours replaced it:", lines),
        )
    for chat_id, lines in _by_chat(report.parked).items():
        await _tell(
            context,
            chat_id,
            _notice("⚠️ I couldn't save what you sent while the database was down:", lines)
            + "\nIt was not saved; send it again if you still want it.",
        )
    for entry, problem in report.failing:
        await _tell(
            context,
            entry.chat_id,
            f"⚠️ I still couldn't save your {esc(sync.describe(entry))}: {esc(problem)}"
            " It is kept, and I'll keep trying.",
        )


def _by_chat(entries: list[tuple[OutboxEntry, str]]) -> dict[int, list[str]]:
    """One notice per chat: a line per change with its reason."""
    lines: dict[int, list[str]] = defaultdict(list)
    for entry, reason in entries:
        what = sync.describe(entry)
        if len(what) > DESCRIPTION_MAX:
            what = what[: DESCRIPTION_MAX - 1] + "…"
        lines[entry.chat_id].append(f"• your {esc(what)}: {esc(reason)}")
    return lines


def _notice(title: str, lines: list[str]) -> str:
    shown = lines[:NOTICE_LINES]
    more = len(lines) - len(shown)
    return "\n".join([title, *shown, *([f"…and {more} more."] if more else [])])


async def _tell(context: Context, chat_id: int, text: str) -> None:
    try:
        await context.bot.send_message(chat_id, text)
    except TelegramError as exc:  # the write is saved; only the notice is lost
        logger.warning("could not send a sync notice: %s", type(exc).__name__)
