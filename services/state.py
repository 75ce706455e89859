"""Keeping derived state consistent inside a unit of work.

Every write calls into here before it commits: re-ranking a theater's items (``is_current``
and ``stale_days``), its status and last activity, and the user's ``global_metrics``
(combined progress, energy, overload risk, ``last_computed``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from services import rules
from services.db import UnitOfWork
from services.errors import NotLinked
from services.models import ARMS, Arm, Theater, UserSettings
from services.repos import execution_logs, global_metrics, nba_items, theaters, user_settings

WEEK = timedelta(days=7)
DAY = timedelta(days=1)


async def begin_write(uow: UnitOfWork) -> UserSettings:
    """Take the user's write lock (their metrics row) and read their settings.

    Every write for one user starts here, so two writes for the same user (two taps, two
    instances) run one after the other and each sees the other's result: no lost update.
    """
    found = await user_settings.lock_with_metrics(uow)
    if found is None:
        raise NotLinked()
    return found


async def begin_read(uow: UnitOfWork) -> UserSettings:
    """Read the user's settings (no lock); NotLinked if the account has none."""
    found = await user_settings.get(uow)
    if found is None:
        raise NotLinked()
    return found


async def theater(uow: UnitOfWork, arm: Arm) -> Theater:
    found = await theaters.get_one(uow, arm)
    if found is None:
        raise NotLinked()
    return found


async def rerank(uow: UnitOfWork, arm: Arm, now: datetime) -> None:
    """Recompute stale days and the current item of ``arm`` (the theater must be locked)."""
    items = await nba_items.open_items(uow, arm)
    current = rules.choose_current(items, now)
    stale = {item.id: rules.stale_days(item.last_updated, now) for item in items}
    await nba_items.apply_ranking(uow, arm, current, stale)


async def refresh_status(
    uow: UnitOfWork,
    theater: Theater,
    now: datetime,
    settings: UserSettings,
    *,
    last_activity: datetime | None = None,
) -> None:
    """Store the theater's status (and a new last activity, if given)."""
    activity = last_activity or theater.last_activity
    status = rules.theater_status(
        activity, now, settings.idle_after_hours, blocked=theater.status == "blocked"
    )
    await theaters.update_state(
        uow, theater.arm_type, status=status, last_activity=activity, now=now
    )


async def risk_at(uow: UnitOfWork, at: datetime, capacity_hours: int) -> rules.Overload:
    """Overload from the minutes logged in the 7 days up to ``at``."""
    minutes = await execution_logs.minutes_by_arm(uow, at - WEEK, at)
    return rules.overload(sum(minutes.values()), capacity_hours)


async def recompute_risk(uow: UnitOfWork, now: datetime, settings: UserSettings) -> rules.Overload:
    overload = await risk_at(uow, now, settings.weekly_capacity_hours)
    await global_metrics.set_risk(uow, overload.risk, now)
    return overload


async def recompute_progress(uow: UnitOfWork, now: datetime) -> Decimal:
    both = await theaters.get_all(uow)
    combined = rules.combined_progress(*(both[arm].total_progress for arm in ARMS))
    await global_metrics.set_progress(uow, combined, now)
    return combined
