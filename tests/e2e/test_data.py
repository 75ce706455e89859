"""/stats, /export, /delete and the first-run onboarding end to end (the stats rules:
tests/unit/test_stats.py; stats and preferences on the database:
tests/integration/test_stats_and_preferences.py)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID

from bot.local_api import image_size
from handlers import data as data_handlers
from handlers.conversation import CLOSED
from services.db import Database
from services.export import csv_value, export_data, json_value
from services.repos.user_data import TABLE_NAMES
from tests.conftest import BotEnv
from tests.harness import Chat

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def filled(bot: BotEnv, db: Database, user_id: int) -> tuple[UUID, dict[str, int], Chat]:
    """Alice with data: her id, her row counts, and her chat (past the set-up messages)."""
    alice = await fill(bot, db, user_id, "Alice")
    before = await counts_of(db, alice)
    chat = bot.chat(user_id)
    chat.seen = len(bot.emu.sent(user_id))
    return alice, before, chat


# --- /stats end to end ---------------------------------------------------------------------


async def started(bot: BotEnv, user_id: int) -> Chat:
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send("/cancel")  # no onboarding questions in these tests
    return chat


async def test_stats_sends_a_png_chart_with_its_numbers(bot: BotEnv) -> None:
    chat = await started(bot, 9001)
    await chat.send("/log cs 45 read chapter 3")
    await chat.send("/log ibm 90 sprint review")
    (photo,) = await chat.send("/stats")
    assert photo.kind == "photo"
    assert photo.photo is not None and photo.photo.startswith(PNG_SIGNATURE)
    assert len(photo.photo) > 20_000
    assert image_size(photo.photo) == (1200, 800)
    # 135 min of a 40 h week: 5.625 % -> "6%"
    assert photo.plain_text == "Last 14 days: ibm 1.5 h · cs 0.8 h · risk 6% now"


async def test_stats_without_logs_is_a_friendly_text(bot: BotEnv) -> None:
    chat = await started(bot, 9002)
    (reply,) = await chat.send("/stats")
    assert reply.kind == "text"
    assert "Nothing logged in the last 14 days" in reply.plain_text


# --- /export ---------------------------------------------------------------------------------


async def user_of(db: Database, telegram_user_id: int) -> UUID:
    (link,) = await rows(
        db, "select user_id from telegram_links where telegram_user_id = %s", telegram_user_id
    )
    user_id: UUID = link["user_id"]
    return user_id


async def fill(bot: BotEnv, db: Database, telegram_user_id: int, name: str) -> UUID:
    """A user with a row in every per-user table."""
    chat = await started(bot, telegram_user_id)
    await chat.send(f'/add cs 4 {name}\'s plan, "quoted", with a comma')
    await chat.send(f"/log ibm 30 {name} standup")
    await chat.send(f"/reflect cs {name} passed the mock exam, 78%")
    await chat.send("/progress cs 42.5")
    await chat.send("/focus cs 25m")  # a focus session, left running
    user = await user_of(db, telegram_user_id)
    async with db.privileged() as uow:
        await uow.execute(
            "insert into nudges (user_id, kind, arm_type, dedupe_key, status)"
            " values (%s, 'idle', 'cs', %s, 'sent')",
            (user, f"idle:cs:{name}"),
        )
        await uow.execute(
            "insert into sync_queue (user_id, operation, table_name, payload)"
            " values (%s, 'INSERT', 'execution_logs', %s::jsonb)",
            (user, json.dumps({"action": f"{name} offline", "minutes": 20})),
        )
        await uow.commit()
    return user


async def user_rows(db: Database, table: str, user: UUID) -> list[dict[str, Any]]:
    return await rows(db, f"select * from {table} where user_id = %s", user)


async def test_export_has_every_row_of_the_user_and_none_of_another(
    bot: BotEnv, db: Database
) -> None:
    alice = await fill(bot, db, 9101, "Alice")
    bob = await fill(bot, db, 9102, "Bob")

    result = await export_data(db, alice, datetime.now(UTC))

    document = result.document()
    assert document["user_id"] == str(alice)
    assert list(document["tables"]) == list(TABLE_NAMES)
    for table in TABLE_NAMES:
        expected = [
            {k: json_value(v) for k, v in row.items()} for row in await user_rows(db, table, alice)
        ]
        exported = document["tables"][table]
        assert expected, f"the fixture must put a row in {table}"
        key = "telegram_user_id" if table == "telegram_links" else "user_id"
        key = "id" if exported and "id" in exported[0] else key
        assert sorted(exported, key=lambda r: str(r[key])) == sorted(
            expected, key=lambda r: str(r[key])
        ), table
    text = result.json_bytes().decode()
    assert str(bob) not in text and "Bob" not in text
    assert json.loads(text) == document
    # decimals are exact strings, datetimes ISO 8601 in UTC
    (theater,) = [t for t in document["tables"]["theaters"] if t["arm_type"] == "cs"]
    assert theater["total_progress"] == "42.50"
    assert theater["created_at"].endswith("+00:00")


async def test_export_sends_json_and_zip_of_csvs(bot: BotEnv, db: Database) -> None:
    alice = await fill(bot, db, 9201, "Alice")
    await fill(bot, db, 9202, "Bob")
    chat = bot.chat(9201)
    chat.seen = len(bot.emu.sent(9201))
    as_json, as_zip = await chat.send("/export", replies=2)

    today = datetime.now(UTC).strftime("%Y%m%d")
    assert as_json.kind == as_zip.kind == "document"
    assert as_json.filename == f"aelpher-export-{today}.json"
    assert as_zip.filename == f"aelpher-export-{today}.zip"
    assert as_json.document is not None and as_zip.document is not None
    document = json.loads(as_json.document)
    assert document["user_id"] == str(alice)
    assert {t: len(r) for t, r in document["tables"].items()} == {
        t: len(await user_rows(db, t, alice)) for t in TABLE_NAMES
    }

    with zipfile.ZipFile(io.BytesIO(as_zip.document)) as archive:
        assert sorted(archive.namelist()) == sorted(f"{t}.csv" for t in TABLE_NAMES)
        for table in TABLE_NAMES:
            text = archive.read(f"{table}.csv").decode("utf-8")
            header, *body = list(csv.reader(io.StringIO(text, newline="")))
            exported = document["tables"][table]
            assert header == list(exported[0])
            assert body == [[csv_value(row[c]) for c in header] for row in exported]
    logs = document["tables"]["nba_items"]
    assert logs[0]["title"] == 'Alice\'s plan, "quoted", with a comma'


# --- /delete ---------------------------------------------------------------------------------


async def counts_of(db: Database, user: UUID) -> dict[str, int]:
    return {t: len(await user_rows(db, t, user)) for t in TABLE_NAMES}


async def test_delete_asks_first_and_keep_deletes_nothing(bot: BotEnv, db: Database) -> None:
    alice, before, chat = await filled(bot, db, 9301)
    (prompt,) = await chat.send("/delete")
    assert "Delete all your Aelpher data?" in prompt.plain_text
    assert "time logs: 1 (execution_logs)" in prompt.plain_text
    assert "theaters: 2 (theaters)" in prompt.plain_text
    assert [label for row in prompt.buttons for label, _ in row] == [
        "Yes, delete everything",
        "Keep my data",
    ]
    assert await counts_of(db, alice) == before  # asking deletes nothing

    await chat.press(prompt, "Keep my data")
    assert chat.message(prompt.message_id).plain_text == data_handlers.KEPT
    assert await counts_of(db, alice) == before
    # The used prompt's confirm button (a stale client) is no longer honoured.
    await chat.press_data(prompt.message_id, prompt.callback_data("Yes, delete everything"))
    assert await counts_of(db, alice) == before
    assert last_answer(bot) == CLOSED


async def test_confirmed_delete_removes_every_row_of_the_user_only(
    bot: BotEnv, db: Database
) -> None:
    alice = await fill(bot, db, 9401, "Alice")
    bob = await fill(bot, db, 9402, "Bob")
    bob_before = await counts_of(db, bob)
    chat = bot.chat(9401)
    chat.seen = len(bot.emu.sent(9401))
    (prompt,) = await chat.send("/delete")

    await chat.press(prompt, "Yes, delete everything")

    done = chat.message(prompt.message_id).plain_text
    assert done.startswith("🗑 Deleted")
    assert "time logs: 1 (execution_logs)" in done and "Telegram link: 1" in done
    assert await counts_of(db, alice) == dict.fromkeys(TABLE_NAMES, 0)
    assert await counts_of(db, bob) == bob_before
    # local mode: the account the bot made at /start goes too (tests/e2e/test_erase_account.py)
    assert await rows(db, "select 1 from auth.users where id = %s", alice) == []
    (after,) = await chat.send("/nba")
    assert "Send /start to begin" in after.plain_text
    (again,) = await chat.send("/start")  # a fresh account, with the first-run questions
    assert "Welcome to Aelpher" in again.plain_text and "1/3 · Time zone" in again.plain_text
    assert await user_of(db, 9401) != alice


async def test_forged_confirmation_from_another_user_deletes_nothing(
    bot: BotEnv, db: Database
) -> None:
    alice = await fill(bot, db, 9501, "Alice")
    bob = await fill(bot, db, 9502, "Bob")
    before = {alice: await counts_of(db, alice), bob: await counts_of(db, bob)}
    alice_chat, bob_chat = bot.chat(9501), bot.chat(9502)
    alice_chat.seen = len(bot.emu.sent(9501))
    bob_chat.seen = len(bot.emu.sent(9502))
    (alice_prompt,) = await alice_chat.send("/delete")
    forged = alice_prompt.callback_data("Yes, delete everything")

    # Bob replays Alice's confirmation on a message of his own…
    (own,) = await bob_chat.send("/status")
    await bob_chat.press_data(own.message_id, forged)
    # …and on his own /delete prompt, whose confirmation he never pressed.
    (bob_prompt,) = await bob_chat.send("/delete")
    await bob_chat.press_data(bob_prompt.message_id, forged)

    assert await counts_of(db, alice) == before[alice]
    assert await counts_of(db, bob) == before[bob]
    answers = [c.params.get("text") for c in bot.emu.calls("answerCallbackQuery")]
    assert answers[-2:] == [CLOSED, CLOSED]
    # Bob's own prompt still works for Bob, and for him only.
    await bob_chat.press(bob_prompt, "Yes, delete everything")
    assert await counts_of(db, bob) == dict.fromkeys(TABLE_NAMES, 0)
    assert await counts_of(db, alice) == before[alice]


async def test_confirmation_expires(bot: BotEnv, db: Database) -> None:
    alice, before, chat = await filled(bot, db, 9601)
    (prompt,) = await chat.send("/delete")
    bot.clock.set(datetime.now(UTC) + timedelta(minutes=11))
    await chat.press(prompt, "Yes, delete everything")
    assert await counts_of(db, alice) == before
    assert last_answer(bot) == CLOSED
    assert await rows(db, "select 1 from open_questions where telegram_user_id = 9601") == []


def last_answer(bot: BotEnv) -> str | None:
    """The text of the bot's last answer to a button press (its toast)."""
    text = bot.emu.calls("answerCallbackQuery")[-1].params.get("text")
    return None if text is None else str(text)


async def test_a_command_closes_the_confirmation_and_its_yes_deletes_nothing(
    bot: BotEnv, db: Database
) -> None:
    alice, before, chat = await filled(bot, db, 9611)
    (prompt,) = await chat.send("/delete")
    await chat.send("/status")  # any command abandons the open question
    await chat.press(prompt, "Yes, delete everything")
    assert last_answer(bot) == CLOSED
    assert await counts_of(db, alice) == before
    assert chat.message(prompt.message_id).plain_text == prompt.plain_text  # left as it was
    (again,) = await chat.send("/delete")  # a new confirmation works
    await chat.press(prompt, "Yes, delete everything")  # …but not with the old button
    assert last_answer(bot) == CLOSED
    assert await counts_of(db, alice) == before
    await chat.press(again, "Yes, delete everything")
    assert last_answer(bot) == "Deleted."
    assert await counts_of(db, alice) == dict.fromkeys(TABLE_NAMES, 0)


async def test_a_confirmation_button_of_the_old_kind_deletes_nothing(
    bot: BotEnv, db: Database
) -> None:
    """Prompts sent before the confirmation became a question carry del:yes:<nonce>."""
    alice, before, chat = await filled(bot, db, 9641)
    (own,) = await chat.send("/status")
    await chat.press_data(own.message_id, "del:yes:0123456789ab")
    assert last_answer(bot) == "That button is no longer valid. Send /help."
    assert await counts_of(db, alice) == before


async def test_typing_during_the_confirmation_deletes_nothing_and_points_to_the_buttons(
    bot: BotEnv, db: Database
) -> None:
    alice, before, chat = await filled(bot, db, 9621)
    (prompt,) = await chat.send("/delete")
    (hint,) = await chat.send("yes")
    assert hint.plain_text == data_handlers.USE_THE_BUTTONS
    assert await counts_of(db, alice) == before
    (cancelled,) = await chat.send("/cancel")
    assert cancelled.plain_text == data_handlers.CANCELLED
    await chat.press(prompt, "Keep my data")
    assert last_answer(bot) == CLOSED
    assert chat.message(prompt.message_id).plain_text == prompt.plain_text


async def test_delete_closes_the_persons_questions_in_every_chat_and_nobody_elses(
    bot: BotEnv, db: Database
) -> None:
    """A draft holds the person's text: /delete removes their open questions everywhere
    (here one in a group chat, written directly), not another person's."""
    alice = await fill(bot, db, 9631, "Alice")
    await fill(bot, db, 9632, "Bob")
    bob = bot.chat(9632)
    bob.seen = len(bot.emu.sent(9632))
    await bob.send("/add cs 3")  # Bob's question stays open
    async with db.privileged() as uow:
        await uow.execute(
            "insert into open_questions"
            " (chat_id, telegram_user_id, flow, step, draft, token, asked_at, expires_at)"
            " values (-100777, 9631, 'add', 'title', '{\"arm\": \"cs\", \"gap\": 3}',"
            " 'grouptok', now(), now() + interval '10 minutes')"
        )
        await uow.commit()
    chat = bot.chat(9631)
    chat.seen = len(bot.emu.sent(9631))
    (prompt,) = await chat.send("/delete")
    await chat.press(prompt, "Yes, delete everything")
    assert last_answer(bot) == "Deleted."
    assert await counts_of(db, alice) == dict.fromkeys(TABLE_NAMES, 0)
    assert await rows(
        db,
        "select telegram_user_id, flow from open_questions where telegram_user_id in (9631, 9632)",
    ) == [{"telegram_user_id": 9632, "flow": "add"}]
    (added,) = await bob.send("Bob's title")
    assert "Added to cs: Bob's title" in added.plain_text


# --- onboarding ------------------------------------------------------------------------------


async def settings_of(db: Database, telegram_user_id: int) -> dict[str, Any]:
    (found,) = await rows(
        db,
        "select s.timezone, s.weekly_capacity_hours, s.brief_time from user_settings s"
        " join telegram_links l using (user_id) where l.telegram_user_id = %s",
        telegram_user_id,
    )
    return found


async def test_onboarding_with_buttons(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(9701)
    (welcome,) = await chat.send("/start")
    assert "Welcome to Aelpher" in welcome.plain_text
    assert "1/3 · Time zone" in welcome.plain_text
    assert [label for label, _ in welcome.buttons[0]] == ["Europe/London", "Europe/Berlin"]

    await chat.press(welcome, "Europe/Berlin")
    step = chat.message(welcome.message_id)
    assert "✅ Saved: time zone Europe/Berlin." in step.plain_text
    assert "2/3 · Weekly capacity" in step.plain_text
    await chat.press(step, "50 h")
    step = chat.message(welcome.message_id)
    assert "3/3 · Daily brief" in step.plain_text
    await chat.press(step, "08:00")
    done = chat.message(welcome.message_id)
    assert "All set!" in done.plain_text
    assert "Time zone Europe/Berlin · capacity 50 h/week · daily brief 08:00" in done.plain_text
    assert "/add cs 4 Read SICP chapter 3" in done.plain_text
    assert done.buttons == []

    assert await settings_of(db, 9701) == {
        "timezone": "Europe/Berlin",
        "weekly_capacity_hours": 50,
        "brief_time": time(8, 0),
    }
    (back,) = await chat.send("/start")  # a second /start asks nothing
    assert "Welcome back" in back.plain_text and back.buttons == []


async def test_onboarding_by_typing(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(9702)
    await chat.send("/start")
    (bad,) = await chat.send("Mars/Olympus")
    assert "Unknown time zone 'Mars/Olympus'" in bad.plain_text
    (close,) = await chat.send("Kolkata")
    assert "Did you mean Asia/Kolkata?" in close.plain_text
    (capacity,) = await chat.send("asia/singapore")
    assert "✅ Saved: time zone Asia/Singapore." in capacity.plain_text
    assert "2/3 · Weekly capacity" in capacity.plain_text
    (too_much,) = await chat.send("500")
    assert "Weekly capacity must be between 1 and 168 hours (got 500)" in too_much.plain_text
    (brief,) = await chat.send("35 h")
    assert "3/3 · Daily brief" in brief.plain_text
    (bad_time,) = await chat.send("25:00")
    assert "must be a time like 7, 7am, 07:30" in bad_time.plain_text
    (done,) = await chat.send("07:15")
    assert "All set!" in done.plain_text
    assert await settings_of(db, 9702) == {
        "timezone": "Asia/Singapore",
        "weekly_capacity_hours": 35,
        "brief_time": time(7, 15),
    }


async def test_onboarding_skips_keep_the_defaults(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(9703)
    (welcome,) = await chat.send("/start")
    await chat.press(welcome, "Skip (keep UTC)")
    step = chat.message(welcome.message_id)
    assert "Skipped: keeping time zone UTC." in step.plain_text
    await chat.press(step, "Skip (keep 40 h)")
    await chat.press(chat.message(welcome.message_id), "Skip")
    assert "All set!" in chat.message(welcome.message_id).plain_text
    assert await settings_of(db, 9703) == {
        "timezone": "UTC",
        "weekly_capacity_hours": 40,
        "brief_time": None,
    }


async def test_cancel_leaves_onboarding_and_keeps_the_answers(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(9704)
    (welcome,) = await chat.send("/start")
    await chat.press(welcome, "Asia/Tokyo")
    (stopped,) = await chat.send("/cancel")
    assert "no more questions" in stopped.plain_text
    assert "What you already answered is saved" in stopped.plain_text
    (after,) = await chat.send("35")  # no longer an answer
    assert "Save this as" in after.plain_text
    assert (await settings_of(db, 9704))["timezone"] == "Asia/Tokyo"
    assert (await settings_of(db, 9704))["weekly_capacity_hours"] == 40


async def test_a_command_during_onboarding_closes_its_question(bot: BotEnv, db: Database) -> None:
    """One question at a time: a command leaves onboarding's question behind for good, so a
    later number is never taken as the weekly capacity."""
    chat = bot.chat(9705)
    (welcome,) = await chat.send("/start")
    await chat.press(welcome, "Europe/London")  # now asking for the capacity
    await chat.send("/log cs")
    (asked,) = await chat.send("45")
    assert "what did you do" in asked.plain_text
    await chat.send("read chapter 3")
    await chat.send("no details")
    (after,) = await chat.send("30")  # onboarding's question was closed by /log
    assert "Save this as" in after.plain_text
    assert (await settings_of(db, 9705))["weekly_capacity_hours"] == 40
    assert await rows(db, "select duration from execution_logs") == [{"duration": 45}]


async def test_onboarding_takes_typed_answers_with_specific_errors(
    bot: BotEnv, db: Database
) -> None:
    chat = bot.chat(9706)
    await chat.send("/start")
    (zone,) = await chat.send("7am")  # the time zone question is open
    assert "Unknown time zone '7am'" in zone.plain_text
    (capacity,) = await chat.send("Europe/Berlin")
    assert "2/3 · Weekly capacity" in capacity.plain_text
    (forty,) = await chat.send("forty")
    assert "Weekly capacity must be a whole number (got 'forty')" in forty.plain_text
    (brief,) = await chat.send("35 hours")
    assert "3/3 · Daily brief" in brief.plain_text
    (done,) = await chat.send("7:30 pm")
    assert "All set!" in done.plain_text
    saved = await settings_of(db, 9706)
    assert saved["weekly_capacity_hours"] == 35 and str(saved["brief_time"]) == "19:30:00"
