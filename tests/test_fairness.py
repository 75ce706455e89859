"""Through the running bot: one user's flood neither delays another user nor goes unbounded."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ApplicationHandlerStop, CommandHandler, ContextTypes

from bot.telegram_io import SLOW_DOWN, PerUserUpdateProcessor
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
