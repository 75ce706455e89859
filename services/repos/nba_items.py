"""SQL for ``nba_items``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, NbaItem

_COLUMNS = (
    "id, user_id, arm_type, title, description, stale_days, gap, has_early_progress_bonus,"
    " is_manually_selected, is_locked, is_current, created_at, last_updated, completed_at"
)


async def open_items(uow: UnitOfWork, arm: Arm) -> list[NbaItem]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from nba_items where arm_type = %s and completed_at is null"
        " order by created_at, id",
        (arm,),
    )
    return [NbaItem.from_row(r) for r in rows]


async def open_items_all(uow: UnitOfWork) -> list[NbaItem]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from nba_items where completed_at is null order by created_at, id"
    )
    return [NbaItem.from_row(r) for r in rows]


async def get(uow: UnitOfWork, item_id: UUID) -> NbaItem | None:
    row = await uow.fetchone(f"select {_COLUMNS} from nba_items where id = %s", (item_id,))
    return NbaItem.from_row(row) if row else None


async def count_open(uow: UnitOfWork, arm: Arm) -> int:
    row = await uow.fetchone(
        "select count(*) as n from nba_items where arm_type = %s and completed_at is null",
        (arm,),
    )
    return int(row["n"]) if row else 0


async def insert(
    uow: UnitOfWork, arm: Arm, title: str, gap: int, description: str | None, now: datetime
) -> UUID:
    row = await uow.fetchone(
        "insert into nba_items (user_id, arm_type, title, description, gap, created_at,"
        " last_updated) values (auth.uid(), %s, %s, %s, %s, %s, %s) returning id",
        (arm, title, description, gap, now, now),
    )
    assert row is not None
    item_id: UUID = row["id"]
    return item_id


async def update_fields(
    uow: UnitOfWork, item_id: UUID, *, title: str, gap: int, now: datetime
) -> None:
    await uow.execute(
        "update nba_items set title = %s, gap = %s, last_updated = %s where id = %s",
        (title, gap, now, item_id),
    )


async def delete(uow: UnitOfWork, item_id: UUID) -> int:
    return await uow.execute("delete from nba_items where id = %s", (item_id,))


async def set_flags(
    uow: UnitOfWork,
    item_id: UUID,
    *,
    now: datetime,
    locked: bool | None = None,
    manual: bool | None = None,
    early_bonus: bool | None = None,
) -> None:
    """Change the given flags of one item (None leaves a flag as it is); touches last_updated."""
    await uow.execute(
        "update nba_items set is_locked = coalesce(%(locked)s, is_locked),"
        " is_manually_selected = coalesce(%(manual)s, is_manually_selected),"
        " has_early_progress_bonus = coalesce(%(bonus)s, has_early_progress_bonus),"
        " last_updated = %(now)s where id = %(id)s",
        {"locked": locked, "manual": manual, "bonus": early_bonus, "now": now, "id": item_id},
    )


async def clear_manual(uow: UnitOfWork, arm: Arm, now: datetime) -> int:
    return await uow.execute(
        "update nba_items set is_manually_selected = false, last_updated = %s"
        " where arm_type = %s and is_manually_selected and completed_at is null",
        (now, arm),
    )


async def complete(uow: UnitOfWork, item_id: UUID, now: datetime) -> None:
    await uow.execute(
        "update nba_items set completed_at = %s, is_current = false, is_locked = false,"
        " is_manually_selected = false, last_updated = %s where id = %s",
        (now, now, item_id),
    )


async def apply_ranking(
    uow: UnitOfWork, arm: Arm, current: UUID | None, stale: dict[UUID, Decimal]
) -> None:
    """Store fresh stale_days and make ``current`` the only current open item of ``arm``.

    Clearing happens before setting, so the partial unique index never sees two.
    """
    await uow.execute(
        "update nba_items n set stale_days = s.stale,"
        " is_current = n.is_current and n.id is not distinct from %(cur)s"
        " from unnest(%(ids)s::uuid[], %(stales)s::numeric[]) as s(id, stale)"
        " where n.id = s.id and n.arm_type = %(arm)s and n.completed_at is null"
        " and (n.stale_days is distinct from s.stale"
        "      or (n.is_current and n.id is distinct from %(cur)s))",
        {"cur": current, "ids": list(stale), "stales": list(stale.values()), "arm": arm},
    )
    if current is not None:
        await uow.execute(
            "update nba_items set is_current = true where id = %s and not is_current",
            (current,),
        )
