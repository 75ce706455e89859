"""PostgreSQL access: the connection pool, the per-user unit of work and the privileged path.

Every read or write of one user's rows goes through :meth:`Database.user_uow`, which opens one
transaction, switches to the ``authenticated`` role and sets ``request.jwt.claims`` exactly as
PostgREST does, so the row-level security policies confine it to that user even if a query
forgets its ``user_id`` filter. Everything is transaction-scoped (``set_config(..., true)``),
so it is safe behind Supabase's pooler in transaction mode.

Two things save most of a command's database time: server-side prepared statements (planning
a query under the row-level security policies costs more than running it), so the pool
prepares every statement it sees twice on a connection; and pipelines, so a unit of work's
BEGIN, impersonation and first statement cost one round trip. Behind a pooler in transaction
mode (``transaction_pooler=True``; ``bot/database.py`` decides) neither is used: the pooler
cannot keep prepared statements, and older poolers could hand the server connection back in
the middle of a pipeline. psycopg may forget a connection's prepared statements after a
ROLLBACK, so reads run in READ ONLY transactions that end with COMMIT (see
:meth:`Database.user_uow`); the server refuses writes in them.

Cross-user work (the nudge scan, account creation and linking, the bot's own state) uses
:meth:`Database.privileged`, which runs as the connecting role (``postgres``, which bypasses RLS).

The only SQL here is the impersonation that opens every unit of work (it resolves the
Telegram user, and reads or closes the open question, in the statement that switches role).
Every other statement is in services/repos, those this module runs included: switching a link
back on (``telegram_links.reactivate``) and claiming an outbox replay (``sync_queue.claim``).

About 700 lines in one module on purpose: the pool checkout, the opening pipeline and the
units of work that join or close questions depend on each other's details (what was sent,
what the opening read), and a change to one is reviewed against the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import pq
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services import pgtypes
from services.errors import NotLinked
from services.repos import sync_queue, telegram_links

logger = logging.getLogger(__name__)

# Supabase sets this on the `authenticated` role; SET ROLE does not apply role settings, so the
# unit of work applies it itself.
STATEMENT_TIMEOUT = "8s"

# The impersonation, sent with BEGIN and the unit of work's first statement in one pipeline
# (one round trip). The only SQL outside services/repos: resolving a Telegram user must happen
# in the same statement that switches role, before any repository runs. It always switches
# role and returns one row: with no link, the claims name no user (auth.uid() is null, so the
# policies let nothing through) and user_id is null, because the first statement has already
# run when its result says so.
_IMPERSONATION = (
    " set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims',"
    "   json_build_object('sub', link.user_id, 'role', 'authenticated')::text, true),"
    " set_config('statement_timeout', %(timeout)s, true),"
    " set_config('transaction_read_only', %(read_only)s, true)"
    " from (select) as one left join telegram_links link on link.telegram_user_id = %(tg)s"
)
_IMPERSONATE_TELEGRAM = (
    "select link.user_id, coalesce(link.active, true) as active," + _IMPERSONATION
)
# The same opening with the update's open question (handlers/conversation.py). The table is
# the bot's: it is read or deleted here, by the statement that switches role, whose tables
# are checked before its set_config calls run. Reading locks the question until the
# transaction ends (a second instance answering the same chat waits, then sees what the first
# left); closing deletes it (a command abandons the question before it).
_IMPERSONATE_TELEGRAM_ASKING = (
    "select link.user_id, coalesce(link.active, true) as active,"
    " q.flow as question_flow, q.step as question_step, q.draft as question_draft,"
    " q.token as question_token, q.expires_at as question_expires_at,"
    + _IMPERSONATION
    + " left join lateral (select * from open_questions"
    "   where chat_id = %(chat)s and telegram_user_id = %(tg)s for update) q on true"
)
_IMPERSONATE_TELEGRAM_CLOSING = (
    "with closed as (delete from open_questions"
    "   where chat_id = %(chat)s and telegram_user_id = %(tg)s returning flow)"
    " select link.user_id, coalesce(link.active, true) as active,"
    " (select flow from closed) as closed_flow," + _IMPERSONATION
)
_IMPERSONATE_USER = (
    "select %(uid)s::uuid as user_id, true as active,"
    " set_config('role', 'authenticated', true),"
    " set_config('request.jwt.claims', %(claims)s, true),"
    " set_config('statement_timeout', %(timeout)s, true),"
    " set_config('transaction_read_only', %(read_only)s, true)"
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


#: The text of the error a question's close raises when the stored question is not the one
#: it was conditioned on (services/repos/open_questions.py ``close_tail``).
QUESTION_CHANGED = "aelpher: the open question changed"


class QuestionChanged(Exception):
    """A close sent with a write (:meth:`UnitOfWork.close_with_write`) found another question
    stored, or none: the write, the close and the COMMIT all rolled back."""


def _claims(user_id: UUID) -> str:
    """The JWT claims PostgREST would set for the user."""
    return json.dumps({"sub": str(user_id), "role": "authenticated"})


#: Set by the outbox replayer around one service call; the first user unit of work claims it.
REPLAY: ContextVar[Replay | None] = ContextVar("aelpher_replay", default=None)


class DatabaseUnavailable(Exception):
    """The database could not be reached (refused, lost, or no connection free in time)."""


class CommitUnknown(DatabaseUnavailable):
    """The connection broke after a write's COMMIT was sent and before its answer came: the
    write may have been applied or not. A command the outbox keeps is kept (its replay
    applies it at most once); anyone else must be told that it may have been saved."""


class DatabaseBusy(DatabaseUnavailable):
    """The database answers, but every pooled connection stayed in use for the whole wait.

    Nothing was sent: a user's write is not kept for later (the database is not down), they
    are told to try again in a moment. Background work treats it like an outage (it retries
    on its next run)."""


@dataclass(frozen=True, slots=True)
class QuestionKey:
    """Whose open question an opening reads or closes: a chat and a Telegram user."""

    chat_id: int
    telegram_user_id: int


@dataclass(slots=True)
class UpdateScope:
    """The update being handled, as the database sees it (set per update by the bot).

    ``close_pending``: the update is a command, so the chat's open question is abandoned; the
    first unit of work of this Telegram user that commits deletes it in its opening (no extra
    round trip), else the bot deletes it when the update is done."""

    key: QuestionKey
    close_pending: bool = False
    #: the update is a command (it abandons the open question)
    command: bool = False
    #: the update asked a question (which replaced the one before)
    asked: bool = False
    #: closes the question now (set by the bot): called before the update's first reply if
    #: the close is still pending, so no reply can go out while the question is still open
    close_now: Callable[[], Awaitable[None]] | None = None

    async def settle(self) -> None:
        """Close the open question now if the update's close is still pending."""
        if self.close_pending and self.close_now is not None:
            self.close_pending = False
            await self.close_now()


#: The update this task is handling (None: none, e.g. a background job).
UPDATE_SCOPE: ContextVar[UpdateScope | None] = ContextVar("aelpher_update", default=None)
#: A unit of work the services of this task join instead of opening their own (the answer
#: to a question: one transaction reads the question, writes, and closes or moves it on).
_JOINED: ContextVar[UnitOfWork | None] = ContextVar("aelpher_joined", default=None)


@dataclass(frozen=True, slots=True)
class _Opening:
    """What a unit of work sends with its first statement: BEGIN (None: a one-statement
    read, whose implicit transaction needs none), whom to impersonate (None: nobody), and a
    statement of the caller's to run before it (None: none), which must return a row."""

    begin: str | None
    who: Principal | None
    read_only: bool
    first: str | None = None
    #: all of it and the first statement in one pipeline (else one after the other)
    pipelined: bool = True
    #: the open question to read (locked) with the impersonation
    question: QuestionKey | None = None
    #: the open question to delete with the impersonation
    close: QuestionKey | None = None
    #: the first statement is the only one: COMMIT rides with it (a one-statement read
    #: behind a transaction pooler, which needs BEGIN and COMMIT around it)
    commit: bool = False


class UnitOfWork:
    """One transaction for one user. Commit explicitly; anything else rolls back.

    Nothing is sent until the first statement, which goes in one round trip with BEGIN and
    the impersonation (a pipeline).
    """

    def __init__(
        self,
        conn: psycopg.AsyncConnection[DictRow],
        opening: _Opening | None = None,
        reconnect: Callable[[], Awaitable[psycopg.AsyncConnection[DictRow]]] | None = None,
    ) -> None:
        self.conn = conn
        #: gives a fresh connection when this one broke during the opening (None: none)
        self._reconnect = reconnect
        #: the Aelpher user this transaction is confined to (None: privileged, or not known
        #: before the first statement)
        self.user_id: UUID | None = (
            opening.who if opening and isinstance(opening.who, UUID) else None
        )
        self._opening = opening
        #: a one-statement read ran its statement: no other may follow
        self._spent = False
        #: the transaction committed with its last statement: no other may follow
        self._sealed = False
        #: a COMMIT of a transaction that may have written was sent
        self.commit_sent = False
        #: the Telegram link was found switched off (the user had blocked the bot)
        self.link_inactive = False
        #: the transaction removed the user's Telegram link (/delete): it is not reported as
        #: linked (``Database.on_linked``) when it ends
        self.link_removed = False
        self._committed = False
        self._discarded = False
        #: the Telegram user this transaction was opened for (None: by id, or privileged)
        self.telegram_user_id: int | None = (
            opening.who.telegram_user_id
            if opening and isinstance(opening.who, TelegramUser)
            else None
        )
        #: the open question the opening read (its columns; None: none open), once opened
        self.question: dict[str, Any] | None = None
        #: the opening deleted the chat's open question (a command abandoned it)
        self.closed_question: str | None = None
        #: whether the transaction ended with COMMIT (set when the block is done)
        self.ended_committed = False
        #: the transaction runs in a pipeline-capable connection (not behind a pooler)
        self.pipelined = opening.pipelined if opening else True
        #: a statement to send with the next one (a joined service's ``first``)
        self._pending_first: str | None = None
        #: statements to send after a joined service's last one, before the COMMIT
        self._tail: Sequence[tuple[str, Any]] | None = None
        #: the COMMIT went with a joined service's last statement and ``_tail``
        self.closed_with_write = False

    def run_first(self, statement: str) -> None:
        """Send ``statement`` (no parameters; it must return a row, else NotLinked) with
        this unit of work's next statement, in the same round trip where pipelines are
        used."""
        self._pending_first = statement

    def close_with_write(self, tail: Sequence[tuple[str, Any]]) -> None:
        """Send ``tail`` (statements and their parameters) and COMMIT with the next
        :meth:`commit_with` of a service joining this unit of work, in the same round trip,
        before its result is known: the unit of work is then committed
        (:attr:`closed_with_write`), and a service opening another unit of work gets one of
        its own. A statement of the tail that raises rolls everything back; one that raises
        :data:`QUESTION_CHANGED` makes :meth:`commit_with` raise :class:`QuestionChanged`."""
        self._tail = tail

    async def commit(self) -> None:
        """Mark the work as done: the transaction commits when the block exits normally
        (unless :meth:`discard` was called)."""
        if not self._discarded:
            self._committed = True

    def discard(self) -> None:
        """Roll the transaction back when the block exits, whatever was marked committed."""
        self._committed, self._discarded = False, True

    @property
    def committed(self) -> bool:
        return self._committed

    @property
    def sealed(self) -> bool:
        """The transaction committed with its last statement (``commit_with``): nothing more
        can run in it."""
        return self._sealed

    async def fetchone(self, query: str, params: Any = None) -> DictRow | None:
        cur = await self._execute(query, params)
        return await cur.fetchone()

    async def fetchall(self, query: str, params: Any = None) -> list[DictRow]:
        cur = await self._execute(query, params)
        return await cur.fetchall()

    async def rows(self, query: str, params: Any = None) -> list[DictRow]:
        """Run a statement and return its rows (none if it returns none)."""
        return await _rows(await self._execute(query, params))

    async def execute(self, query: str, params: Any = None) -> int:
        """Run a statement and return the number of rows it touched."""
        cur = await self._execute(query, params)
        return cur.rowcount

    async def last_after(
        self, first: str, query: str, params: Any = None, *, commit: bool = False
    ) -> list[DictRow]:
        """``first`` (no parameters; it must return a row) then ``query``, the last statements
        of the unit of work, in one round trip after the opening (a pipeline, or behind a
        transaction pooler one message), with the COMMIT if ``commit``. The rows of
        ``query``."""
        await self.begin()
        cur = await self._execute_batch(first, query, params, commit)
        if commit:
            self._committed, self._sealed = True, True
        return await _rows(cur)

    async def _execute_batch(
        self, first: str, query: str, params: Any, commit: bool
    ) -> psycopg.AsyncCursor[DictRow]:
        if self._spent or self._sealed:
            raise RuntimeError("the unit of work ran its last statement already")
        return await self._batch(first, query, params, commit)

    async def commit_with(self, query: str, params: Any = None) -> list[DictRow]:
        """Run ``query`` as the last statement of the unit of work and commit with it, in one
        round trip (with the opening too, if it was not sent yet): a pipeline with one Sync,
        or behind a transaction pooler one message of several statements. Its rows (none for
        a statement that returns none).

        The commit does not wait for the rows, so a statement that may refuse must refuse by
        writing nothing (conditions in the statement, flags in what it returns) or by
        raising in SQL: a failed statement fails the COMMIT with it and everything rolls
        back. Inside a unit of work joined by a service (a question's answer) only the
        statement runs here, and the answer's own last statements commit, unless the answer
        asked to close with it (:meth:`close_with_write`)."""
        if _JOINED.get() is self:
            if self._tail is None:
                rows = await _rows(await self._execute(query, params))
                await self.commit()
                return rows
            tail, self._tail = self._tail, None
            try:
                cur = await self._execute(query, params, commit=True, tail=tail)
            except psycopg.errors.InvalidTextRepresentation as exc:
                if QUESTION_CHANGED in str(exc):
                    raise QuestionChanged() from exc
                raise
            self._committed, self._sealed, self.closed_with_write = True, True, True
            return await _rows(cur)
        cur = await self._execute(query, params, commit=True)
        self._committed, self._sealed = True, True
        return await _rows(cur)

    async def begin(self) -> None:
        """Send the opening now, with no statement of the caller's: what it reads (the
        user, the open question) is then known. NotLinked if the user is not linked, after
        :attr:`question` was read."""
        if self._opening is not None:
            await self._execute(None, None)

    async def _execute(
        self,
        query: str | None,
        params: Any,
        *,
        commit: bool = False,
        tail: Sequence[tuple[str, Any]] = (),
    ) -> psycopg.AsyncCursor[DictRow]:
        if self._spent:  # it would run outside the read's transaction, as the connecting role
            raise RuntimeError("a one-statement unit of work ran its statement already")
        if self._sealed:  # the transaction committed with its last statement
            raise RuntimeError("the unit of work committed already")
        opening, self._opening = self._opening, None
        if opening is not None and self._pending_first is not None:
            # a joined service's first statement (its write lock) rides with the opening
            assert opening.first is None
            opening, self._pending_first = replace(opening, first=self._pending_first), None
        if opening is None:
            assert query is not None
            first, self._pending_first = self._pending_first, None
            if first is None and not commit:
                return await self.conn.execute(query, params)
            self.commit_sent = self.commit_sent or commit
            return await self._batch(first, query, params, commit, tail)
        if opening.commit and query is not None:
            commit, self._committed, self._sealed = True, True, True
        self.commit_sent = self.commit_sent or (commit and not opening.read_only)
        try:
            return await self._open(opening, query, params, commit, tail)
        except psycopg.OperationalError:
            if self._reconnect is None or not self.conn.closed:
                raise
            if commit and self.conn.info.transaction_status == pq.TransactionStatus.UNKNOWN:
                # the COMMIT may have reached the server: applying it twice is not safe
                raise
        # The connection broke during the opening, before anything could commit (an opening
        # with its COMMIT was not sent, or the server never answered a byte of it, and a
        # one-statement read is read-only): once more, on a fresh one.
        logger.info("connection lost before the opening's answer; opening again")
        self.conn = await self._reconnect()
        self._reconnect = None
        return await self._open(opening, query, params, commit, tail)

    async def _open(
        self,
        opening: _Opening,
        query: str | None,
        params: Any,
        commit: bool = False,
        tail: Sequence[tuple[str, Any]] = (),
    ) -> psycopg.AsyncCursor[DictRow]:
        """Send the opening with the block's first statement (None: none), then ``tail``,
        and the COMMIT after them if ``commit``: one round trip either way (a pipeline, or
        behind a transaction pooler one message of several statements)."""
        self._spent = opening.begin is None and query is not None
        assert opening.begin is not None or not commit
        if not opening.pipelined:
            return await self._open_in_one_message(opening, query, params, commit, tail)
        switched = first = None
        try:
            async with self.conn.pipeline():
                if opening.begin is not None:
                    await self.conn.execute(opening.begin, prepare=False)  # nothing to plan
                if opening.who is not None:
                    switched = await self.conn.execute(*_impersonation(opening))
                if opening.first is not None:
                    first = await self.conn.execute(opening.first)
                cur = await self.conn.execute(query, params) if query is not None else switched
                assert cur is not None
                for statement, values in tail:
                    await self.conn.execute(statement, values)
                if commit:
                    await self.conn.execute("commit", prepare=False)
        except psycopg.Error:
            # A statement failed: if the user was not linked, that is what to say (an
            # insert confined to no user fails on its null user_id, say).
            if switched is not None and switched.pgresult is not None:
                self._resolve(await switched.fetchone())
            raise
        if switched is not None:
            self._resolve(await switched.fetchone())
        if first is not None and await first.fetchone() is None:
            raise NotLinked()  # the user's rows the first statement needs are missing
        return cur

    async def _open_in_one_message(
        self,
        opening: _Opening,
        query: str | None,
        params: Any,
        commit: bool,
        tail: Sequence[tuple[str, Any]] = (),
    ) -> psycopg.AsyncCursor[DictRow]:
        """Behind a transaction pooler: the opening, the statement and the COMMIT as one
        message of several statements, bound here (the pooler keeps no prepared statements,
        and hands the server connection back only when the whole message is answered)."""
        assert opening.begin is not None  # an implicit transaction needs a pipeline
        cur = psycopg.AsyncClientCursor(self.conn, row_factory=dict_row)
        parts = [opening.begin]
        if opening.who is not None:
            parts.append(cur.mogrify(*_impersonation(opening)))
        if opening.first is not None:
            parts.append(opening.first)
        if query is not None:
            parts.append(cur.mogrify(query, params))
        parts += [cur.mogrify(statement, values) for statement, values in tail]
        if commit:
            parts.append("commit")
        try:
            await cur.execute(";\n".join(parts))
        except psycopg.Error:
            if isinstance(opening.who, TelegramUser):
                await self._check_link(opening.who)  # NotLinked rather than what it caused
            raise
        if opening.who is not None:
            cur.nextset()
            self._resolve(await cur.fetchone())
        if opening.first is not None:
            cur.nextset()
            if await cur.fetchone() is None:
                raise NotLinked()  # the user's rows the first statement needs are missing
        if query is not None:
            cur.nextset()
        return cur

    async def _check_link(self, who: TelegramUser) -> None:
        """After a failed opening sent as one message: NotLinked if ``who`` has no link (one
        more round trip, on that path only, after rolling the failed transaction back)."""
        with contextlib.suppress(psycopg.Error):
            await self.conn.execute("rollback", prepare=False)
            cur = await self.conn.execute(
                "select link.user_id from (select) as one"
                " left join telegram_links link on link.telegram_user_id = %s",
                (who.telegram_user_id,),
            )
            row = await cur.fetchone()
            if row is not None and row["user_id"] is None:
                raise NotLinked()

    async def _batch(
        self,
        first: str | None,
        query: str,
        params: Any,
        commit: bool,
        tail: Sequence[tuple[str, Any]] = (),
    ) -> psycopg.AsyncCursor[DictRow]:
        """``first`` (None: none), the statement, ``tail``, and the COMMIT if ``commit``, in
        one round trip (a pipeline, or behind a transaction pooler one message)."""
        if not self.pipelined:
            message = psycopg.AsyncClientCursor(self.conn, row_factory=dict_row)
            parts = [*([first] if first is not None else []), message.mogrify(query, params)]
            parts += [message.mogrify(statement, values) for statement, values in tail]
            await message.execute(";\n".join([*parts, *(["commit"] if commit else [])]))
            if first is not None:
                if await message.fetchone() is None:
                    raise NotLinked()
                message.nextset()
            return message
        async with self.conn.pipeline():
            checked = await self.conn.execute(first) if first is not None else None
            cur = await self.conn.execute(query, params)
            for statement, values in tail:
                await self.conn.execute(statement, values)
            if commit:
                await self.conn.execute("commit", prepare=False)
        if checked is not None and await checked.fetchone() is None:
            raise NotLinked()
        return cur

    def _resolve(self, row: DictRow | None) -> None:
        """Take the impersonation's result: the user, or NotLinked."""
        assert row is not None  # the impersonation always returns its one row
        if "question_flow" in row:
            self.question = (
                {
                    k.removeprefix("question_"): v
                    for k, v in row.items()
                    if k.startswith("question_")
                }
                if row["question_flow"] is not None
                else None
            )
        self.closed_question = row.get("closed_flow")
        if row["user_id"] is None:  # what ran was confined to no user and saw nothing
            raise NotLinked()
        self.user_id = row["user_id"]
        self.link_inactive = not row["active"]


def _impersonation(opening: _Opening) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {
        "timeout": STATEMENT_TIMEOUT,
        "read_only": "on" if opening.read_only else "off",
    }
    if isinstance(opening.who, UUID):
        values |= {"uid": opening.who, "claims": _claims(opening.who)}
        return _IMPERSONATE_USER, values
    assert isinstance(opening.who, TelegramUser)
    values["tg"] = opening.who.telegram_user_id
    if opening.question is not None:
        return _IMPERSONATE_TELEGRAM_ASKING, values | {"chat": opening.question.chat_id}
    if opening.close is not None:
        return _IMPERSONATE_TELEGRAM_CLOSING, values | {"chat": opening.close.chat_id}
    return _IMPERSONATE_TELEGRAM, values


async def _rows(cur: psycopg.AsyncCursor[DictRow]) -> list[DictRow]:
    """A statement's rows (none if it returns none)."""
    return await cur.fetchall() if cur.description is not None else []


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


async def _claim_replay(uow: UnitOfWork) -> None:
    """During an outbox replay, record the entry in sync_queue first (AlreadyApplied if it
    was applied before)."""
    replay = REPLAY.get()
    if replay is None:
        return
    REPLAY.set(None)  # one claim per service call
    claimed = await sync_queue.claim(
        uow, replay.id, replay.operation, replay.table_name, replay.payload, replay.timestamp
    )
    if not claimed:
        raise AlreadyApplied(str(replay.id))


def in_joined_unit() -> bool:
    """Whether this task's services run inside a unit of work they joined (see
    :meth:`Database.joined`): a failure there fails that whole transaction."""
    joined = _JOINED.get()
    return joined is not None and not joined.sealed


def _same_user(uow: UnitOfWork, who: Principal) -> bool:
    """Whether ``who`` names the user ``uow`` is confined to."""
    if isinstance(who, TelegramUser):
        return who.telegram_user_id == uow.telegram_user_id
    return uow.user_id is not None and who == uow.user_id


def _readable(fd: int) -> bool:
    """Whether the socket has input (or end of file, or an error) pending, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: no poll()


def _closed_by_server(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection was closed by the server (a restart, a terminated
    backend, an idle timeout): the server then sends a FATAL error and closes, so the socket
    of a connection nobody is using has input or end of file pending. Costs one poll() of
    the socket, no round trip. Nothing else writes to an idle connection of this bot (it
    LISTENs to nothing), so any pending input condemns it."""
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        return True
    try:
        return _readable(conn.pgconn.socket)
    except (OSError, ValueError, psycopg.OperationalError):
        return True


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
        transaction_pooler: bool = False,
    ) -> None:
        self.dsn = dsn
        #: called after a unit of work of a Telegram user found their link (the outbox
        #: remembers who may keep writes during an outage; it returns at once when known)
        self.on_linked: Callable[[int], Awaitable[None]] | None = None
        #: behind a pooler in transaction mode: no prepared statements, no pipelines
        self.transaction_pooler = transaction_pooler
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
                "prepare_threshold": None if transaction_pooler else 1,
                "row_factory": dict_row,
                "connect_timeout": max(1, round(timeout)),
            },
            reconnect_timeout=0,  # keep retrying in the background; never give up the pool
            configure=pgtypes.configure,  # values Python cannot hold load as Unreadable
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
        self,
        who: Principal | None,
        read_only: bool = False,
        single: bool = False,
        first: str | None = None,
        question: QuestionKey | None = None,
    ) -> AsyncIterator[UnitOfWork]:
        joined = _JOINED.get()
        if (
            joined is not None
            and not joined.sealed  # it committed with a write: what follows is on its own
            and who is not None
            and _same_user(joined, who)
        ):
            # inside the answer to a question: the service's work is part of its transaction
            if first is not None:
                joined.run_first(first)
            yield joined
            return
        pipelined = not self.transaction_pooler
        scope = UPDATE_SCOPE.get()
        close = None
        if (
            scope is not None
            and scope.close_pending
            and question is None
            and isinstance(who, TelegramUser)
            and who.telegram_user_id == scope.key.telegram_user_id
        ):
            close = scope.key
        if question is not None:
            single = read_only = False
        commit_first = False
        if single and not pipelined:  # the implicit transaction needs the pipeline
            # a user's one-statement read stays read-only; a privileged one keeps its mode;
            # either commits with its statement
            single, read_only = False, read_only or who is not None
            commit_first = who is not None and first is None
        begin = None if single else "begin read only" if read_only and close is None else "begin"
        opening = _Opening(
            begin, who, read_only or single, first, pipelined, question, close, commit_first
        )
        async with self._transaction_inner(opening) as uow:
            yield uow
        if close is not None and scope is not None and uow.ended_committed:
            scope.close_pending = False  # the opening's delete is committed
        if (
            self.on_linked is not None
            and isinstance(who, TelegramUser)
            and uow.user_id
            and not uow.link_removed
        ):
            await self.on_linked(who.telegram_user_id)
        if uow.link_inactive and isinstance(who, TelegramUser):
            # the user wrote again after blocking the bot: nudges may resume
            async with self._transaction(None) as admin:
                await telegram_links.reactivate(admin, who.telegram_user_id)
                await admin.commit()

    @contextlib.contextmanager
    def joined(self, uow: UnitOfWork) -> Iterator[None]:
        """Within the block, the services' units of work for ``uow``'s user are ``uow``
        itself: what they write commits or rolls back with it."""
        token = _JOINED.set(uow)
        try:
            yield
        finally:
            _JOINED.reset(token)

    async def _checkout(self) -> psycopg.AsyncConnection[DictRow]:
        """A pooled connection the server has not closed; DatabaseBusy if every connection
        stayed in use for the whole wait while the server kept answering.

        Connections the server closed while idle (see :func:`_closed_by_server`) are
        discarded here, before any statement is sent, and the next one is taken at once, so
        a database restart costs no unit of work. A pool timeout means exhaustion when no
        connection attempt failed meanwhile and the pool was at its full size (nothing left
        to connect); otherwise the server is not taking connections: DatabaseUnavailable."""
        pool = self.pool
        errors = pool.get_stats().get("connections_errors", 0)
        try:
            conn = await pool.getconn()
            for _ in range(pool.max_size + 1):
                if not _closed_by_server(conn):
                    break
                logger.info("discarding a pooled connection the server closed")
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
                await pool.putconn(conn)  # a closed connection is replaced in the background
                conn = await pool.getconn()
        except PoolTimeout as exc:
            stats = pool.get_stats()
            if (
                stats.get("connections_errors", 0) == errors
                and stats["pool_size"] >= stats["pool_max"]
            ):
                raise DatabaseBusy(f"no free connection in {pool.timeout:g} s") from exc
            raise
        return conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        """What ``pool.connection()`` does, with :meth:`_checkout`'s check and verdict."""
        conn = await self._checkout()
        try:
            async with conn:
                yield conn
        finally:
            await self.pool.putconn(conn)

    @asynccontextmanager
    async def _transaction_inner(self, opening: _Opening) -> AsyncIterator[UnitOfWork]:
        uow: UnitOfWork | None = None
        try:
            async with self._connection() as conn:
                spare: list[psycopg.AsyncConnection[DictRow]] = []

                async def reconnect() -> psycopg.AsyncConnection[DictRow]:
                    spare.append(await self._checkout())
                    return spare[-1]

                uow = UnitOfWork(conn, opening, reconnect)
                try:
                    try:
                        if opening.who is not None and REPLAY.get() is not None:
                            assert opening.begin is not None  # not a one-statement read
                            await _claim_replay(uow)
                        yield uow
                    except BaseException:
                        await _end(uow.conn, commit=False)
                        raise
                    # A read-only transaction cannot have written: it commits, which (unlike
                    # a rollback) keeps the connection's prepared statements.
                    commit = uow.committed or opening.read_only
                    uow.commit_sent = uow.commit_sent or (commit and not opening.read_only)
                    await _end(uow.conn, commit=commit)
                    uow.ended_committed = commit
                finally:
                    for fresh in spare:
                        await self.pool.putconn(fresh)
        except Exception as exc:
            if not isinstance(exc, DatabaseUnavailable) and _is_connection_error(exc):
                if uow is not None and uow.commit_sent:
                    raise CommitUnknown(str(exc) or type(exc).__name__) from exc
                raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
            raise

    def user_uow(
        self,
        who: Principal,
        *,
        read_only: bool = False,
        single: bool = False,
        first: str | None = None,
        question: QuestionKey | None = None,
    ) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction confined by RLS to one user's rows (by id, or by Telegram id).

        ``read_only``: the server refuses writes in it (READ ONLY), and it ends with COMMIT;
        use it for every unit of work that only reads. ``single``: a read of exactly one
        statement, sent with the impersonation in one round trip (no BEGIN, no COMMIT: the
        two form one implicit, read-only transaction); a second statement raises.
        ``first``: a statement without parameters that runs first, in the same round trip as
        the block's first statement (the per-user write lock); NotLinked if it returns no
        row. The statement after it still starts after it, with a fresh snapshot.
        ``question``: the opening also reads (and locks) that chat's open question, into
        :attr:`UnitOfWork.question` (a read-write transaction; ``who`` a TelegramUser)."""
        return self._transaction(who, read_only, single, first, question)

    def privileged(
        self, *, read_only: bool = False, single: bool = False
    ) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction as the connecting role, for cross-user work only. ``single``:
        exactly one statement, its own implicit transaction (one round trip; commit it with
        ``commit()`` all the same, which behind a pooler sends the COMMIT)."""
        return self._transaction(None, read_only, single)
