"""Supabase-mode linking: the tries limiter, the service against a fake Supabase Auth, and
/link and /unlink end to end through the real Application."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.local_api import BotApiEmulator
from services import linking
from services.db import Database
from tests.conftest import BotEnv, make_user
from tests.fake_supabase_auth import FakeSupabaseAuth
from tests.harness import Clock, bot_running, make_settings

ANON = "anon-test-key"
NOW = 1_800_000_000.0


# --- pure rules ---------------------------------------------------------------------------


def test_tries_left_counts_only_the_last_ten_minutes() -> None:
    assert linking.tries_left([], NOW) == 5
    assert linking.tries_left([NOW - 1, NOW - 2], NOW) == 3
    assert linking.tries_left([NOW - 600, NOW - 601, NOW - 5000], NOW) == 5
    assert linking.tries_left([NOW - 599.9], NOW) == 4


def test_tries_left_never_goes_below_zero_and_check_refuses_then() -> None:
    seven = [NOW - i for i in range(7)]
    assert linking.tries_left(seven, NOW) == 0
    with pytest.raises(linking.TooManyTries) as caught:
        linking.check_tries(seven[:5], NOW)
    assert caught.value.user_message == (
        "Too many wrong codes. Start again with /link in 10 minutes."
    )
    linking.check_tries(seven[:4], NOW)  # a fifth try is still allowed


@given(st.lists(st.floats(min_value=NOW - 2000, max_value=NOW), max_size=12))
def test_tries_left_is_five_minus_tries_in_window(attempts: list[float]) -> None:
    in_window = [t for t in attempts if t > NOW - 600]
    assert linking.tries_left(attempts, NOW) == max(0, 5 - len(in_window))
    assert linking.recent_tries(attempts, NOW) == in_window


def test_clean_email_and_code() -> None:
    assert linking.clean_email("  Ann@Example.COM ") == "ann@example.com"
    assert linking.clean_email("<ann@example.com>") == "ann@example.com"
    for bad in ("", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.de"):
        with pytest.raises(linking.InvalidEmail):
            linking.clean_email(bad)
    assert linking.clean_code(" 123 456 ") == "123456"
    assert linking.clean_code("123-456") == "123456"
    for bad in ("12345", "abcdef", "12345a", ""):
        with pytest.raises(linking.InvalidCode):
            linking.clean_code(bad)


# --- the service against the fake ---------------------------------------------------------


def wrong(fake: FakeSupabaseAuth, email: str) -> str:
    return "000000" if fake.last_code(email) != "000000" else "111111"


@pytest.fixture
def fake() -> Iterator[FakeSupabaseAuth]:
    with FakeSupabaseAuth() as server:
        yield server


async def test_right_code_returns_the_user_id_and_keeps_no_session(
    fake: FakeSupabaseAuth,
) -> None:
    user_id = uuid.uuid4()
    fake.add_user("ann@example.com", user_id)
    await linking.send_code(fake.url, ANON, "Ann@Example.com")
    (otp,) = fake.requests("/auth/v1/otp")
    assert otp.body["email"] == "ann@example.com"
    assert otp.body["create_user"] is False
    code = fake.last_code("ann@example.com")

    assert await linking.verify_code(fake.url, ANON, "ann@example.com", code) == user_id
    assert fake.open_sessions == 0  # the session GoTrue opened was revoked at once
    assert fake.revoked == ["ann@example.com"]
    assert all(r.headers.get("apikey") == ANON for r in fake.requests())


async def test_wrong_expired_or_reused_code_is_rejected(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    await linking.send_code(fake.url, ANON, "ann@example.com")
    code = fake.last_code("ann@example.com")
    with pytest.raises(linking.CodeRejected) as caught:
        await linking.verify_code(
            fake.url, ANON, "ann@example.com", wrong(fake, "ann@example.com")
        )
    assert caught.value.user_message == "That code is wrong or has expired."

    fake.expire_code("ann@example.com")
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(fake.url, ANON, "ann@example.com", code)

    await linking.send_code(fake.url, ANON, "ann@example.com")
    fresh = fake.last_code("ann@example.com")
    await linking.verify_code(fake.url, ANON, "ann@example.com", fresh)
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(fake.url, ANON, "ann@example.com", fresh)


async def test_unknown_email_gets_a_friendly_error(fake: FakeSupabaseAuth) -> None:
    with pytest.raises(linking.UnknownEmail) as caught:
        await linking.send_code(fake.url, ANON, "nobody@example.com")
    assert caught.value.user_message == "No Aelpher account uses that email."


async def test_malformed_email_is_refused_before_any_request(fake: FakeSupabaseAuth) -> None:
    with pytest.raises(linking.InvalidEmail):
        await linking.send_code(fake.url, ANON, "not-an-email")
    assert fake.requests() == []


@pytest.mark.parametrize("how", ["switch", "per-address interval"])
async def test_rate_limits_get_a_friendly_error(fake: FakeSupabaseAuth, how: str) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    if how == "switch":
        fake.rate_limited = True
    else:
        fake.min_interval = 60
        await linking.send_code(fake.url, ANON, "ann@example.com")
    with pytest.raises(linking.RateLimited) as caught:
        await linking.send_code(fake.url, ANON, "ann@example.com")
    assert caught.value.user_message == "Too many codes requested; wait a minute and try again."


async def test_unreachable_or_failing_auth_is_unavailable(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    fake.unavailable = True
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(fake.url, ANON, "ann@example.com")
    with pytest.raises(linking.AuthUnavailable):
        await linking.verify_code(fake.url, ANON, "ann@example.com", "123456")
    closed = fake.url
    fake.stop()
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(closed, ANON, "ann@example.com")


async def test_missing_api_key_is_refused_by_the_fake(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(fake.url, "", "ann@example.com")


async def test_the_code_is_never_logged_nor_the_email_at_info(
    fake: FakeSupabaseAuth, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_user("secret.person@example.com", uuid.uuid4())
    caplog.set_level(logging.DEBUG)
    await linking.send_code(fake.url, ANON, "secret.person@example.com")
    code = fake.last_code("secret.person@example.com")
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(
            fake.url, ANON, "secret.person@example.com", wrong(fake, "secret.person@example.com")
        )
    await linking.verify_code(fake.url, ANON, "secret.person@example.com", code)
    fake.rate_limited = True
    with pytest.raises(linking.RateLimited):
        await linking.send_code(fake.url, ANON, "secret.person@example.com")
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage()
        assert code not in text
        if record.levelno >= logging.INFO:
            assert "secret.person" not in text


# --- end to end ---------------------------------------------------------------------------

TG = 7001


@pytest.fixture
async def sb_bot(
    db: Database, database_dsn: str, emulator: BotApiEmulator, fake: FakeSupabaseAuth
) -> AsyncIterator[BotEnv]:
    """The real bot in Supabase mode, talking to the fake Supabase Auth."""
    clock = Clock()
    settings = make_settings(supabase_url=fake.url, supabase_anon_key=ANON)
    async with bot_running(emulator, database_dsn, clock=clock, settings=settings) as app:
        yield BotEnv(emulator, app, clock)


@pytest.fixture
async def ann(db: Database, fake: FakeSupabaseAuth) -> uuid.UUID:
    """An Aelpher user known to both the database and the fake Supabase Auth."""
    user_id = await make_user(db, "ann@example.com")
    fake.add_user("ann@example.com", user_id)
    return user_id


async def links(db: Database) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        rows = await uow.fetchall("select telegram_user_id, user_id, active from telegram_links")
    return [dict(r) for r in rows]


async def test_start_in_supabase_mode_points_to_link(sb_bot: BotEnv, db: Database) -> None:
    (welcome,) = await sb_bot.chat(TG).send("/start")
    assert "/link" in welcome.plain_text
    assert await links(db) == []


async def test_link_in_local_mode_says_so(bot: BotEnv) -> None:
    (answer,) = await bot.chat(TG).send("/link ann@example.com")
    assert answer.plain_text == "This bot runs in local mode: your account was created at /start."


async def test_link_guided_then_unlink(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    (ask,) = await chat.send("/link")
    assert "Which email" in ask.plain_text
    (sent,) = await chat.send("Ann@Example.com")
    assert "I sent a one-time code to ann@example.com" in sent.plain_text
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert linked.plain_text == "✅ Linked to ann@example.com. /nba shows what's next."
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]
    assert fake.open_sessions == 0

    (again,) = await chat.send("/link")
    assert "already linked" in again.plain_text and "/unlink" in again.plain_text
    (status,) = await chat.send("/status")  # the linked account works under RLS
    assert "ibm" in status.plain_text

    (unlinked,) = await chat.send("/unlink")
    assert unlinked.plain_text == (
        "Unlinked. Your Aelpher data stays in your account; /link (or /start) to connect again."
    )
    assert await links(db) == []
    async with db.privileged() as uow:
        assert await uow.fetchone("select 1 as one from auth.users where id = %s", (ann,))
    (nothing,) = await chat.send("/unlink")
    assert nothing.plain_text == "This chat isn't linked."


async def test_one_line_link_and_escaped_email(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth
) -> None:
    email = "o'neil&co@example.com"
    user_id = await make_user(db, email)
    fake.add_user(email, user_id)
    chat = sb_bot.chat(TG)
    (sent,) = await chat.send(f"/link {email}")
    assert sent.text is not None and "o'neil&amp;co@example.com" in sent.text
    assert email in sent.plain_text
    (linked,) = await chat.send(fake.last_code(email))
    assert linked.text is not None and "o'neil&amp;co@example.com" in linked.text
    assert await links(db) == [{"telegram_user_id": TG, "user_id": user_id, "active": True}]


async def test_wrong_code_twice_then_right_code_links(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    await chat.send("/link ann@example.com")
    (first,) = await chat.send(wrong(fake, "ann@example.com"))
    assert "That code is wrong or has expired. 4 tries left" in first.plain_text
    (second,) = await chat.send(wrong(fake, "ann@example.com"))
    assert "3 tries left" in second.plain_text
    (shape,) = await chat.send("my code is below")  # not a code: not a try either
    assert "doesn't look like the code" in shape.plain_text
    assert await links(db) == []
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert "✅ Linked to ann@example.com" in linked.plain_text
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]


async def test_six_wrong_codes_are_refused_and_nothing_is_linked(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    await chat.send("/link ann@example.com")
    answers = [(await chat.send(wrong(fake, "ann@example.com")))[0].plain_text for _ in range(6)]
    assert "4 tries left" in answers[0] and "1 try left" in answers[3]
    too_many = "Too many wrong codes. Start again with /link in 10 minutes."
    assert too_many in answers[4]
    assert answers[5] == too_many
    assert len(fake.requests("/auth/v1/verify")) == 5  # the sixth never reached Supabase

    (right,) = await chat.send(fake.last_code("ann@example.com"))
    assert right.plain_text == too_many
    await chat.send("/cancel")
    (again,) = await chat.send("/link ann@example.com")  # leaving does not reset the limit
    assert again.plain_text == too_many
    assert len(fake.requests("/auth/v1/otp")) == 1  # and no new email was sent
    assert await links(db) == []

    sb_bot.clock.advance(minutes=11)
    (sent,) = await chat.send("/link ann@example.com")
    assert "I sent a one-time code" in sent.plain_text
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert "✅ Linked" in linked.plain_text


async def test_unknown_email_is_explained_and_nothing_is_linked(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    (refused,) = await chat.send("/link nobody@example.com")
    assert "No Aelpher account uses that email." in refused.plain_text
    (bad,) = await chat.send("not an email")
    assert "doesn't look like an email address" in bad.plain_text
    assert await links(db) == []
    (sent,) = await chat.send("ann@example.com")  # still asking: the right one works
    assert "I sent a one-time code" in sent.plain_text
    (cancelled,) = await chat.send("/cancel")
    assert "Cancelled" in cancelled.plain_text
    (ignored,) = await chat.send(fake.last_code("ann@example.com"))
    assert "Linked" not in ignored.plain_text
    assert await links(db) == []


async def test_rate_limited_and_unavailable_auth_are_explained(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    fake.rate_limited = True
    (limited,) = await chat.send("/link ann@example.com")
    assert limited.plain_text == "Too many codes requested; wait a minute and try again."
    fake.rate_limited = False
    fake.unavailable = True
    (down,) = await chat.send("/link ann@example.com")
    assert "can't reach the sign-in service" in down.plain_text
    assert await links(db) == []


async def test_account_linked_to_another_telegram_user_is_refused(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    first = sb_bot.chat(TG)
    await first.send("/link ann@example.com")
    await first.send(fake.last_code("ann@example.com"))
    second = sb_bot.chat(TG + 1)
    await second.send("/link ann@example.com")
    (refused,) = await second.send(fake.last_code("ann@example.com"))
    assert "already linked to another Telegram user" in refused.plain_text
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]


async def test_the_conversation_and_the_tries_survive_a_restart(
    db: Database,
    database_dsn: str,
    emulator: BotApiEmulator,
    fake: FakeSupabaseAuth,
    ann: uuid.UUID,
) -> None:
    settings = make_settings(supabase_url=fake.url, supabase_anon_key=ANON)
    chat = BotEnv(emulator, None, Clock()).chat(TG)
    async with bot_running(emulator, database_dsn, settings=settings):
        await chat.send("/link ann@example.com")
        await chat.send(wrong(fake, "ann@example.com"))
        (second,) = await chat.send(wrong(fake, "ann@example.com"))
        assert "3 tries left" in second.plain_text
    async with bot_running(emulator, database_dsn, settings=settings):
        (third,) = await chat.send(wrong(fake, "ann@example.com"))
        assert "2 tries left" in third.plain_text
        (linked,) = await chat.send(fake.last_code("ann@example.com"))
        assert "✅ Linked to ann@example.com" in linked.plain_text
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]
