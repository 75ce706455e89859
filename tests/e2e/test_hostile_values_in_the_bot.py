"""Hostile values through the running bot: one user's impossible values never stop the scan
for another, and the user's own commands name what to fix (the scan and the services on
their own: tests/integration/test_hostile_values.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from handlers.nudges import make_sender
from services import nba
from services.db import Database
from services.nudges.scan import run_scan
from tests.conftest import BotEnv
from tests.harness import data_api
from tests.integration.test_hostile_values import IDLE, MALLORY, T0, VICTIM, new_user


@pytest.fixture
async def env(bot: BotEnv) -> AsyncIterator[BotEnv]:
    from bot.scheduler import SCAN_JOB_NAME

    assert bot.app.job_queue is not None
    for job in bot.app.job_queue.get_jobs_by_name(SCAN_JOB_NAME):
        job.schedule_removal()
    yield bot


async def test_one_users_infinity_through_the_bot(
    env: BotEnv, db: Database, database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    for tg in (VICTIM, MALLORY):
        env.emu.register_user(tg)
    victim = await new_user(db, VICTIM)
    mallory = await new_user(db, MALLORY)
    await nba.add_item(db, victim, "cs", 4, "Read SICP chapter 3", T0)
    # Stored before the constraints existed: PostgreSQL keeps it, psycopg cannot load it.
    assert await data_api(
        database_dsn,
        mallory,
        "update theaters set last_activity = 'infinity' where arm_type = 'cs';"
        " update theaters set idle_check_at = 'epoch' where arm_type = 'cs'",
        before_constraints=True,
    )
    caplog.set_level(logging.INFO)
    env.clock.set(IDLE)
    for at, sent in ((IDLE, 1), (IDLE + timedelta(hours=1), 0)):
        report = await run_scan(db, at, make_sender(env.app.bot))
        assert report.sent == sent
    (nudge,) = [m.plain_text for m in env.emu.sent(VICTIM)]
    assert "cs has been idle for 3 days" in nudge and "Read SICP chapter 3" in nudge
    skipped = [r.getMessage() for r in caplog.records if str(mallory) in r.getMessage()]
    assert len(skipped) == 1 and "theaters" in skipped[0]  # once, with the id ...
    assert not any("infinity" in r.getMessage() for r in caplog.records)  # ... not the value

    chat = env.chat(MALLORY)
    for command in ("/status", "/nba"):
        (reply,) = await chat.send(command)
        assert "theaters.last_activity" in reply.plain_text, command
        assert "Supabase" in reply.plain_text
    (reply,) = await chat.send("/stats")  # reads no theater: answers as always
    assert "theaters" not in reply.plain_text and "wrong" not in reply.plain_text
    files = await chat.send("/export", replies=2)
    assert files[0].document is not None
    document = json.loads(files[0].document)
    (cs,) = [t for t in document["tables"]["theaters"] if t["arm_type"] == "cs"]
    assert cs["last_activity"] == "infinity"  # as the database spells it
    assert {"table": "theaters", "column": "last_activity", "row": 0} in document["unreadable"]

    # Logging time writes a new last activity: the row is whole again.
    (reply,) = await chat.send("/log cs 30 reading")
    assert "Logged in cs" in reply.plain_text
    (reply,) = await chat.send("/status")
    assert reply.plain_text.startswith("Status")


async def test_an_unknown_time_zone_is_named_and_fixable(
    env: BotEnv, db: Database, database_dsn: str
) -> None:
    env.emu.register_user(MALLORY)
    mallory = await new_user(db, MALLORY)
    assert await data_api(database_dsn, mallory, "update user_settings set timezone = 'Mars/Base'")
    env.clock.set(IDLE)
    chat = env.chat(MALLORY)
    (reply,) = await chat.send("/stats")
    assert "user_settings.timezone" in reply.plain_text and "/settings tz" in reply.plain_text
    await chat.send("/settings tz Europe/Berlin")
    (reply,) = await chat.send("/status")
    assert "Status" in reply.plain_text


async def test_a_write_refused_by_an_old_value_says_which(
    env: BotEnv, db: Database, database_dsn: str
) -> None:
    env.emu.register_user(MALLORY)
    mallory = await new_user(db, MALLORY)
    assert await data_api(
        database_dsn,
        mallory,
        "update user_settings set overload_snoozed_until = 'infinity'",
        before_constraints=True,
    )
    env.clock.set(IDLE)
    (reply,) = await env.chat(MALLORY).send("/settings quiet 23:00-07:00")
    assert "user_settings.overload_snoozed_until" in reply.plain_text
    assert "something went wrong" not in reply.plain_text.lower()
