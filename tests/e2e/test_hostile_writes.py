"""Rows a user changed or deleted through the Data API: their own commands answer clearly
(naming what to fix, or fixing it with /start) instead of "something went wrong"."""

from __future__ import annotations

import uuid
from typing import Any

from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, data_api


async def user_of(db: Database, tg: int) -> uuid.UUID:
    async with db.privileged(read_only=True) as uow:
        row = await uow.fetchone(
            "select user_id from telegram_links where telegram_user_id = %s", (tg,)
        )
    assert row is not None
    return uuid.UUID(str(row["user_id"]))


async def started(bot: BotEnv, db: Database, tg: int) -> tuple[Chat, uuid.UUID]:
    chat = bot.chat(tg)
    await chat.send("/start")
    await chat.send("/cancel")
    return chat, await user_of(db, tg)


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.privileged(read_only=True) as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def test_deleted_rows_are_named_and_start_makes_them_again(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6201)
    assert await data_api(database_dsn, user, "delete from theaters where arm_type = 'cs'")
    for command in ("/progress cs 10", "/block cs travelling"):
        (reply,) = await chat.send(command)
        assert "theaters.arm_type has no row for cs" in reply.plain_text, command
        assert "Send /start" in reply.plain_text
    assert await rows(db, "select 1 from theaters where arm_type = 'cs'") == []
    assert await data_api(
        database_dsn,
        user,
        "delete from global_metrics; delete from user_settings; delete from theaters",
    )
    (start,) = await chat.send("/start")
    assert "Welcome back" in start.plain_text
    (progress,) = await chat.send("/progress cs 10")
    assert "cs progress set to 10%" in progress.plain_text
    (status,) = await chat.send("/status")
    assert "Overload risk" in status.plain_text


async def test_null_and_huge_values_in_own_rows(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6202)
    (logged,) = await chat.send("/log cs 30 real work")
    assert "Logged" in logged.plain_text
    assert await data_api(
        database_dsn,
        user,
        "insert into execution_logs (user_id, arm_type, action, duration, timestamp)"
        " values (auth.uid(), 'cs', 'no time', null, null),"
        " (auth.uid(), 'ibm', 'huge', 2147483647, now()),"
        " (auth.uid(), 'ibm', 'huge again', 2147483647, now())",
    )
    (more,) = await chat.send("/log cs 30 more work")  # the week's minutes pass int's range
    assert "Logged in cs: more work (30 min)" in more.plain_text
    assert "Overload risk 100%" in more.plain_text
    (undone,) = await chat.send("/undo")  # the row without a time is not "the latest"
    assert "Removed the log “" in undone.plain_text
    assert await data_api(database_dsn, user, "update theaters set total_progress = null")
    (progress,) = await chat.send("/progress cs 20")
    assert "theaters.total_progress" in progress.plain_text
    assert "went wrong" not in progress.plain_text


async def test_an_unknown_zone_or_a_null_activity_never_hides_what_happened(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6203)
    await chat.send("/log cs 30 real work")
    assert await data_api(database_dsn, user, "update user_settings set timezone = 'Mars/Olympus'")
    (undone,) = await chat.send("/undo")  # done, and said so (times shown in UTC)
    assert "Removed the log “real work”" in undone.plain_text
    assert await rows(db, "select 1 from execution_logs") == []
    assert await data_api(database_dsn, user, "update user_settings set timezone = 'UTC'")
    await chat.send("/block ibm away")
    assert await data_api(database_dsn, user, "update theaters set last_activity = null")
    (unblock,) = await chat.send("/unblock ibm")
    assert "theaters.last_activity" in unblock.plain_text
    assert "went wrong" not in unblock.plain_text


async def test_an_item_with_a_null_gap_is_named_by_every_write_and_no_question_stays(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6211)
    (card,) = await chat.send("/add cs 2 existing")
    for column in ("gap", "last_updated"):
        assert await data_api(database_dsn, user, f"update nba_items set {column} = null")
        (offer,) = await chat.send("captured")
        await chat.press(offer, "➕ NBA cs")
        (named,) = await chat.send("3")
        assert f"nba_items.{column}" in named.plain_text, column
        assert "something went wrong" not in named.plain_text
        (free,) = await chat.send("something else entirely")  # the question closed
        assert "Save this as" in free.plain_text
        (one_line,) = await chat.send("/add cs 1 x")
        assert f"nba_items.{column}" in one_line.plain_text
        await chat.send("/cancel")
        assert await data_api(
            database_dsn,
            user,
            f"update nba_items set {column} = {'2' if column == 'gap' else 'now()'}",
        )
    await chat.press(card, "🔒 Lock")  # the repaired row works again
    assert await rows(db, "select title from nba_items where is_locked") == [{"title": "existing"}]
    assert await rows(db, "select title from nba_items order by title") == [{"title": "existing"}]


async def test_a_flow_that_finds_the_person_not_set_up_leaves_no_question(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6212)
    assert await data_api(database_dsn, user, "delete from user_settings")
    await chat.send("/log cs")
    await chat.send("45")
    (told,) = await chat.send("read")
    assert "/start" in told.plain_text
    (free,) = await chat.send("read")  # not taken as the action again
    assert "/start" in free.plain_text or "Save this as" in free.plain_text
    await chat.send("/start")
    (offer,) = await chat.send("read")
    assert "Save this as" in offer.plain_text
    assert await rows(db, "select 1 from execution_logs") == []


async def test_writes_of_one_round_trip_store_nothing_without_the_rows_of_the_lock(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat, user = await started(bot, db, 6213)
    (card,) = await chat.send("/add cs 3 first")
    assert await data_api(database_dsn, user, "delete from global_metrics")
    for command in ("/reflect cs evidence", "/log cs 20 work", "/add cs 2 second"):
        (reply,) = await chat.send(command)
        assert "/start" in reply.plain_text, command
    await chat.press(card, "🔒 Lock")
    await chat.press(card, "✅ Done")
    assert await rows(db, "select 1 from reflections") == []
    assert await rows(db, "select 1 from execution_logs") == []
    assert await rows(db, "select title, is_locked, completed_at from nba_items") == [
        {"title": "first", "is_locked": False, "completed_at": None}
    ]
