"""Unit tests for services.validation and the messages of services.errors (no database)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.errors import (
    Conflict,
    DomainError,
    Empty,
    ForbiddenCharacter,
    InvalidTheater,
    InvalidTimezone,
    NotANumber,
    NotFound,
    NothingToUndo,
    NotLinked,
    OutOfRange,
    TooLong,
)
from services.linking import clean_code, clean_email
from services.models import ARMS, parse_arm
from services.validation import (
    check_capacity_hours,
    check_energy,
    check_gap,
    check_hours,
    check_minutes,
    check_progress,
    check_threshold,
    check_timezone,
    clean_action,
    clean_block_reason,
    clean_context,
    clean_description,
    clean_details,
    clean_evidence,
    clean_title,
    parse_decimal,
    parse_int,
)

# --- error messages -------------------------------------------------------------------------


def test_error_messages_name_field_range_and_limit() -> None:
    assert OutOfRange("gap", 7, 0, 5).user_message == "Gap must be between 0 and 5 (got 7)."
    assert (
        TooLong("title", 200, 250).user_message
        == "Title is too long: 250 characters, the limit is 200."
    )
    assert Empty("title").user_message == "Title can't be empty."
    assert InvalidTheater("xyz").user_message == "Unknown theater 'xyz': use ibm or cs."
    assert NotFound().user_message == "That item no longer exists."
    assert (
        NotANumber("minutes", "abc").user_message == "Minutes must be a whole number (got 'abc')."
    )
    conflict = Conflict("Another item is locked in cs: unlock it first.")
    assert conflict.user_message == "Another item is locked in cs: unlock it first."
    assert NothingToUndo("no logs yet.").user_message == "Nothing to undo: no logs yet."
    assert "/start" in NotLinked().user_message


def test_errors_carry_their_fields_and_are_domain_errors() -> None:
    error = OutOfRange("minutes", 0, 1, 1440)
    assert (error.field, error.value, error.low, error.high) == ("minutes", 0, 1, 1440)
    assert isinstance(error, DomainError)
    assert str(error) == error.user_message


def test_out_of_range_unit_and_decimal_formatting() -> None:
    assert (
        OutOfRange("idle threshold", 0, 1, 720, "hours").user_message
        == "Idle threshold must be between 1 and 720 hours (got 0)."
    )
    assert (
        OutOfRange("progress", Decimal("100.50"), 0, 100, "%").user_message
        == "Progress must be between 0 and 100% (got 100.5)."
    )


def test_quoted_user_input_is_shortened_to_one_line() -> None:
    message = InvalidTheater("a\nb" + "x" * 100).user_message
    assert "\n" not in message
    assert "…" in message
    assert len(message) < 80


def test_empty_theater_asks_for_one() -> None:
    assert InvalidTheater("  ").user_message == "Choose a theater: ibm or cs."


def test_not_a_number_for_decimals_and_empty_text() -> None:
    assert (
        NotANumber("progress", "x", whole=False).user_message
        == "Progress must be a number (got 'x')."
    )
    assert (
        NotANumber("minutes", "").user_message == "Minutes must be a whole number (got nothing)."
    )


# --- theaters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "arm"), [("ibm", "ibm"), ("CS", "cs"), ("  Ibm ", "ibm"), ("cs\n", "cs")]
)
def test_parse_arm_is_case_insensitive_and_trims(text: str, arm: str) -> None:
    assert parse_arm(text) == arm


@pytest.mark.parametrize("text", ["xyz", "", "ib m", "c", "ibmcs", "'cs'"])
def test_parse_arm_rejects_other_names(text: str) -> None:
    with pytest.raises(InvalidTheater) as info:
        parse_arm(text)
    assert "ibm or cs" in info.value.user_message


def test_arms_are_ibm_then_cs() -> None:
    assert ARMS == ("ibm", "cs")


# --- text fields ----------------------------------------------------------------------------

REQUIRED_TEXT: list[tuple[Callable[[str], str], str, int]] = [
    (clean_title, "Title", 200),
    (clean_action, "Action", 200),
    (clean_evidence, "Evidence", 2000),
]
OPTIONAL_TEXT: list[tuple[Callable[[str | None], str | None], str, int]] = [
    (clean_description, "Description", 1000),
    (clean_details, "Details", 2000),
    (clean_context, "Context", 2000),
]


@pytest.mark.parametrize(("clean", "label", "limit"), REQUIRED_TEXT)
def test_required_text_accepts_one_and_limit_characters(
    clean: Callable[[str], str], label: str, limit: int
) -> None:
    assert clean("a") == "a"
    assert clean("b" * limit) == "b" * limit


@pytest.mark.parametrize(("clean", "label", "limit"), REQUIRED_TEXT)
def test_required_text_rejects_one_past_the_limit(
    clean: Callable[[str], str], label: str, limit: int
) -> None:
    with pytest.raises(TooLong) as info:
        clean("b" * (limit + 1))
    assert info.value.user_message == (
        f"{label} is too long: {limit + 1} characters, the limit is {limit}."
    )


@pytest.mark.parametrize(("clean", "label", "limit"), REQUIRED_TEXT)
@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_required_text_rejects_blank(
    clean: Callable[[str], str], label: str, limit: int, blank: str
) -> None:
    with pytest.raises(Empty) as info:
        clean(blank)
    assert info.value.user_message == f"{label} can't be empty."


@pytest.mark.parametrize(("clean", "label", "limit"), REQUIRED_TEXT)
def test_required_text_counts_length_after_trimming(
    clean: Callable[[str], str], label: str, limit: int
) -> None:
    assert clean("  " + "c" * limit + "\n") == "c" * limit


@pytest.mark.parametrize(("clean", "label", "limit"), OPTIONAL_TEXT)
def test_optional_text_boundaries(
    clean: Callable[[str | None], str | None], label: str, limit: int
) -> None:
    assert clean(None) is None
    assert clean("") is None
    assert clean("   ") is None
    assert clean(" x ") == "x"
    assert clean("d" * limit) == "d" * limit
    with pytest.raises(TooLong) as info:
        clean("d" * (limit + 1))
    assert info.value.user_message == (
        f"{label} is too long: {limit + 1} characters, the limit is {limit}."
    )


def test_length_counts_code_points_not_bytes() -> None:
    emoji = "🚀" * 200  # 800 bytes in UTF-8, 200 characters
    assert clean_title(emoji) == emoji
    with pytest.raises(TooLong):
        clean_title(emoji + "é")


@given(st.text(max_size=300))
def test_clean_title_result_is_trimmed_and_within_limits(text: str) -> None:
    try:
        title = clean_title(text)
    except ForbiddenCharacter:
        assert "\x00" in text
    except (Empty, TooLong):
        stripped = text.strip()
        assert not stripped or len(stripped) > 200
    else:
        assert "\x00" not in title
        assert title == text.strip()
        assert 1 <= len(title) <= 200


# --- integer ranges -------------------------------------------------------------------------

INT_CHECKS: list[tuple[Callable[[int], int], str, int, int]] = [
    (check_gap, "Gap", 0, 5),
    (check_minutes, "Minutes", 1, 1440),
    (check_energy, "Energy", 0, 100),
    (check_hours, "Idle threshold", 1, 720),
    (check_threshold, "Overload threshold", 1, 100),
    (check_capacity_hours, "Weekly capacity", 1, 168),
]


@pytest.mark.parametrize(("check", "label", "low", "high"), INT_CHECKS)
def test_int_check_accepts_both_boundaries(
    check: Callable[[int], int], label: str, low: int, high: int
) -> None:
    assert check(low) == low
    assert check(high) == high


@pytest.mark.parametrize(("check", "label", "low", "high"), INT_CHECKS)
@pytest.mark.parametrize("side", ["below", "above"])
def test_int_check_rejects_one_past_each_boundary(
    check: Callable[[int], int], label: str, low: int, high: int, side: str
) -> None:
    value = low - 1 if side == "below" else high + 1
    with pytest.raises(OutOfRange) as info:
        check(value)
    message = info.value.user_message
    assert message.startswith(f"{label} must be between {low} and {high}")
    assert message.endswith(f"(got {value}).")


def test_gap_message_matches_spec_example() -> None:
    with pytest.raises(OutOfRange) as info:
        check_gap(7)
    assert info.value.user_message == "Gap must be between 0 and 5 (got 7)."


# --- progress -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Decimal("0.00")),
        (100, Decimal("100.00")),
        (Decimal("42.5"), Decimal("42.50")),
        (Decimal("33.335"), Decimal("33.34")),
        (Decimal("33.345"), Decimal("33.35")),
        (0.1, Decimal("0.10")),
        (99.999, Decimal("100.00")),
    ],
)
def test_check_progress_normalises_to_two_decimals(value: Any, expected: Decimal) -> None:
    result = check_progress(value)
    assert result == expected
    assert result.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "value", [-1, 101, Decimal("-0.01"), Decimal("100.01"), 100.001, Decimal("NaN"), float("inf")]
)
def test_check_progress_rejects_outside_0_to_100(value: Any) -> None:
    with pytest.raises(OutOfRange) as info:
        check_progress(value)
    assert info.value.user_message.startswith("Progress must be between 0 and 100%")


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("45", 45), (" 45 ", 45), ("+3", 3), ("-1", -1), ("0", 0)]
)
def test_parse_int_accepts_ascii_whole_numbers(text: str, expected: int) -> None:
    assert parse_int(text, "minutes") == expected


@pytest.mark.parametrize("text", ["abc", "", " ", "4.5", "1e3", "1_000", "٣", "45min", "--1"])
def test_parse_int_rejects_non_numbers_with_field_in_message(text: str) -> None:
    with pytest.raises(NotANumber) as info:
        parse_int(text, "minutes")
    assert info.value.user_message.startswith("Minutes must be a whole number")


def test_parse_int_message_matches_spec_example() -> None:
    with pytest.raises(NotANumber) as info:
        parse_int("abc", "minutes")
    assert info.value.user_message == "Minutes must be a whole number (got 'abc')."


def test_parse_int_percent_sign_only_when_allowed() -> None:
    assert parse_int("60%", "energy", percent=True) == 60
    assert parse_int("60 %", "energy", percent=True) == 60
    with pytest.raises(NotANumber):
        parse_int("60%", "energy")


def test_parse_int_then_check_gives_the_range_for_out_of_range_numbers() -> None:
    with pytest.raises(OutOfRange):
        check_minutes(parse_int("-5", "minutes"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", Decimal(42)),
        ("42.5", Decimal("42.5")),
        ("42,5", Decimal("42.5")),
        (".5", Decimal("0.5")),
    ],
)
def test_parse_decimal_accepts_point_or_comma(text: str, expected: Decimal) -> None:
    assert parse_decimal(text, "progress") == expected


@pytest.mark.parametrize("text", ["abc", "", "1.2.3", "NaN", "inf", "1e2", ","])
def test_parse_decimal_rejects_non_numbers(text: str) -> None:
    with pytest.raises(NotANumber) as info:
        parse_decimal(text, "progress")
    assert info.value.user_message.startswith("Progress must be a number")


def test_parse_decimal_percent() -> None:
    assert parse_decimal("42.5%", "progress", percent=True) == Decimal("42.5")


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_parse_int_round_trips_integers(value: int) -> None:
    assert parse_int(str(value), "minutes") == value


# --- time zones -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("UTC", "UTC"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("  europe/berlin ", "Europe/Berlin"),
        ("AMERICA/NEW_YORK", "America/New_York"),
        ("Asia/Kolkata", "Asia/Kolkata"),
    ],
)
def test_check_timezone_accepts_iana_names(name: str, canonical: str) -> None:
    assert check_timezone(name) == canonical


@pytest.mark.parametrize(
    "name",
    ["Mars/Base", "", "America", "+03:00", "../etc/passwd", "/etc/localtime", "localtime",
     "zone.tab", "a" * 300],
)  # fmt: skip
def test_check_timezone_rejects_other_names(name: str) -> None:
    with pytest.raises(InvalidTimezone) as info:
        check_timezone(name)
    assert "IANA" in info.value.user_message


# --- NUL characters -------------------------------------------------------------------------

NUL_CHECKS: list[tuple[Callable[[str], object], str]] = [
    (clean_title, "Title"),
    (clean_description, "Description"),
    (clean_action, "Action"),
    (clean_details, "Details"),
    (clean_evidence, "Evidence"),
    (clean_context, "Context"),
    (clean_block_reason, "Reason"),
    (check_timezone, "Time zone"),
    (lambda text: parse_int(text, "minutes"), "Minutes"),
    (lambda text: parse_decimal(text, "progress"), "Progress"),
    (clean_email, "Email"),
    (clean_code, "Code"),
]


@pytest.mark.parametrize(("check", "label"), NUL_CHECKS)
@pytest.mark.parametrize("text", ["a\x00b", "\x00", "Europe/Berlin\x00", "12\x003"])
def test_nul_is_refused_naming_the_field(
    check: Callable[[str], object], label: str, text: str
) -> None:
    with pytest.raises(ForbiddenCharacter) as info:
        check(text)
    assert info.value.user_message == (
        f"{label} can't contain the NUL character (\\x00): remove it and send it again."
    )


@pytest.mark.parametrize(("check", "label"), NUL_CHECKS)
@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "\ud83d"])
def test_a_lone_surrogate_is_refused_naming_the_field(
    check: Callable[[str], object], label: str, text: str
) -> None:
    with pytest.raises(ForbiddenCharacter) as info:
        check(text)
    assert info.value.user_message == (
        f"{label} can't contain a broken character (half of a UTF-16 surrogate pair):"
        " remove it and send it again."
    )


def test_a_character_outside_the_bmp_is_kept() -> None:
    assert clean_title(" Read 😀 SICP ") == "Read 😀 SICP"
