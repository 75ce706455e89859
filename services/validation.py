"""Validate and normalise user input, raising the domain errors of ``services.errors``.

Text is trimmed first; lengths then count Python characters (code points), the unit in which
Postgres ``char_length`` counts too. Numeric checks are inclusive at both ends. The limits are
module constants so that handlers can quote them in usage lines.

The nudge settings as people type them (a time of day, quiet hours, the weekly review's day
and time, "off") are parsed here too, raising ``InvalidSetting``; the checks that span several
settings (quiet start and end together) are made where they are stored.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from services import durations
from services.errors import (
    Empty,
    ForbiddenCharacter,
    InvalidSetting,
    InvalidTimezone,
    NotANumber,
    OutOfRange,
    TooLong,
)

__all__ = [
    "ACTION_MAX",
    "BLOCK_REASON_MAX",
    "CAPACITY_HOURS_RANGE",
    "CONTEXT_MAX",
    "DAY_NAMES",
    "DESCRIPTION_MAX",
    "DETAILS_MAX",
    "ENERGY_RANGE",
    "EVIDENCE_MAX",
    "GAP_RANGE",
    "IDLE_HOURS_RANGE",
    "MINUTES_RANGE",
    "PROGRESS_RANGE",
    "THRESHOLD_RANGE",
    "TITLE_MAX",
    "check_capacity_hours",
    "check_energy",
    "check_gap",
    "check_hours",
    "check_minutes",
    "check_progress",
    "check_text",
    "check_threshold",
    "check_timezone",
    "clean_action",
    "clean_context",
    "clean_description",
    "clean_details",
    "clean_evidence",
    "clean_title",
    "is_off",
    "parse_clock",
    "parse_day",
    "parse_decimal",
    "parse_int",
    "parse_quiet",
    "parse_review",
]

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
ACTION_MAX = 200
DETAILS_MAX = 2000
EVIDENCE_MAX = 2000
CONTEXT_MAX = 2000

GAP_RANGE = (0, 5)
MINUTES_RANGE = (1, 1440)
PROGRESS_RANGE = (0, 100)
ENERGY_RANGE = (0, 100)
IDLE_HOURS_RANGE = (1, 720)
THRESHOLD_RANGE = (1, 100)
CAPACITY_HOURS_RANGE = (1, 168)

_CENT = Decimal("0.01")
_INT_RE = re.compile(r"[+-]?[0-9]{1,30}")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]{1,30}(?:[.,][0-9]{0,30})?|[.,][0-9]{1,30})")
_TZ_NAME_MAX = 64
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Names the tz database ships that are not real places (or depend on the machine).
_TZ_EXCLUDED = frozenset({"localtime", "posixrules", "Factory"})


# --- text ---------------------------------------------------------------------------------


def check_text(text: str, field: str) -> str:
    """Return ``text`` unchanged, or raise ``ForbiddenCharacter`` naming the field if it holds
    a NUL character (PostgreSQL can't store one in text, and nothing typed needs it) or a lone
    UTF-16 surrogate (half of a character, which no UTF-8 text can hold: a JSON body's
    ``"\\ud800"`` decodes to one)."""
    if "\x00" in text:
        raise ForbiddenCharacter(field)
    if _SURROGATE.search(text):
        raise ForbiddenCharacter(field, "a broken character (half of a UTF-16 surrogate pair)")
    return text


def _required(text: str, field: str, limit: int) -> str:
    value = check_text(text, field).strip()
    if not value:
        raise Empty(field)
    if len(value) > limit:
        raise TooLong(field, limit, len(value))
    return value


def _optional(text: str | None, field: str, limit: int) -> str | None:
    if text is None:
        return None
    value = check_text(text, field).strip()
    if not value:
        return None
    if len(value) > limit:
        raise TooLong(field, limit, len(value))
    return value


def clean_title(text: str) -> str:
    """Return an NBA title trimmed, 1–200 characters."""
    return _required(text, "title", TITLE_MAX)


def clean_description(text: str | None) -> str | None:
    """Return an NBA description trimmed, at most 1000 characters; empty becomes None."""
    return _optional(text, "description", DESCRIPTION_MAX)


def clean_action(text: str) -> str:
    """Return a log action trimmed, 1–200 characters."""
    return _required(text, "action", ACTION_MAX)


def clean_details(text: str | None) -> str | None:
    """Return log details trimmed, at most 2000 characters; empty becomes None."""
    return _optional(text, "details", DETAILS_MAX)


def clean_evidence(text: str) -> str:
    """Return reflection evidence trimmed, 1–2000 characters."""
    return _required(text, "evidence", EVIDENCE_MAX)


def clean_context(text: str | None) -> str | None:
    """Return reflection context trimmed, at most 2000 characters; empty becomes None."""
    return _optional(text, "context", CONTEXT_MAX)


BLOCK_REASON_MAX = 200


def clean_block_reason(text: str | None) -> str | None:
    """Return why a theater is blocked, trimmed, at most 200 characters; empty becomes None."""
    return _optional(text, "reason", BLOCK_REASON_MAX)


# --- numbers ------------------------------------------------------------------------------


def _in_range(value: int, field: str, bounds: tuple[int, int], unit: str = "") -> int:
    low, high = bounds
    if not low <= value <= high:
        raise OutOfRange(field, value, low, high, unit)
    return value


def check_gap(value: int) -> int:
    """Return an NBA gap, 0–5."""
    return _in_range(value, "gap", GAP_RANGE)


def check_minutes(value: int) -> int:
    """Return a log duration in minutes, 1–1440."""
    return _in_range(value, "minutes", MINUTES_RANGE)


def check_energy(value: int) -> int:
    """Return the ibm energy share, 0–100 (cs gets the rest)."""
    return _in_range(value, "energy", ENERGY_RANGE, "%")


def check_hours(value: int) -> int:
    """Return the idle threshold (``idle_after_hours``), 1–720 hours."""
    return _in_range(value, "idle threshold", IDLE_HOURS_RANGE, "hours")


def check_threshold(value: int) -> int:
    """Return the overload nudge threshold, 1–100 (risk points)."""
    return _in_range(value, "overload threshold", THRESHOLD_RANGE)


def check_capacity_hours(value: int) -> int:
    """Return the weekly capacity, 1–168 hours."""
    return _in_range(value, "weekly capacity", CAPACITY_HOURS_RANGE, "hours")


def check_progress(value: int | float | Decimal) -> Decimal:
    """Return a theater's progress, 0–100, as a Decimal with 2 decimals (ROUND_HALF_UP).

    The range is checked on the value as given, so 100.001 is refused rather than rounded.
    Floats go through their shortest ``repr`` (0.1 becomes 0.10, not 0.1000000000000000055…).
    """
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    low, high = PROGRESS_RANGE
    if not number.is_finite() or not low <= number <= high:
        raise OutOfRange("progress", number, low, high, "%")
    return number.quantize(_CENT, rounding=ROUND_HALF_UP)


# --- parsing ------------------------------------------------------------------------------


def _strip_percent(text: str, percent: bool) -> str:
    value = text.strip()
    if percent and value.endswith("%"):
        value = value[:-1].rstrip()
    return value


_HOURS = re.compile(r"(?i)^\s*(\d{1,6})\s*(?:h|hrs?|hours?)?\s*$")


def parse_hours(text: str, field: str) -> int:
    """A whole number of hours as people type it: "35", "35h", "35 h", "35 hours"; raises
    ``NotANumber`` naming the field otherwise (the range is the caller's check)."""
    match = _HOURS.match(text)
    return parse_int(match[1] if match else text, field)


def parse_int(text: str, field: str, *, percent: bool = False) -> int:
    """Parse a whole number typed by the user (ASCII digits, optional sign).

    With ``percent=True`` a trailing "%" is allowed ("60%"). Raises ``NotANumber`` naming the
    field, e.g. "Minutes must be a whole number (got 'abc')."; the range is the caller's check.
    """
    value = _strip_percent(check_text(text, field), percent)
    if not _INT_RE.fullmatch(value):
        raise NotANumber(field, text)
    return int(value)


def parse_decimal(text: str, field: str, *, percent: bool = False) -> Decimal:
    """Parse a decimal number typed by the user ("42", "42.5", "42,5", ".5").

    With ``percent=True`` a trailing "%" is allowed. Raises ``NotANumber`` naming the field.
    """
    value = _strip_percent(check_text(text, field), percent)
    if not _DECIMAL_RE.fullmatch(value):
        raise NotANumber(field, text, whole=False)
    try:
        return Decimal(value.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid text
        raise NotANumber(field, text, whole=False) from exc


# --- time zones ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """Map lower-cased IANA names to their canonical spelling (read once)."""
    return {
        name.lower(): name for name in zoneinfo.available_timezones() if name not in _TZ_EXCLUDED
    }


def check_timezone(name: str) -> str:
    """Return the canonical IANA time zone name for ``name`` (case-insensitive, trimmed).

    Only names in the tz database (system or the ``tzdata`` package) that ``zoneinfo`` can
    load are accepted; "localtime", "posixrules" and "Factory" are refused, as are offsets
    such as "+03:00". Raises ``InvalidTimezone``.
    """
    value = check_text(name, "time zone").strip()
    if not value or len(value) > _TZ_NAME_MAX:
        raise InvalidTimezone(name)
    canonical = _zone_names().get(value.lower())
    if canonical is None:
        raise InvalidTimezone(name)
    try:
        zoneinfo.ZoneInfo(canonical)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTimezone(name) from exc
    return canonical


# --- nudge settings typed as text (/settings, onboarding, the preferences API) ----------

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_OFF = frozenset({"off", "none", "no", "never", "disable", "disabled", "stop", "-"})
_RANGE_SPLIT = re.compile(r"\s*(?:-|–|—|\bto\b)\s*")


def _quote(text: str) -> str:
    one = " ".join(text.split())
    return f"'{one[:39]}…'" if len(one) > 40 else f"'{one}'"


def is_off(text: str) -> bool:
    return text.strip().lower() in _OFF


def parse_clock(text: str, field: str = "Time") -> time:
    """A time of day as people type it: 08:00, 8:00, 8.00, 0800, 8, 7am, 7:30 pm, noon."""
    try:
        return durations.parse_clock(text, field)
    except durations.NotAClockTime as exc:
        raise InvalidSetting(exc.user_message) from None


def parse_quiet(text: str) -> tuple[time, time] | None:
    """Quiet hours typed as 22:00-08:00 (may wrap midnight), or off."""
    if is_off(text):
        return None
    parts = _RANGE_SPLIT.split(text.strip())
    if len(parts) != 2 or not all(parts):
        raise InvalidSetting(
            f"Quiet hours must look like 22:00-08:00, or off (got {_quote(text)})."
        )
    start, end = parse_clock(parts[0], "Start"), parse_clock(parts[1], "End")
    if start == end:
        raise InvalidSetting("Quiet hours need different start and end times (or send off).")
    return start, end


def parse_day(text: str) -> int:
    """A weekday typed as a name or its first three letters (0 = Monday … 6 = Sunday)."""
    value = text.strip().lower()
    for n, name in enumerate(DAY_NAMES):
        if len(value) >= 2 and name.lower().startswith(value):
            return n
    raise InvalidSetting(f"Unknown day {_quote(text)}: use mon, tue, wed, thu, fri, sat or sun.")


def parse_review(text: str) -> tuple[int, time] | None:
    """The weekly review typed as a day and a time (sun 18:00), or off."""
    if is_off(text):
        return None
    parts = text.split(maxsplit=1)  # the time may be two words: "sun 7:30 pm"
    if len(parts) != 2:
        raise InvalidSetting(
            "The weekly review needs a day and a time, e.g. sun 18:00, or off"
            f" (got {_quote(text)})."
        )
    return parse_day(parts[0]), parse_clock(parts[1])
