"""SQL for ``global_metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.db import UnitOfWork
from services.models import Arm, FocusSession, GlobalMetrics, NbaItem, Theater, UserSettings
from services.repos import focus_sessions
from services.repos.nba_items import OPEN_ITEMS_OF
from services.repos.rows import (
    ITEM_FIELDS,
    METRICS_FIELDS,
    SETTINGS_FIELDS,
    THEATER_FIELDS,
    select_list,
    take,
)

# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS, the DTO column
# lists (services/repos/rows.py), ``for update``, and fragments of the repos modules (a
# ``gate`` is one).
_COLUMNS = (
    "user_id, combined_progress, energy_allocation_ibm, energy_allocation_cs, overload_risk,"
    " last_sync_time, last_computed"
)


async def ensure(uow: UnitOfWork, now: datetime) -> None:
    await uow.execute(
        "insert into global_metrics (user_id, last_sync_time, last_computed)"
        " values (auth.uid(), %s, %s) on conflict (user_id) do nothing",
        (now, now),
    )


async def get(uow: UnitOfWork, *, for_update: bool = False) -> GlobalMetrics | None:
    lock = " for update" if for_update else ""
    row = await uow.fetchone(f"select {_COLUMNS} from global_metrics{lock}")
    return GlobalMetrics.from_row(row) if row else None


_SET_RISK = "update global_metrics set overload_risk = %(gm_risk)s, last_computed = %(gm_now)s"


async def set_risk(uow: UnitOfWork, risk: Decimal, now: datetime) -> None:
    await uow.execute(_SET_RISK, {"gm_risk": risk, "gm_now": now})


def set_risk_cte(risk: Decimal, now: datetime, gate: str = "") -> tuple[str, dict[str, Any]]:
    """:func:`set_risk` as a CTE named ``gm`` (``gate``: " and <condition>")."""
    return f"gm as ({_SET_RISK} where true{gate} returning 1)", {"gm_risk": risk, "gm_now": now}


async def set_progress(uow: UnitOfWork, combined: Decimal, now: datetime) -> None:
    await uow.execute(
        "update global_metrics set combined_progress = %s, last_computed = %s", (combined, now)
    )


async def set_energy(
    uow: UnitOfWork, ibm: int, cs: int, now: datetime, *, replayed: bool = False
) -> bool:
    """Set the energy split; a live change records its time. ``replayed``: only if the split
    was not changed live at or after ``now`` (returns False, nothing written, if it was)."""
    params = {"ibm": ibm, "cs": cs, "now": now}
    if replayed:
        return bool(
            await uow.execute(
                "update global_metrics set energy_allocation_ibm = %(ibm)s,"
                " energy_allocation_cs = %(cs)s, last_computed = %(now)s"
                " where energy_set_at is null or energy_set_at < %(now)s",
                params,
            )
        )
    await uow.execute(
        "update global_metrics set energy_allocation_ibm = %(ibm)s,"
        " energy_allocation_cs = %(cs)s, last_computed = %(now)s, energy_set_at = %(now)s",
        params,
    )
    return True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the status screen shows, read in one statement."""

    settings: UserSettings
    metrics: GlobalMetrics
    theaters: dict[Arm, Theater]
    items: list[NbaItem]
    #: minutes logged per theater in (now - 7 d, now] and in (now - 8 d, now - 1 d]
    minutes: dict[Arm, int]
    minutes_day_ago: dict[Arm, int]
    #: the focus session that has not ended, if any
    focus: FocusSession | None = None


async def status_snapshot(
    uow: UnitOfWork, now: datetime, week_ago: datetime, day_ago: datetime, before: datetime
) -> Snapshot | None:
    """Settings, metrics, the theaters with their open items and the minutes of the two
    windows (week_ago, now] and (before, day_ago]; None if the settings or metrics row is
    missing (a theater missing is absent from ``theaters``)."""
    rows = await uow.fetchall(
        f"select {select_list(SETTINGS_FIELDS, 's', 's_')},"
        f" {select_list(METRICS_FIELDS, 'g', 'g_')},"
        f" {select_list(THEATER_FIELDS, 't', 't_')},"
        f" {select_list(ITEM_FIELDS, 'i', 'i_')},"
        f" {select_list(focus_sessions.FIELDS, 'f', 'f_')},"
        " coalesce(m.recent, 0)::bigint as m_recent, coalesce(m.day_ago, 0)::bigint as m_day_ago"
        " from user_settings s cross join global_metrics g left join theaters t on true"
        " left join (select arm_type,"
        "   sum(duration) filter (where timestamp > %(week_ago)s) as recent,"
        "   sum(duration) filter (where timestamp <= %(day_ago)s) as day_ago"
        "   from execution_logs where timestamp > %(before)s and timestamp <= %(now)s"
        "   group by arm_type) m on m.arm_type = t.arm_type"
        f" left join lateral ({OPEN_ITEMS_OF.format(alias='t')}) i on true"
        f" left join lateral ({focus_sessions.RUNNING}) f on true"
        " order by t.arm_type, i.created_at, i.id",
        {"now": now, "week_ago": week_ago, "day_ago": day_ago, "before": before},
    )
    if not rows:
        return None
    settings = take(UserSettings, SETTINGS_FIELDS, rows[0], "s_")
    metrics = take(GlobalMetrics, METRICS_FIELDS, rows[0], "g_")
    assert settings is not None and metrics is not None
    found: dict[Arm, Theater] = {}
    items: list[NbaItem] = []
    minutes: dict[Arm, int] = {"ibm": 0, "cs": 0}
    day: dict[Arm, int] = {"ibm": 0, "cs": 0}
    for row in rows:
        theater = take(Theater, THEATER_FIELDS, row, "t_")
        if theater is None:
            continue
        if theater.arm_type not in found:
            found[theater.arm_type] = theater
            minutes[theater.arm_type] = row["m_recent"]
            day[theater.arm_type] = row["m_day_ago"]
        item = take(NbaItem, ITEM_FIELDS, row, "i_")
        if item is not None:
            items.append(item)
    focus = take(FocusSession, focus_sessions.FIELDS, rows[0], "f_")
    return Snapshot(settings, metrics, found, items, minutes, day, focus)


def risk_sql(minutes: str, capacity: str) -> str:
    """The overload risk of ``minutes`` in 7 days against ``capacity`` hours a week, as
    ``services/rules.py: overload`` computes it (min(100, 100 x load), 2 decimals, halves
    up): an SQL expression over two expressions of the caller (fixed SQL, no input)."""
    return f"least(100, round(100 * ({minutes})::numeric / (({capacity}) * 60), 2))"


def risk_cte(minutes: str, capacity: str, gate: str) -> str:
    """:func:`set_risk` as a CTE named ``gm``, the risk computed in the statement from
    ``minutes`` and ``capacity`` (see :func:`risk_sql`), if ``gate`` (" and <condition>")
    holds."""
    return (
        f"gm as (update global_metrics set overload_risk = {risk_sql(minutes, capacity)},"
        f" last_computed = %(gm_now)s where true{gate} returning 1)"
    )
