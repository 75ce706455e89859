"""Unit tests for the pure rules of SPEC §3 (services.rules, services.models); no database."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.errors import OutOfRange
from services.models import (
    ExecutionLog,
    GlobalMetrics,
    NbaItem,
    Reflection,
    Theater,
    UserSettings,
)
from services.rules import (
    Overload,
    ScoreExplanation,
    choose_current,
    combined_progress,
    done_action,
    energy_split,
    explain_score,
    format_number,
    minute_shares,
    overload,
    progress_bar,
    rank,
    risk_trend,
    score,
    stale_days,
    theater_status,
    undo_allowed,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
USER = UUID("00000000-0000-4000-8000-000000000001")


def make_item(**changes: Any) -> NbaItem:
    """An open cs item of USER created and updated at NOW, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "id": uuid4(),
        "user_id": USER,
        "arm_type": "cs",
        "title": "Read SICP chapter 3",
        "description": None,
        "stale_days": Decimal("0.0"),
        "gap": 0,
        "has_early_progress_bonus": False,
        "is_manually_selected": False,
        "is_locked": False,
        "is_current": False,
        "created_at": NOW,
        "last_updated": NOW,
        "completed_at": None,
    }
    fields.update(changes)
    return NbaItem(**fields)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# --- stale days -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), Decimal("0.0")),
        (timedelta(days=6), Decimal("6.0")),
        (timedelta(days=6, hours=1), Decimal("6.0")),  # 6.04 d
        (timedelta(days=6, hours=1, minutes=12), Decimal("6.1")),  # exactly 6.05 d: half up
        (timedelta(hours=2), Decimal("0.1")),  # 0.083 d
        (timedelta(days=20), Decimal("20.0")),
    ],
)
def test_stale_days_one_decimal_half_up(delta: timedelta, expected: Decimal) -> None:
    result = stale_days(NOW - delta, NOW)
    assert result == expected
    assert result.as_tuple().exponent == -1


def test_stale_days_never_negative_for_future_updates() -> None:
    assert stale_days(NOW + timedelta(days=3), NOW) == Decimal("0.0")


def test_stale_days_clamped_to_the_column_range() -> None:
    assert stale_days(NOW - timedelta(days=50_000), NOW) == Decimal("9999.9")


@given(st.timedeltas(min_value=timedelta(days=-1000), max_value=timedelta(days=20_000)))
def test_stale_days_is_non_negative_with_one_decimal(delta: timedelta) -> None:
    result = stale_days(NOW - delta, NOW)
    assert Decimal(0) <= result <= Decimal("9999.9")
    assert result.as_tuple().exponent == -1


# --- score ----------------------------------------------------------------------------------


def test_score_spec_example_gap_4_stale_6_with_bonus_is_67() -> None:
    assert score(4, Decimal("6.0"), True) == 67


def test_score_caps_stale_at_15_days() -> None:
    assert score(0, Decimal("15.0"), False) == 30
    assert score(0, Decimal("20.0"), False) == 30
    assert score(0, Decimal("14.9"), False) == Decimal("29.8")


def test_score_extremes_are_0_and_95() -> None:
    assert score(0, Decimal(0), False) == 0
    assert score(5, Decimal(100), True) == 95


def test_score_counts_negative_stale_as_zero() -> None:
    assert score(1, Decimal(-3), False) == 10


@pytest.mark.parametrize("gap", [-1, 6])
def test_score_rejects_gap_outside_0_to_5(gap: int) -> None:
    with pytest.raises(ValueError, match="gap"):
        score(gap, Decimal(0), False)


@given(
    st.integers(min_value=0, max_value=5),
    st.decimals(min_value=-100, max_value=100_000, places=1, allow_nan=False),
    st.booleans(),
)
def test_score_always_within_0_and_95(gap: int, stale: Decimal, bonus: bool) -> None:
    assert Decimal(0) <= score(gap, stale, bonus) <= Decimal(95)


# --- explanation ----------------------------------------------------------------------------


def test_explain_score_spec_example_exactly() -> None:
    parts = ScoreExplanation(gap=4, stale_days=Decimal("6.0"), early_bonus=True)
    assert explain_score(parts) == "gap 4 (+40) · stale 6.0 d (+12) · early progress (+15) = 67"
    assert str(parts) == explain_score(parts)
    assert parts.total == 67


def test_explain_score_omits_early_part_without_bonus() -> None:
    parts = ScoreExplanation(4, Decimal("6.0"), False)
    assert explain_score(parts) == "gap 4 (+40) · stale 6.0 d (+12) = 52"


def test_explain_score_keeps_fractional_points() -> None:
    parts = ScoreExplanation(2, Decimal("6.3"), False)
    assert explain_score(parts) == "gap 2 (+20) · stale 6.3 d (+12.6) = 32.6"


def test_explain_score_shows_the_cap() -> None:
    parts = ScoreExplanation(2, Decimal("20.0"), False)
    assert explain_score(parts) == "gap 2 (+20) · stale 20.0 d (+30, capped at 15 d) = 50"


def test_explain_score_not_capped_at_exactly_15_days() -> None:
    parts = ScoreExplanation(0, Decimal("15.0"), False)
    assert explain_score(parts) == "gap 0 (+0) · stale 15.0 d (+30) = 30"


def test_explain_score_shows_stale_with_one_decimal_even_when_whole() -> None:
    assert "stale 7.0 d (+14)" in explain_score(ScoreExplanation(0, Decimal(7), False))


def test_explain_score_of_item_uses_now_or_stored_stale() -> None:
    item = make_item(
        gap=4, has_early_progress_bonus=True, last_updated=days_ago(6), stale_days=Decimal("2.0")
    )
    assert (
        explain_score(item, NOW) == "gap 4 (+40) · stale 6.0 d (+12) · early progress (+15) = 67"
    )
    assert explain_score(item) == "gap 4 (+40) · stale 2.0 d (+4) · early progress (+15) = 59"


@given(
    st.integers(min_value=0, max_value=5),
    st.decimals(min_value=0, max_value=9999, places=1, allow_nan=False),
    st.booleans(),
)
def test_explanation_total_equals_score(gap: int, stale: Decimal, bonus: bool) -> None:
    text = explain_score(ScoreExplanation(gap, stale, bonus))
    assert text.endswith(f"= {format_number(score(gap, stale, bonus))}")


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("12.0"), "12"), (Decimal("12.6"), "12.6"), (Decimal("12.50"), "12.5"),
     (Decimal("100"), "100"), (Decimal("1E+2"), "100"), (7, "7"), (Decimal("0.00"), "0")],
)  # fmt: skip
def test_format_number_drops_trailing_zeros(value: Decimal | int, text: str) -> None:
    assert format_number(value) == text


# --- current item ---------------------------------------------------------------------------


def test_no_items_means_no_current() -> None:
    assert choose_current([], NOW) is None


def test_only_completed_items_means_no_current() -> None:
    done = make_item(gap=5, completed_at=NOW)
    assert choose_current([done], NOW) is None
    assert rank([done], NOW) == []


def test_highest_score_is_current() -> None:
    low = make_item(gap=1)
    high = make_item(gap=3)
    assert choose_current([low, high], NOW) == high.id


def test_stale_days_from_now_count_not_the_stored_value() -> None:
    fresh_high_stored = make_item(gap=2, stale_days=Decimal("15.0"), last_updated=NOW)
    old = make_item(gap=2, stale_days=Decimal("0.0"), last_updated=days_ago(5))
    assert choose_current([fresh_high_stored, old], NOW) == old.id


def test_early_progress_bonus_counts() -> None:
    plain = make_item(gap=2)  # 20
    bonus = make_item(gap=1, has_early_progress_bonus=True)  # 25
    assert choose_current([plain, bonus], NOW) == bonus.id


def test_completed_item_is_never_current_even_if_locked() -> None:
    done_locked = make_item(gap=5, is_locked=True, completed_at=NOW)
    open_item = make_item(gap=0)
    assert choose_current([done_locked, open_item], NOW) == open_item.id


def test_locked_item_beats_manual_and_score() -> None:
    locked = make_item(gap=0, is_locked=True)
    manual = make_item(gap=5, is_manually_selected=True)
    best = make_item(gap=5, has_early_progress_bonus=True)
    assert choose_current([manual, best, locked], NOW) == locked.id


def test_manual_item_beats_score() -> None:
    manual = make_item(gap=0, is_manually_selected=True)
    best = make_item(gap=5)
    assert choose_current([best, manual], NOW) == manual.id


def test_score_tie_goes_to_earliest_created_at() -> None:
    newer = make_item(gap=3, created_at=NOW - timedelta(days=1))
    older = make_item(gap=3, created_at=NOW - timedelta(days=2))
    assert choose_current([newer, older], NOW) == older.id


def test_full_tie_goes_to_smallest_id_by_uuid_order() -> None:
    small = make_item(gap=3, id=UUID("0fffffff-0000-4000-8000-000000000000"))
    large = make_item(gap=3, id=UUID("f0000000-0000-4000-8000-000000000000"))
    assert choose_current([large, small], NOW) == small.id
    # UUID order is the canonical string order (and Postgres's uuid order).
    assert str(small.id) < str(large.id)


def test_choose_current_refuses_items_of_two_theaters() -> None:
    with pytest.raises(ValueError, match="one theater"):
        choose_current([make_item(arm_type="cs"), make_item(arm_type="ibm")], NOW)


def test_rank_puts_current_first_then_by_score() -> None:
    manual = make_item(gap=0, is_manually_selected=True, title="manual")
    high = make_item(gap=4, title="high")
    mid = make_item(gap=2, title="mid")
    done = make_item(gap=5, completed_at=NOW, title="done")
    ranked = rank([mid, done, high, manual], NOW)
    assert [entry.item.title for entry in ranked] == ["manual", "high", "mid"]
    assert [entry.is_current for entry in ranked] == [True, False, False]
    assert [entry.score for entry in ranked] == [0, 40, 20]


def test_rank_entries_carry_fresh_stale_and_explanation() -> None:
    item = make_item(gap=4, has_early_progress_bonus=True, last_updated=days_ago(6))
    (entry,) = rank([item], NOW)
    assert entry.stale_days == Decimal("6.0")
    assert entry.score == 67
    assert entry.explanation == "gap 4 (+40) · stale 6.0 d (+12) · early progress (+15) = 67"
    assert entry.is_current


# Hypothesis: items of one theater with random flags, scores and dates.
item_strategy = st.builds(
    make_item,
    id=st.uuids(),
    gap=st.integers(min_value=0, max_value=5),
    has_early_progress_bonus=st.booleans(),
    is_manually_selected=st.booleans(),
    is_locked=st.just(False),
    created_at=st.integers(min_value=0, max_value=30).map(days_ago),
    last_updated=st.integers(min_value=0, max_value=40 * 24).map(
        lambda hours: NOW - timedelta(hours=hours)
    ),
    completed_at=st.one_of(st.none(), st.just(NOW)),
)
items_strategy = st.lists(item_strategy, max_size=8, unique_by=lambda item: item.id)


@given(items_strategy)
def test_choose_current_returns_one_open_id_iff_an_open_item_exists(
    items: list[NbaItem],
) -> None:
    open_ids = {item.id for item in items if item.completed_at is None}
    current = choose_current(items, NOW)
    if open_ids:
        assert current in open_ids
    else:
        assert current is None


@given(items_strategy, st.data())
def test_open_locked_item_is_always_current(items: list[NbaItem], data: st.DataObject) -> None:
    assume(items)
    index = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    items[index] = replace(items[index], is_locked=True, completed_at=None)
    assert choose_current(items, NOW) == items[index].id


@given(items_strategy, st.randoms(use_true_random=False))
def test_choose_current_does_not_depend_on_input_order(
    items: list[NbaItem], rnd: random.Random
) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert choose_current(shuffled, NOW) == choose_current(items, NOW)


@given(items_strategy)
def test_without_flags_current_has_the_top_score(items: list[NbaItem]) -> None:
    items = [replace(item, is_manually_selected=False) for item in items]
    open_items = [item for item in items if item.completed_at is None]
    assume(open_items)

    def fresh(item: NbaItem) -> Decimal:
        return score(item.gap, stale_days(item.last_updated, NOW), item.has_early_progress_bonus)

    current = next(item for item in open_items if item.id == choose_current(items, NOW))
    assert fresh(current) == max(fresh(item) for item in open_items)
    tied = [item for item in open_items if fresh(item) == fresh(current)]
    assert current == min(tied, key=lambda item: (item.created_at, item.id))


@given(items_strategy)
def test_rank_lists_every_open_item_once_with_current_first(items: list[NbaItem]) -> None:
    ranked = rank(items, NOW)
    open_ids = sorted(item.id for item in items if item.completed_at is None)
    assert sorted(entry.item.id for entry in ranked) == open_ids
    assert sum(entry.is_current for entry in ranked) == (1 if open_ids else 0)
    if ranked:
        assert ranked[0].item.id == choose_current(items, NOW)
        rest = [entry.score for entry in ranked[1:]]
        assert rest == sorted(rest, reverse=True)


# --- done and undo --------------------------------------------------------------------------


def test_done_action_prefixes_title() -> None:
    assert done_action("Read SICP chapter 3") == "Done: Read SICP chapter 3"


def test_done_action_stays_within_the_action_limit() -> None:
    action = done_action("x" * 200)
    assert len(action) == 200
    assert action.startswith("Done: x")
    assert action.endswith("…")


def test_undo_allowed_only_under_24_hours() -> None:
    assert undo_allowed(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not undo_allowed(NOW - timedelta(hours=24), NOW)


# --- theater status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "status"),
    [(0, "active"), (23.9, "active"), (24, "warm"), (71.9, "warm"), (72, "idle"), (500, "idle")],
)
def test_theater_status_by_hours_since_activity(hours: float, status: str) -> None:
    assert theater_status(NOW - timedelta(hours=hours), NOW) == status


def test_blocked_wins_over_activity() -> None:
    assert theater_status(NOW, NOW, blocked=True) == "blocked"
    assert theater_status(days_ago(10), NOW, blocked=True) == "blocked"


def test_custom_idle_threshold() -> None:
    assert theater_status(NOW - timedelta(hours=47.9), NOW, idle_after_hours=48) == "warm"
    assert theater_status(NOW - timedelta(hours=48), NOW, idle_after_hours=48) == "idle"


@pytest.mark.parametrize("idle_after", [1, 12, 24])
def test_idle_threshold_at_or_below_24_h_skips_warm(idle_after: int) -> None:
    assert theater_status(NOW - timedelta(hours=23.9), NOW, idle_after_hours=idle_after) == (
        "active"
    )
    assert theater_status(NOW - timedelta(hours=24), NOW, idle_after_hours=idle_after) == "idle"


def test_future_activity_counts_as_active() -> None:
    assert theater_status(NOW + timedelta(hours=1), NOW) == "active"


# --- progress and energy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ibm", "cs", "expected"),
    [
        ("40", "60", "50.00"),
        ("0", "0", "0.00"),
        ("100", "100", "100.00"),
        ("33.33", "33.34", "33.34"),  # 33.335 rounds half up
        ("10.01", "10.00", "10.01"),  # 10.005 rounds half up
    ],
)
def test_combined_progress_is_the_mean_with_two_decimals(ibm: str, cs: str, expected: str) -> None:
    result = combined_progress(Decimal(ibm), Decimal(cs))
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == -2


@given(
    st.decimals(min_value=0, max_value=100, places=2),
    st.decimals(min_value=0, max_value=100, places=2),
)
def test_combined_progress_within_0_and_100(ibm: Decimal, cs: Decimal) -> None:
    assert Decimal(0) <= combined_progress(ibm, cs) <= Decimal(100)


def test_energy_split_examples() -> None:
    assert energy_split(60) == (60, 40)
    assert energy_split(0) == (0, 100)
    assert energy_split(100) == (100, 0)


@pytest.mark.parametrize("value", [-1, 101])
def test_energy_split_rejects_outside_0_to_100(value: int) -> None:
    with pytest.raises(OutOfRange, match="Energy must be between 0 and 100"):
        energy_split(value)


@given(st.integers(min_value=0, max_value=100))
def test_energy_always_sums_to_100(value: int) -> None:
    ibm, cs = energy_split(value)
    assert ibm == value
    assert ibm + cs == 100
    assert 0 <= cs <= 100


# --- overload -------------------------------------------------------------------------------


def test_overload_spec_example() -> None:
    result = overload(1890, 40)  # 31.5 h
    assert result.describe() == "31.5 h of your 40 h weekly capacity in the last 7 days"
    assert result.hours_logged == Decimal("31.5")
    assert result.load == Decimal("0.7875")
    assert result.risk == Decimal("78.75")


def test_overload_risk_caps_at_100() -> None:
    result = overload(60 * 50, 40)
    assert result.risk == Decimal("100.00")
    assert result.load == Decimal("1.25")
    assert result.describe() == "50.0 h of your 40 h weekly capacity in the last 7 days"


def test_overload_rounds_risk_to_two_decimals() -> None:
    result = overload(1, 40)  # 1 / 2400 = 0.0417 %
    assert result.risk == Decimal("0.04")
    assert result.risk.as_tuple().exponent == -2
    assert result.hours_logged == Decimal("0.0")


def test_overload_with_no_minutes_is_zero() -> None:
    assert overload(0, 40) == Overload(0, 40, Decimal(0), Decimal("0.00"), Decimal("0.0"))


@pytest.mark.parametrize(("minutes", "capacity"), [(-1, 40), (10, 0)])
def test_overload_rejects_bad_inputs(minutes: int, capacity: int) -> None:
    with pytest.raises(ValueError):
        overload(minutes, capacity)


@given(st.integers(min_value=0, max_value=7 * 24 * 60 * 10), st.integers(1, 168))
def test_risk_always_within_0_and_100(minutes: int, capacity: int) -> None:
    risk = overload(minutes, capacity).risk
    assert Decimal(0) <= risk <= Decimal(100)


# --- minute shares, trend, bar --------------------------------------------------------------


def test_minute_shares_percentages_with_one_decimal() -> None:
    assert minute_shares({"ibm": 90, "cs": 30}) == {"ibm": Decimal("75.0"), "cs": Decimal("25.0")}
    assert minute_shares({"ibm": 1, "cs": 2}) == {"ibm": Decimal("33.3"), "cs": Decimal("66.7")}


def test_minute_shares_missing_theater_counts_as_zero() -> None:
    assert minute_shares({"cs": 45}) == {"ibm": Decimal("0.0"), "cs": Decimal("100.0")}


def test_minute_shares_with_no_minutes_are_both_zero() -> None:
    assert minute_shares({"ibm": 0, "cs": 0}) == {"ibm": Decimal("0.0"), "cs": Decimal("0.0")}
    assert minute_shares({}) == {"ibm": Decimal("0.0"), "cs": Decimal("0.0")}


def test_minute_shares_reject_negative_minutes() -> None:
    with pytest.raises(ValueError):
        minute_shares({"ibm": -1, "cs": 5})


@given(st.integers(min_value=0, max_value=100_000), st.integers(min_value=0, max_value=100_000))
def test_minute_shares_sum_to_100_when_anything_was_logged(ibm: int, cs: int) -> None:
    assume(ibm + cs > 0)
    shares = minute_shares({"ibm": ibm, "cs": cs})
    assert shares["ibm"] + shares["cs"] == Decimal(100)
    assert all(Decimal(0) <= share <= Decimal(100) for share in shares.values())


@pytest.mark.parametrize(
    ("current", "day_ago", "text"),
    [
        ("80.50", "68.00", "↑ 12.5 points in 24 h"),
        ("10", "13", "↓ 3 points in 24 h"),
        ("50.00", "50", "unchanged in 24 h"),
        ("51", "50", "↑ 1 point in 24 h"),
        ("12.25", "12.5", "↓ 0.25 points in 24 h"),
    ],
)
def test_risk_trend(current: str, day_ago: str, text: str) -> None:
    assert risk_trend(Decimal(current), Decimal(day_ago)) == text


def test_risk_trend_without_history() -> None:
    assert risk_trend(Decimal(40), None) == "no data 24 h ago"


@pytest.mark.parametrize(
    ("pct", "bar"),
    [
        ("40", "▓▓▓▓░░░░░░ 40%"),
        ("40.00", "▓▓▓▓░░░░░░ 40%"),
        ("0", "░░░░░░░░░░ 0%"),
        ("100", "▓▓▓▓▓▓▓▓▓▓ 100%"),
        ("42.5", "▓▓▓▓░░░░░░ 42.5%"),
        ("45", "▓▓▓▓▓░░░░░ 45%"),  # half up
        ("1", "▓░░░░░░░░░ 1%"),  # some progress shows
        ("99", "▓▓▓▓▓▓▓▓▓░ 99%"),  # not full before 100
    ],
)
def test_progress_bar(pct: str, bar: str) -> None:
    assert progress_bar(Decimal(pct)) == bar


def test_progress_bar_width() -> None:
    assert progress_bar(Decimal(50), width=4) == "▓▓░░ 50%"


@given(st.decimals(min_value=-10, max_value=110, places=2), st.integers(2, 30))
def test_progress_bar_has_width_cells(pct: Decimal, width: int) -> None:
    cells = progress_bar(pct, width).split(" ")[0]
    assert len(cells) == width
    assert set(cells) <= {"▓", "░"}


# --- DTOs from rows -------------------------------------------------------------------------


def test_models_build_from_rows_and_ignore_unknown_columns() -> None:
    theater_row = {
        "id": uuid4(),
        "user_id": USER,
        "arm_type": "ibm",
        "status": "warm",
        "total_progress": Decimal("40.00"),
        "energy_allocation": 60,
        "last_activity": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "snoozed_until": None,
        "blocked_reason": None,
    }
    theater = Theater.from_row(theater_row)
    assert theater.arm_type == "ibm"
    assert theater.total_progress == Decimal("40.00")

    item = make_item()
    assert NbaItem.from_row({**{f: getattr(item, f) for f in item.__slots__}, "x": 1}) == item

    log_id = uuid4()
    log = ExecutionLog.from_row(
        {"id": log_id, "user_id": USER, "arm_type": "cs", "action": "read", "details": None,
         "duration": 45, "timestamp": NOW}
    )  # fmt: skip
    assert log.duration == 45
    reflection = Reflection.from_row(
        {"id": uuid4(), "user_id": USER, "arm_type": "cs", "evidence": "PR #12 merged",
         "context": None, "timestamp": NOW}
    )  # fmt: skip
    assert reflection.evidence == "PR #12 merged"
    metrics = GlobalMetrics.from_row(
        {"id": uuid4(), "user_id": USER, "combined_progress": Decimal("50.00"),
         "energy_allocation_ibm": 50, "energy_allocation_cs": 50,
         "overload_risk": Decimal("0.00"), "last_sync_time": NOW, "last_computed": NOW}
    )  # fmt: skip
    assert metrics.energy_allocation_ibm + metrics.energy_allocation_cs == 100
    settings = UserSettings.from_row(
        {"user_id": USER, "timezone": "UTC", "quiet_start": time(22), "quiet_end": time(8),
         "brief_time": None, "review_day": None, "review_time": None, "idle_after_hours": 72,
         "overload_threshold": 80, "weekly_capacity_hours": 40,
         "overload_snoozed_until": None}
    )  # fmt: skip
    assert settings.quiet_start == time(22)


def test_model_from_row_missing_column_is_an_error() -> None:
    with pytest.raises(TypeError):
        Theater.from_row({"user_id": USER, "arm_type": "cs"})


def test_models_are_frozen() -> None:
    item = make_item()
    with pytest.raises(AttributeError):
        item.gap = 3  # type: ignore[misc]
    assert item.is_open
    assert not replace(item, completed_at=NOW).is_open
