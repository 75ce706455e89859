"""SQL for ``bot_persistence``: the Telegram application's own state, one JSON value per
``(kind, key)``.

Privileged unit of work only: no API role may read this table. Writes are upserts, so two bot
instances can share it.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from services.db import UnitOfWork

_LOAD = (
    "select key, data from bot_persistence where kind = %s"
    " and (%s::float8 is null or updated_at > now() - make_interval(secs => %s::float8))"
)

_UPSERT = (
    "insert into bot_persistence (kind, key, data) values (%s, %s, %s)"
    " on conflict (kind, key) do update set data = excluded.data, updated_at = now()"
)

_DELETE = "delete from bot_persistence where kind = %s and key = %s"


async def load_kind(
    uow: UnitOfWork, kind: str, max_age_seconds: float | None = None
) -> dict[str, Any]:
    """Every stored value of one kind, by key (only those written in the last
    ``max_age_seconds``, if given)."""
    rows = await uow.fetchall(_LOAD, (kind, max_age_seconds, max_age_seconds))
    return {row["key"]: row["data"] for row in rows}


async def upsert(uow: UnitOfWork, kind: str, key: str, data: Any) -> None:
    """Store ``data`` (JSON-serialisable) under ``(kind, key)``, replacing any older value."""
    await uow.execute(_UPSERT, (kind, key, Jsonb(data)))


async def delete(uow: UnitOfWork, kind: str, key: str) -> int:
    """Remove one value; returns how many rows went (0 or 1)."""
    return await uow.execute(_DELETE, (kind, key))
