"""/delete is complete: in local mode the account the bot made goes too; in Supabase mode the
bot says what stays (the Supabase Auth user). End to end through the running bot."""

from __future__ import annotations

import uuid
from typing import Any

from handlers import data as data_handlers
from services.db import Database
from services.repos.user_data import TABLE_NAMES
from tests.conftest import BotEnv, make_user
from tests.fake_supabase_auth import FakeSupabaseAuth


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def accounts_named(db: Database, telegram_user_id: int, name: str) -> list[dict[str, Any]]:
    """auth.users rows carrying this Telegram id or this name."""
    return await rows(
        db,
        "select id from auth.users where raw_user_meta_data ->> 'telegram_user_id' = %s"
        " or raw_user_meta_data ->> 'name' = %s",
        str(telegram_user_id),
        name,
    )


async def per_user_rows(db: Database, user_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in TABLE_NAMES:
        found = await rows(db, f"select 1 from {table} where user_id = %s", user_id)
        counts[table] = len(found)
    return counts


async def test_local_delete_removes_the_account_the_bot_created(bot: BotEnv, db: Database) -> None:
    tg, name = 5301, "Zelda Quill"
    chat = bot.chat(tg, first_name=name)
    await chat.send("/start")
    await chat.send("/cancel")
    await chat.send("/log cs 25 drafted the outline")
    other = bot.chat(5302, first_name="Otto")
    await other.send("/start")
    (account,) = await accounts_named(db, tg, name)
    user_id = account["id"]
    others_before = await accounts_named(db, 5302, "Otto")

    (prompt,) = await chat.send("/delete")
    assert data_handlers.LOCAL_ACCOUNT_GOES in prompt.plain_text
    await chat.press(prompt, "Yes, delete everything")
    done = chat.message(prompt.message_id).plain_text
    assert data_handlers.LOCAL_ACCOUNT_GONE in done
    assert await rows(db, "select 1 from open_questions where telegram_user_id = %s", tg) == []

    assert await accounts_named(db, tg, name) == []  # no name, no Telegram id left behind
    assert await rows(db, "select 1 from auth.users where id = %s", user_id) == []
    assert await per_user_rows(db, user_id) == dict.fromkeys(TABLE_NAMES, 0)
    assert await accounts_named(db, 5302, "Otto") == others_before  # nobody else's

    (again,) = await chat.send("/start")  # a fresh account
    assert "Welcome to Aelpher" in again.plain_text
    (fresh,) = await accounts_named(db, tg, name)
    assert fresh["id"] != user_id


async def test_supabase_delete_says_the_login_stays_and_keeps_it(
    supabase_bot: tuple[BotEnv, FakeSupabaseAuth], db: Database
) -> None:
    bot, fake = supabase_bot
    ann = await make_user(db, "ann@example.com")
    fake.add_user("ann@example.com", ann)
    chat = bot.chat(5401)
    await chat.send("/link ann@example.com")
    await chat.send(fake.last_code("ann@example.com"))
    await chat.send("/log ibm 30 standup")

    (prompt,) = await chat.send("/delete")
    assert data_handlers.SUPABASE_LOGIN_STAYS in prompt.plain_text
    assert data_handlers.LOCAL_ACCOUNT_GOES not in prompt.plain_text
    await chat.press(prompt, "Yes, delete everything")
    done = chat.message(prompt.message_id).plain_text
    assert data_handlers.SUPABASE_LOGIN_KEPT in done
    assert "/link" in done

    assert await rows(db, "select email from auth.users where id = %s", ann) == [
        {"email": "ann@example.com"}
    ]
    assert await per_user_rows(db, ann) == dict.fromkeys(TABLE_NAMES, 0)
    assert await rows(db, "select 1 from open_questions where telegram_user_id = 5401") == []

    # The login stayed, so /link connects the chat to the (now empty) account again.
    (sent,) = await chat.send("/link ann@example.com")
    assert "I've sent a one-time code" in sent.plain_text
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert linked.plain_text == "✅ Linked to ann@example.com. /nba shows what's next."
    assert await rows(db, "select 1 from open_questions where telegram_user_id = 5401") == []
