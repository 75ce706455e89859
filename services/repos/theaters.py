"""SQL for ``theaters``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.db import UnitOfWork
from services.models import Arm, Theater, TheaterStatus

# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS, the column
# names of _NOT_CHANGED_SINCE, and fragments of the repos modules (a ``gate`` is one).
_COLUMNS = (
    "user_id, arm_type, status, total_progress, energy_allocation, last_activity,"
    " snoozed_until, blocked_reason, created_at"
)


async def ensure(uow: UnitOfWork, now: datetime) -> None:
    """Create the user's two theaters if missing (idempotent)."""
    await uow.execute(
        "insert into theaters (user_id, arm_type, status, last_activity, created_at, updated_at)"
        " select auth.uid(), a, 'active', %(now)s, %(now)s, %(now)s"
        " from unnest(array['ibm', 'cs']) as a"
        " on conflict (user_id, arm_type) do nothing",
        {"now": now},
    )


async def get_one(uow: UnitOfWork, arm: Arm) -> Theater | None:
    row = await uow.fetchone(f"select {_COLUMNS} from theaters where arm_type = %s", (arm,))
    return Theater.from_row(row) if row else None


async def get_all(uow: UnitOfWork) -> dict[Arm, Theater]:
    rows = await uow.fetchall(f"select {_COLUMNS} from theaters")
    return {row["arm_type"]: Theater.from_row(row) for row in rows}


async def created_at(uow: UnitOfWork, arm: Arm) -> datetime | None:
    row = await uow.fetchone("select created_at from theaters where arm_type = %s", (arm,))
    return row["created_at"] if row else None


_UPDATE_STATE = (
    "update theaters set status = %(th_status)s, last_activity = %(th_activity)s,"
    " updated_at = %(th_now)s where arm_type = %(th_arm)s"
    " and (status is distinct from %(th_status)s"
    "      or last_activity is distinct from %(th_activity)s)"
)


def _state_params(
    arm: Arm, status: TheaterStatus, last_activity: datetime, now: datetime
) -> dict[str, Any]:
    return {"th_status": status, "th_activity": last_activity, "th_now": now, "th_arm": arm}


async def update_state(
    uow: UnitOfWork,
    arm: Arm,
    *,
    status: TheaterStatus,
    last_activity: datetime,
    now: datetime,
) -> None:
    """Store a status and last activity (the row is written only if one of them changes)."""
    await uow.execute(_UPDATE_STATE, _state_params(arm, status, last_activity, now))


def update_state_cte(
    arm: Arm, status: TheaterStatus, last_activity: datetime, now: datetime, gate: str = ""
) -> tuple[str, dict[str, Any]]:
    """:func:`update_state` as a CTE named ``th`` (``gate``: " and <condition>")."""
    return f"th as ({_UPDATE_STATE}{gate} returning 1)", _state_params(
        arm, status, last_activity, now
    )


#: a replayed change applies only if the setting was not changed live at or after its time
_NOT_CHANGED_SINCE = " and ({column} is null or {column} < %(now)s)"


async def set_progress(
    uow: UnitOfWork, arm: Arm, progress: Decimal, now: datetime, *, replayed: bool = False
) -> bool:
    """Set the progress; a live change records its time. False if nothing was written: the
    theater's row is gone, or (``replayed``) it was changed live at or after ``now``."""
    params = {"progress": progress, "now": now, "arm": arm}
    if replayed:
        return bool(
            await uow.execute(
                "update theaters set total_progress = %(progress)s, updated_at = %(now)s"
                " where arm_type = %(arm)s" + _NOT_CHANGED_SINCE.format(column="progress_set_at"),
                params,
            )
        )
    return bool(
        await uow.execute(
            "update theaters set total_progress = %(progress)s, updated_at = %(now)s,"
            " progress_set_at = %(now)s where arm_type = %(arm)s",
            params,
        )
    )


async def set_energy(uow: UnitOfWork, ibm: int, cs: int, now: datetime) -> None:
    await uow.execute(
        "update theaters set energy_allocation = case arm_type when 'ibm' then %s else %s end,"
        " updated_at = %s",
        (ibm, cs, now),
    )


async def set_blocked(
    uow: UnitOfWork,
    arm: Arm,
    reason: str | None,
    status: TheaterStatus,
    now: datetime,
    *,
    replayed: bool = False,
) -> bool:
    """Block or unblock; a live change records its time. False if nothing was written: the
    theater's row is gone, or (``replayed``) it was blocked or unblocked live at or after
    ``now``."""
    params = {"status": status, "reason": reason, "now": now, "arm": arm}
    if replayed:
        return bool(
            await uow.execute(
                "update theaters set status = %(status)s, blocked_reason = %(reason)s,"
                " updated_at = %(now)s where arm_type = %(arm)s"
                + _NOT_CHANGED_SINCE.format(column="blocked_set_at"),
                params,
            )
        )
    return bool(
        await uow.execute(
            "update theaters set status = %(status)s, blocked_reason = %(reason)s,"
            " updated_at = %(now)s, blocked_set_at = %(now)s where arm_type = %(arm)s",
            params,
        )
    )


async def set_snooze(uow: UnitOfWork, arm: Arm, until: datetime | None, now: datetime) -> None:
    await uow.execute(
        "update theaters set snoozed_until = %s, updated_at = %s where arm_type = %s",
        (until, now, arm),
    )


#: The status a theater takes from activity at this instant (``services/rules.py:
#: theater_status`` at 0 hours since the last activity): a blocked theater stays blocked,
#: any other is active. Used by writes that record activity in one statement.
ACTIVE_NOW = "(case when status = 'blocked' then 'blocked' else 'active' end)"


def activity_now_cte(gate: str, arm: str = "%(th_arm)s") -> str:
    """A CTE named ``th``: theater ``arm`` (SQL: a parameter, or a subquery of the caller)
    has activity at ``%(th_now)s`` (its status :data:`ACTIVE_NOW`, its last activity then),
    if ``gate`` (" and <condition>") holds."""
    return (
        f"th as (update theaters set status = {ACTIVE_NOW}, last_activity = %(th_now)s,"
        f" updated_at = %(th_now)s where arm_type = {arm}"
        f" and (status is distinct from {ACTIVE_NOW}"
        f"      or last_activity is distinct from %(th_now)s){gate} returning 1)"
    )
