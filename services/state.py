"""Keeping derived state consistent inside a unit of work.

Every write calls into here before it commits: re-ranking a theater's items (``is_current``
and ``stale_days``), its status and last activity, and the user's ``global_metrics``
(combined progress, energy, overload risk, ``last_computed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from services import rules, sanity
from services.db import Database, Principal, UnitOfWork
from services.errors import NotLinked
from services.models import ARMS, Arm, NbaItem, Theater, TheaterStatus, UserSettings
from services.repos import execution_logs, global_metrics, nba_items, theaters, user_settings

WEEK = timedelta(days=7)
DAY = timedelta(days=1)


async def begin_write(uow: UnitOfWork) -> UserSettings:
    """Take the user's write lock (their metrics row) and read their settings.

    Every write for one user starts here, so two writes for the same user (two taps, two
    instances) run one after the other and each sees the other's result: no lost update.
    What the write needs must be read by later statements: a statement reads with the
    snapshot taken when it starts, before it waits for the lock, so a read sharing this
    statement would miss what the previous holder of the lock committed.
    """
    found = await user_settings.lock_with_metrics(uow)
    if found is None:
        raise NotLinked()
    return found


def locked(db: Database, who: Principal) -> AbstractAsyncContextManager[UnitOfWork]:
    """A unit of work that takes the user's write lock first (see :func:`begin_write`), for a
    write that reads the settings later, fresh, if at all. The lock travels in the same round
    trip as the block's first statement, which still starts after the lock is held and so
    sees every earlier write; NotLinked if the user has no account (or it lacks its rows)."""
    return db.user_uow(who, first=user_settings.LOCK)


async def begin_read(uow: UnitOfWork) -> UserSettings:
    """Read the user's settings (no lock); NotLinked if the account has none."""
    found = await user_settings.get(uow)
    if found is None:
        raise NotLinked()
    return found


async def theater(uow: UnitOfWork, arm: Arm) -> Theater:
    found = await theaters.get_one(uow, arm)
    if found is None:  # the account exists (the write lock was taken): the row was deleted
        raise sanity.missing_theater(arm)
    sanity.check([found])  # a NULL or out-of-range value written outside the bot
    return found


def ranked(items: Sequence[NbaItem], now: datetime) -> list[NbaItem]:
    """The open ``items`` of one theater as a re-rank stores them: fresh stale days, and
    ``is_current`` on the item :func:`rules.choose_current` picks (on no other)."""
    current = rules.choose_current(items, now)
    return [
        replace(
            item,
            stale_days=rules.stale_days(item.last_updated, now),
            is_current=item.id == current,
        )
        for item in items
    ]


def plan_items(
    open_items: Sequence[NbaItem],
    changed: Mapping[UUID, NbaItem],
    now: datetime,
    *,
    delete: UUID | None = None,
) -> tuple[list[NbaItem], nba_items.Changes]:
    """Apply ``changed`` (new states of some of the theater's ``open_items``) and ``delete``
    in memory, then re-rank: the theater's open items as they will be stored, and the
    changes that store them (the rows that differ from ``open_items``). UnreadableData if
    an item holds a value the ranking can't use (a NULL gap, say, written outside the bot):
    every write that re-ranks comes through here."""
    sanity.check(open_items)
    before = {item.id: item for item in open_items}
    merged = [changed.get(item.id, item) for item in open_items if item.id != delete]
    still_open = ranked([item for item in merged if item.completed_at is None], now)
    final = {item.id: item for item in merged}
    final.update((item.id, item) for item in still_open)
    after = tuple(item for item in final.values() if item != before[item.id])
    return still_open, nba_items.Changes(before, after, delete)


def as_stored(items: Sequence[NbaItem], stored: Mapping[UUID, NbaItem]) -> list[NbaItem]:
    """``items`` with those just written replaced by the rows the database returned."""
    return [stored.get(item.id, item) for item in items]


async def rerank(uow: UnitOfWork, arm: Arm, now: datetime) -> None:
    """Recompute stale days and the current item of ``arm`` (the theater must be locked)."""
    items = await nba_items.open_items(uow, arm)
    _, changes = plan_items(items, {}, now)  # checks the items first
    await nba_items.apply_changes(uow, changes)


def logged_status(theater: Theater, now: datetime, settings: UserSettings) -> TheaterStatus:
    """The status of a theater with activity at ``now`` (a blocked one stays blocked)."""
    return rules.theater_status(
        now, now, settings.idle_after_hours, blocked=theater.status == "blocked"
    )


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
    for arm in ARMS:
        if arm not in both:
            raise sanity.missing_theater(arm)
    sanity.check(both.values())  # a NULL or NaN progress written outside the bot
    combined = rules.combined_progress(*(both[arm].total_progress for arm in ARMS))
    await global_metrics.set_progress(uow, combined, now)
    return combined
