"""The nudges' local-time rules as properties, and the overload message: pure functions
(services/nudges/localtime.py, handlers/nudges.py); the scan and delivery through the
running bot: tests/e2e/test_nudges.py."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.nudges.localtime import in_quiet, next_daily, quiet_end
from services.nudges.messages import OverloadNudge

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
)
def test_daily_occurrences_come_once_per_local_day(zone: str, at: time, start: datetime) -> None:
    tz = ZoneInfo(zone)
    moment = start.replace(tzinfo=UTC)
    seen: list[date] = []
    for _ in range(60):
        moment = next_daily(moment, at, tz)
        local = moment.astimezone(tz)
        seen.append(local.date())
        if local.time() != at:  # only where the clock jumps over `at`, at that very instant
            before = (moment - timedelta(seconds=1)).astimezone(tz)
            assert before.time() < at < local.time()
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(seen))


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
)
def test_quiet_hours_end_is_the_first_moment_outside_them(
    zone: str, start: time, end: time, now: datetime
) -> None:
    tz = ZoneInfo(zone)
    moment = now.replace(tzinfo=UTC)
    over = quiet_end(moment, tz, start, end)
    assert over >= moment and not in_quiet(over, tz, start, end)
    if over > moment:
        assert in_quiet(over - timedelta(minutes=1), tz, start, end)
        assert over - moment <= timedelta(hours=25)


def test_overload_message_shows_hours_against_capacity() -> None:
    from handlers.nudges import render_overload
    from services import rules

    n = OverloadNudge(uuid.uuid4(), uuid.uuid4(), rules.overload(2130, 40), 80)
    text = render_overload(n)
    assert text.startswith("⚠️ Overload risk <b>88.75%</b>, at or over your 80% threshold.")
    assert "35.5 h of your 40 h weekly capacity in the last 7 days" in text
    assert n.overload.hours_logged == Decimal("35.5")
