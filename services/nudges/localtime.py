"""Local time for the nudges: a user's zone, quiet hours, and the daily/weekly schedules
(the brief, the review) across DST transitions. Pure functions; instants are UTC-aware.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "in_quiet",
    "iso_week",
    "latest_daily",
    "latest_weekly",
    "next_daily",
    "next_weekly",
    "occurrence",
    "quiet_end",
    "wall_instants",
    "zone",
]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The user's zone; UTC if the stored name is unknown here (logged, never fatal)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        logger.warning("unknown time zone %r, using UTC", name)
        return ZoneInfo("UTC")


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def wall_instants(day: date, at: time, tz: ZoneInfo) -> list[datetime]:
    """Every instant (UTC) at which the local clock in ``tz`` reads ``day`` ``at``.

    One instant normally; two in a fall-back overlap (earlier first); in a spring-forward gap,
    where that reading never happens, the first valid instant after it (the transition).
    """
    naive = datetime.combine(day, at.replace(tzinfo=None))
    found: list[datetime] = []
    for fold in (0, 1):
        utc = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if _wall(utc, tz) == naive and utc not in found:
            found.append(utc)
    if found:
        return sorted(found)
    # A gap: the clock jumps from before ``naive`` to after it at one instant; find it.
    a = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)  # wall(lo) < naive < wall(hi)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if _wall(mid, tz) > naive:
            hi = mid
        else:
            lo = mid
    return [hi]


def occurrence(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The one instant a daily/weekly event set for ``at`` happens on local ``day``: the first
    reading of the clock (so a repeated fall-back hour fires once), or the first valid
    instant after a spring-forward gap (so it is never skipped)."""
    return wall_instants(day, at, tz)[0]


def in_quiet(now: datetime, tz: ZoneInfo, start: time | None, end: time | None) -> bool:
    """Whether ``now`` is within quiet hours [start, end) on the local clock (may wrap
    midnight). Both None, or start == end: no quiet hours."""
    if start is None or end is None or start == end:
        return False
    clock = _wall(now, tz).time()
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_end(now: datetime, tz: ZoneInfo, start: time | None, end: time | None) -> datetime:
    """The first instant after ``now`` outside quiet hours (``now`` if not in them)."""
    if not in_quiet(now, tz, start, end):
        return now
    assert end is not None
    today = _wall(now, tz).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        for instant in wall_instants(day, end, tz):
            if instant > now and not in_quiet(instant, tz, start, end):
                return instant
    return now + timedelta(hours=1)  # pragma: no cover - unreachable with real zones


def latest_daily(now: datetime, at: time, tz: ZoneInfo) -> tuple[date, datetime] | None:
    """The most recent daily occurrence at or before ``now``: (local day, instant)."""
    today = _wall(now, tz).date()
    for day in (today, today - timedelta(days=1), today - timedelta(days=2)):
        instant = occurrence(day, at, tz)
        if instant <= now:
            return day, instant
    return None  # pragma: no cover


def next_daily(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first daily occurrence strictly after ``after``."""
    today = _wall(after, tz).date()
    for offset in range(-1, 4):
        instant = occurrence(today + timedelta(days=offset), at, tz)
        if instant > after:
            return instant
    raise AssertionError("no daily occurrence within four days")  # pragma: no cover


def latest_weekly(
    now: datetime, weekday: int, at: time, tz: ZoneInfo
) -> tuple[date, datetime] | None:
    """The most recent weekly occurrence (``weekday`` 0 = Monday) at or before ``now``."""
    today = _wall(now, tz).date()
    day = today - timedelta(days=(today.weekday() - weekday) % 7)
    for candidate in (day, day - timedelta(days=7)):
        instant = occurrence(candidate, at, tz)
        if instant <= now:
            return candidate, instant
    return None  # pragma: no cover


def next_weekly(after: datetime, weekday: int, at: time, tz: ZoneInfo) -> datetime:
    """The first weekly occurrence strictly after ``after``."""
    today = _wall(after, tz).date()
    day = today + timedelta(days=(weekday - today.weekday()) % 7) - timedelta(days=7)
    for weeks in range(4):
        instant = occurrence(day + timedelta(days=7 * weeks), at, tz)
        if instant > after:
            return instant
    raise AssertionError("no weekly occurrence within four weeks")  # pragma: no cover


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"
