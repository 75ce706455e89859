"""The outbox replay job: apply writes kept during an outage and tell their authors."""

from __future__ import annotations

import logging

from telegram.error import TelegramError

from handlers.common import Context, deps
from handlers.render import esc
from services import sync

logger = logging.getLogger(__name__)

REPLAY_INTERVAL_SECONDS = 5.0


async def replay_job(context: Context) -> None:
    """Replay the outbox if it holds anything; report what synced."""
    d = deps(context)
    if d.outbox is None or await d.outbox.count_pending() == 0:
        return
    report = await sync.replay(d.db, d.outbox)
    if report.synced or report.skipped:
        logger.info(
            "outbox replay: %d synced, %d already applied",
            len(report.synced),
            len(report.skipped),
        )
    for entry in report.synced:
        await _tell(
            context, entry.chat_id, f"✅ Synced: your {esc(sync.describe(entry))} is saved."
        )
    for entry, problem in report.failing:
        await _tell(
            context,
            entry.chat_id,
            f"⚠️ I still couldn't save your {esc(sync.describe(entry))}: {esc(problem)}"
            " It is kept, and I'll keep trying.",
        )


async def _tell(context: Context, chat_id: int, text: str) -> None:
    try:
        await context.bot.send_message(chat_id, text)
    except TelegramError as exc:  # the write is saved; only the notice is lost
        logger.warning("could not send a sync notice: %s", type(exc).__name__)
