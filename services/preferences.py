"""Changing a user's preferences from typed text (the first-run onboarding).

Storing them is :func:`services.nudges.update_settings`, the one place that validates
``user_settings`` changes and reschedules the nudges that depend on them; this module only
turns what people type into values, and suggests time zones for near misses.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from services import nudges
from services.db import Database, Principal
from services.models import UserSettings

__all__ = ["suggest_timezones", "update_preferences"]

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


async def update_preferences(
    db: Database, user_id: Principal, /, *, now: datetime, **changes: Any
) -> UserSettings:
    """Store ``changes`` (column = value); times may be typed ("07:30"). See update_settings."""
    parsed = {
        name: nudges.parse_clock(value) if name in _TIMES and isinstance(value, str) else value
        for name, value in changes.items()
    }
    return await nudges.update_settings(db, user_id, now=now, **parsed)
