"""Nudges end to end: the scan against real PostgreSQL, sent through the real Application's
bot to the Bot API emulator, with time controlled by the test (SPEC §5)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import CallbackContext

from bot.scheduler import SCAN_JOB_NAME, schedule_jobs
from handlers.callbacks import encode
from handlers.nudges import make_sender, nudge_scan_job
from services import accounts, nba, tracking
from services.db import Database
from services.nudges.delivery import LEASE, MAX_ATTEMPTS, deliver
from services.nudges.messages import Nudge, SendFailed
from services.nudges.scan import ScanReport, claim_due, due_count, run_scan
from services.nudges.settings import get_settings, set_capacity, update_settings
from tests.conftest import BotEnv

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC
IDLE = T0 + timedelta(hours=72)  # when a theater untouched since T0 turns idle (default 72 h)
NO_QUIET: dict[str, Any] = {"quiet_start": None, "quiet_end": None}


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
async def env(bot: BotEnv) -> AsyncIterator[BotEnv]:
    """The running bot without its background scan: the tests run each scan themselves."""
    assert bot.app.job_queue is not None
    for job in bot.app.job_queue.get_jobs_by_name(SCAN_JOB_NAME):
        job.schedule_removal()
    yield bot


@pytest.fixture
def wired(env: BotEnv) -> BotEnv:
    """The bot with the nudge buttons and /settings registered (handlers.register_handlers)."""
    from handlers.nudges import nudge_button

    handlers = [h for group in env.app.handlers.values() for h in group]
    if not any(getattr(h, "callback", None) is nudge_button for h in handlers):
        pytest.fail(
            "handlers.nudges and handlers.settings are not registered: add nudges.register(app)"
            " and settings.register(app) to handlers.register_handlers"
        )
    return env


async def new_user(
    env: BotEnv, db: Database, tg: int, at: datetime = T0, **prefs: Any
) -> uuid.UUID:
    """A linked local account whose theaters were last active at ``at``."""
    env.emu.register_user(tg)
    user_id, created = await accounts.create_local_account(db, tg, tg, "Test", at)
    assert created
    if prefs:
        await update_settings(db, user_id, now=at, **prefs)
    return user_id


async def scan(env: BotEnv, db: Database, at: datetime, **kw: Any) -> ScanReport:
    """One scan at ``at``, sending through the application's real bot."""
    env.clock.set(at)
    return await run_scan(db, at, make_sender(env.app.bot), **kw)


def texts(env: BotEnv, chat_id: int, marker: str = "") -> list[str]:
    return [m.plain_text for m in env.emu.sent(chat_id) if marker in m.plain_text]


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def ledger(
    db: Database, user_id: uuid.UUID, kind: str | None = None
) -> list[dict[str, Any]]:
    return await rows(
        db,
        "select kind, arm_type, dedupe_key, status, attempts, claimed_at, sent_at, last_error"
        " from nudges where user_id = %s and (%s::text is null or kind = %s)"
        " order by claimed_at, dedupe_key",
        user_id,
        kind,
        kind,
    )


def sends_to(env: BotEnv, chat_id: int) -> int:
    return sum(1 for c in env.emu.calls("sendMessage") if c.params.get("chat_id") == chat_id)


# --- idle -----------------------------------------------------------------------------------


async def test_idle_nudge_once_then_at_most_daily_and_three_per_episode(
    env: BotEnv, db: Database
) -> None:
    user = await new_user(env, db, 1001, **NO_QUIET)
    await nba.add_item(db, user, "cs", 4, "Read SICP chapter 3", T0)
    await tracking.log_time(db, user, "ibm", 30, "report", T0 + timedelta(hours=60))

    assert (await scan(env, db, IDLE - timedelta(minutes=1))).sent == 0
    first = await scan(env, db, IDLE)
    assert first.sent == 1
    (nudge,) = texts(env, 1001)
    assert "cs has been idle for 3 days" in nudge and "Read SICP chapter 3" in nudge
    for at in (IDLE + timedelta(minutes=1), IDLE + timedelta(hours=23, minutes=59)):
        assert (await scan(env, db, at)).sent == 0
    assert (await scan(env, db, IDLE + timedelta(hours=24))).sent == 1
    assert (await scan(env, db, IDLE + timedelta(hours=48))).sent == 1
    for days in (3, 4, 10):  # the episode had its three; ibm's own episode is separate
        await scan(env, db, IDLE + timedelta(days=days))
    cs = texts(env, 1001, "cs has been idle")
    assert len(cs) == 3 and "for 4 days" in cs[1] and "for 5 days" in cs[2]
    keys = [r["dedupe_key"] for r in await ledger(db, user, "idle") if r["arm_type"] == "cs"]
    assert keys == [f"idle:cs:2026-11-02T12:00:00.000000Z:{n}" for n in (1, 2, 3)]
    assert len(texts(env, 1001, "ibm has been idle")) == 3  # idle since T0+60h: 132h, +24, +48

    # New activity starts a new episode: the count starts again.
    await tracking.log_time(db, user, "cs", 25, "chapter 3", IDLE + timedelta(days=10))
    assert (await scan(env, db, IDLE + timedelta(days=13))).sent == 1


async def test_blocked_or_snoozed_theater_gets_no_idle_nudge(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1002, **NO_QUIET)
    await tracking.block(db, user, "cs", "travelling", T0)
    await tracking.snooze(db, user, "ibm", IDLE + timedelta(hours=30), T0)
    assert (await scan(env, db, IDLE)).sent == 0
    assert (await scan(env, db, IDLE + timedelta(hours=29))).sent == 0
    assert (await scan(env, db, IDLE + timedelta(hours=30))).sent == 1  # snooze over
    assert texts(env, 1002, "has been idle")[0].startswith("🔴 ibm")
    await tracking.unblock(db, user, "cs", IDLE + timedelta(hours=31))
    assert (await scan(env, db, IDLE + timedelta(hours=31))).sent == 1  # unblocked, still idle
    assert len(texts(env, 1002, "cs has been idle")) == 1


async def test_activity_snooze_or_lower_risk_between_decision_and_send_cancel_it(
    env: BotEnv, db: Database
) -> None:
    user = await new_user(env, db, 1003, **NO_QUIET)
    claimed, report = await claim_due(db, IDLE)
    assert report.due == 2 and len(claimed) == 2
    # After the decision, before the send: cs gets activity, ibm is snoozed.
    await tracking.log_time(db, user, "cs", 20, "read", IDLE)
    await tracking.snooze(db, user, "ibm", IDLE + timedelta(days=1), IDLE)
    outcomes = await deliver(db, claimed, IDLE, make_sender(env.app.bot))
    assert outcomes["cancelled"] == 2 and outcomes["sent"] == 0
    assert texts(env, 1003) == [] and await ledger(db, user) == []
    assert (await scan(env, db, IDLE + timedelta(minutes=5))).sent == 0

    # Overload: the risk falls under the threshold (capacity raised) after the claim.
    await update_settings(db, user, now=IDLE, weekly_capacity_hours=1)
    await tracking.log_time(db, user, "cs", 55, "more", IDLE + timedelta(minutes=10))
    claimed, _ = await claim_due(db, IDLE + timedelta(minutes=10))
    assert [c.kind for c in claimed] == ["overload"]
    await set_capacity(db, user, 40, IDLE + timedelta(minutes=10))
    outcomes = await deliver(db, claimed, IDLE + timedelta(minutes=10), make_sender(env.app.bot))
    assert outcomes["cancelled"] == 1 and texts(env, 1003, "Overload") == []


async def test_quiet_hours_defer_to_their_end_in_the_users_zone(env: BotEnv, db: Database) -> None:
    # Last active 23:30 Berlin on Monday: idle at 23:30 Berlin on Thursday, inside 22:00-08:00.
    start = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)
    user = await new_user(env, db, 1004, at=start, timezone="Europe/Berlin")
    await tracking.block(db, user, "ibm", None, start)
    due = start + timedelta(hours=72)
    report = await scan(env, db, due)
    assert report.sent == 0 and report.deferred == 1
    assert (await scan(env, db, datetime(2026, 11, 6, 6, 59, tzinfo=UTC))).sent == 0
    assert (await scan(env, db, datetime(2026, 11, 6, 7, 0, tzinfo=UTC))).sent == 1  # 08:00 CET
    (row,) = await ledger(db, user)
    assert row["claimed_at"] == datetime(2026, 11, 6, 7, 0, tzinfo=UTC)


# --- brief and review across DST --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("zone", "at", "first_day", "dst_day", "dst_instant"),
    [
        # 02:30 does not exist in Berlin on 2026-03-29: it fires at 03:00 CEST (01:00 UTC).
        ("Europe/Berlin", time(2, 30), date(2026, 3, 27), date(2026, 3, 29), (1, 0)),
        # 02:30 happens twice in Berlin on 2026-10-25: it fires at the first (00:30 UTC).
        ("Europe/Berlin", time(2, 30), date(2026, 10, 23), date(2026, 10, 25), (0, 30)),
        # 02:30 does not exist in New York on 2026-03-08: 03:00 EDT (07:00 UTC).
        ("America/New_York", time(2, 30), date(2026, 3, 6), date(2026, 3, 8), (7, 0)),
        # 01:30 happens twice in New York on 2026-11-01: the first, 01:30 EDT (05:30 UTC).
        ("America/New_York", time(1, 30), date(2026, 10, 30), date(2026, 11, 1), (5, 30)),
    ],
)
async def test_brief_once_a_day_at_local_time_across_dst(
    env: BotEnv,
    db: Database,
    zone: str,
    at: time,
    first_day: date,
    dst_day: date,
    dst_instant: tuple[int, int],
) -> None:
    start = datetime.combine(first_day, time(12), UTC)
    tg = 1100 + first_day.month
    user = await new_user(
        env, db, tg, at=start, timezone=zone, brief_time=at, idle_after_hours=720
    )
    sent_at: dict[str, datetime] = {}
    moment = start
    while moment < start + timedelta(days=5):  # every 15 minutes of simulated time
        before = len(texts(env, tg, "Daily brief"))
        await scan(env, db, moment)
        if len(texts(env, tg, "Daily brief")) > before:
            (row,) = [r for r in await ledger(db, user, "brief") if r["sent_at"] == moment]
            sent_at[row["dedupe_key"]] = moment
        moment += timedelta(minutes=15)
    days = [first_day + timedelta(days=n) for n in range(1, 6)]
    assert sorted(sent_at) == [
        f"brief:{d.isoformat()}" for d in days
    ]  # none skipped, none doubled
    assert len(texts(env, tg, "Daily brief")) == 5
    assert sent_at[f"brief:{dst_day.isoformat()}"] == datetime.combine(
        dst_day, time(*dst_instant), UTC
    )
    tz = ZoneInfo(zone)
    for key, moment in sent_at.items():  # every other day: right at the local time
        local = moment.astimezone(tz)
        assert local.date().isoformat() == key.removeprefix("brief:")
        if local.date() != dst_day:
            assert local.time() == at


async def test_brief_missed_while_down_is_caught_up_once(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1201, brief_time=time(8), idle_after_hours=720)
    # Down from Tuesday 07:00 to Thursday 10:00 UTC: one brief on Thursday, none for Wednesday.
    assert (await scan(env, db, datetime(2026, 11, 3, 7, 0, tzinfo=UTC))).sent == 0
    assert (await scan(env, db, datetime(2026, 11, 5, 10, 0, tzinfo=UTC))).sent == 1
    assert (await scan(env, db, datetime(2026, 11, 5, 10, 15, tzinfo=UTC))).sent == 0
    assert [r["dedupe_key"] for r in await ledger(db, user, "brief")] == ["brief:2026-11-05"]
    brief = texts(env, 1201, "Daily brief")[0]
    assert "ibm" in brief and "cs" in brief and "overload risk 0%" in brief


async def test_weekly_review_and_its_shift_energy_button(wired: BotEnv, db: Database) -> None:
    env = wired
    user = await new_user(
        env,
        db,
        1202,
        timezone="Europe/Berlin",
        review_day=0,
        review_time=time(9),
        idle_after_hours=720,
        **NO_QUIET,
    )
    await tracking.log_time(db, user, "ibm", 300, "deep work", T0)
    await tracking.log_time(db, user, "cs", 60, "reading", T0)
    await tracking.reflect(db, user, "cs", "Passed the mock exam, 78%", T0)
    item = await nba.add_item(db, user, "ibm", 3, "Ship the report", T0)
    await nba.done(db, user, item.item.id, T0)
    monday = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert (await scan(env, db, monday - timedelta(minutes=15))).sent == 0
    assert (await scan(env, db, monday)).sent >= 1
    (review,) = env.emu.sent(1202)[-1:]
    text = review.plain_text
    assert "Weekly review" in text and "2026-W46" in text
    assert "ibm: 5 h · 83.3% of your time vs 50% planned" in text
    assert "1 NBA done: Ship the report" in text and "Passed the mock exam, 78%" in text
    assert "Furthest from plan: ibm, 33.3 points over" in text
    chat = env.chat(1202)
    await chat.press(review, "⚖ Shift energy 10 points to ibm")
    await env.emu.wait_idle()
    assert "Energy now ibm 60% · cs 40%" in chat.message(review.message_id).plain_text
    again = encode("nudge", "shift-energy", "ibm", 50)
    await chat.press_data(review.message_id, again)  # a double tap
    await env.emu.wait_idle()
    (metrics,) = await rows(db, "select energy_allocation_ibm from global_metrics")
    assert metrics["energy_allocation_ibm"] == 60
    assert (await scan(env, db, monday + timedelta(hours=1))).sent == 0  # once a week


# --- overload -------------------------------------------------------------------------------


async def test_overload_on_crossing_again_on_a_rise_of_ten_and_daily(
    env: BotEnv, db: Database
) -> None:
    user = await new_user(env, db, 1301, weekly_capacity_hours=10, **NO_QUIET)  # 600 min
    t = T0
    await tracking.log_time(db, user, "cs", 300, "a", t)  # 50%
    assert (await scan(env, db, t)).sent == 0
    t += timedelta(hours=1)
    await tracking.log_time(db, user, "cs", 200, "b", t)  # 83.33%: crosses 80
    assert (await scan(env, db, t)).sent == 1
    assert "Overload risk 83.33%" in texts(env, 1301, "Overload")[0]
    assert "8.3 h of your 10 h weekly capacity" in texts(env, 1301, "Overload")[0]
    for minutes in (10, 60):
        assert (await scan(env, db, t + timedelta(minutes=minutes))).sent == 0
    t += timedelta(hours=2)
    await tracking.log_time(db, user, "ibm", 30, "c", t)  # 88.33%: +5, no nudge
    assert (await scan(env, db, t)).sent == 0
    t += timedelta(hours=1)
    await tracking.log_time(db, user, "ibm", 40, "d", t)  # 95%: +11.67 since the last one
    assert (await scan(env, db, t)).sent == 1
    assert (await scan(env, db, t + timedelta(hours=23))).sent == 0
    assert (await scan(env, db, t + timedelta(hours=24))).sent == 1  # still high a day later
    keys = [r["dedupe_key"] for r in await ledger(db, user, "overload")]
    assert keys[0] == "overload:after:none" and len(keys) == 3 and len(set(keys)) == 3
    assert len(texts(env, 1301, "Overload risk")) == 3


# --- exactly once ---------------------------------------------------------------------------


async def test_two_scanners_at_the_same_moment_send_each_nudge_once(
    env: BotEnv, db: Database, database_dsn: str
) -> None:
    users = [await new_user(env, db, 1400 + n, **NO_QUIET) for n in range(6)]
    other = Database(database_dsn, max_size=6, name="second-instance")
    await other.open()
    try:
        send = make_sender(env.app.bot)
        a, b = await asyncio.gather(run_scan(db, IDLE, send), run_scan(other, IDLE, send))
    finally:
        await other.close()
    assert a.sent + b.sent == 12
    for n, user in enumerate(users):
        assert len(texts(env, 1400 + n, "has been idle")) == 2
        assert [r["status"] for r in await ledger(db, user)] == ["sent", "sent"]
    assert (await scan(env, db, IDLE + timedelta(minutes=1))).sent == 0


async def test_crash_between_claim_and_send_neither_loses_nor_doubles(
    env: BotEnv, db: Database
) -> None:
    user = await new_user(env, db, 1501, **NO_QUIET)
    claimed, _ = await claim_due(db, IDLE)  # ...and the process dies here
    assert len(claimed) == 2
    assert (await scan(env, db, IDLE + timedelta(minutes=1))).sent == 0  # leased, not doubled
    report = await scan(env, db, IDLE + LEASE + timedelta(minutes=1))
    assert report.retried == 2 and report.sent == 2
    assert (await scan(env, db, IDLE + timedelta(minutes=30))).sent == 0
    assert len(texts(env, 1501, "has been idle")) == 2
    assert [(r["status"], r["attempts"]) for r in await ledger(db, user)] == [("sent", 1)] * 2


async def test_the_ledger_holds_even_when_a_hint_points_back(env: BotEnv, db: Database) -> None:
    """Hints only make the scan cheap; the unique ledger key is what sends a nudge once."""
    user = await new_user(env, db, 1503, brief_time=time(8), idle_after_hours=720)
    brief_at = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    assert (await scan(env, db, brief_at)).sent == 1
    async with db.privileged() as uow:  # as if an old scan wrote a stale hint back
        await uow.execute(
            "update user_settings set brief_check_at = %s where user_id = %s", (brief_at, user)
        )
        await uow.commit()
    report = await scan(env, db, brief_at + timedelta(minutes=1))
    assert report.due == 1 and report.claimed == 0 and report.sent == 0
    assert len(texts(env, 1503, "Daily brief")) == 1


async def test_a_claim_that_cannot_be_prepared_ends_failed(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1504, **NO_QUIET)
    claimed, _ = await claim_due(db, IDLE)
    async with db.privileged() as uow:  # the account lost its settings meanwhile
        await uow.execute("delete from user_settings where user_id = %s", (user,))
        await uow.commit()
    outcomes = await deliver(db, claimed, IDLE, make_sender(env.app.bot))
    assert outcomes["failed"] == 2 and texts(env, 1504) == []
    assert {r["last_error"] for r in await ledger(db, user)} == {"account incomplete"}


async def test_dry_run_counts_without_claiming(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1502, **NO_QUIET)
    assert await due_count(db, IDLE) == 2
    assert await ledger(db, user) == [] and texts(env, 1502) == []
    assert (await scan(env, db, IDLE)).sent == 2


# --- send failures --------------------------------------------------------------------------


async def test_403_switches_the_link_off_and_stops_nudges(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1601, **NO_QUIET)
    await tracking.block(db, user, "ibm", None, T0)
    env.emu.block_user(1601, notify=False)
    report = await scan(env, db, IDLE)
    assert report.blocked == 1 and report.sent == 0
    (link,) = await rows(db, "select active from telegram_links where user_id = %s", user)
    assert link["active"] is False
    assert (await ledger(db, user))[0]["status"] == "failed"
    calls = sends_to(env, 1601)
    for days in (1, 2, 3):
        await scan(env, db, IDLE + timedelta(days=days))
    assert sends_to(env, 1601) == calls  # nothing tried while the link is off

    # The user unblocks the bot and writes again: nudges resume.
    env.emu.unblock_user(1601, notify=False)
    env.clock.set(IDLE + timedelta(days=3, hours=1))
    await env.chat(1601).send("/nba cs")
    (link,) = await rows(db, "select active from telegram_links where user_id = %s", user)
    assert link["active"] is True
    await scan(env, db, IDLE + timedelta(days=5))
    assert len(texts(env, 1601, "cs has been idle")) == 1


async def test_my_chat_member_block_and_unblock_switch_the_link(
    wired: BotEnv, db: Database
) -> None:
    env = wired
    user = await new_user(env, db, 1602)
    env.emu.block_user(1602)
    await env.emu.wait_idle()
    (link,) = await rows(db, "select active from telegram_links where user_id = %s", user)
    assert link["active"] is False
    env.emu.unblock_user(1602)
    await env.emu.wait_idle()
    (link,) = await rows(db, "select active from telegram_links where user_id = %s", user)
    assert link["active"] is True


@pytest.mark.slow
async def test_429_is_retried_and_passing_failures_are_bounded(env: BotEnv, db: Database) -> None:
    user = await new_user(env, db, 1603, **NO_QUIET)
    await tracking.block(db, user, "ibm", None, T0)
    # One 429: PTB's rate limiter waits retry_after and sends within the same scan.
    env.emu.fail_next("sendMessage", status=429, retry_after=1)
    assert (await scan(env, db, IDLE)).sent == 1
    # 429 beyond the limiter's own retries: the nudge stays claimed for a later scan.
    env.emu.fail_next("sendMessage", status=429, retry_after=1, times=4)
    report = await scan(env, db, IDLE + timedelta(hours=24))
    assert report.retry_later == 1 and report.sent == 0
    (row,) = [r for r in await ledger(db, user) if r["status"] == "claimed"]
    assert row["attempts"] == 1 and "RetryAfter" in row["last_error"]  # kept for operators
    assert (await scan(env, db, IDLE + timedelta(hours=24, seconds=30))).retried == 0
    report = await scan(env, db, IDLE + timedelta(hours=24, minutes=2))
    assert report.retried == 1 and report.sent == 1
    assert len(texts(env, 1603, "cs has been idle")) == 2

    # A passing failure every time: retried by each later scan, given up after MAX_ATTEMPTS.
    # (A 5xx is first retried inside the send by the app's rate limiter, then lands here.)
    async def network_down(chat_id: int, nudge: Nudge) -> None:
        raise SendFailed(False, "NetworkError: Bad Gateway")

    t = IDLE + timedelta(hours=48)
    for _ in range(MAX_ATTEMPTS + 2):
        await run_scan(db, t, network_down)
        t += timedelta(minutes=2)
    third = [r for r in await ledger(db, user) if r["dedupe_key"].endswith(":3")]
    assert third[0]["status"] == "failed" and third[0]["attempts"] == MAX_ATTEMPTS
    assert (await scan(env, db, t + timedelta(days=1))).sent == 0  # given up for good
    assert len(texts(env, 1603, "cs has been idle")) == 2


# --- buttons --------------------------------------------------------------------------------


async def test_idle_nudge_buttons_log_once_snooze_and_block(wired: BotEnv, db: Database) -> None:
    env = wired
    user = await new_user(env, db, 1701, **NO_QUIET)
    added = await nba.add_item(db, user, "cs", 4, "Read SICP chapter 3", T0)
    await scan(env, db, IDLE)
    chat = env.chat(1701)
    ibm, cs = sorted(env.emu.sent(1701), key=lambda m: not m.plain_text.startswith("🔴 ibm"))
    data = cs.callback_data("▶ Log 25 min")
    await chat.press(cs, "▶ Log 25 min")
    await env.emu.wait_idle()
    assert "Logged 25 min on “Read SICP chapter 3”" in chat.message(cs.message_id).plain_text
    await chat.press_data(cs.message_id, data)  # double tap on the old keyboard
    await env.emu.wait_idle()
    logs = await rows(db, "select duration, arm_type from execution_logs where user_id = %s", user)
    assert logs == [{"duration": 25, "arm_type": "cs"}]
    (item,) = await rows(
        db, "select has_early_progress_bonus from nba_items where id = %s", added.item.id
    )
    assert item["has_early_progress_bonus"] is True

    env.clock.set(IDLE + timedelta(minutes=5))
    await chat.press(ibm, "💤 Snooze 1 day")
    await env.emu.wait_idle()
    assert "No idle reminders for ibm until" in chat.message(ibm.message_id).plain_text
    (theater,) = await rows(
        db, "select snoozed_until from theaters where user_id = %s and arm_type = 'ibm'", user
    )
    assert theater["snoozed_until"] == IDLE + timedelta(minutes=5, days=1)
    await chat.press_data(ibm.message_id, ibm.callback_data("⛔ Block"))
    await env.emu.wait_idle()
    (theater,) = await rows(
        db, "select status from theaters where user_id = %s and arm_type = 'ibm'", user
    )
    assert theater["status"] == "blocked"
    assert (await scan(env, db, IDLE + timedelta(days=2))).sent == 0  # cs active, ibm blocked


async def test_overload_buttons_snooze_and_adjust_capacity(wired: BotEnv, db: Database) -> None:
    env = wired
    user = await new_user(env, db, 1702, weekly_capacity_hours=10, **NO_QUIET)
    await tracking.log_time(db, user, "cs", 540, "sprint", T0)  # 90%
    await scan(env, db, T0)
    (nudge,) = env.emu.sent(1702)
    chat = env.chat(1702)
    await chat.press(nudge, "⏱ Adjust capacity")
    await env.emu.wait_idle()
    choices = chat.message(nudge.message_id)
    assert "Your weekly capacity is 10 h" in choices.plain_text
    await chat.press(choices, "45 h")
    await env.emu.wait_idle()
    assert "Weekly capacity set to 45 h" in chat.message(nudge.message_id).plain_text
    assert "Overload risk now 20%" in chat.message(nudge.message_id).plain_text
    settings_now = await get_settings(db, user)
    assert settings_now.weekly_capacity_hours == 45

    # Back to 10 h (90%), then snooze: a rise of 10 points during the snooze stays quiet.
    await set_capacity(db, user, 10, T0)
    await chat.press_data(nudge.message_id, encode("nudge", "snooze-overload"))
    await env.emu.wait_idle()
    snoozed = (await get_settings(db, user)).overload_snoozed_until
    assert snoozed == T0 + timedelta(days=1)
    await tracking.log_time(db, user, "cs", 60, "more", T0 + timedelta(hours=1))  # 100%
    assert (await scan(env, db, T0 + timedelta(hours=1))).sent == 0
    assert (await scan(env, db, T0 + timedelta(hours=23))).sent == 0
    assert (await scan(env, db, T0 + timedelta(hours=24, minutes=1))).sent == 1
    assert "Overload risk 100%" in texts(env, 1702, "Overload risk")[-1]


async def test_forged_callback_with_another_users_item_changes_nothing(
    wired: BotEnv, db: Database
) -> None:
    env = wired
    alice = await new_user(env, db, 1801, **NO_QUIET)
    bob = await new_user(env, db, 1802, **NO_QUIET)
    bobs = await nba.add_item(db, bob, "cs", 4, "Bob's secret plan", T0)
    await scan(env, db, IDLE)
    mine = texts(env, 1801)
    assert len(mine) == 2
    own = env.emu.sent(1801)[0]
    chat = env.chat(1801)
    await chat.press_data(own.message_id, encode("nudge", "log", "cs", bobs.item.id))
    await env.emu.wait_idle()
    # Another user's item reads as deleted: nothing about it is told.
    assert env.emu.callback_answers[-1].text == "That item was deleted."
    for user in (alice, bob):
        assert await rows(db, "select 1 from execution_logs where user_id = %s", user) == []
    (item,) = await rows(db, "select has_early_progress_bonus, last_updated from nba_items")
    assert item["has_early_progress_bonus"] is False and item["last_updated"] == T0
    assert "Bob's secret plan" not in chat.message(own.message_id).plain_text


# --- settings -------------------------------------------------------------------------------


async def test_settings_menu_and_typed_values_are_stored(wired: BotEnv, db: Database) -> None:
    env = wired
    user = await new_user(env, db, 1901)
    env.clock.set(T0)
    chat = env.chat(1901)
    (menu,) = await chat.send("/settings")
    assert "Time zone: UTC" in menu.plain_text and "Daily brief: off" in menu.plain_text

    await chat.press(menu, "☀️ Daily brief")
    await env.emu.wait_idle()
    await chat.press(chat.message(menu.message_id), "08:00")
    await env.emu.wait_idle()
    assert "Daily brief at 08:00" in chat.message(menu.message_id).plain_text

    await chat.press(chat.message(menu.message_id), "🌍 Time zone")
    await env.emu.wait_idle()
    (wrong,) = await chat.send("Mars/Olympus")
    assert (
        "Unknown time zone 'Mars/Olympus'" in wrong.plain_text and "Try again" in wrong.plain_text
    )
    (saved,) = await chat.send("europe/berlin")
    assert "Time zone set to Europe/Berlin" in saved.plain_text

    await chat.press(saved, "📅 Weekly review")
    await env.emu.wait_idle()
    await chat.press(chat.message(saved.message_id), "Sun")
    await env.emu.wait_idle()
    (typed,) = await chat.send("18:30")
    assert "Weekly review on Sunday at 18:30" in typed.plain_text

    (quiet,) = await chat.send("/settings quiet 23:00-07:00")
    assert "Quiet hours: 23:00–07:00" in quiet.plain_text
    (bad,) = await chat.send("/settings idle 0")
    assert "Idle threshold must be between 1 and 720 hours (got 0)" in bad.plain_text
    (bad_time,) = await chat.send("/settings brief 25:00")
    assert "Time must be a time like 7, 7am, 07:30, 19:30 or 7:30 pm (got '25:00')" in (
        bad_time.plain_text
    )

    stored = await get_settings(db, user)
    assert (stored.timezone, stored.brief_time) == ("Europe/Berlin", time(8))
    assert (stored.review_day, stored.review_time) == (6, time(18, 30))
    assert (stored.quiet_start, stored.quiet_end) == (time(23), time(7))
    assert stored.idle_after_hours == 72
    # The brief is scheduled for the next 08:00 in Berlin.
    (hint,) = await rows(db, "select brief_check_at from user_settings where user_id = %s", user)
    assert hint["brief_check_at"] == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)


# --- the job ----------------------------------------------------------------------------------


async def test_scheduled_scan_job(env: BotEnv, db: Database) -> None:
    await new_user(env, db, 2001, **NO_QUIET)
    schedule_jobs(env.app, 60)
    schedule_jobs(env.app, 60)  # scheduling again replaces, never doubles
    assert env.app.job_queue is not None
    (job,) = env.app.job_queue.get_jobs_by_name(SCAN_JOB_NAME)
    assert (job.job.max_instances, job.job.coalesce, job.job.misfire_grace_time) == (1, True, 60)
    job.schedule_removal()
    env.clock.set(IDLE)
    await nudge_scan_job(CallbackContext(env.app))
    assert len(texts(env, 2001, "has been idle")) == 2
