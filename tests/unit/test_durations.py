"""Durations and clock times typed the way people type them."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.durations import NotAClockTime, NotADuration, parse_clock, parse_minutes


@pytest.mark.parametrize(
    "text",
    ["90", "90m", "90 m", "90min", "90 mins", "90 minutes", "1h30", "1h 30m", "1h30m",
     "1 h 30 min", "1.5h", "1,5h", "1.5 hours", "1:30", " 1H30 ", "1 hr 30", "01:30"],
)  # fmt: skip
def test_ninety_minutes_every_way(text: str) -> None:
    assert parse_minutes(text) == 90


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("2h", 120), ("45", 45), ("0.25h", 15), ("1.33h", 80), ("10:05", 605), ("1h 5", 65)],
)
def test_other_durations(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize(
    "text",
    ["", "abc", "-5", "1h30h", "h", "m", "1.5h 10m", "1:75", "ninety", "1 30", "5 days", "1.5"],
)
def test_what_is_not_a_duration_says_which_forms_work(text: str) -> None:
    with pytest.raises(NotADuration) as info:
        parse_minutes(text)
    message = info.value.user_message
    assert message.startswith("Minutes must be a duration like 90, 90m, 1h30")
    assert "1:30" in message


@given(st.integers(0, 2000))
def test_every_whole_minute_count_reads_back_in_three_forms(total: int) -> None:
    h, m = divmod(total, 60)
    assert parse_minutes(str(total)) == total
    assert parse_minutes(f"{h}:{m:02d}") == total
    assert parse_minutes(f"{h}h{m}m") == total


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", time(7)), ("7am", time(7)), ("7 AM", time(7)), ("07:30", time(7, 30)),
     ("7:30", time(7, 30)), ("7.30", time(7, 30)), ("0730", time(7, 30)),
     ("19:30", time(19, 30)), ("7:30 pm", time(19, 30)), ("7:30pm", time(19, 30)),
     ("7 p.m.", time(19)), ("12am", time(0)), ("12pm", time(12)), ("noon", time(12)),
     ("midnight", time(0)), ("0", time(0)), ("23:59", time(23, 59)), ("8h00", time(8))],
)  # fmt: skip
def test_clock_times(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize("text", ["24:00", "13pm", "0am", "7:60", "seven", "", "7:3", "12345"])
def test_what_is_not_a_clock_time_says_which_forms_work(text: str) -> None:
    with pytest.raises(NotAClockTime) as info:
        parse_clock(text, "brief time")
    assert info.value.user_message.startswith("Brief time must be a time like 7, 7am, 07:30")
