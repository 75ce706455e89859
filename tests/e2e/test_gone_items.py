"""Buttons of items completed or deleted since their card was drawn say what happened.

End to end through the running Application: the button answers "✅ “<title>” is already
done." or "That item was deleted.", the card is redrawn with the theater's current NBA, and
nothing in the database changes. Another user's item reads as deleted: nothing about it is
told.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.local_api import SentMessage
from handlers.callbacks import encode
from handlers.nudges import make_sender
from services import accounts, nba
from services.db import Database
from services.nudges.scan import run_scan
from services.nudges.settings import update_settings
from tests.conftest import BotEnv
from tests.harness import Chat

DONE = "✅ “Read chapter 1” is already done."
DELETED = "That item was deleted."

#: What a press could change: every row of the tables a button writes.
_TABLES = {
    "nba_items": "id",
    "execution_logs": "id",
    "theaters": "user_id, arm_type",
    "global_metrics": "user_id",
}


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.privileged() as uow:
        return {
            table: [dict(r) for r in await uow.fetchall(f"select * from {table} order by {key}")]
            for table, key in _TABLES.items()
        }


def toast(bot: BotEnv) -> str | None:
    return bot.emu.callback_answers[-1].text


async def two_cards(bot: BotEnv, user_id: int = 2101) -> tuple[Chat, SentMessage, SentMessage]:
    """A user with two cs items, and two cards showing the current one (Read chapter 1)."""
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send("/add cs 2 Read chapter 1")
    await chat.send("/add cs 1 Exercises")
    (first,) = await chat.send("/nba cs")
    (second,) = await chat.send("/nba cs")
    for card in (first, second):
        assert "➤ Read chapter 1" in card.plain_text
    return chat, first, second


async def delete_through(chat: Chat, card: SentMessage) -> None:
    await chat.press(card, "⚙ Manage")
    await chat.press(chat.message(card.message_id), "🗑 Delete")
    await chat.press(chat.message(card.message_id), "🗑 Yes, delete")
    assert "Deleted" in chat.message(card.message_id).plain_text


def shows_the_current_nba(chat: Chat, card: SentMessage) -> None:
    redrawn = chat.message(card.message_id)
    assert "➤ Exercises" in redrawn.plain_text
    assert "Read chapter 1" not in redrawn.plain_text
    assert "✅ Done" in [text for row in redrawn.buttons for text, _ in row]


BUTTONS = ["🔒 Lock", "▶ Progress", "✅ Done"]


@pytest.mark.parametrize("button", BUTTONS)
async def test_button_of_an_item_done_through_another_card(
    bot: BotEnv, db: Database, button: str
) -> None:
    chat, stale, other = await two_cards(bot)
    await chat.press(other, "✅ Done")
    assert "Done: Read chapter 1" in chat.message(other.message_id).plain_text
    before = await snapshot(db)

    await chat.press(stale, button)

    assert toast(bot) == DONE
    shows_the_current_nba(chat, stale)
    assert await snapshot(db) == before


@pytest.mark.parametrize("button", BUTTONS)
async def test_button_of_an_item_deleted_through_another_card(
    bot: BotEnv, db: Database, button: str
) -> None:
    chat, stale, other = await two_cards(bot)
    await delete_through(chat, other)
    before = await snapshot(db)

    await chat.press(stale, button)

    assert toast(bot) == DELETED
    shows_the_current_nba(chat, stale)
    assert await snapshot(db) == before


async def test_minutes_of_an_open_progress_prompt_after_done_and_delete(
    bot: BotEnv, db: Database
) -> None:
    chat, stale, other = await two_cards(bot)
    await chat.press(stale, "▶ Progress")  # the minutes prompt is open on this card
    prompt = chat.message(stale.message_id)
    assert "How long did you work on Read chapter 1" in prompt.plain_text
    await chat.press(other, "✅ Done")
    before = await snapshot(db)
    await chat.press(prompt, "25 min")
    assert toast(bot) == DONE
    shows_the_current_nba(chat, stale)
    assert await snapshot(db) == before

    # The same prompt's data for an item deleted since (Exercises, via another card).
    (third,) = await chat.send("/nba cs")
    await chat.press(third, "▶ Progress")
    data = chat.message(third.message_id).callback_data("25 min")
    (fourth,) = await chat.send("/nba cs")
    await delete_through(chat, fourth)
    before = await snapshot(db)
    await chat.press_data(third.message_id, data, strict=False)
    assert toast(bot) == DELETED
    assert "No open Next Best Action" in chat.message(third.message_id).plain_text
    assert await snapshot(db) == before


async def test_another_users_item_reads_as_deleted(bot: BotEnv, db: Database) -> None:
    chat, card, _ = await two_cards(bot)
    bob, _ = await accounts.create_local_account(db, 2102, 2102, "Bob", datetime.now(UTC))
    bobs = await nba.add_item(db, bob, "cs", 4, "Bob's secret plan", datetime.now(UTC))
    done_bobs = await nba.add_item(db, bob, "cs", 3, "Bob's finished plan", datetime.now(UTC))
    await nba.done(db, bob, done_bobs.item.id, datetime.now(UTC))
    before = await snapshot(db)
    for item in (bobs.item, done_bobs.item):
        for verb in ("lock", "progress", "done"):
            await chat.press_data(card.message_id, encode("nba", verb, "cs", item.id))
            assert toast(bot) == DELETED
            redrawn = chat.message(card.message_id).plain_text
            assert "Bob" not in redrawn and "➤ Read chapter 1" in redrawn
    assert await snapshot(db) == before


# --- the idle nudge's "Log 25 min" ------------------------------------------------------

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
IDLE = T0 + timedelta(hours=72)  # untouched since T0: idle (default 72 h)


async def idle_nudge(bot: BotEnv, db: Database, tg: int) -> tuple[Chat, SentMessage]:
    """An idle nudge for cs whose "Log 25 min" button points at Read chapter 1."""
    bot.emu.register_user(tg)
    user, _ = await accounts.create_local_account(db, tg, tg, "Test", T0)
    await update_settings(db, user, now=T0, quiet_start=None, quiet_end=None)
    await nba.add_item(db, user, "cs", 2, "Read chapter 1", T0)
    await nba.add_item(db, user, "cs", 1, "Exercises", T0)
    bot.clock.set(IDLE)
    await run_scan(db, IDLE, make_sender(bot.app.bot))
    chat = bot.chat(tg)
    nudge = next(m for m in bot.emu.sent(tg) if "cs has been idle" in m.plain_text)
    assert "Next: Read chapter 1" in nudge.plain_text
    chat.seen = len(bot.emu.sent(tg))
    return chat, nudge


async def test_idle_nudge_log_button_after_the_item_was_done(bot: BotEnv, db: Database) -> None:
    chat, nudge = await idle_nudge(bot, db, 2103)
    (card,) = await chat.send("/nba cs")
    await chat.press(card, "✅ Done")
    before = await snapshot(db)
    await chat.press(nudge, "▶ Log 25 min")
    assert toast(bot) == DONE
    shows_the_current_nba(chat, nudge)
    assert await snapshot(db) == before


async def test_idle_nudge_log_button_after_the_item_was_deleted(bot: BotEnv, db: Database) -> None:
    chat, nudge = await idle_nudge(bot, db, 2104)
    (card,) = await chat.send("/nba cs")
    await delete_through(chat, card)
    before = await snapshot(db)
    await chat.press(nudge, "▶ Log 25 min")
    assert toast(bot) == DELETED
    shows_the_current_nba(chat, nudge)
    assert await snapshot(db) == before
