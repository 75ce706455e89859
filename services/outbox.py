"""The local durable outbox: writes kept on this server while the database is unreachable.

Entries have the seed's ``sync_queue`` shape (operation, table_name, payload, timestamp,
synced, retries) and live in a SQLite file in ``DATA_DIR`` (the main store is always
PostgreSQL; this file only bridges an outage). :func:`services.sync.replay` applies them in
order when the database answers again. Each entry is applied at most once: its id is recorded
in the database's own ``sync_queue`` table in the same transaction as the write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.files import private_file

_SCHEMA = """
create table if not exists sync_queue (
  seq integer primary key autoincrement,
  id text not null unique,
  telegram_user_id integer not null,
  chat_id integer not null,
  operation text not null check (operation in ('INSERT', 'UPDATE', 'DELETE')),
  table_name text not null,
  payload text not null,
  timestamp text not null,
  synced integer not null default 0,
  retries integer not null default 0,
  notified integer not null default 0,
  last_error text
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: uuid.UUID
    telegram_user_id: int
    chat_id: int
    operation: str
    table_name: str
    payload: dict[str, Any]
    timestamp: datetime
    retries: int
    notified: bool


class Outbox:
    """A small SQLite-backed queue; every method is safe to call from the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            private_file(self.path)  # users' writes: owner only (SQLite's -wal/-shm follow)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("pragma journal_mode=wal")
            conn.execute("pragma synchronous=full")  # durable: acknowledged means on disk
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    async def add(
        self,
        telegram_user_id: int,
        chat_id: int,
        operation: str,
        table_name: str,
        payload: dict[str, Any],
        timestamp: datetime,
    ) -> uuid.UUID:
        """Keep one write; returns its id once it is on disk."""
        entry_id = uuid.uuid4()
        await asyncio.to_thread(
            self._run,
            "insert into sync_queue (id, telegram_user_id, chat_id, operation, table_name,"
            " payload, timestamp) values (?, ?, ?, ?, ?, ?, ?)",
            (
                str(entry_id),
                telegram_user_id,
                chat_id,
                operation,
                table_name,
                json.dumps(payload),
                timestamp.isoformat(),
            ),
        )
        return entry_id

    async def pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Unsynced entries, oldest first."""
        rows = await asyncio.to_thread(
            self._run,
            "select id, telegram_user_id, chat_id, operation, table_name, payload, timestamp,"
            " retries, notified from sync_queue where synced = 0 order by seq limit ?",
            (limit,),
        )
        return [
            OutboxEntry(
                uuid.UUID(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]),
                datetime.fromisoformat(r[6]), r[7], bool(r[8]),
            )
            for r in rows
        ]  # fmt: skip

    async def count_pending(self) -> int:
        rows = await asyncio.to_thread(
            self._run, "select count(*) from sync_queue where synced = 0"
        )
        return int(rows[0][0])

    async def mark_synced(self, entry_id: uuid.UUID) -> None:
        await asyncio.to_thread(
            self._run, "update sync_queue set synced = 1 where id = ?", (str(entry_id),)
        )

    async def mark_failed(self, entry_id: uuid.UUID, error: str) -> int:
        """Count a failed replay (the entry is kept); returns the retries so far."""
        rows = await asyncio.to_thread(
            self._run,
            "update sync_queue set retries = retries + 1, last_error = ? where id = ?"
            " returning retries",
            (error[:500], str(entry_id)),
        )
        return int(rows[0][0]) if rows else 0

    async def mark_notified(self, entry_id: uuid.UUID) -> None:
        await asyncio.to_thread(
            self._run, "update sync_queue set notified = 1 where id = ?", (str(entry_id),)
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
