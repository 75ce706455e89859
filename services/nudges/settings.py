"""The user's nudge settings (time zone, quiet hours, brief and review schedules, idle and
overload thresholds, weekly capacity) and the writes behind the nudges' buttons (capacity,
overload snooze, the review's energy shift).

:func:`update_settings` is the one place that validates ``user_settings`` changes (values typed
as text are parsed first, in :mod:`services.validation`) and reschedules the nudges that depend
on them.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta
from typing import Any

from services import rules, state, validation
from services.db import Database, Principal, UnitOfWork
from services.errors import DomainError, InvalidSetting, NotLinked, OutOfRange
from services.models import Arm, UserSettings
from services.nudges.localtime import next_daily, next_weekly, zone
from services.repos import global_metrics, scan
from services.repos import theaters as theaters_repo
from services.repos import user_settings as settings_repo

__all__ = [
    "SETTING_NAMES",
    "EnergyChanged",
    "get_settings",
    "set_capacity",
    "shift_energy_toward",
    "snooze_overload",
    "update_settings",
]


class EnergyChanged(DomainError):
    """The energy split changed since the button was made."""

    def __init__(self, ibm: int, cs: int) -> None:
        self.ibm, self.cs = ibm, cs
        super().__init__(f"That changed: your energy is now ibm {ibm}% · cs {cs}%.")


SETTING_NAMES = frozenset(
    {
        "timezone",
        "quiet_start",
        "quiet_end",
        "brief_time",
        "review_day",
        "review_time",
        "idle_after_hours",
        "overload_threshold",
        "weekly_capacity_hours",
        "focus_minutes",
    }
)


def _validate(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - SETTING_NAMES
    if unknown:
        raise ValueError(f"not a nudge setting: {sorted(unknown)}")
    clean = dict(changes)
    if "timezone" in clean:
        clean["timezone"] = validation.check_timezone(str(clean["timezone"]))
    for name in ("quiet_start", "quiet_end", "brief_time", "review_time"):
        if clean.get(name) is not None:
            value = clean[name]
            if not isinstance(value, time):
                raise TypeError(f"{name} must be a datetime.time")
            clean[name] = value.replace(second=0, microsecond=0, tzinfo=None)
    if clean.get("review_day") is not None and not 0 <= int(clean["review_day"]) <= 6:
        raise OutOfRange("review day", clean["review_day"], 0, 6)
    if "idle_after_hours" in clean:
        clean["idle_after_hours"] = validation.check_hours(int(clean["idle_after_hours"]))
    if "overload_threshold" in clean:
        clean["overload_threshold"] = validation.check_threshold(int(clean["overload_threshold"]))
    if clean.get("focus_minutes") is not None:
        clean["focus_minutes"] = validation.check_minutes(int(clean["focus_minutes"]))
    if "weekly_capacity_hours" in clean:
        clean["weekly_capacity_hours"] = validation.check_capacity_hours(
            int(clean["weekly_capacity_hours"])
        )
    return clean


def _check_pairs(merged: UserSettings) -> None:
    if (merged.quiet_start is None) != (merged.quiet_end is None):
        raise InvalidSetting("Quiet hours need both a start and an end (or off).")
    if merged.quiet_start is not None and merged.quiet_start == merged.quiet_end:
        raise InvalidSetting("Quiet hours need different start and end times (or send off).")
    if (merged.review_day is None) != (merged.review_time is None):
        raise InvalidSetting("The weekly review needs both a day and a time (or off).")


async def get_settings(db: Database, principal: Principal) -> UserSettings:
    """The user's nudge settings."""
    async with db.user_uow(principal, read_only=True) as uow:
        return await state.begin_read(uow)


async def update_settings(
    db: Database, principal: Principal, *, now: datetime, **changes: Any
) -> UserSettings:
    """Change nudge settings (validated; pairs such as quiet start/end checked together).

    A new capacity recomputes the overload risk and a new idle threshold the theaters'
    status at once; a new brief or review schedule takes effect from ``now`` on.
    """
    clean = _validate(changes)
    async with db.user_uow(principal) as uow:
        before = await state.begin_write(uow)
        merged = dataclasses.replace(before, **clean)
        _check_pairs(merged)
        if clean:
            await settings_repo.update(uow, **clean)
        if merged.weekly_capacity_hours != before.weekly_capacity_hours:
            await state.recompute_risk(uow, now, merged)
        if merged.idle_after_hours != before.idle_after_hours:
            for theater in (await theaters_repo.get_all(uow)).values():
                await state.refresh_status(uow, theater, now, merged)
        await _reschedule_own(uow, before, merged, now)
        await uow.commit()
        return merged


async def _reschedule_own(
    uow: UnitOfWork, before: UserSettings, after: UserSettings, now: datetime
) -> None:
    """Set the brief/review hints to their next instant at or after ``now`` (the triggers
    only mark them for the scan to recompute, a scan later)."""
    zone_changed = before.timezone != after.timezone
    tz = zone(after.timezone)
    since = now - timedelta(microseconds=1)
    brief = None
    if after.brief_time is not None:
        brief = next_daily(since, after.brief_time, tz)
    review = None
    if after.review_day is not None and after.review_time is not None:
        review = next_weekly(since, after.review_day, after.review_time, tz)
    if zone_changed or before.brief_time != after.brief_time:
        await scan.set_own_schedule_hint(uow, "brief", brief)
    if zone_changed or (before.review_day, before.review_time) != (
        after.review_day,
        after.review_time,
    ):
        await scan.set_own_schedule_hint(uow, "review", review)


async def set_capacity(
    db: Database, principal: Principal, hours: int, now: datetime
) -> rules.Overload:
    """Set the weekly capacity (1-168 h) and return the overload risk it gives now."""
    hours = validation.check_capacity_hours(hours)
    async with db.user_uow(principal) as uow:
        before = await state.begin_write(uow)
        await settings_repo.update(uow, weekly_capacity_hours=hours)
        after = dataclasses.replace(before, weekly_capacity_hours=hours)
        overload = await state.recompute_risk(uow, now, after)
        await uow.commit()
        return overload


async def snooze_overload(
    db: Database, principal: Principal, until: datetime, now: datetime
) -> datetime:
    """No overload nudges until ``until``."""
    async with db.user_uow(principal) as uow:
        await state.begin_write(uow)
        await settings_repo.update(uow, overload_snoozed_until=until)
        await uow.commit()
    return until


async def shift_energy_toward(
    db: Database,
    principal: Principal,
    towards: Arm,
    points: int,
    expected_ibm: int,
    now: datetime,
) -> tuple[int, int]:
    """Move ``points`` of energy to ``towards`` if the split is still ``expected_ibm`` (the
    review's button): a second tap, or a split changed meanwhile, raises EnergyChanged."""
    async with db.user_uow(principal) as uow:
        await state.begin_write(uow)
        metrics = await global_metrics.get(uow)
        if metrics is None:
            raise NotLinked()
        if metrics.energy_allocation_ibm != expected_ibm:
            raise EnergyChanged(metrics.energy_allocation_ibm, metrics.energy_allocation_cs)
        delta = points if towards == "ibm" else -points
        ibm, cs = rules.energy_split(min(100, max(0, expected_ibm + delta)))
        await theaters_repo.set_energy(uow, ibm, cs, now)
        await global_metrics.set_energy(uow, ibm, cs, now)
        await uow.commit()
        return ibm, cs
