"""A log that would make one theater's local day longer than 16 hours needs a confirmation.

Through the services, on the real database: the day is the user's local calendar day (their
time zone, boundaries at local midnight), one theater at a time, and nothing is written
until the user confirms; the outbox's replay (the user can't be asked then) always saves.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services import accounts, nba, sync, tracking
from services.db import Database, TelegramUser
from services.errors import DomainError, Implausible, NotFound
from services.nudges.settings import update_settings
from services.outbox import Outbox
from services.tracking import LogTime
from tests.harness import data_api

#: 09:00 in Berlin (UTC+1 in November): the local day began at 2026-11-01 23:00 UTC.
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"


async def new_user(db: Database, tg: int = 3001, timezone: str = ZONE) -> uuid.UUID:
    user_id, created = await accounts.create_local_account(db, tg, tg, "Test", T0)
    assert created
    await update_settings(db, user_id, now=T0, timezone=timezone)
    return user_id


async def logs(db: Database) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        found = await uow.fetchall(
            "select arm_type, action, duration from execution_logs order by timestamp, id"
        )
    return [dict(r) for r in found]


async def state_rows(db: Database) -> list[dict[str, Any]]:
    """What a log changes besides the log itself: the theaters' state and the risk."""
    async with db.privileged() as uow:
        found = await uow.fetchall(
            "select t.arm_type, t.status, t.last_activity, t.updated_at, g.overload_risk,"
            " g.last_computed from theaters t join global_metrics g using (user_id)"
            " order by t.arm_type"
        )
    return [dict(r) for r in found]


async def test_fifteen_hours_and_one_more_is_saved(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "long study", T0)
    result = await tracking.log_time(db, user, "cs", 60, "one more", T0 + timedelta(hours=1))
    assert result.log.duration == 60 and not result.duplicate  # exactly 16 h: plausible
    assert [r["duration"] for r in await logs(db)] == [900, 60]


async def test_over_sixteen_hours_asks_and_writes_nothing(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "long study", T0)
    before_logs, before_state = await logs(db), await state_rows(db)

    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "cs", 120, "two more", T0 + timedelta(hours=1))

    error = raised.value
    assert isinstance(error, DomainError)
    assert (error.arm, error.day_minutes, error.minutes) == ("cs", 1020, 120)
    assert error.user_message == (
        "That would make 17 h logged in cs today (over 16 h). Save it anyway?"
    )
    assert await logs(db) == before_logs
    assert await state_rows(db) == before_state


async def test_message_names_hours_and_minutes(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 900, "long day", T0)
    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "ibm", 150, "more", T0 + timedelta(minutes=5))
    assert raised.value.user_message == (
        "That would make 17 h 30 min logged in ibm today (over 16 h). Save it anyway?"
    )


async def test_confirmed_saves_it(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "long study", T0)
    later = T0 + timedelta(hours=1)
    result = await tracking.log_time(db, user, "cs", 120, "two more", later, confirmed=True)
    assert result.log.duration == 120 and result.log.timestamp == later
    assert [r["duration"] for r in await logs(db)] == [900, 120]
    # Once confirmed, the next log that day asks again: the day is still over 16 h.
    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "cs", 10, "and more", later + timedelta(minutes=1))
    assert raised.value.day_minutes == 1030


async def test_the_previous_local_day_does_not_count(db: Database) -> None:
    user = await new_user(db)  # Berlin, UTC+1: local midnight is 23:00 UTC
    midnight = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    await tracking.log_time(db, user, "cs", 900, "yesterday", midnight - timedelta(minutes=1))
    # Two minutes later it is the next local day (but still the same day in UTC).
    result = await tracking.log_time(db, user, "cs", 120, "today", midnight + timedelta(minutes=1))
    assert result.log.duration == 120
    # A log at local 23:59 counts towards the day that ends at local midnight.
    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "cs", 120, "late", midnight - timedelta(seconds=30))
    assert raised.value.day_minutes == 1020
    assert [r["action"] for r in await logs(db)] == ["yesterday", "today"]


async def test_the_day_is_the_users_not_utc(db: Database) -> None:
    user = await new_user(db, timezone="America/New_York")  # UTC-5 in November
    # 20:00 and 23:30 on Nov 2 in New York: Nov 3 in UTC, yet the same local day.
    evening = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
    await tracking.log_time(db, user, "ibm", 900, "long day", evening - timedelta(hours=5))
    with pytest.raises(Implausible):
        await tracking.log_time(db, user, "ibm", 90, "night", evening + timedelta(hours=3.5))
    # 00:30 on Nov 3 in New York: a new local day.
    result = await tracking.log_time(db, user, "ibm", 90, "night", evening + timedelta(hours=4.5))
    assert result.log.duration == 90


async def test_the_other_theater_does_not_count(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 900, "work", T0)
    result = await tracking.log_time(db, user, "cs", 900, "study", T0 + timedelta(hours=1))
    assert result.log.arm_type == "cs"
    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "ibm", 61, "more work", T0 + timedelta(hours=2))
    assert (raised.value.arm, raised.value.day_minutes) == ("ibm", 961)


async def test_logs_without_minutes_are_not_asked_about(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 1000, "marathon", T0, confirmed=True)
    result = await tracking.log_time(db, user, "cs", None, "a note", T0 + timedelta(hours=1))
    assert result.log.duration is None


async def test_a_repeated_key_returns_the_earlier_log(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "long study", T0)
    at = T0 + timedelta(hours=1)
    first = await tracking.log_time(db, user, "cs", 60, "tap", at, dedupe_key="upd:1")
    # The same update again (a double tap, a redelivery): 16 h + 1 h counted twice would be
    # over the limit, but it was recorded already, so the earlier log comes back.
    again = await tracking.log_time(db, user, "cs", 60, "tap", at, dedupe_key="upd:1")
    assert again.duplicate and again.log == first.log
    assert [r["duration"] for r in await logs(db)] == [900, 60]
    # A new key over the limit still asks.
    with pytest.raises(Implausible):
        await tracking.log_time(db, user, "cs", 60, "tap", at, dedupe_key="upd:2")


async def test_perform_forwards_the_confirmation(db: Database) -> None:
    user = await new_user(db)
    who = TelegramUser(3001)
    await tracking.log_time(db, user, "cs", 900, "long study", T0)
    at = T0 + timedelta(hours=1)
    log = LogTime(arm="cs", minutes=120, action="more")
    with pytest.raises(Implausible):
        await sync.perform(db, None, who, 3001, log, at)
    result = await sync.perform(db, None, who, 3001, replace(log, confirmed=True), at)
    assert not isinstance(result, sync.Queued) and result.log.duration == 120


async def test_replay_saves_without_asking(db: Database, tmp_path: Path) -> None:
    await new_user(db)
    await tracking.log_time(db, TelegramUser(3001), "cs", 900, "long study", T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        kept = sync.payload(LogTime(arm="cs", minutes=120, action="offline"))
        when = T0 + timedelta(hours=1)
        entry = await outbox.add(3001, 3001, "INSERT", "execution_logs", kept, when)
        report = await sync.replay(db, outbox)
        assert [e.id for e in report.synced] == [entry] and report.parked == []
    finally:
        outbox.close()
    assert [(r["action"], r["duration"]) for r in await logs(db)] == [
        ("long study", 900),
        ("offline", 120),
    ]


# --- the other ways a log gets minutes: progress and done on an item, minutes after a Done ---


async def item_rows(db: Database) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        found = await uow.fetchall(
            "select title, has_early_progress_bonus, completed_at, last_updated from nba_items"
            " order by created_at, id"
        )
    return [dict(r) for r in found]


async def test_progress_over_sixteen_hours_asks_and_writes_nothing(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 900, "long day", T0)
    added = await nba.add_item(db, user, "ibm", 3, "Task", T0)
    before = (await logs(db), await state_rows(db), await item_rows(db))
    at = T0 + timedelta(hours=1)

    with pytest.raises(Implausible) as raised:
        await nba.progress(db, user, added.item.id, 90, at, dedupe_key="cb:1")
    assert (raised.value.arm, raised.value.day_minutes, raised.value.minutes) == ("ibm", 990, 90)
    assert (await logs(db), await state_rows(db), await item_rows(db)) == before

    result = await nba.progress(db, user, added.item.id, 90, at, dedupe_key="cb:1", confirmed=True)
    assert result.log is not None and result.log.duration == 90 and not result.duplicate
    # The same press again (unconfirmed, as the first one was): the earlier log comes back.
    again = await nba.progress(db, user, added.item.id, 90, at, dedupe_key="cb:1")
    assert again.duplicate and again.log == result.log
    assert [r["duration"] for r in await logs(db)] == [900, 90]


async def test_progress_up_to_sixteen_hours_and_other_theaters_are_not_asked(
    db: Database,
) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "study", T0)
    await tracking.log_time(db, user, "ibm", 900, "work", T0)
    added = await nba.add_item(db, user, "ibm", 3, "Task", T0)
    result = await nba.progress(db, user, added.item.id, 60, T0 + timedelta(hours=1))
    assert result.log is not None and result.log.duration == 60  # exactly 16 h in ibm
    other = await nba.add_item(db, user, "cs", 3, "Read", T0)
    done = await nba.done(db, user, other.item.id, T0 + timedelta(hours=2), minutes=60)
    assert done.log is not None and done.log.duration == 60  # cs: its own 16 h


async def test_done_with_minutes_over_sixteen_hours_asks(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "cs", 900, "study", T0)
    added = await nba.add_item(db, user, "cs", 3, "Read", T0)
    before = (await logs(db), await item_rows(db))
    at = T0 + timedelta(hours=1)
    with pytest.raises(Implausible) as raised:
        await nba.done(db, user, added.item.id, at, minutes=61, dedupe_key="cb:2")
    assert raised.value.day_minutes == 961
    assert (await logs(db), await item_rows(db)) == before  # still open, nothing logged
    # Done without minutes is never asked about.
    done = await nba.done(db, user, added.item.id, at, dedupe_key="cb:2")
    assert done.log is not None and done.log.duration is None
    # A repeat of the press finds the item done: the earlier log, nothing asked.
    again = await nba.done(db, user, added.item.id, at, minutes=61, dedupe_key="cb:2")
    assert again.duplicate and again.log == done.log


async def test_minutes_after_done_count_the_logs_day(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 900, "long day", T0)
    added = await nba.add_item(db, user, "ibm", 3, "Task", T0)
    done = await nba.done(db, user, added.item.id, T0 + timedelta(hours=1))
    assert done.log is not None
    before = (await logs(db), await state_rows(db))

    with pytest.raises(Implausible) as raised:
        await tracking.set_log_minutes(db, user, done.log.id, 90, T0 + timedelta(hours=2))
    assert (raised.value.arm, raised.value.day_minutes) == ("ibm", 990)
    assert (await logs(db), await state_rows(db)) == before

    # Its own earlier minutes are replaced, not added: 60 are plausible, then 61 are not.
    later = T0 + timedelta(hours=2)
    assert (await tracking.set_log_minutes(db, user, done.log.id, 60, later)).log.duration == 60
    assert (await tracking.set_log_minutes(db, user, done.log.id, 30, later)).log.duration == 30
    with pytest.raises(Implausible):
        await tracking.set_log_minutes(db, user, done.log.id, 61, later)
    result = await tracking.set_log_minutes(db, user, done.log.id, 90, later, confirmed=True)
    assert result.log.duration == 90
    assert [r["duration"] for r in await logs(db)] == [900, 90]


async def test_minutes_after_done_the_next_day_count_the_day_of_the_log(db: Database) -> None:
    user = await new_user(db)  # Berlin: local midnight is 23:00 UTC
    midnight = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    added = await nba.add_item(db, user, "cs", 3, "Read", T0)
    done = await nba.done(db, user, added.item.id, midnight - timedelta(minutes=5))
    assert done.log is not None
    # 15 h logged just after midnight: the next local day, not the Done's.
    await tracking.log_time(db, user, "cs", 900, "next day", midnight + timedelta(minutes=1))
    result = await tracking.set_log_minutes(
        db, user, done.log.id, 120, midnight + timedelta(minutes=2)
    )
    assert result.log.duration == 120


async def test_minutes_for_a_log_that_is_gone(db: Database) -> None:
    user = await new_user(db)
    with pytest.raises(NotFound):
        await tracking.set_log_minutes(db, user, uuid.uuid4(), 30, T0)


#: A zone name the database takes (a POSIX spec: 12 hours west of UTC) but the bot does not
#: know, written through the Data API: the day is then the UTC day, as the rules read it.
POSIX_ZONE = "UTC+12"


async def test_a_zone_only_the_database_knows_counts_the_utc_day(
    db: Database, database_dsn: str
) -> None:
    user = await new_user(db)
    assert await data_api(
        database_dsn, user, f"update user_settings set timezone = '{POSIX_ZONE}'"
    )
    assert tracking.local_day(T0, POSIX_ZONE)[0] == datetime(2026, 11, 2, tzinfo=UTC)
    # 20:00 UTC on Nov 1 and 08:00 UTC on Nov 2: one day 12 hours west of UTC, two in UTC.
    await tracking.log_time(db, user, "cs", 600, "evening", T0 - timedelta(hours=12))
    result = await tracking.log_time(db, user, "cs", 600, "morning", T0)
    assert result.log.duration == 600
    # 01:00 and 13:00 UTC on Nov 2: one day in UTC (but two 12 hours west of UTC).
    await tracking.log_time(db, user, "ibm", 600, "night", T0 - timedelta(hours=7))
    with pytest.raises(Implausible) as raised:
        await tracking.log_time(db, user, "ibm", 600, "afternoon", T0 + timedelta(hours=5))
    assert raised.value.day_minutes == 1200
    assert [r["action"] for r in await logs(db)] == ["evening", "night", "morning"]
