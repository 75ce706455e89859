"""/stats' series read from the database in the user's time zone, and preferences written
with their validation and the risk they change: services on PostgreSQL (the series' rules:
tests/unit/test_stats.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services import accounts, preferences, stats
from services.db import Database
from services.errors import InvalidSetting, InvalidTimezone, OutOfRange
from tests.unit.test_stats import DST_LOGS, DST_NOW, utc


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def insert_log(db: Database, user: UUID, arm: str, minutes: int, at: datetime) -> None:
    async with db.privileged() as uow:
        await uow.execute(
            "insert into execution_logs (user_id, arm_type, action, duration, timestamp)"
            " values (%s, %s, 'work', %s, %s)",
            (user, arm, minutes, at),
        )
        await uow.commit()


async def test_stats_view_reads_the_users_logs_in_their_time_zone(
    db: Database, alice: UUID, bob: UUID
) -> None:
    start = utc(2026, 10, 1)
    for user in (alice, bob):
        await accounts.ensure_account(db, user, start)
    await preferences.update_preferences(
        db, alice, now=start, timezone="Europe/Berlin", weekly_capacity_hours=10
    )
    for entry in DST_LOGS:
        await insert_log(db, alice, entry.arm, entry.minutes, entry.timestamp)
    await insert_log(db, bob, "cs", 900, utc(2026, 10, 25, 12, 0))  # never Alice's

    view = await stats.stats_view(db, alice, DST_NOW)

    expected = stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    assert view.days == expected
    assert view.timezone == "Europe/Berlin" and view.capacity_hours == 10
    assert view.energy == {"ibm": 50, "cs": 50}
    day = next(d for d in view.days if d.day.isoformat() == "2026-10-25")
    assert dict(day.minutes) == {"ibm": 60, "cs": 75} and day.risk == Decimal("22.50")


# --- preferences ------------------------------------------------------------------------------


async def test_update_preferences_validates_each_value(db: Database, alice: UUID) -> None:
    now = utc(2026, 10, 1)
    await accounts.ensure_account(db, alice, now)
    with pytest.raises(InvalidTimezone):
        await preferences.update_preferences(db, alice, now=now, timezone="Mars/Olympus")
    with pytest.raises(OutOfRange, match="between 1 and 168 hours"):
        await preferences.update_preferences(db, alice, now=now, weekly_capacity_hours=200)
    with pytest.raises(InvalidSetting, match="Quiet hours need both"):
        await preferences.update_preferences(db, alice, now=now, quiet_start=None)
    for name in ("user_id", "overload_snoozed_until"):
        with pytest.raises(ValueError, match="not a nudge setting"):
            await preferences.update_preferences(db, alice, now=now, **{name: None})
    fresh = await preferences.update_preferences(
        db, alice, now=now, timezone="asia/kolkata", brief_time="8:00", review_day=6,
        review_time="18:30",
    )  # fmt: skip
    assert (fresh.timezone, fresh.brief_time, fresh.review_day, fresh.review_time) == (
        "Asia/Kolkata", time(8), 6, time(18, 30),
    )  # fmt: skip


async def test_new_capacity_recomputes_the_risk(db: Database, alice: UUID) -> None:
    now = utc(2026, 10, 1, 12)
    await accounts.ensure_account(db, alice, now)
    await insert_log(db, alice, "cs", 600, now - timedelta(hours=1))
    await preferences.update_preferences(db, alice, now=now, weekly_capacity_hours=20)
    (metrics,) = await rows(db, "select overload_risk from global_metrics")
    assert metrics["overload_risk"] == Decimal("50.00")
