"""SQL for ``reflections``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, Reflection
from services.repos.user_settings import HAS_LOCK_ROWS

# f-string SQL in this module interpolates only _COLUMNS (a fixed column list) and
# user_settings.HAS_LOCK_ROWS (fixed SQL).
_COLUMNS = "id, user_id, arm_type, evidence, context, timestamp"


async def insert(
    uow: UnitOfWork,
    reflection_id: UUID,
    arm: Arm,
    evidence: str,
    context: str | None,
    now: datetime,
) -> Reflection:
    """Insert a reflection as the last statement of ``uow``, which commits with it (only if
    the user has the rows of the write lock: the unit of work raises NotLinked otherwise).
    If the user has a reflection ``reflection_id`` already, nothing is written and that one
    is returned."""
    rows = await uow.commit_with(
        "with ins as (insert into reflections (id, user_id, arm_type, evidence, context,"
        " timestamp) select %(id)s, auth.uid(), %(arm)s, %(evidence)s, %(context)s, %(now)s"
        f" where {HAS_LOCK_ROWS} on conflict (id) do nothing returning {_COLUMNS})"
        f" select {_COLUMNS} from ins union all"
        f" select {_COLUMNS} from reflections where id = %(id)s",
        {"id": reflection_id, "arm": arm, "evidence": evidence, "context": context, "now": now},
    )
    assert rows
    return Reflection.from_row(rows[0])


async def set_context(uow: UnitOfWork, reflection_id: UUID, context: str | None) -> int:
    return await uow.execute(
        "update reflections set context = %s where id = %s", (context, reflection_id)
    )


async def get(uow: UnitOfWork, reflection_id: UUID) -> Reflection | None:
    row = await uow.fetchone(f"select {_COLUMNS} from reflections where id = %s", (reflection_id,))
    return Reflection.from_row(row) if row else None


async def recent(uow: UnitOfWork, arm: Arm | None, limit: int) -> list[Reflection]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from reflections where (%(arm)s::text is null or arm_type = %(arm)s)"
        " order by timestamp desc, id desc limit %(limit)s",
        {"arm": arm, "limit": limit},
    )
    return [Reflection.from_row(r) for r in rows]
