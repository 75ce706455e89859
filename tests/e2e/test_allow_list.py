"""The allow-list applies to every update, not only /start and /link."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from handlers.basic import PRIVATE_BOT
from handlers.nudges import make_sender
from services.db import Database
from services.nudges.scan import run_scan
from tests.harness import Chat, Clock, bot_running, make_settings

#: Everything of the user's the bot could write.
_TABLES = (
    "execution_logs",
    "nba_items",
    "theaters",
    "global_metrics",
    "reflections",
    "user_settings",
    "telegram_links",
    "sync_queue",
)


async def snapshot(db: Database) -> dict[str, Any]:
    """Every per-user row and the open questions."""
    found: dict[str, Any] = {}
    async with db.privileged(read_only=True) as uow:
        for table in _TABLES:
            rows = await uow.fetchall(f"select * from {table} order by 1, 2")
            found[table] = [dict(r) for r in rows]
        rows = await uow.fetchall("select * from open_questions order by 1, 2")
        found["open_questions"] = [dict(r) for r in rows]
    return found


@pytest.mark.slow
async def test_removed_user_is_refused_everything_and_nothing_is_written(
    db: Database, database_dsn: str, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    me, other = 7001, 7002
    chat = Chat(emulator, me)
    allowed = make_settings(data_dir=tmp_path / "data", allowed_telegram_user_ids=f"{me},{other}")
    async with bot_running(emulator, database_dsn, settings=allowed, clock=Clock()):
        await chat.send("/start")
        (view,) = await chat.send("/add cs 3 Read SICP chapter 3")
        assert "🔒 Lock" in [text for row in view.buttons for text, _ in row]
        (question,) = await chat.send("/log cs 30")  # an open guided question
        assert "what did you do?" in question.plain_text

    removed = make_settings(data_dir=tmp_path / "data", allowed_telegram_user_ids=str(other))
    async with bot_running(emulator, database_dsn, settings=removed, clock=Clock()):
        before = await snapshot(db)
        view_before = chat.message(view.message_id)

        (refused,) = await chat.send("/log cs 45 read chapter 4")
        assert refused.plain_text == PRIVATE_BOT
        (refused,) = await chat.send("an answer to the open question")
        assert refused.plain_text == PRIVATE_BOT
        (refused,) = await chat.send("/nba")
        assert refused.plain_text == PRIVATE_BOT

        answers = len(emulator.callback_answers)
        await chat.press(view, "🔒 Lock")  # a button on an old message
        (answer,) = emulator.callback_answers[answers:]
        assert answer.text == PRIVATE_BOT
        assert chat.message(view.message_id) == view_before  # not redrawn
        await chat._wait(0, 5)  # and nothing else was sent
        assert chat.last().plain_text == PRIVATE_BOT

        (other_reply,) = await Chat(emulator, other).send("/help")  # others are served
        assert "Aelpher" in other_reply.plain_text
        assert await snapshot(db) == before
    assert await snapshot(db) == before  # also after the shutdown's persistence flush


async def test_a_removed_user_is_not_nudged_and_others_are(
    db: Database, database_dsn: str, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """Nobody may keep writing to someone who can no longer use (or stop) the bot."""
    me, other = 7011, 7012
    clock = Clock()
    both = make_settings(data_dir=tmp_path / "data", allowed_telegram_user_ids=f"{me},{other}")
    async with bot_running(emulator, database_dsn, settings=both, clock=clock):
        for user in (me, other):
            chat = Chat(emulator, user)
            await chat.send("/start")
            await chat.send("/cancel")
            await chat.send("/settings quiet off")
            await chat.send("/add cs 4 Secret plan")
    removed = make_settings(data_dir=tmp_path / "data", allowed_telegram_user_ids=str(other))
    async with bot_running(emulator, database_dsn, settings=removed, clock=clock) as app:
        before = {user: len(emulator.sent(user)) for user in (me, other)}
        report = await run_scan(db, clock() + timedelta(days=4), make_sender(app.bot))
        assert report.sent >= 1
        assert len(emulator.sent(me)) == before[me]  # nothing to the removed user
        to_other = emulator.sent(other)[before[other] :]
        assert to_other and "Secret plan" in to_other[0].plain_text
    async with db.privileged(read_only=True) as uow:
        links = await uow.fetchall("select telegram_user_id, active from telegram_links")
    assert {row["telegram_user_id"]: row["active"] for row in links} == {me: False, other: True}
