"""Supabase-mode linking: /link and /unlink end to end through the real Application, against a
fake Supabase Auth (the rules: tests/unit/test_link_rules.py; the service:
tests/integration/test_linking_service.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from services import linking
from services.db import Database
from tests.conftest import BotEnv, make_user
from tests.fake_supabase_auth import FakeSupabaseAuth, wrong
from tests.harness import Chat, Clock, bot_running, make_settings

ANON = "anon-test-key"


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
    assert "If an Aelpher account uses ann@example.com, I've sent a one-time code" in (
        sent.plain_text
    )
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
    assert "I've sent a one-time code" in sent.plain_text
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert "✅ Linked" in linked.plain_text


async def test_bad_email_is_explained_and_cancel_ends_the_flow(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    (ask,) = await chat.send("/link")
    assert "Which email" in ask.plain_text
    (bad,) = await chat.send("not an email")
    assert "doesn't look like an email address" in bad.plain_text
    assert await links(db) == []
    (sent,) = await chat.send("ann@example.com")  # still asking: the right one works
    assert "I've sent a one-time code" in sent.plain_text
    (cancelled,) = await chat.send("/cancel")
    assert "Cancelled" in cancelled.plain_text
    (ignored,) = await chat.send(fake.last_code("ann@example.com"))
    assert "Linked" not in ignored.plain_text
    assert await links(db) == []


async def test_rate_limited_and_unavailable_auth_are_explained(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    fake.request_rate_limited = True
    (limited,) = await chat.send("/link ann@example.com")
    assert limited.plain_text == "Too many codes requested; wait a minute and try again."
    fake.request_rate_limited = False
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


async def questions_of(db: Database, telegram_user_id: int) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        rows = await uow.fetchall(
            "select flow, step, draft from open_questions where telegram_user_id = %s",
            (telegram_user_id,),
        )
    return [dict(r) for r in rows]


NOT_LINKED_YET = "You're not linked yet. Send /link to connect your Aelpher account."


async def test_link_step_by_step_keeps_the_email_and_never_the_code(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    (ask,) = await chat.send("/link")
    assert ask.plain_text == "Which email does your Aelpher account use? Send it here, or /cancel."
    assert await questions_of(db, TG) == [
        {"flow": "link", "step": "email", "draft": {"email": None}}
    ]
    (sent,) = await chat.send(" Ann@Example.com ")
    assert sent.plain_text == (
        "📧 If an Aelpher account uses ann@example.com, I've sent a one-time code there.\n"
        "Send me the 6-digit code from that email, or /cancel."
    )
    code = fake.last_code("ann@example.com")
    (rejected,) = await chat.send(wrong(fake, "ann@example.com"))
    assert rejected.plain_text == (
        "❌ That code is wrong or has expired. 4 tries left: send the code again, or /link for"
        " a new one."
    )
    stored = await questions_of(db, TG)
    assert stored == [{"flow": "link", "step": "code", "draft": {"email": "ann@example.com"}}]
    assert code not in str(stored)
    (linked,) = await chat.send(code)
    assert linked.plain_text == "✅ Linked to ann@example.com. /nba shows what's next."
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]
    assert await questions_of(db, TG) == []
    (free,) = await chat.send("Read SICP")  # linked now, and no question open: quick capture
    assert "Save this as" in free.plain_text


async def test_a_bad_email_on_the_command_line_asks_for_it(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    (bad,) = await chat.send("/link ann-at-example.com")
    assert bad.plain_text == (
        "That doesn't look like an email address: send it like you@example.com.\n"
        "Send the email of your Aelpher account, or /cancel."
    )
    assert fake.requests("/auth/v1/otp") == []
    (sent,) = await chat.send("ann@example.com")
    assert "I've sent a one-time code" in sent.plain_text
    (linked,) = await chat.send(fake.last_code("ann@example.com"))
    assert "✅ Linked to ann@example.com" in linked.plain_text


@pytest.mark.parametrize("step", ["email", "code"])
async def test_an_abandoned_link_question_takes_no_later_answer(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID, step: str
) -> None:
    """Another command abandons /link: the email or code typed after it is not taken (no
    request reaches Supabase Auth), and the reply doesn't echo it."""
    chat = sb_bot.chat(TG)
    await chat.send("/link ann@example.com" if step == "code" else "/link")
    otp_requests = len(fake.requests("/auth/v1/otp"))
    (other,) = await chat.send("/unlink")  # any command
    assert other.plain_text == "This chat isn't linked."
    assert await questions_of(db, TG) == []
    typed = fake.last_code("ann@example.com") if step == "code" else "ann@example.com"
    (answer,) = await chat.send(typed)
    assert answer.plain_text == NOT_LINKED_YET
    assert fake.requests("/auth/v1/verify") == []
    assert len(fake.requests("/auth/v1/otp")) == otp_requests
    assert await links(db) == []
    assert await questions_of(db, TG) == []


async def test_a_link_question_expires_after_ten_minutes(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    chat = sb_bot.chat(TG)
    await chat.send("/link ann@example.com")
    sb_bot.clock.advance(minutes=11)
    (answer,) = await chat.send(fake.last_code("ann@example.com"))
    assert answer.plain_text == NOT_LINKED_YET
    assert fake.requests("/auth/v1/verify") == []
    assert await links(db) == []


async def test_link_step_by_step_continues_after_a_restart_between_email_and_code(
    db: Database,
    database_dsn: str,
    emulator: BotApiEmulator,
    fake: FakeSupabaseAuth,
    ann: uuid.UUID,
) -> None:
    settings = make_settings(supabase_url=fake.url, supabase_anon_key=ANON)
    chat = BotEnv(emulator, None, Clock()).chat(TG)
    async with bot_running(emulator, database_dsn, settings=settings):
        (ask,) = await chat.send("/link")
        assert "Which email" in ask.plain_text
        (sent,) = await chat.send("ann@example.com")
        assert "I've sent a one-time code" in sent.plain_text
    async with bot_running(emulator, database_dsn, settings=settings):
        (linked,) = await chat.send(fake.last_code("ann@example.com"))
        assert linked.plain_text == "✅ Linked to ann@example.com. /nba shows what's next."
    assert await links(db) == [{"telegram_user_id": TG, "user_id": ann, "active": True}]
    assert await questions_of(db, TG) == []


# --- limits shared across Telegram users and instances (PostgreSQL) ------------------------


async def test_two_telegram_users_share_one_emails_tries_across_instances(
    db: Database,
    database_dsn: str,
    emulator: BotApiEmulator,
    fake: FakeSupabaseAuth,
    ann: uuid.UUID,
) -> None:
    """Wrong codes count per email: two Telegram accounts, each on its own bot instance,
    guessing ann's code get five tries between them, not five each."""
    with BotApiEmulator() as other_emulator:
        async with (
            bot_running(
                emulator,
                database_dsn,
                settings=make_settings(supabase_url=fake.url, supabase_anon_key=ANON),
            ),
            bot_running(
                other_emulator,
                database_dsn,
                settings=make_settings(supabase_url=fake.url, supabase_anon_key=ANON),
            ),
        ):
            first = BotEnv(emulator, None, Clock()).chat(TG)
            second = BotEnv(other_emulator, None, Clock()).chat(TG + 1)
            await first.send("/link ann@example.com")
            await second.send("/link ann@example.com")

            async def guess(chat: Chat) -> str:
                (answer,) = await chat.send(wrong(fake, "ann@example.com"))
                return answer.plain_text

            assert "4 tries left" in await guess(first)
            assert "3 tries left" in await guess(first)
            assert "2 tries left" in await guess(second)
            assert "1 try left" in await guess(first)
            too_many = "Too many wrong codes. Start again with /link in 10 minutes."
            assert too_many in await guess(second)
            assert len(fake.requests("/auth/v1/verify")) == 5
            (refused,) = await second.send(fake.last_code("ann@example.com"))
            assert refused.plain_text == too_many
            (also,) = await first.send(fake.last_code("ann@example.com"))
            assert also.plain_text == too_many
            (no_new_code,) = (
                await BotEnv(other_emulator, None, Clock())
                .chat(TG + 2)
                .send("/link ann@example.com")
            )
            assert no_new_code.plain_text == too_many  # a third account gets none either
    assert len(fake.requests("/auth/v1/verify")) == 5  # nothing more reached Supabase
    assert len(fake.requests("/auth/v1/otp")) == 2
    assert await links(db) == []


async def test_a_fourth_code_request_within_the_hour_is_refused_per_user_and_per_email(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    def refusal(minutes: int) -> str:
        return (
            "That's too many codes: at most 3 an hour for each chat and each email address."
            f" You can ask for a new one in {minutes} minutes."
        )

    # Per Telegram user: three addresses (known or not), then no fourth.
    chat = sb_bot.chat(TG)
    for email in ("ann@example.com", "x1@example.com", "x2@example.com"):
        (sent,) = await chat.send(f"/link {email}")
        assert "I've sent a one-time code" in sent.plain_text
    (refused,) = await chat.send("/link x3@example.com")
    assert refused.plain_text == refusal(60)
    assert len(fake.requests("/auth/v1/otp")) == 3

    # Per email: ann's address had one request; two more accounts may ask, a third may not.
    for tg in (TG + 1, TG + 2):
        (sent,) = await sb_bot.chat(tg).send("/link ann@example.com")
        assert "I've sent a one-time code" in sent.plain_text
    fourth = sb_bot.chat(TG + 3)
    (refused,) = await fourth.send("/link ann@example.com")
    assert refused.plain_text == refusal(60)
    assert len(fake.requests("/auth/v1/otp")) == 5

    sb_bot.clock.advance(minutes=30)
    (later,) = await fourth.send("/link ann@example.com")
    assert later.plain_text == refusal(30)
    sb_bot.clock.advance(minutes=31)  # an hour after the first requests
    (sent,) = await fourth.send("/link ann@example.com")
    assert "I've sent a one-time code" in sent.plain_text
    (sent,) = await chat.send("/link x3@example.com")
    assert "I've sent a one-time code" in sent.plain_text
    async with db.privileged() as uow:  # expired counters were deleted by the last writes
        row = await uow.fetchone(
            "select count(*)::int as n, count(*) filter (where expires_at <= %s)::int as old"
            " from link_attempts",
            (sb_bot.clock(),),
        )
    assert row == {"n": 4, "old": 0}  # two requests, each counted per user and per address


async def test_an_unknown_email_gets_the_same_replies_as_a_known_one(
    sb_bot: BotEnv, db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    fake.min_interval = 60  # GoTrue refuses a known address's second code within a minute

    async def replies(tg: int, email: str) -> list[str]:
        chat = sb_bot.chat(tg)
        texts = []
        for text in (f"/link {email}", f"/link {email}", "123456", "/link"):
            (answer,) = await chat.send(text)
            assert answer.text is not None
            texts.append(answer.text.replace(email, "<address>"))
        return texts

    known = await replies(TG, "ann@example.com")
    unknown = await replies(TG + 1, "nobody@example.com")
    assert known == unknown
    assert "If an Aelpher account uses <b><address></b>, I've sent a one-time code" in known[0]
    assert "That code is wrong or has expired. 4 tries left" in known[2]
    assert len(fake.requests("/auth/v1/otp")) == 4  # each request did reach Supabase Auth
    assert await links(db) == []


async def test_concurrent_guesses_for_one_email_never_exceed_five(
    db: Database, fake: FakeSupabaseAuth, ann: uuid.UUID
) -> None:
    """Ten Telegram users (or ten instances) guessing at the same moment: the count and the
    new try are taken under one lock, so exactly five codes reach Supabase Auth."""
    await linking.send_code(fake.url, ANON, "ann@example.com")
    guess = wrong(fake, "ann@example.com")
    moment = datetime.now(UTC)

    async def one(tg: int) -> str:
        try:
            await linking.check_code(db, fake.url, ANON, tg, "ann@example.com", guess, moment)
        except (linking.CodeRejected, linking.TooManyTries) as exc:
            return type(exc).__name__
        return "linked"

    outcomes = await asyncio.gather(*(one(8000 + i) for i in range(10)))
    assert sorted(outcomes) == ["CodeRejected"] * 5 + ["TooManyTries"] * 5
    assert len(fake.requests("/auth/v1/verify")) == 5
