"""SQL for ``focus_sessions`` (services/focus.py).

Every statement runs in a user's unit of work: row-level security confines it to the user.
A session is read with its item's title, through a join that RLS also confines (an item id
that is not the user's reads as no title).

f-string SQL in this module interpolates only the fixed fragments defined here (the
column names are the DTO's field names)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, FocusSession
from services.repos.rows import field_names

#: What a session is read as: its columns and, last, its item's title (the DTO's fields).
FIELDS = field_names(FocusSession)
#: The session's own columns, as ``s.<column>`` (focus_messages reads them too).
COLUMNS = ", ".join(f"s.{name}" for name in FIELDS if name != "title")
# The item is joined on the session's user too: RLS confines it already in a user's unit of
# work, and the condition keeps it so anywhere else.
_SELECT = (
    f"select {COLUMNS}, i.title from focus_sessions s"
    " left join nba_items i on i.id = s.item_id and i.user_id = s.user_id"
)


#: The user's session that is not stopped (at most one: a unique index), as a subquery
#: (/status reads it in its one statement: services/repos/global_metrics.py).
RUNNING = (
    f"{_SELECT} where s.user_id = auth.uid() and s.stopped_at is null"
    " order by s.started_at desc limit 1"
)


async def running(uow: UnitOfWork) -> FocusSession | None:
    """The user's session that is not stopped."""
    row = await uow.fetchone(RUNNING)
    return FocusSession.from_row(row) if row else None


async def get(uow: UnitOfWork, session_id: UUID) -> FocusSession | None:
    row = await uow.fetchone(f"{_SELECT} where s.id = %s", (session_id,))
    return FocusSession.from_row(row) if row else None


async def insert(
    uow: UnitOfWork, arm: Arm, item_id: UUID, planned_minutes: int | None, now: datetime
) -> UUID | None:
    """A new running session; None if the user has one running already (nothing written)."""
    row = await uow.fetchone(
        "insert into focus_sessions (user_id, arm_type, item_id, started_at, planned_minutes)"
        " values (auth.uid(), %s, %s, %s, %s)"
        " on conflict (user_id) where stopped_at is null do nothing returning id",
        (arm, item_id, now, planned_minutes),
    )
    return row["id"] if row else None


async def pause(uow: UnitOfWork, session_id: UUID, at: datetime) -> int:
    return await uow.execute(
        "update focus_sessions set paused_at = %s"
        " where id = %s and stopped_at is null and paused_at is null",
        (at, session_id),
    )


async def resume(uow: UnitOfWork, session_id: UUID, paused_seconds: int) -> int:
    return await uow.execute(
        "update focus_sessions set paused_at = null, paused_seconds = %s"
        " where id = %s and stopped_at is null and paused_at is not null",
        (paused_seconds, session_id),
    )


async def stop(
    uow: UnitOfWork, session_id: UUID, at: datetime, paused_seconds: int, log_id: UUID | None
) -> int:
    return await uow.execute(
        "update focus_sessions set stopped_at = %s, paused_at = null, paused_seconds = %s,"
        " log_id = %s where id = %s and stopped_at is null",
        (at, paused_seconds, log_id, session_id),
    )


async def set_planned(uow: UnitOfWork, session_id: UUID, planned_minutes: int) -> int:
    return await uow.execute(
        "update focus_sessions set planned_minutes = %s where id = %s and stopped_at is null",
        (planned_minutes, session_id),
    )
