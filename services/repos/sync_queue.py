"""SQL for ``sync_queue`` (PostgreSQL): the outbox entries applied, one row per entry.

A write kept in the outbox during an outage (services/outbox.py, services/sync.py) is claimed
here when it is replayed, by the first statement of the user's unit of work that applies it
(services/db.py), so it applies at most once however often the replay runs; the claim also
records the time of the last sync in ``global_metrics``.

services/db.py calls this module for every replayed unit of work, so it imports services.db
for types only (services.db imports it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from services.db import UnitOfWork

_CLAIM = (
    "with claimed as (insert into sync_queue"
    " (id, user_id, operation, table_name, payload, timestamp, synced)"
    " values (%(id)s, auth.uid(), %(op)s, %(table)s, %(payload)s::jsonb, %(ts)s, true)"
    " on conflict (id) do nothing returning id)"
    " update global_metrics set last_sync_time = now()"
    " where exists (select 1 from claimed) returning 1 as claimed"
)


async def claim(
    uow: UnitOfWork,
    entry_id: UUID,
    operation: str,
    table_name: str,
    payload: str,
    timestamp: datetime,
) -> bool:
    """Record the entry as applied (and the sync time); False if it was applied before."""
    row = await uow.fetchone(
        _CLAIM,
        {
            "id": entry_id,
            "op": operation,
            "table": table_name,
            "payload": payload,
            "ts": timestamp,
        },
    )
    return row is not None
