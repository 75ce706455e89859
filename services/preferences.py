"""Changing a user's preferences from typed text (onboarding, /settings).

Storing them is :func:`services.nudges.settings.update_settings`, the one place that validates
``user_settings`` changes and reschedules the nudges that depend on them; this module only
turns what people type into values, and suggests time zones for near misses.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from services.db import Database, Principal
from services.errors import InvalidTimezone
from services.models import UserSettings
from services.nudges.settings import update_settings
from services.validation import check_timezone, parse_clock

__all__ = ["UnknownZone", "suggest_timezones", "timezone_or_hint", "update_preferences"]

_TIMES = ("brief_time", "review_time", "quiet_start", "quiet_end")


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


class UnknownZone(InvalidTimezone):
    """A typed time zone that is not an IANA name, with the near misses it may have meant."""

    def __init__(self, value: str, close: list[str]) -> None:
        super().__init__(value)
        self.close = close
        if close:
            self._message += f" Did you mean {' or '.join(close)}?"


def timezone_or_hint(text: str) -> str:
    """The canonical IANA name for ``text``; else :class:`UnknownZone` naming close ones
    ("Kolkata" → "Did you mean Asia/Kolkata?")."""
    try:
        return check_timezone(text)
    except InvalidTimezone:
        raise UnknownZone(text, suggest_timezones(text)) from None


async def update_preferences(
    db: Database, user_id: Principal, /, *, now: datetime, **changes: Any
) -> UserSettings:
    """Store ``changes`` (column = value); times may be typed ("07:30"). See update_settings."""
    parsed = {
        name: parse_clock(value) if name in _TIMES and isinstance(value, str) else value
        for name, value in changes.items()
    }
    return await update_settings(db, user_id, now=now, **parsed)
