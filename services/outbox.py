"""The local durable outbox: writes kept on this server while the database is unreachable.

Entries have the seed's ``sync_queue`` shape (operation, table_name, payload, timestamp,
synced, retries) and live in a SQLite file in ``DATA_DIR`` (the main store is always
PostgreSQL; this file only bridges an outage). :func:`services.sync.replay` applies them in
order when the database answers again. Each entry is applied at most once: its id is recorded
in the database's own ``sync_queue`` table in the same transaction as the write.

An entry is *pending* until it is applied (``synced``) or *parked*: it can never apply (its
author is not linked, a value is invalid, the payload is unreadable) or a later live change
replaced it. Parked entries stay in the file with their reason and are never retried.

The file also remembers which Telegram users this instance has seen linked to an account
(:meth:`Outbox.remember_linked`), so that during an outage, when the database can't be
asked, only their writes are kept. Writes are capped per user and overall
(:class:`OutboxFull`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import DomainError
from services.files import private_file

logger = logging.getLogger(__name__)

#: Default caps on pending entries (settings OUTBOX_MAX_PER_USER and OUTBOX_MAX_TOTAL).
MAX_PER_USER = 200
MAX_TOTAL = 10_000

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
create table if not exists linked_users (
  telegram_user_id integer primary key,
  seen_at text not null
);
"""
#: Columns added since the first version of the file (added to older files when opened).
_ADDED_COLUMNS = {"parked": "integer not null default 0"}
_INDEXES = """
create index if not exists sync_queue_pending on sync_queue (telegram_user_id, seq)
  where synced = 0 and parked = 0;
"""
# f-string SQL in this module interpolates only _PENDING, the fixed filters of parked(), and
# the names and types of _ADDED_COLUMNS. (This is the outbox's own SQLite file, not PostgreSQL:
# its SQL stays with it, out of services/repos.)
_PENDING = "synced = 0 and parked = 0"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OutboxFull(DomainError):
    """The outbox holds as many pending writes as it may (for this user, or overall)."""

    def __init__(self, per_user: bool, limit: int) -> None:
        self.per_user = per_user
        self.limit = limit
        if per_user:
            message = (
                f"I can't reach the database, and I'm already keeping {limit} of your changes"
                " for when it's back, the most I keep for one person: this one was NOT saved."
                " Please send it again once the database is back."
            )
        else:
            message = (
                "I can't reach the database, and this server's store for offline changes is"
                " full: this change was NOT saved. Please send it again once the database"
                " is back."
            )
        super().__init__(message)


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
    seq: int = 0
    #: why the stored entry can't be read (a malformed payload or timestamp), else None
    problem: str | None = None


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    problem = None
    try:
        payload = json.loads(row[5])
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        payload, problem = {}, "its stored payload is unreadable"
    try:
        timestamp = datetime.fromisoformat(row[6])
        if timestamp.tzinfo is None:
            raise ValueError("no time zone")
    except (TypeError, ValueError):
        timestamp, problem = _EPOCH, "its stored time is unreadable"
    return OutboxEntry(
        uuid.UUID(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4]), payload,
        timestamp, int(row[7]), bool(row[8]), int(row[9]), problem,
    )  # fmt: skip


class Outbox:
    """A small SQLite-backed queue; every method is safe to call from the event loop."""

    def __init__(
        self, path: Path, *, max_per_user: int = MAX_PER_USER, max_total: int = MAX_TOTAL
    ) -> None:
        self.path = path
        self.max_per_user = max_per_user
        self.max_total = max_total
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        #: Telegram ids recorded as linked by this process (each is written once)
        self._linked: set[int] = set()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            private_file(self.path)  # users' writes: owner only (SQLite's -wal/-shm follow)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("pragma journal_mode=wal")
            conn.execute("pragma synchronous=full")  # durable: acknowledged means on disk
            conn.executescript(_SCHEMA)
            have = {row[1] for row in conn.execute("pragma table_info(sync_queue)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    conn.execute(f"alter table sync_queue add column {column} {kind}")
            conn.executescript(_INDEXES)
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def _add(self, row: tuple[Any, ...]) -> None:
        """Insert one entry unless a cap is reached (checked and inserted in one transaction)."""
        with self._lock:
            conn = self._db()
            conn.execute("begin immediate")
            try:
                mine, total = conn.execute(
                    f"select count(*) filter (where telegram_user_id = ?), count(*)"
                    f" from sync_queue where {_PENDING}",
                    (row[1],),
                ).fetchone()
                if mine >= self.max_per_user:
                    raise OutboxFull(True, self.max_per_user)
                if total >= self.max_total:
                    raise OutboxFull(False, self.max_total)
                conn.execute(
                    "insert into sync_queue (id, telegram_user_id, chat_id, operation,"
                    " table_name, payload, timestamp) values (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            except BaseException:
                conn.execute("rollback")
                raise
            conn.execute("commit")

    async def add(
        self,
        telegram_user_id: int,
        chat_id: int,
        operation: str,
        table_name: str,
        payload: dict[str, Any],
        timestamp: datetime,
    ) -> uuid.UUID:
        """Keep one write; returns its id once it is on disk. Raises :class:`OutboxFull`
        (nothing kept) when the user's or the overall cap of pending entries is reached."""
        entry_id = uuid.uuid4()
        await asyncio.to_thread(
            self._add,
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

    async def pending(self, limit: int = 100, *, after: int = 0) -> list[OutboxEntry]:
        """Entries that can still apply (neither synced nor parked), oldest first, from the
        one after sequence number ``after``."""
        rows = await asyncio.to_thread(
            self._run,
            "select id, telegram_user_id, chat_id, operation, table_name, payload, timestamp,"
            f" retries, notified, seq from sync_queue where {_PENDING} and seq > ?"
            " order by seq limit ?",
            (after, limit),
        )
        return [_entry(r) for r in rows]

    async def count_pending(self, telegram_user_id: int | None = None) -> int:
        """Pending entries: all of them, or one user's."""
        if telegram_user_id is None:
            rows = await asyncio.to_thread(
                self._run, f"select count(*) from sync_queue where {_PENDING}"
            )
        else:
            rows = await asyncio.to_thread(
                self._run,
                f"select count(*) from sync_queue where {_PENDING} and telegram_user_id = ?",
                (telegram_user_id,),
            )
        return int(rows[0][0])

    async def parked(self, telegram_user_id: int | None = None) -> list[tuple[uuid.UUID, str]]:
        """Parked entries with their reasons, oldest first (all, or one user's)."""
        where = "" if telegram_user_id is None else " and telegram_user_id = ?"
        params = () if telegram_user_id is None else (telegram_user_id,)
        rows = await asyncio.to_thread(
            self._run,
            f"select id, last_error from sync_queue where parked = 1{where} order by seq",
            params,
        )
        return [(uuid.UUID(r[0]), str(r[1])) for r in rows]

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

    async def park(self, entry_id: uuid.UUID, reason: str) -> None:
        """Stop replaying an entry for good, keeping why (and noting its author was told)."""
        await asyncio.to_thread(
            self._run,
            "update sync_queue set parked = 1, notified = 1, last_error = ? where id = ?",
            (reason[:500], str(entry_id)),
        )

    async def mark_notified(self, entry_id: uuid.UUID) -> None:
        await asyncio.to_thread(
            self._run, "update sync_queue set notified = 1 where id = ?", (str(entry_id),)
        )

    # --- who may queue ------------------------------------------------------------------

    async def remember_linked(self, telegram_user_id: int) -> None:
        """Note that this Telegram user is linked to an account (written once per process)."""
        if telegram_user_id in self._linked:
            return
        try:
            await asyncio.to_thread(
                self._run,
                "insert into linked_users (telegram_user_id, seen_at) values (?, ?)"
                " on conflict (telegram_user_id) do update set seen_at = excluded.seen_at",
                (telegram_user_id, datetime.now(UTC).isoformat()),
            )
        except sqlite3.Error as exc:  # the user's own request must not fail for this
            logger.warning("could not note a linked user in the outbox: %s", exc)
            return
        self._linked.add(telegram_user_id)

    async def is_linked(self, telegram_user_id: int) -> bool:
        """Whether this instance has seen the Telegram user linked (and not unlinked since)."""
        if telegram_user_id in self._linked:
            return True
        rows = await asyncio.to_thread(
            self._run,
            "select 1 from linked_users where telegram_user_id = ?",
            (telegram_user_id,),
        )
        return bool(rows)

    async def forget_linked(self, telegram_user_id: int) -> None:
        """The user is no longer linked: their writes are not kept during an outage."""
        self._linked.discard(telegram_user_id)
        await asyncio.to_thread(
            self._run, "delete from linked_users where telegram_user_id = ?", (telegram_user_id,)
        )

    async def drop_user(self, telegram_user_id: int) -> int:
        """Remove every entry of the user (pending, parked or synced: they hold what the user
        typed) and forget them as linked; returns how many pending entries were dropped."""
        pending = await self.count_pending(telegram_user_id)
        await asyncio.to_thread(
            self._run, "delete from sync_queue where telegram_user_id = ?", (telegram_user_id,)
        )
        await self.forget_linked(telegram_user_id)
        return pending

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
