"""SQL for ``execution_logs``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, ExecutionLog

_COLUMNS = "id, user_id, arm_type, action, details, duration, timestamp"


async def insert(
    uow: UnitOfWork,
    arm: Arm,
    action: str,
    details: str | None,
    duration: int | None,
    now: datetime,
    dedupe_key: str | None = None,
) -> ExecutionLog | None:
    """Insert a log; None when a log with the same dedupe key already exists."""
    row = await uow.fetchone(
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp,"
        " dedupe_key) values (auth.uid(), %s, %s, %s, %s, %s, %s)"
        " on conflict (user_id, dedupe_key) where dedupe_key is not null do nothing"
        f" returning {_COLUMNS}",
        (arm, action, details, duration, now, dedupe_key),
    )
    return ExecutionLog.from_row(row) if row else None


async def by_dedupe_key(uow: UnitOfWork, key: str) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from execution_logs where dedupe_key = %s", (key,)
    )
    return ExecutionLog.from_row(row) if row else None


async def latest(uow: UnitOfWork) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from execution_logs"
        " order by timestamp desc, id desc limit 1 for update"
    )
    return ExecutionLog.from_row(row) if row else None


async def delete(uow: UnitOfWork, log_id: UUID) -> None:
    await uow.execute("delete from execution_logs where id = %s", (log_id,))


async def latest_time(uow: UnitOfWork, arm: Arm) -> datetime | None:
    row = await uow.fetchone(
        "select max(timestamp) as t from execution_logs where arm_type = %s", (arm,)
    )
    return row["t"] if row else None


async def minutes_by_arm(uow: UnitOfWork, since: datetime, until: datetime) -> dict[Arm, int]:
    """Minutes logged per theater in (since, until]."""
    rows = await uow.fetchall(
        "select arm_type, coalesce(sum(duration), 0)::int as m from execution_logs"
        " where timestamp > %s and timestamp <= %s group by arm_type",
        (since, until),
    )
    found: dict[Arm, int] = {"ibm": 0, "cs": 0}
    for row in rows:
        found[row["arm_type"]] = row["m"]
    return found


async def recent(uow: UnitOfWork, arm: Arm | None, limit: int) -> list[ExecutionLog]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from execution_logs"
        " where (%(arm)s::text is null or arm_type = %(arm)s)"
        " order by timestamp desc, id desc limit %(limit)s",
        {"arm": arm, "limit": limit},
    )
    return [ExecutionLog.from_row(r) for r in rows]


async def between(uow: UnitOfWork, since: datetime, until: datetime) -> list[ExecutionLog]:
    """Logs with a duration written in (since, until], oldest first (for /stats)."""
    rows = await uow.fetchall(
        f"select {_COLUMNS} from execution_logs"
        " where timestamp > %s and timestamp <= %s and duration is not null"
        " order by timestamp, id",
        (since, until),
    )
    return [ExecutionLog.from_row(r) for r in rows]


async def set_duration(uow: UnitOfWork, log_id: UUID, minutes: int) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"update execution_logs set duration = %s where id = %s returning {_COLUMNS}",
        (minutes, log_id),
    )
    return ExecutionLog.from_row(row) if row else None


async def set_details(uow: UnitOfWork, log_id: UUID, details: str | None) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"update execution_logs set details = %s where id = %s returning {_COLUMNS}",
        (details, log_id),
    )
    return ExecutionLog.from_row(row) if row else None
