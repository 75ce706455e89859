"""Two instances of the bot on one database, behind a load balancer with no sticky routing:
each step of a question may reach either instance, and the question lives in PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from services.db import Database
from tests.harness import Chat, Clock, two_instances


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.privileged(read_only=True) as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def test_alternate_instances_answer_the_steps_of_one_log(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with two_instances(emulator, database_dsn, Clock()) as balancer:
        chat = Chat(emulator, 8101)
        await balancer.to(0)
        await chat.send("/start")
        await chat.send("/cancel")
        (asked,) = await chat.send("/log")  # instance 0 asks the theater
        await balancer.to(1)
        await chat.press(asked, "cs · study")  # instance 1 takes the tap
        assert "how long?" in chat.message(asked.message_id).plain_text
        await balancer.to(0)
        (action,) = await chat.send("1h30")  # instance 0 the typed duration
        assert "90 min: what did you do?" in action.plain_text
        await balancer.to(1)
        (saved,) = await chat.send("read the paper")  # instance 1 saves it
        assert "Logged in cs: read the paper (90 min)" in saved.plain_text
        await balancer.to(0)
        (free,) = await chat.send("read the paper")  # the question is closed everywhere
        assert "Save this as" in free.plain_text
        await balancer.to(1)
        (closed,) = await chat.send("/cancel")  # closes the capture offer instance 0 made
        assert "not saved" in closed.plain_text
    assert await rows(db, "select action, duration from execution_logs") == [
        {"action": "read the paper", "duration": 90}
    ]


@pytest.mark.parametrize("pooler", ["off", "on"])
async def test_a_save_on_a_stale_copy_rolls_back_and_saves_the_stored_question(
    pooler: str, db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    """The answer that saves runs on the copy of the instance that asked; its write goes
    out with the question's close and COMMIT at once, so the close checks the copy: here
    the other instance asked a newer question, and the answer saves that one."""
    clock = Clock()
    async with two_instances(
        emulator, database_dsn, clock, db_transaction_pooler=pooler
    ) as balancer:
        chat = Chat(emulator, 8103)
        await balancer.to(0)
        await chat.send("/start")
        await chat.send("/cancel")
        await chat.send("/log cs 20")  # instance 0 asks, and keeps its copy
        await balancer.to(1)
        await chat.send("/log ibm 35")  # instance 1 replaces the question
        await balancer.to(0)
        (saved,) = await chat.send("read the paper")  # instance 0, on its stale copy
        assert "Logged in ibm: read the paper (35 min)" in saved.plain_text
        (free,) = await chat.send("read the paper")  # the question is closed
        assert "Save this as" in free.plain_text
    assert await rows(db, "select arm_type, action, duration from execution_logs") == [
        {"arm_type": "ibm", "action": "read the paper", "duration": 35}
    ]


async def test_a_command_on_one_instance_abandons_the_question_of_the_other(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with two_instances(emulator, database_dsn, Clock()) as balancer:
        chat = Chat(emulator, 8102)
        await balancer.to(0)
        await chat.send("/start")
        await chat.send("/cancel")
        await chat.send("/log cs 20")  # instance 0: what did you do?
        await balancer.to(1)
        await chat.send("/status")  # instance 1: a command abandons it
        await balancer.to(0)
        (free,) = await chat.send("read")
        assert "Save this as" in free.plain_text
    assert await rows(db, "select 1 from execution_logs") == []


async def test_the_expiry_is_told_once_whichever_instance_armed_it(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    async with two_instances(emulator, database_dsn, clock) as balancer:
        chat = Chat(emulator, 8103)
        await balancer.to(0)
        await chat.send("/start")
        await chat.send("/cancel")
        await chat.send("/log cs 20")
        await chat.settle()
        clock.advance(minutes=11)
        name = f"question:{chat.user_id}:{chat.user_id}"
        jobs = [job for app in balancer.apps for job in app.job_queue.get_jobs_by_name(name)]
        assert jobs  # the asking instance armed it
        # both instances run it (as after a restart of each: they re-arm every open question)
        await asyncio.gather(*(job.run(app) for app in balancer.apps for job in jobs))
        await chat.settle(quiet=0.5)
        told = [m for m in emulator.sent(chat.user_id) if "timed out" in m.plain_text]
        assert len(told) == 1
    assert await rows(db, "select 1 from open_questions") == []
