"""Button data end to end: readable verbs within 64 bytes on every kind of button, data of
older versions and malformed data answered "That button is no longer valid." with nothing
changed, and a fault inside a button's work reported as a fault, not as a stale button."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from bot.local_api import SentMessage
from handlers.callbacks import MAX_BYTES, QUESTION, STALE, decode
from handlers.errors import INTERNAL
from services import nba
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat

WORD = re.compile(r"^[a-z]+(?:-[a-z]+)*$")


def datas(*messages: SentMessage) -> list[str]:
    return [data for m in messages for row in m.buttons for _label, data in row if data]


def answer(bot: BotEnv) -> str | None:
    return bot.emu.callback_answers[-1].text


async def snapshot(db: Database) -> list[list[dict[str, Any]]]:
    async with db.privileged() as uow:
        return [
            [dict(r) for r in await uow.fetchall(f"select * from {table} order by 1")]
            for table in ("nba_items", "execution_logs", "reflections", "theaters",
                          "open_questions")
        ]  # fmt: skip


async def card(chat: Chat) -> SentMessage:
    await chat.send("/start")
    await chat.send("/add cs 3 Read chapter 1")
    await chat.send("/add cs 1 Exercises")
    (shown,) = await chat.send("/nba cs")
    return shown


async def test_every_button_has_whole_word_verbs_within_64_bytes(bot: BotEnv) -> None:
    chat = bot.chat(5301)
    shown = await card(chat)
    await chat.press(shown, "⚙ Manage")
    manage = chat.message(shown.message_id)
    seen = datas(shown, manage)
    await chat.press(manage, "↩ Back")
    await chat.press(chat.message(shown.message_id), "▶ Progress")
    seen += datas(chat.message(shown.message_id))
    await chat.press(chat.message(shown.message_id), "↩ Back")
    await chat.press(chat.message(shown.message_id), "✅ Done")
    seen += datas(chat.message(shown.message_id))  # the minutes of the Done's log
    seen += datas(*await chat.send("/log cs 25 read"))  # Add details
    seen += datas(*await chat.send("/reflect cs Passed the mock exam"))  # Add context
    seen += datas(*await chat.send("/settings"))  # a question's buttons
    seen += datas(*await chat.send("/energy"))
    areas = set()
    for data in seen:
        assert len(data.encode()) <= MAX_BYTES
        cb = decode(data)
        if cb.area == QUESTION:
            verb = cb.args[0]  # q:<token>:<verb>…
        else:
            assert WORD.match(cb.area), data
            verb = cb.verb
        assert WORD.match(verb), data
        areas.add(cb.area)
    assert areas == {"nba", "log", "reflection", QUESTION}
    verbs = {decode(d).verb for d in seen if decode(d).area == "nba"}
    assert {"lock", "progress", "done", "manage", "gap", "delete", "view", "log"} <= verbs


@pytest.mark.slow
async def test_old_and_malformed_button_data_is_no_longer_valid(
    bot: BotEnv, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    chat = bot.chat(5302)
    shown = await card(chat)
    item = decode(shown.callback_data("✅ Done")).args[1]
    (logged,) = await chat.send("/log cs 25 read")
    log = decode(logged.callback_data("➕ Add details")).args[0]
    before = await snapshot(db)
    old = [  # buttons of earlier versions, still in people's chats
        f"n:lk:cs:{item}", f"n:dn:cs:{item}", f"n:pm:cs:{item}:25", f"n:dy:cs:{item}",
        "n:v:cs", f"g:lg:cs:{item}", "g:sz:cs", "g:os", f"d:m:{log}:30", f"l:det:{log}",
        f"r:ctx:{log}", "add:new:cs",
    ]  # fmt: skip
    malformed = [
        "nba:lock:cs:not-an-id", f"nba:bogus:cs:{item}", f"nba:lock:xx:{item}",
        f"nba:log:cs:{item}:0", "nba:add:xx", "nudge:bogus", "nudge:set-capacity:999",
        "log:details:zzz", f"log:minutes:{log}:0", "reflection:context",
    ]  # fmt: skip
    for data in old:
        await chat.press_data(shown.message_id, data)
        assert (answer(bot) or "").startswith(STALE), data
    for data in malformed:
        await chat.press_data(shown.message_id, data)
        assert answer(bot) == STALE, data
    assert await snapshot(db) == before  # nothing written, no question opened
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_key_error_in_a_buttons_work_is_a_fault_not_a_stale_button(
    bot: BotEnv, db: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = bot.chat(5303)
    shown = await card(chat)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(nba, "lock", broken)
    caplog.set_level(logging.ERROR)
    await chat.press(shown, "🔒 Lock")
    assert answer(bot) == INTERNAL  # not "That button is no longer valid."
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
