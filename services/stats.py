"""The numbers behind /stats: the last 14 local days, per theater, with the overload risk.

Days are the user's local calendar days (``user_settings.timezone``), so a day is 23 or 25
hours long when daylight saving time starts or ends, and a log belongs to the local date it
was written on. :func:`daily_series` is a pure function over the logs, testable across a DST
change; :func:`stats_view` reads what it needs in one unit of work.

The risk of a day is the overload risk of SPEC §3 (:func:`services.rules.overload`) computed
at the end of that local day (its next local midnight) from the minutes of the trailing
7 × 24 hours, with the user's current weekly capacity: the figure /status would have shown at
that moment. Today is not over, so its risk is computed at ``now``, which is what /status
shows right now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from services import rules, sanity, state
from services.db import Database, Principal
from services.models import ARMS, Arm
from services.repos import execution_logs, global_metrics

__all__ = [
    "DAYS",
    "DayStats",
    "LoggedMinutes",
    "StatsView",
    "daily_series",
    "local_midnight",
    "stats_view",
]

#: How many local days /stats covers, today included.
DAYS = 14
WINDOW = timedelta(days=7)
_TENTH = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class LoggedMinutes:
    """One execution log as far as the chart cares: when, where, how long."""

    timestamp: datetime
    arm: Arm
    minutes: int


@dataclass(frozen=True, slots=True)
class DayStats:
    """One local day: its bounds, the minutes per theater and the risk at its end."""

    day: date
    #: the instant (UTC) the local day starts: its local midnight
    start: datetime
    #: the instant (UTC) the risk was computed at: the next local midnight, or ``now`` today
    risk_at: datetime
    #: the day's length in hours: 24, or 23/25 on a daylight-saving change
    hours: int
    minutes: Mapping[Arm, int]
    risk: Decimal
    is_today: bool

    @property
    def total_minutes(self) -> int:
        return sum(self.minutes.values())


@dataclass(frozen=True, slots=True)
class StatsView:
    """Everything /stats shows: the days, the totals and the reference numbers."""

    days: tuple[DayStats, ...]
    timezone: str
    capacity_hours: int
    overload_threshold: int
    #: the planned energy split (global_metrics): ibm and cs, summing to 100
    energy: Mapping[Arm, int]
    now: datetime

    @property
    def totals(self) -> dict[Arm, int]:
        """Minutes per theater over the whole period."""
        return {arm: sum(d.minutes[arm] for d in self.days) for arm in ARMS}

    @property
    def total_minutes(self) -> int:
        return sum(self.totals.values())

    @property
    def shares(self) -> dict[Arm, Decimal]:
        """Each theater's share of the minutes logged in the period (sums to 100.0)."""
        return rules.minute_shares(self.totals)

    @property
    def risk_now(self) -> Decimal:
        return self.days[-1].risk if self.days else Decimal(0)

    @property
    def risk_now_rounded(self) -> Decimal:
        """The current risk as a whole percentage, for the caption and the chart's label."""
        return self.risk_now.quantize(Decimal(1), rounding=ROUND_HALF_UP)

    def hours(self, arm: Arm) -> Decimal:
        """Hours logged in ``arm`` over the period, one decimal."""
        return (Decimal(self.totals[arm]) / 60).quantize(_TENTH, rounding=ROUND_HALF_UP)

    def caption(self) -> str:
        """One line of key numbers, e.g. "Last 14 days: ibm 12.5 h · cs 8 h · risk 31% now"."""
        parts = [f"{arm} {rules.format_number(self.hours(arm))} h" for arm in ARMS]
        risk = self.risk_now_rounded
        return f"Last {len(self.days)} days: {' · '.join(parts)} · risk {risk}% now"


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant (in UTC) a local calendar day starts; where a DST jump skips midnight,
    the instant of the jump.

    UTC on purpose: Python subtracts and compares two datetimes that share a ``ZoneInfo`` by
    their wall clocks, and adds a ``timedelta`` to the wall clock, both wrong across a DST
    change; in UTC the arithmetic is in real elapsed time.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def daily_series(
    logs: Iterable[LoggedMinutes],
    now: datetime,
    timezone: str,
    capacity_hours: int,
    days: int = DAYS,
) -> tuple[DayStats, ...]:
    """The last ``days`` local days up to today (oldest first) in ``timezone``.

    Minutes go to the local date of their timestamp. The risk of each day comes from the
    minutes in ``(end - 7 days, end]`` where ``end`` is the day's next local midnight (``now``
    for today), as :func:`services.state.risk_at` counts them. Logs after ``now`` are ignored.
    ``logs`` must reach back 7 days before the first day for its risk to be complete.
    """
    zone = ZoneInfo(timezone)
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    entries = sorted(
        (
            LoggedMinutes(log.timestamp.astimezone(UTC), log.arm, log.minutes)
            for log in logs
            if log.timestamp <= now and log.minutes > 0
        ),
        key=lambda log: log.timestamp,
    )
    per_day: dict[date, dict[Arm, int]] = {}
    for log in entries:
        bucket = per_day.setdefault(log.timestamp.astimezone(zone).date(), dict.fromkeys(ARMS, 0))
        bucket[log.arm] += log.minutes

    series: list[DayStats] = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        start = local_midnight(day, zone)
        end = local_midnight(day + timedelta(days=1), zone)
        risk_at = min(end, now)
        window = sum(log.minutes for log in entries if risk_at - WINDOW < log.timestamp <= risk_at)
        series.append(
            DayStats(
                day=day,
                start=start,
                risk_at=risk_at,
                hours=round((end - start) / timedelta(hours=1)),
                minutes=per_day.get(day, dict.fromkeys(ARMS, 0)),
                risk=rules.overload(window, capacity_hours).risk,
                is_today=day == today,
            )
        )
    return tuple(series)


async def stats_view(db: Database, user_id: Principal, now: datetime) -> StatsView:
    """The last 14 local days of the user, read in one unit of work."""
    async with db.user_uow(user_id, read_only=True) as uow:
        settings = await state.begin_read(uow)
        metrics = await global_metrics.get(uow)
        sanity.check([settings] if metrics is None else [settings, metrics])
        zone = ZoneInfo(settings.timezone)
        first = now.astimezone(zone).date() - timedelta(days=DAYS - 1)
        since = local_midnight(first, zone) - WINDOW
        logs = await execution_logs.between(uow, since, now)
    sanity.check(logs)
    energy: dict[Arm, int] = (
        {"ibm": metrics.energy_allocation_ibm, "cs": metrics.energy_allocation_cs}
        if metrics is not None
        else {"ibm": 50, "cs": 50}
    )
    series = daily_series(
        (LoggedMinutes(log.timestamp, log.arm_type, log.duration or 0) for log in logs),
        now,
        settings.timezone,
        settings.weekly_capacity_hours,
    )
    return StatsView(
        days=series,
        timezone=settings.timezone,
        capacity_hours=settings.weekly_capacity_hours,
        overload_threshold=settings.overload_threshold,
        energy=energy,
        now=now,
    )
