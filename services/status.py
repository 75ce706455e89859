"""Read-only views: the status screen and the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from services import rules, sanity, state
from services.db import Database, Principal
from services.errors import NotLinked
from services.models import ARMS, Arm, FocusSession, GlobalMetrics, Theater, UserSettings
from services.repos import execution_logs, global_metrics, reflections

HISTORY_MAX = 50


@dataclass(frozen=True, slots=True)
class TheaterStatusView:
    theater: Theater
    status: str
    current: rules.RankedItem | None
    open_items: int
    energy_share: int
    minutes_7d: int
    minute_share: Decimal
    #: the theater's open items in rank order (the dashboard lists them all)
    ranked: tuple[rules.RankedItem, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusView:
    theaters: tuple[TheaterStatusView, ...]
    metrics: GlobalMetrics
    settings: UserSettings
    combined_progress: Decimal
    overload: rules.Overload
    trend: str
    now: datetime
    #: the focus session that has not ended, if any
    focus: FocusSession | None = None


async def status_view(db: Database, user_id: Principal, now: datetime) -> StatusView:
    """Both theaters, current NBAs, energy planned vs logged, overload with inputs and trend."""
    async with db.user_uow(user_id, single=True) as uow:
        snapshot = await global_metrics.status_snapshot(
            uow, now, now - state.WEEK, now - state.DAY, now - state.WEEK - state.DAY
        )
    if snapshot is None or len(snapshot.theaters) != len(ARMS):
        raise NotLinked()
    settings, metrics, both = snapshot.settings, snapshot.metrics, snapshot.theaters
    items, minutes, before = snapshot.items, snapshot.minutes, snapshot.minutes_day_ago
    sanity.check([settings, metrics, *both.values(), *items])  # written outside the bot?
    capacity = settings.weekly_capacity_hours
    overload = rules.overload(sum(minutes.values()), capacity)
    day_ago = rules.overload(sum(before.values()), capacity)
    shares = rules.minute_shares(minutes)
    views = []
    for arm in ARMS:
        theater = both[arm]
        ranked = rules.rank([i for i in items if i.arm_type == arm], now)
        status = rules.theater_status(
            theater.last_activity,
            now,
            settings.idle_after_hours,
            blocked=theater.status == "blocked",
        )
        views.append(
            TheaterStatusView(
                theater=theater,
                status=status,
                current=ranked[0] if ranked and ranked[0].is_current else None,
                open_items=len(ranked),
                energy_share=theater.energy_allocation,
                minutes_7d=minutes[arm],
                minute_share=shares[arm],
                ranked=tuple(ranked),
            )
        )
    return StatusView(
        theaters=tuple(views),
        metrics=metrics,
        settings=settings,
        combined_progress=rules.combined_progress(
            both["ibm"].total_progress, both["cs"].total_progress
        ),
        overload=overload,
        trend=rules.risk_trend(overload.risk, day_ago.risk),
        now=now,
        focus=snapshot.focus,
    )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: Literal["log", "reflection"]
    arm: Arm
    timestamp: datetime
    text: str
    detail: str | None
    minutes: int | None


@dataclass(frozen=True, slots=True)
class HistoryView:
    entries: list[HistoryEntry]
    timezone: str


async def history(
    db: Database, user_id: Principal, arm: Arm | None, limit: int = 10
) -> HistoryView:
    """The latest logs and reflections, newest first, and the zone to show them in."""
    limit = max(1, min(limit, HISTORY_MAX))
    async with db.user_uow(user_id, read_only=True) as uow:
        settings = await state.begin_read(uow)
        logs = await execution_logs.recent(uow, arm, limit)
        refl = await reflections.recent(uow, arm, limit)
    sanity.check([settings, *logs, *refl])
    entries = [
        HistoryEntry("log", log.arm_type, log.timestamp, log.action, log.details, log.duration)
        for log in logs
    ] + [
        HistoryEntry("reflection", r.arm_type, r.timestamp, r.evidence, r.context, None)
        for r in refl
    ]
    entries.sort(key=lambda e: e.timestamp, reverse=True)
    return HistoryView(entries[:limit], settings.timezone)
