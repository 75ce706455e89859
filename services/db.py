"""PostgreSQL access: the connection pool, the per-user unit of work and the privileged path.

Every read or write of one user's rows goes through :meth:`Database.user_uow`, which opens one
transaction, switches to the ``authenticated`` role and sets ``request.jwt.claims`` exactly as
PostgREST does, so the row-level security policies confine it to that user even if a query
forgets its ``user_id`` filter. Everything is transaction-scoped (``set_config(..., true)``),
so it is safe behind Supabase's pooler in transaction mode.

Server-side prepared statements save most of a command's database time (planning a query
under the row-level security policies costs more than running it), so the pool prepares every
statement it sees twice on a connection, unless ``prepare=False`` (Supabase's pooler in
transaction mode cannot keep them: ``bot/database.py`` decides). psycopg may forget a
connection's prepared statements after a ROLLBACK, so reads run in READ ONLY transactions
that end with COMMIT (see :meth:`Database.user_uow`); the server refuses writes in them.

Cross-user work (the nudge scan, account creation and linking, the bot's own state) uses
:meth:`Database.privileged`, which runs as the connecting role (``postgres``, which bypasses RLS).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import pq, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.errors import NotLinked

logger = logging.getLogger(__name__)

# Supabase sets this on the `authenticated` role; SET ROLE does not apply role settings, so the
# unit of work applies it itself.
STATEMENT_TIMEOUT = "8s"
STATEMENT_TIMEOUT_LIT = sql.Literal(STATEMENT_TIMEOUT)

# BEGIN and the impersonation go to the server as one simple query (one round trip); the
# values are quoted by psycopg.sql, never formatted by hand.
_IMPERSONATE = sql.SQL(
    "{begin};"
    " select set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims', {claims}, true),"
    " set_config('statement_timeout', {timeout}, true)"
)


# The only SQL outside services/repos: resolving a Telegram user must happen in the same
# statement that switches role, before any repository can run.
_IMPERSONATE_TELEGRAM = sql.SQL(
    "{begin};"
    " with link as (select user_id, active from telegram_links"
    "               where telegram_user_id = {tg})"
    " select link.user_id, link.active,"
    " set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims',"
    "   json_build_object('sub', link.user_id, 'role', 'authenticated')::text, true),"
    " set_config('statement_timeout', {timeout}, true)"
    " from link"
)


@dataclass(frozen=True, slots=True)
class TelegramUser:
    """A principal named by its Telegram user id; resolved to its Aelpher user in the same
    transaction (no extra round trip). A message from a user whose link was switched off
    (they had blocked the bot) switches it back on (one extra statement, that time only)."""

    telegram_user_id: int


Principal = UUID | TelegramUser


@dataclass(frozen=True, slots=True)
class Replay:
    """A write from the outbox being applied: recorded in ``sync_queue`` in the same
    transaction, so it is applied at most once however often the replay runs."""

    id: UUID
    operation: str
    table_name: str
    payload: str
    timestamp: datetime


class AlreadyApplied(Exception):
    """The outbox entry was applied before (its id is in ``sync_queue``)."""


# A one-statement read (Database.user_uow(single=True)) sends the impersonation and the read
# together in one pipeline: between two Syncs they form one implicit transaction, so neither
# BEGIN nor COMMIT is needed. This impersonation always switches role, and with no link the
# claims name no user (auth.uid() is null: the policies let nothing through), because the
# read has already run when its result says so; and it makes the transaction read-only.
_SINGLE_TELEGRAM = (
    "select link.user_id, coalesce(link.active, true) as active,"
    " set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims',"
    "   json_build_object('sub', link.user_id, 'role', 'authenticated')::text, true),"
    " set_config('statement_timeout', %(timeout)s, true),"
    " set_config('transaction_read_only', 'on', true)"
    " from (select) as one left join telegram_links link on link.telegram_user_id = %(tg)s"
)
_SINGLE_USER = (
    "select %(uid)s::uuid as user_id, true as active,"
    " set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims', %(claims)s, true),"
    " set_config('statement_timeout', %(timeout)s, true),"
    " set_config('transaction_read_only', 'on', true)"
)


def _claims(user_id: UUID) -> str:
    return json.dumps({"sub": str(user_id), "role": "authenticated"})


#: Set by the outbox replayer around one service call; the first user unit of work claims it.
REPLAY: ContextVar[Replay | None] = ContextVar("aelpher_replay", default=None)

_REACTIVATE = "update telegram_links set active = true where telegram_user_id = %s and not active"

_CLAIM_REPLAY = (
    "with claimed as (insert into sync_queue"
    " (id, user_id, operation, table_name, payload, timestamp, synced)"
    " values (%(id)s, auth.uid(), %(op)s, %(table)s, %(payload)s::jsonb, %(ts)s, true)"
    " on conflict (id) do nothing returning id)"
    " update global_metrics set last_sync_time = now()"
    " where exists (select 1 from claimed) returning 1 as claimed"
)


class DatabaseUnavailable(Exception):
    """The database could not be reached (refused, lost, or no connection free in time)."""


class UnitOfWork:
    """One transaction for one user. Commit explicitly; anything else rolls back."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[DictRow],
        user_id: UUID | None,
        single: Principal | None = None,
    ) -> None:
        #: the Aelpher user this transaction is confined to (None: privileged, or a
        #: one-statement read whose statement has not run yet)
        self.conn = conn
        self.user_id = user_id
        #: a one-statement read: who to impersonate along with the statement
        self._single = single
        self._spent = False
        #: a one-statement read found the Telegram link switched off
        self.link_inactive = False
        self._committed = False

    async def commit(self) -> None:
        """Mark the work as done: the transaction commits when the block exits normally."""
        self._committed = True

    @property
    def committed(self) -> bool:
        return self._committed

    async def fetchone(self, query: str, params: Any = None) -> DictRow | None:
        cur = await self._execute(query, params)
        return await cur.fetchone()

    async def fetchall(self, query: str, params: Any = None) -> list[DictRow]:
        cur = await self._execute(query, params)
        return await cur.fetchall()

    async def execute(self, query: str, params: Any = None) -> int:
        """Run a statement and return the number of rows it touched."""
        cur = await self._execute(query, params)
        return cur.rowcount

    async def _execute(self, query: str, params: Any) -> psycopg.AsyncCursor[DictRow]:
        if self._single is None and not self._spent:
            return await self.conn.execute(query, params)
        if self._spent:  # it would run outside the read's transaction, as the connecting role
            raise RuntimeError("a one-statement unit of work ran its statement already")
        who, self._single, self._spent = self._single, None, True
        if isinstance(who, UUID):
            impersonate = _SINGLE_USER
            values: dict[str, Any] = {"uid": who, "claims": _claims(who)}
        else:
            assert isinstance(who, TelegramUser)
            impersonate = _SINGLE_TELEGRAM
            values = {"tg": who.telegram_user_id}
        values["timeout"] = STATEMENT_TIMEOUT
        async with self.conn.pipeline():  # leaving it sends the Sync and reads both results
            switched = await self.conn.execute(impersonate, values)
            cur = await self.conn.execute(query, params)
        row = await switched.fetchone()
        assert row is not None  # the impersonation always returns its one row
        if row["user_id"] is None:  # the read ran, confined to no user, and found nothing
            raise NotLinked()
        self.user_id = row["user_id"]
        self.link_inactive = not row["active"]
        return cur


_BEGIN = {False: sql.SQL("begin"), True: sql.SQL("begin read only")}


async def _begin(
    conn: psycopg.AsyncConnection[DictRow], who: Principal | None, read_only: bool
) -> DictRow | None:
    """Open the transaction and, for a user, impersonate them: one round trip."""
    begin = _BEGIN[read_only]
    if who is None:
        await conn.execute(begin, prepare=False)  # nothing to plan
        return None
    if isinstance(who, UUID):
        claims = _claims(who)
        query = _IMPERSONATE.format(
            begin=begin, claims=sql.Literal(claims), timeout=STATEMENT_TIMEOUT_LIT
        )
    else:
        query = _IMPERSONATE_TELEGRAM.format(
            begin=begin, tg=sql.Literal(who.telegram_user_id), timeout=STATEMENT_TIMEOUT_LIT
        )
    # Several statements in one: never prepared (nor worth it: its values change each time).
    cur = await conn.execute(query, prepare=False)
    cur.nextset()  # past BEGIN's empty result, to the select's
    return await cur.fetchone()


async def _end(conn: psycopg.AsyncConnection[DictRow], *, commit: bool) -> None:
    """Commit if the work said so, else roll back (quietly, if the connection is gone)."""
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        return
    if commit and conn.info.transaction_status == pq.TransactionStatus.INTRANS:
        await conn.execute("commit", prepare=False)
        return
    # A broken connection: the pool discards it and the server has rolled back already.
    with contextlib.suppress(psycopg.OperationalError):
        await conn.execute("rollback", prepare=False)


async def _claim_replay(conn: psycopg.AsyncConnection[DictRow], who: Principal | None) -> None:
    """During an outbox replay, record the entry in sync_queue first (AlreadyApplied if it
    was applied before)."""
    replay = REPLAY.get()
    if replay is None or who is None:
        return
    REPLAY.set(None)  # one claim per service call
    cur = await conn.execute(
        _CLAIM_REPLAY,
        {
            "id": replay.id,
            "op": replay.operation,
            "table": replay.table_name,
            "payload": replay.payload,
            "ts": replay.timestamp,
        },
    )
    if await cur.fetchone() is None:
        raise AlreadyApplied(str(replay.id))


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError | PoolTimeout) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


class Database:
    """A psycopg async pool plus the two ways in: per-user and privileged."""

    def __init__(
        self,
        dsn: str,
        *,
        max_size: int = 10,
        min_size: int = 1,
        timeout: float = 3.0,
        name: str = "aelpher",
        prepare: bool = True,
    ) -> None:
        self.dsn = dsn
        #: whether connections prepare the statements they run repeatedly
        self.prepare = prepare
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            name=name,
            open=False,
            kwargs={
                "autocommit": True,
                # prepared on a connection's second use of a statement; None: never (pooler)
                "prepare_threshold": 1 if prepare else None,
                "row_factory": dict_row,
                "connect_timeout": max(1, round(timeout)),
            },
            reconnect_timeout=0,  # keep retrying in the background; never give up the pool
        )

    async def open(self, *, wait: bool = True) -> None:
        """Open the pool (and by default wait for its first connection)."""
        await self.pool.open(wait=wait, timeout=self.pool.timeout)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(
        self, who: Principal | None, read_only: bool = False, single: bool = False
    ) -> AsyncIterator[UnitOfWork]:
        inactive: list[int] = []
        async with self._transaction_inner(who, inactive, read_only, single) as uow:
            yield uow
        if uow.link_inactive and isinstance(who, TelegramUser):
            inactive.append(who.telegram_user_id)
        if inactive:  # the user wrote again after blocking the bot: nudges may resume
            async with self._transaction_inner(None, []) as admin:
                await admin.execute(_REACTIVATE, (inactive[0],))
                await admin.commit()

    @asynccontextmanager
    async def _transaction_inner(
        self,
        who: Principal | None,
        inactive: list[int],
        read_only: bool = False,
        single: bool = False,
    ) -> AsyncIterator[UnitOfWork]:
        try:
            async with self.pool.connection() as conn:
                if single:  # nothing is sent before the statement; nothing is left to end
                    assert who is not None and REPLAY.get() is None
                    yield UnitOfWork(conn, None, single=who)
                    return
                uow = UnitOfWork(conn, who if isinstance(who, UUID) else None)
                row = await _begin(conn, who, read_only)
                try:
                    if isinstance(who, TelegramUser):
                        if row is None:
                            raise NotLinked()
                        uow.user_id = row["user_id"]
                        if not row["active"]:
                            inactive.append(who.telegram_user_id)
                    await _claim_replay(conn, who)
                    yield uow
                except BaseException:
                    await _end(conn, commit=False)
                    raise
                # A read-only transaction cannot have written: it commits, which (unlike a
                # rollback) keeps the connection's prepared statements.
                await _end(conn, commit=uow.committed or read_only)
        except Exception as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
            raise

    def user_uow(self, who: Principal, *, read_only: bool = False, single: bool = False) -> Any:
        """One transaction confined by RLS to one user's rows (by id, or by Telegram id).

        ``read_only``: the server refuses writes in it (READ ONLY), and it ends with COMMIT;
        use it for every unit of work that only reads. ``single``: a read of exactly one
        statement, sent with the impersonation in one round trip (no BEGIN, no COMMIT: the
        two form one implicit, read-only transaction); a second statement raises."""
        return self._transaction(who, read_only, single)

    def privileged(self, *, read_only: bool = False) -> Any:
        """One transaction as the connecting role, for cross-user work only."""
        return self._transaction(None, read_only)
