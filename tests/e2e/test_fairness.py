"""Through the running bot: one user's flood neither delays another user nor goes unbounded."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ApplicationHandlerStop, CommandHandler, ContextTypes

from bot.telegram_io import SLOW_DOWN, PerUserUpdateProcessor, ResilientRateLimiter
from tests.conftest import BotEnv


async def test_flood_gets_one_slow_down_and_others_are_answered(bot: BotEnv) -> None:
    gate = asyncio.Event()

    async def hold(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await gate.wait()  # the flooding user's first update keeps running until released
        assert update.effective_chat is not None
        await update.effective_chat.send_message("held")
        raise ApplicationHandlerStop

    async def number(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await update.effective_chat.send_message(f"n{context.args[0] if context.args else ''}")
        raise ApplicationHandlerStop

    # The processor is what is tested here: the flooder's own message budget (the rate
    # limiter's, tested below) is lifted so its replies don't pace the test.
    assert isinstance(bot.app.bot.rate_limiter, ResilientRateLimiter)
    bot.app.bot.rate_limiter.chat_burst = 10_000
    bot.app.add_handler(CommandHandler("hold", hold), group=-3)
    bot.app.add_handler(CommandHandler("num", number), group=-3)
    limit = PerUserUpdateProcessor.QUEUE_LIMIT
    flooder, other = 7101, 7102
    try:
        bot.emu.send_text(flooder, "/hold")
        for n in range(1, 2 * limit + 30):
            bot.emu.send_text(flooder, f"/num {n}")
        # Queued behind the whole flood, another user's /help is answered while the flood's
        # first update is still running.
        (helped,) = await bot.chat(other).send("/help")
        assert "/log" in helped.plain_text
        (told,) = await bot.emu.wait_messages(flooder, 1, 10)
        assert told.plain_text == SLOW_DOWN
        assert not gate.is_set()
    finally:
        gate.set()
    await bot.emu.wait_messages(flooder, 2 + limit, 10)
    await bot.chat(flooder).settle()
    texts = [m.plain_text for m in bot.emu.sent(flooder)]
    # One reply for the burst, then the kept updates in the order they were sent.
    assert texts == [SLOW_DOWN, "held", *(f"n{n}" for n in range(1, limit + 1))]

    # The queue drained: the user is served again.
    chat = bot.chat(flooder)
    chat.seen = len(texts)
    (again,) = await chat.send("/num 999")
    assert again.plain_text == "n999"


async def test_a_chat_over_its_budget_waits_and_others_go_first() -> None:
    """Each private chat has its own message budget, taken before the shared one: a chat
    that has used its burst waits for its next token, and another chat's message, sent
    after, goes out before it (the shared 30 messages/s stays free for everyone else)."""
    limiter = ResilientRateLimiter(chat_burst=3, chat_per_second=5)
    await limiter.initialize()
    done: list[str] = []

    def send(chat_id: int, tag: str) -> asyncio.Task[object]:
        async def callback(*args: object, **kwargs: object) -> bool:
            done.append(tag)
            return True

        return asyncio.create_task(
            limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": chat_id}, None)
        )

    flood = [send(1, f"a{n}") for n in range(1, 6)]
    await asyncio.sleep(0)  # the flooding chat's requests are in before the other's
    other = send(2, "b1")
    await asyncio.gather(*flood, other)
    assert done[:3] == ["a1", "a2", "a3"]  # its burst
    assert done.index("b1") < done.index("a4") < done.index("a5")  # then it waits its turn
    await limiter.shutdown()
