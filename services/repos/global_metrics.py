"""SQL for ``global_metrics``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.db import UnitOfWork
from services.models import GlobalMetrics

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


async def set_risk(uow: UnitOfWork, risk: Decimal, now: datetime) -> None:
    await uow.execute(
        "update global_metrics set overload_risk = %s, last_computed = %s", (risk, now)
    )


async def set_progress(uow: UnitOfWork, combined: Decimal, now: datetime) -> None:
    await uow.execute(
        "update global_metrics set combined_progress = %s, last_computed = %s", (combined, now)
    )


async def set_energy(uow: UnitOfWork, ibm: int, cs: int, now: datetime) -> None:
    await uow.execute(
        "update global_metrics set energy_allocation_ibm = %s, energy_allocation_cs = %s,"
        " last_computed = %s",
        (ibm, cs, now),
    )


async def set_last_sync(uow: UnitOfWork, now: datetime) -> None:
    await uow.execute("update global_metrics set last_sync_time = %s", (now,))
