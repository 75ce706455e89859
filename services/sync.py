"""Writes that may wait out a database outage, and replaying them from the outbox.

A handler calls :func:`perform`; if the database is unreachable the write is kept in the
:class:`~services.outbox.Outbox` and :class:`Queued` is returned instead of a result. A job
calls :func:`replay`, which applies the kept writes in order once the database answers,
each exactly once, as of the time the user sent them.

Which kept writes apply: additive ones (logs, reflections, new NBAs) always do. A kept *set*
(progress, the energy split, block/unblock) is skipped as superseded when the user changed
the same setting live at or after the moment they sent the kept one (the live services
record that moment in ``theaters.progress_set_at`` / ``blocked_set_at`` and
``global_metrics.energy_set_at``); kept writes never supersede each other and apply in the
order they were sent. A write that can never apply (its author is not linked, a value is
invalid, the entry is unreadable) is parked with its reason; either way its author is told,
once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import psycopg

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
from services.errors import DomainError, NotLinked, Superseded
from services.outbox import Outbox, OutboxEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Operation:
    """A write the outbox can keep: the service to call and how sync_queue names it.

    ``call(db, who, now, replayed, args)``: ``replayed`` is True when the outbox applies it
    (``now`` is then the time the user sent it)."""

    call: Callable[[Database, TelegramUser, datetime, bool, dict[str, Any]], Awaitable[Any]]
    operation: str
    table_name: str
    describe: Callable[[dict[str, Any]], str]


Args = dict[str, Any]


async def _log_time(
    db: Database, who: TelegramUser, now: datetime, replayed: bool, kw: Args
) -> Any:
    # replayed: the user can't be asked whether an implausibly long day is right
    return await tracking.log_time(
        db, who, kw["arm"], kw.get("minutes"), kw["action"], now,
        details=kw.get("details"), dedupe_key=kw.get("dedupe_key"),
        confirmed=True if replayed else kw.get("confirmed", False),
    )  # fmt: skip


async def _reflect(db: Database, who: TelegramUser, now: datetime, _: bool, kw: Args) -> Any:
    return await tracking.reflect(db, who, kw["arm"], kw["evidence"], now, kw.get("context"))


async def _add_item(db: Database, who: TelegramUser, now: datetime, _: bool, kw: Args) -> Any:
    return await nba.add_item(db, who, kw["arm"], kw["gap"], kw["title"], now)


async def _set_progress(
    db: Database, who: TelegramUser, now: datetime, replayed: bool, kw: Args
) -> Any:
    return await tracking.set_progress(
        db, who, kw["arm"], Decimal(kw["value"]), now, replayed=replayed
    )


async def _set_energy(
    db: Database, who: TelegramUser, now: datetime, replayed: bool, kw: Args
) -> Any:
    return await tracking.set_energy(db, who, kw["ibm_share"], now, replayed=replayed)


async def _block(db: Database, who: TelegramUser, now: datetime, replayed: bool, kw: Args) -> Any:
    return await tracking.block(db, who, kw["arm"], kw.get("reason"), now, replayed=replayed)


async def _unblock(
    db: Database, who: TelegramUser, now: datetime, replayed: bool, kw: Args
) -> Any:
    return await tracking.unblock(db, who, kw["arm"], now, replayed=replayed)


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
    """Run the write now, or keep it in the outbox during an outage (returns Queued).

    Only writes of a Telegram user this instance has seen linked are kept (the database
    can't be asked during an outage); anyone else's raise ``DatabaseUnavailable``, as does
    any write when there is no outbox. A full outbox raises ``OutboxFull``. Values are
    validated before the database is tried, so an invalid write is refused, never kept.
    """
    operation = OPERATIONS[op]
    try:
        return await operation.call(db, who, now, False, kwargs)
    except DatabaseBusy:  # the database answers: nothing to keep, the user tries again
        raise
    except DatabaseUnavailable:
        if outbox is None or not await outbox.is_linked(who.telegram_user_id):
            raise
        payload = {"op": op, "args": kwargs}
        entry_id = await outbox.add(
            who.telegram_user_id, chat_id, operation.operation, operation.table_name,
            payload, now,
        )  # fmt: skip
        logger.warning("database unreachable: kept %s in the outbox as %s", op, entry_id)
        return Queued(entry_id, operation.describe(kwargs))


#: A write failing for a reason that may pass (not a rule, not the outage) is retried at
#: every replay; after NOTIFY_AFTER failures its author is told once, after PARK_AFTER it is
#: parked. Until then the user's later entries wait behind it (their order is kept); other
#: users' entries go on.
NOTIFY_AFTER = 3
PARK_AFTER = 20
#: Entries read from the outbox at a time.
BATCH = 100

#: Failures that will happen again however often the entry is replayed.
_MALFORMED = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)
_PERMANENT_DB = (psycopg.DataError, psycopg.IntegrityError)


@dataclass
class ReplayReport:
    synced: list[OutboxEntry] = field(default_factory=list)
    skipped: list[OutboxEntry] = field(default_factory=list)  # applied before
    #: parked for good, with the reason (their authors are told, once)
    parked: list[tuple[OutboxEntry, str]] = field(default_factory=list)
    #: parked because a later live change replaced it (told, once)
    superseded: list[tuple[OutboxEntry, str]] = field(default_factory=list)
    #: still failing for now, kept and retried (told once)
    failing: list[tuple[OutboxEntry, str]] = field(default_factory=list)
    #: parked because its author is no longer on the allow-list (not told: the bot no longer
    #: writes to them)
    refused: list[tuple[OutboxEntry, str]] = field(default_factory=list)
    unreachable: bool = False


class _Outcome(Enum):
    DONE = "done"  # applied, skipped or parked: the user's next entry may go
    HELD = "held"  # failed for now: the user's later entries wait for it
    DOWN = "down"  # the database is unreachable: stop


async def replay(
    db: Database, outbox: Outbox, allowed: Collection[int] = frozenset()
) -> ReplayReport:
    """Apply every pending entry in order; stop only when the database is down.

    An entry that can never apply is parked with its reason and does not hold back anyone's
    later entries; one that fails for now holds back only its own author's later entries.
    With an allow-list (``allowed`` not empty), an entry whose author is no longer on it is
    parked without being applied or told: nothing of theirs is written or switched back on.
    """
    report = ReplayReport()
    held: set[int] = set()
    after = 0
    while entries := await outbox.pending(BATCH, after=after):
        for entry in entries:
            after = entry.seq
            if entry.telegram_user_id in held:
                continue
            if allowed and entry.telegram_user_id not in allowed:
                await outbox.forget_linked(entry.telegram_user_id)
                await _park(outbox, entry, NOT_ALLOWED, report.refused)
                continue
            outcome = await _apply(db, outbox, entry, report)
            if outcome is _Outcome.DOWN:
                report.unreachable = True
                return report
            if outcome is _Outcome.HELD:
                held.add(entry.telegram_user_id)
    return report


NOT_ALLOWED = "its author is no longer allowed to use this bot"


async def _park(
    outbox: Outbox,
    entry: OutboxEntry,
    reason: str,
    into: list[tuple[OutboxEntry, str]],
) -> _Outcome:
    await outbox.park(entry.id, reason)
    into.append((entry, reason))
    logger.warning("outbox entry %s parked: %s", entry.id, reason)
    return _Outcome.DONE


async def _apply(
    db: Database, outbox: Outbox, entry: OutboxEntry, report: ReplayReport
) -> _Outcome:
    if entry.problem is not None:
        return await _park(outbox, entry, entry.problem, report.parked)
    op = OPERATIONS.get(str(entry.payload.get("op", "")))
    args = entry.payload.get("args")
    if op is None:
        return await _park(outbox, entry, "it is an unknown kind of change", report.parked)
    if not isinstance(args, dict):
        return await _park(outbox, entry, "its stored payload is unreadable", report.parked)
    token = REPLAY.set(
        Replay(entry.id, entry.operation, entry.table_name, json.dumps(entry.payload),
               entry.timestamp)
    )  # fmt: skip
    try:
        await op.call(db, TelegramUser(entry.telegram_user_id), entry.timestamp, True, args)
    except AlreadyApplied:
        await outbox.mark_synced(entry.id)
        report.skipped.append(entry)
    except DatabaseUnavailable:
        return _Outcome.DOWN
    except NotLinked as exc:  # the account is gone or was unlinked: it will never apply
        await outbox.forget_linked(entry.telegram_user_id)
        return await _park(outbox, entry, exc.user_message, report.parked)
    except Superseded as exc:
        return await _park(outbox, entry, exc.user_message, report.superseded)
    except DomainError as exc:
        return await _park(outbox, entry, exc.user_message, report.parked)
    except _MALFORMED as exc:
        logger.warning("outbox entry %s is malformed: %s", entry.id, type(exc).__name__)
        return await _park(outbox, entry, "its stored payload is unreadable", report.parked)
    except _PERMANENT_DB as exc:
        logger.warning("outbox entry %s refused by the database: %s", entry.id, exc)
        return await _park(outbox, entry, "the database refused it", report.parked)
    except Exception as exc:
        logger.exception("replaying outbox entry %s failed", entry.id)
        retries = await outbox.mark_failed(entry.id, type(exc).__name__)
        if retries >= PARK_AFTER:
            return await _park(outbox, entry, "it kept failing on my side", report.parked)
        if retries >= NOTIFY_AFTER and not entry.notified:
            await outbox.mark_notified(entry.id)
            report.failing.append((entry, "an internal error"))
        return _Outcome.HELD
    else:
        await outbox.mark_synced(entry.id)
        report.synced.append(entry)
    finally:
        REPLAY.reset(token)
    return _Outcome.DONE


def describe(entry: OutboxEntry) -> str:
    """What the entry changes, for its author ("log “read” in cs"); "a change" if unreadable."""
    op = OPERATIONS.get(str(entry.payload.get("op", "")))
    args = entry.payload.get("args")
    if op is None or not isinstance(args, dict):
        return "a change"
    try:
        return op.describe(args).replace("\x00", "")
    except (KeyError, TypeError, ValueError):
        return "a change"
