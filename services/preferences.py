"""Changing a user's preferences (``user_settings``), each value validated first.

Used by the first-run onboarding (time zone, weekly capacity, daily brief time); it accepts
every column a user may set, so /settings can use it as well.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, time
from typing import Any

from services import state
from services.db import Database, Principal
from services.errors import Conflict, DomainError, OutOfRange
from services.models import UserSettings
from services.repos import user_settings
from services.validation import (
    check_capacity_hours,
    check_hours,
    check_threshold,
    check_timezone,
)

__all__ = [
    "REVIEW_DAY_RANGE",
    "InvalidTimeOfDay",
    "parse_time_of_day",
    "suggest_timezones",
    "update_preferences",
]

REVIEW_DAY_RANGE = (0, 6)
_TIME_RE = re.compile(r"([01]?[0-9]|2[0-3])(?:[:.h]?([0-5][0-9]))?")


class InvalidTimeOfDay(DomainError):
    """Text that is not a time of day: "Time must look like 07:30 (got '25:00')."."""

    def __init__(self, text: str) -> None:
        self.text = text
        shown = " ".join(text.split())[:20]
        super().__init__(f"Time must look like 07:30, from 00:00 to 23:59 (got '{shown}').")


def parse_time_of_day(text: str) -> time:
    """Parse "07:30", "7:30", "7.30", "0730" or "7" (whole hour) into a time."""
    value = text.strip().lower()
    match = _TIME_RE.fullmatch(value)
    if match is None:
        raise InvalidTimeOfDay(text)
    return time(int(match.group(1)), int(match.group(2) or 0))


def suggest_timezones(text: str, limit: int = 3) -> list[str]:
    """IANA names whose city part is ``text`` ("kolkata" → Asia/Kolkata), for a hint."""
    city = "_".join(text.strip().rsplit("/", 1)[-1].lower().split())
    if not city:
        return []
    found = sorted(
        name
        for name in zoneinfo.available_timezones()
        if "/" in name and name.rsplit("/", 1)[1].lower() == city
    )
    return found[:limit]


def _time_or_none(value: object, field: str) -> time | None:
    if value is None or isinstance(value, time):
        return value
    if isinstance(value, str):
        return parse_time_of_day(value)
    raise TypeError(f"{field} must be a time, a string or None")


def _review_day(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("review_day must be an int or None")
    low, high = REVIEW_DAY_RANGE
    if not low <= value <= high:
        raise OutOfRange("review day", value, low, high)
    return value


def _validated(changes: dict[str, Any]) -> dict[str, Any]:
    """Each change checked and normalised; ValueError for a column that is not a preference."""
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "timezone":
            clean[name] = check_timezone(str(value))
        elif name == "weekly_capacity_hours":
            clean[name] = check_capacity_hours(int(value))
        elif name == "idle_after_hours":
            clean[name] = check_hours(int(value))
        elif name == "overload_threshold":
            clean[name] = check_threshold(int(value))
        elif name in ("brief_time", "review_time", "quiet_start", "quiet_end"):
            clean[name] = _time_or_none(value, name)
        elif name == "review_day":
            clean[name] = _review_day(value)
        else:
            raise ValueError(f"not a preference: {name!r}")
    return clean


async def update_preferences(
    db: Database, user_id: Principal, /, *, now: datetime, **changes: Any
) -> UserSettings:
    """Validate and store ``changes`` (column = value) in one unit of work; return the result.

    Times may be given as ``time`` or text ("07:30"); None switches the brief, the review or
    the quiet hours off (quiet hours need both ends or neither). A new weekly capacity
    recomputes the overload risk at ``now``. Raises a DomainError naming the bad value.
    """
    clean = _validated(changes)
    async with db.user_uow(user_id) as uow:
        current = await state.begin_write(uow)
        if not clean:
            return current
        quiet = (
            clean.get("quiet_start", current.quiet_start),
            clean.get("quiet_end", current.quiet_end),
        )
        if (quiet[0] is None) != (quiet[1] is None):
            raise Conflict("Quiet hours need both a start and an end (or neither, to turn off).")
        await user_settings.update(uow, **clean)
        fresh = await state.begin_read(uow)
        if "weekly_capacity_hours" in clean:
            await state.recompute_risk(uow, now, fresh)
        await uow.commit()
    return fresh
