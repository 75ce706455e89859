"""The Data API against the bot's own links, end to end: a forged link never takes another
person's Telegram id, and the bot's own link writes still work (the grants on their own:
tests/integration/test_data_api.py)."""

from __future__ import annotations

from services.db import Database
from tests.conftest import BotEnv, make_user
from tests.fake_supabase_auth import FakeSupabaseAuth
from tests.integration.test_data_api import as_api


async def test_a_forged_link_never_takes_the_victims_telegram_id(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    attacker_tg, victim_tg = 4001, 4002
    attacker = bot.chat(attacker_tg)
    await attacker.send("/start")
    await attacker.send("/cancel")
    await attacker.send("/log cs 30 attacker notes")
    async with db.privileged() as uow:
        row = await uow.fetchone(
            "select user_id from telegram_links where telegram_user_id = %s", (attacker_tg,)
        )
    assert row is not None
    attacker_id = row["user_id"]

    for statement in (
        f"update telegram_links set telegram_user_id = {victim_tg}",
        f"update telegram_links set chat_id = {victim_tg}",
        "delete from telegram_links",
    ):
        assert await as_api(database_dsn, attacker_id, statement) is None, statement

    victim = bot.chat(victim_tg)
    (welcome,) = await victim.send("/start")
    assert "Welcome to Aelpher" in welcome.plain_text  # a fresh account of their own
    await victim.send("/cancel")
    (history,) = await victim.send("/history")
    assert "attacker notes" not in history.plain_text
    async with db.privileged() as uow:
        found = await uow.fetchall(
            "select telegram_user_id, user_id, chat_id from telegram_links"
            " order by telegram_user_id"
        )
    assert [(r["telegram_user_id"], r["chat_id"]) for r in found] == [
        (attacker_tg, attacker_tg),
        (victim_tg, victim_tg),
    ]
    assert found[1]["user_id"] != attacker_id

    # The bot's own link writes still work: /delete removes the attacker's link and account.
    (prompt,) = await attacker.send("/delete")
    await attacker.press(prompt, "Yes, delete everything")
    async with db.privileged() as uow:
        left = await uow.fetchall("select telegram_user_id from telegram_links")
    assert [r["telegram_user_id"] for r in left] == [victim_tg]


async def test_supabase_mode_a_linked_user_cannot_repoint_and_unlink_still_works(
    supabase_bot: tuple[BotEnv, FakeSupabaseAuth], db: Database, database_dsn: str
) -> None:
    bot, fake = supabase_bot
    ann = await make_user(db, "ann@example.com")
    fake.add_user("ann@example.com", ann)
    ann_tg, victim_tg = 4101, 4102
    chat = bot.chat(ann_tg)
    await chat.send("/link ann@example.com")
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert "✅ Linked" in linked.plain_text

    forged = f"update telegram_links set telegram_user_id = {victim_tg}"
    assert await as_api(database_dsn, ann, forged) is None

    (welcome,) = await bot.chat(victim_tg).send("/start")
    assert "/link" in welcome.plain_text  # not linked to anyone's account
    (status,) = await bot.chat(victim_tg).send("/status")
    assert "/link" in status.plain_text

    (unlinked,) = await chat.send("/unlink")
    assert unlinked.plain_text.startswith("Unlinked.")
    async with db.privileged() as uow:
        assert await uow.fetchall("select * from telegram_links") == []
