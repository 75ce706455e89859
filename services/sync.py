"""Writes that may wait out a database outage, and replaying them from the outbox.

A handler calls :func:`perform`; if the database is unreachable the write is kept in the
:class:`~services.outbox.Outbox` and :class:`Queued` is returned instead of a result. A job
calls :func:`replay`, which applies the kept writes in order once the database answers,
each exactly once, as of the time the user sent them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services import nba, tracking
from services.db import (
    REPLAY,
    AlreadyApplied,
    Database,
    DatabaseBusy,
    DatabaseUnavailable,
    Replay,
    TelegramUser,
)
from services.errors import DomainError
from services.outbox import Outbox, OutboxEntry

logger = logging.getLogger(__name__)

#: After this many failed replays of one entry (for a reason other than the outage) the user
#: is told once; the entry is kept.
NOTIFY_AFTER = 3


@dataclass(frozen=True, slots=True)
class Operation:
    """A write the outbox can keep: the service to call and how sync_queue names it."""

    call: Callable[..., Awaitable[Any]]
    operation: str
    table_name: str
    describe: Callable[[dict[str, Any]], str]


async def _log_time(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.log_time(
        db, who, kw["arm"], kw.get("minutes"), kw["action"], now,
        details=kw.get("details"), dedupe_key=kw.get("dedupe_key"),
    )  # fmt: skip


async def _reflect(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.reflect(db, who, kw["arm"], kw["evidence"], now, kw.get("context"))


async def _add_item(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await nba.add_item(db, who, kw["arm"], kw["gap"], kw["title"], now)


async def _set_progress(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.set_progress(db, who, kw["arm"], Decimal(kw["value"]), now)


async def _set_energy(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.set_energy(db, who, kw["ibm_share"], now)


async def _block(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.block(db, who, kw["arm"], kw.get("reason"), now)


async def _unblock(db: Database, who: TelegramUser, now: datetime, **kw: Any) -> Any:
    return await tracking.unblock(db, who, kw["arm"], now)


OPERATIONS: dict[str, Operation] = {
    "log_time": Operation(
        _log_time, "INSERT", "execution_logs",
        lambda k: f"log “{k['action']}” in {k['arm']}",
    ),
    "reflect": Operation(
        _reflect, "INSERT", "reflections", lambda k: f"reflection “{k['evidence']}” in {k['arm']}"
    ),
    "add_item": Operation(
        _add_item, "INSERT", "nba_items", lambda k: f"new NBA “{k['title']}” in {k['arm']}"
    ),
    "set_progress": Operation(
        _set_progress, "UPDATE", "theaters", lambda k: f"{k['arm']} progress {k['value']}%"
    ),
    "set_energy": Operation(
        _set_energy, "UPDATE", "global_metrics", lambda k: f"energy split ibm {k['ibm_share']}%"
    ),
    "block": Operation(_block, "UPDATE", "theaters", lambda k: f"blocking {k['arm']}"),
    "unblock": Operation(_unblock, "UPDATE", "theaters", lambda k: f"unblocking {k['arm']}"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Queued:
    """The write was kept in the outbox (the database was unreachable)."""

    id: Any
    description: str


async def perform(
    db: Database,
    outbox: Outbox | None,
    who: TelegramUser,
    chat_id: int,
    op: str,
    now: datetime,
    **kwargs: Any,
) -> Any:
    """Run the write now, or keep it in the outbox during an outage (returns Queued)."""
    operation = OPERATIONS[op]
    try:
        return await operation.call(db, who, now, **kwargs)
    except DatabaseBusy:  # the database answers: nothing to keep, the user tries again
        raise
    except DatabaseUnavailable:
        if outbox is None:
            raise
        payload = {"op": op, "args": kwargs}
        entry_id = await outbox.add(
            who.telegram_user_id, chat_id, operation.operation, operation.table_name,
            payload, now,
        )  # fmt: skip
        logger.warning("database unreachable: kept %s in the outbox as %s", op, entry_id)
        return Queued(entry_id, operation.describe(kwargs))


@dataclass
class ReplayReport:
    synced: list[OutboxEntry] = field(default_factory=list)
    skipped: list[OutboxEntry] = field(default_factory=list)  # applied before
    failing: list[tuple[OutboxEntry, str]] = field(default_factory=list)  # tell the user once
    unreachable: bool = False


async def replay(db: Database, outbox: Outbox) -> ReplayReport:
    """Apply kept writes in order; stop at the first sign the database is still down."""
    report = ReplayReport()
    for entry in await outbox.pending():
        op = OPERATIONS.get(entry.payload.get("op", ""))
        if op is None:
            await outbox.mark_failed(entry.id, "unknown operation")
            continue
        token = REPLAY.set(
            Replay(entry.id, entry.operation, entry.table_name, json.dumps(entry.payload),
                   entry.timestamp)
        )  # fmt: skip
        try:
            await op.call(db, TelegramUser(entry.telegram_user_id), entry.timestamp,
                          **entry.payload["args"])  # fmt: skip
        except AlreadyApplied:
            await outbox.mark_synced(entry.id)
            report.skipped.append(entry)
        except DatabaseUnavailable:
            report.unreachable = True
            break
        except DomainError as exc:
            retries = await outbox.mark_failed(entry.id, exc.user_message)
            if retries >= NOTIFY_AFTER and not entry.notified:
                await outbox.mark_notified(entry.id)
                report.failing.append((entry, exc.user_message))
        except Exception as exc:
            logger.exception("replaying outbox entry %s failed", entry.id)
            retries = await outbox.mark_failed(entry.id, type(exc).__name__)
            if retries >= NOTIFY_AFTER and not entry.notified:
                await outbox.mark_notified(entry.id)
                report.failing.append((entry, "an internal error"))
        else:
            await outbox.mark_synced(entry.id)
            report.synced.append(entry)
        finally:
            REPLAY.reset(token)
    return report


def describe(entry: OutboxEntry) -> str:
    op = OPERATIONS.get(entry.payload.get("op", ""))
    return op.describe(entry.payload.get("args", {})) if op else "a change"
