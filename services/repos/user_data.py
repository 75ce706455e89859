"""SQL over every per-user Aelpher table at once: for /export and /delete.

The one exception to "one module per table": these statements are the same for every table
(read, count or delete the user's rows), so this module holds the list of those tables and
the order their rows are read in; a new per-user table must be added to :data:`TABLES`.
Table names are interpolated from that fixed list only, never from input.

User unit of work only: RLS confines every statement to the user, and each also says
``user_id = auth.uid()`` so that a privileged connection could never reach other users. The
bot's own tables (:data:`BOT_TABLES`: the Telegram link and the nudge ledger) are read-only to
the user, so deleting their rows runs as the bot inside the same transaction
(:func:`services.repos.bot_role.as_bot`), still filtered on ``auth.uid()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.db import UnitOfWork
from services.repos.bot_role import as_bot


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    #: a stable order for the export (ties broken by the primary key)
    order_by: str


#: Every table that holds a user's Aelpher data, in export order.
TABLES: tuple[Table, ...] = (
    Table("theaters", "arm_type, id"),
    Table("nba_items", "created_at, id"),
    Table("execution_logs", '"timestamp", id'),
    Table("reflections", '"timestamp", id'),
    Table("focus_sessions", "started_at, id"),
    Table("global_metrics", "id"),
    Table("user_settings", "user_id"),
    Table("telegram_links", "telegram_user_id"),
    Table("nudges", "claimed_at, id"),
    Table("sync_queue", '"timestamp", id'),
)
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)
#: Per-user tables only the bot writes (users may read their rows).
BOT_TABLES: frozenset[str] = frozenset({"telegram_links", "nudges"})
_BY_NAME = {t.name: t for t in TABLES}


@dataclass(frozen=True, slots=True)
class TableRows:
    """A table's column names (in table order) and the user's rows in it."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]


def _table(name: str) -> Table:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"not a per-user table: {name!r}") from None


async def read_all(uow: UnitOfWork, name: str) -> TableRows:
    """Every row the user has in ``name``, with every column."""
    table = _table(name)
    cur = await uow.conn.execute(
        f"select * from {table.name} where user_id = auth.uid() order by {table.order_by}"
    )
    rows = await cur.fetchall()
    columns = tuple(column.name for column in cur.description or ())
    return TableRows(table.name, columns, tuple(dict(row) for row in rows))


async def count_all(uow: UnitOfWork) -> dict[str, int]:
    """How many rows the user has in each table, in one statement."""
    counts = ", ".join(
        f"(select count(*) from {t.name} where user_id = auth.uid()) as {t.name}" for t in TABLES
    )
    row = await uow.fetchone(f"select {counts}")
    assert row is not None
    return {t.name: int(row[t.name]) for t in TABLES}


async def delete_all(uow: UnitOfWork, name: str) -> int:
    """Delete every row the user has in ``name``; returns how many went."""
    table = _table(name)
    statement = f"delete from {table.name} where user_id = auth.uid()"
    if table.name not in BOT_TABLES:
        return await uow.execute(statement)
    async with as_bot(uow):
        return await uow.execute(statement)


async def has_own_rows(uow: UnitOfWork, user_id: UUID) -> bool:
    """Whether the user still has both theaters, their metrics and their settings (rows a
    user can delete through the Data API; every command needs them). Privileged."""
    row = await uow.fetchone(
        "select (select count(*) from theaters where user_id = %(u)s) = 2"
        " and exists (select 1 from global_metrics where user_id = %(u)s)"
        " and exists (select 1 from user_settings where user_id = %(u)s) as complete",
        {"u": user_id},
    )
    return bool(row and row["complete"])
