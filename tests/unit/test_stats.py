"""/stats' 14 local days across daylight saving time, its caption and chart, and the clock
times /settings takes: pure functions, no database (read from the database:
tests/integration/test_stats_and_preferences.py; /stats end to end: tests/e2e/test_data.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.local_api import image_size
from handlers.stats import render_chart
from services import rules, stats, validation
from services.errors import InvalidSetting

BERLIN = ZoneInfo("Europe/Berlin")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def log(at: datetime, arm: str, minutes: int) -> stats.LoggedMinutes:
    return stats.LoggedMinutes(at, arm, minutes)  # type: ignore[arg-type]


# --- the 14-day series, across the end of daylight saving time ---------------------------

# Europe/Berlin leaves summer time on Sunday 2026-10-25 at 03:00 CEST (01:00 UTC): that local
# day lasts 25 hours, from 2026-10-24 22:00 UTC to 2026-10-25 23:00 UTC.
DST_NOW = datetime(2026, 10, 30, 12, 0, tzinfo=BERLIN)
DST_LOGS = [
    # 00:30 CEST on the 25th is still the 24th in UTC: it belongs to the 25th.
    log(utc(2026, 10, 24, 22, 30), "cs", 30),
    # 02:30 happens twice on the 25th; the second one (CET) is 01:30 UTC.
    log(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), "ibm", 60),
    # 23:30 CET on the 25th (22:30 UTC): still the 25th, the 25th hour of that day.
    log(datetime(2026, 10, 25, 23, 30, tzinfo=BERLIN), "cs", 45),
    # 00:15 CET on the 26th is the 25th in UTC: it belongs to the 26th.
    log(utc(2026, 10, 25, 23, 15), "ibm", 20),
    # Before the 14 days (they start on 2026-10-17): only the risk windows count these.
    log(utc(2026, 10, 11, 12, 0), "ibm", 600),
    # 2026-10-19 00:30 CEST = 2026-10-18 22:30 UTC: 168.5 h before the 25th ends, so outside
    # its trailing 7 × 24 h (a window of 7 local days would have counted it).
    log(utc(2026, 10, 18, 22, 30), "ibm", 100),
    # After now: ignored.
    log(utc(2026, 10, 30, 18, 0), "cs", 500),
]


def test_series_has_14_local_days_ending_today() -> None:
    series = stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    assert len(series) == 14
    assert series[0].day.isoformat() == "2026-10-17"
    assert series[-1].day.isoformat() == "2026-10-30"
    assert series[-1].is_today and not any(d.is_today for d in series[:-1])
    assert [d.hours for d in series if d.hours != 24] == [25]


def test_logs_belong_to_their_local_day_across_the_dst_change() -> None:
    by_day = {
        d.day.isoformat(): dict(d.minutes)
        for d in stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    }
    assert by_day["2026-10-24"] == {"ibm": 0, "cs": 0}
    assert by_day["2026-10-25"] == {"ibm": 60, "cs": 75}
    assert by_day["2026-10-26"] == {"ibm": 20, "cs": 0}
    assert by_day["2026-10-19"] == {"ibm": 100, "cs": 0}
    assert by_day["2026-10-30"] == {"ibm": 0, "cs": 0}  # the future log is not counted
    assert sum(sum(m.values()) for m in by_day.values()) == 255


def test_risk_is_computed_at_the_end_of_each_local_day() -> None:
    series = {
        d.day.isoformat(): d for d in stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    }
    day = series["2026-10-25"]
    assert day.start == utc(2026, 10, 24, 22, 0)
    assert day.risk_at == utc(2026, 10, 25, 23, 0)  # the next local midnight, 25 h later
    # (2026-10-18 23:00, 2026-10-25 23:00] UTC holds 30 + 60 + 45 minutes: the 100 minutes
    # half an hour before the window and the 20 minutes after its end do not count.
    assert day.risk == rules.overload(135, 10).risk == Decimal("22.50")
    # The 600 minutes of 2026-10-11 12:00 UTC count for the 17th (ends 10-17 22:00 UTC),
    # not for the 18th (ends 10-18 22:00 UTC, 7 days and 10 hours later).
    assert series["2026-10-18"].risk == Decimal("0.00")
    assert series["2026-10-17"].risk == rules.overload(600, 10).risk == Decimal("100.00")
    # Today is not over: its risk is the one at now, as /status shows it.
    today = series["2026-10-30"]
    assert today.risk_at == DST_NOW.astimezone(UTC)
    assert today.risk == rules.overload(30 + 60 + 45 + 20, 10).risk == Decimal("25.83")


def test_spring_forward_day_is_23_hours_and_keeps_its_late_log() -> None:
    # 2026-03-29: clocks jump from 02:00 to 03:00 CET -> CEST.
    now = datetime(2026, 4, 1, 9, 0, tzinfo=BERLIN)
    late = datetime(2026, 3, 29, 23, 30, tzinfo=BERLIN)  # 21:30 UTC
    series = {
        d.day.isoformat(): d
        for d in stats.daily_series([log(late, "cs", 40)], now, "Europe/Berlin", 40)
    }
    assert series["2026-03-29"].hours == 23
    assert series["2026-03-29"].minutes["cs"] == 40
    assert series["2026-03-30"].minutes["cs"] == 0


def test_the_caption_sums_hours_per_theater() -> None:
    series = stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    view = stats.StatsView(series, "Europe/Berlin", 10, 80, {"ibm": 60, "cs": 40}, DST_NOW)
    assert view.totals == {"ibm": 180, "cs": 75}
    assert view.caption() == "Last 14 days: ibm 3 h · cs 1.3 h · risk 26% now"


def test_chart_is_a_phone_sized_png() -> None:
    series = stats.daily_series(DST_LOGS, DST_NOW, "Europe/Berlin", 10)
    view = stats.StatsView(series, "Europe/Berlin", 10, 80, {"ibm": 60, "cs": 40}, DST_NOW)
    png = render_chart(view)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 20_000
    assert image_size(png) == (1200, 800)


# --- clock times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07:30", time(7, 30)),
        ("7:05", time(7, 5)),
        ("0730", time(7, 30)),
        ("9", time(9, 0)),
        ("21.15", time(21, 15)),
        (" 23:59 ", time(23, 59)),
    ],
)
def test_parse_time_of_day(text: str, expected: time) -> None:
    assert validation.parse_clock(text) == expected


@pytest.mark.parametrize("text", ["24:00", "7:5", "13pm", "", "12:60"])
def test_parse_time_of_day_refuses(text: str) -> None:
    with pytest.raises(
        InvalidSetting, match="must be a time like 7, 7am, 07:30, 19:30 or 7:30 pm"
    ):
        validation.parse_clock(text)
