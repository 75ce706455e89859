"""Long /history replies through the running bot: every part Telegram accepts, each entry
within the bot's own limit, and a few messages at most (the cutting itself:
tests/unit/test_split.py)."""

from __future__ import annotations

from bot.local_api import SentMessage
from services.db import Database, TelegramUser
from tests.conftest import BotEnv


async def history_after(
    bot: BotEnv, database: Database, tg: int, insert: str, command: str
) -> list[SentMessage]:
    """/start, rows inserted as the user (``insert``, SQL as the Data API could run it), then
    ``command``: every message the bot sent for it."""
    chat = bot.chat(tg)
    await chat.send("/start")
    async with database.user_uow(TelegramUser(tg)) as uow:
        await uow.execute(insert)
        await uow.commit()
    before = len(bot.emu.sent(tg))
    await chat.send(command, replies=1)
    await chat.settle(quiet=0.5)
    return bot.emu.sent(tg)[before:]


async def test_history_with_multiline_details_at_the_cut_reaches_telegram(
    bot: BotEnv, database: Database
) -> None:
    """/history over 4096 characters with multi-line details: every part is accepted."""
    details = "\n".join(f"step {n}: {'ü & <ok> ' * 6}" for n in range(8))
    parts = await history_after(
        bot,
        database,
        4242,
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp)"
        f" select auth.uid(), 'cs', 'session ' || n, '{details}', 30,"
        " timestamptz '2026-12-01 09:00Z' + n * interval '1 minute'"
        " from generate_series(0, 11) n",
        "/history cs 12",
    )
    texts = [p.plain_text for p in parts]
    assert not any("went wrong" in t for t in texts)
    joined = "".join(texts)
    assert all(f"session {n}" in joined for n in range(12))
    assert joined.count("step 7:") == 12  # every line of every detail arrived
    refused = [c.description for c in bot.emu.calls("sendMessage") if not c.ok]
    assert refused == []


async def test_history_shows_at_most_the_bots_own_limit_of_text_per_entry(
    bot: BotEnv, database: Database
) -> None:
    """Rows written through the Data API may hold megabytes; /history shows each entry up to
    the 2 000 characters the bot itself accepts."""
    parts = await history_after(
        bot,
        database,
        4243,
        "insert into reflections (user_id, arm_type, evidence, context) values"
        " (auth.uid(), 'cs', repeat('e', 100000), repeat('c', 100000))",
        "/history cs 1",
    )
    texts = [p.plain_text for p in parts]
    joined = "".join(texts)
    assert len(joined) < 4200  # 2 000 + 2 000 characters and a header, not 200 000
    assert joined.count("e") >= 1999 and "e" * 2000 not in joined and "…" in joined


async def test_a_huge_history_is_a_few_messages_and_says_what_it_left_out(
    bot: BotEnv, database: Database
) -> None:
    parts = await history_after(
        bot,
        database,
        4244,
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp)"
        " select auth.uid(), 'cs', 'entry ' || n, repeat('<&> ', 1000), 5,"
        " now() - n * interval '1 minute' from generate_series(1, 30) n",
        "/history cs 30",
    )
    assert 1 < len(parts) <= 5
    assert "more. Ask for fewer" in parts[-1].plain_text and "/export" in parts[-1].plain_text
    assert "entry 1 " in parts[0].plain_text  # the newest first
