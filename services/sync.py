"""Writes that may wait out a database outage, and replaying them from the outbox.

A handler calls :func:`perform` with a command (:mod:`services.commands`: ``LogTime``,
``AddItem`` …, the ones in :data:`KEPT`); if the database is unreachable the command is kept
in the :class:`~services.outbox.Outbox`, its name and fields as JSON (:func:`payload`), and
:class:`Queued` is returned instead of its result. A job calls :func:`replay`, which reads
each kept command back (:func:`command_of`) and runs it through the same ``run``, in order
once the database answers, each exactly once, as of the time the user sent it.

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
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TypeVar

import psycopg
from pydantic import TypeAdapter, ValidationError

from services.commands import Command
from services.db import (
    REPLAY,
    AlreadyApplied,
    Database,
    DatabaseBusy,
    DatabaseUnavailable,
    Replay,
    TelegramUser,
    in_joined_unit,
)
from services.errors import DomainError, NotLinked, Superseded
from services.focus import ExtendFocus, PauseFocus, StartFocus, StopFocus
from services.nba import AddItem
from services.outbox import Outbox, OutboxEntry
from services.tracking import Block, LogTime, Reflect, SetEnergy, SetProgress, Unblock

logger = logging.getLogger(__name__)

R = TypeVar("R")

#: The commands the outbox may keep, by the name it stores them under.
KEPT: Mapping[str, type[Command[object]]] = {
    kind.name: kind
    for kind in (
        LogTime, Reflect, AddItem, SetProgress, SetEnergy, Block, Unblock,
        StartFocus, PauseFocus, StopFocus, ExtendFocus,
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Queued:
    """The write was kept in the outbox (the database was unreachable)."""

    id: uuid.UUID
    description: str


async def perform(
    db: Database,
    outbox: Outbox | None,
    who: TelegramUser,
    chat_id: int,
    command: Command[R],
    now: datetime,
) -> R | Queued:
    """Run the command now, or keep it in the outbox during an outage (returns Queued).

    Only writes of a Telegram user this instance has seen linked are kept (the database
    can't be asked during an outage); anyone else's raise ``DatabaseUnavailable``, as does
    any write when there is no outbox. A full outbox raises ``OutboxFull``. Values are
    validated before the database is tried, so an invalid write is refused, never kept.
    """
    try:
        return await command.run(db, who, now)
    except DatabaseBusy:  # the database answers: nothing to keep, the user tries again
        raise
    except DatabaseUnavailable:
        if (
            outbox is None
            or in_joined_unit()  # the whole answer fails, and is kept once, by its caller
            or not await outbox.is_linked(who.telegram_user_id)
        ):
            raise
        entry_id = await outbox.add(
            who.telegram_user_id, chat_id, command.operation, command.table_name,
            payload(command), now,
        )  # fmt: skip
        logger.warning("database unreachable: kept %s in the outbox as %s", command.name, entry_id)
        return Queued(entry_id, command.describe())


# --- what an outbox entry holds ---------------------------------------------------------------

UNKNOWN = "it is an unknown kind of change"
UNREADABLE = "its stored payload is unreadable"

_ADAPTERS: dict[type[Command[object]], TypeAdapter[Command[object]]] = {}


def _adapter(kind: type[Command[object]]) -> TypeAdapter[Command[object]]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def payload(command: Command[object]) -> dict[str, object]:
    """What the outbox stores of a command: its name and its fields, as JSON values
    (``{"command": "log_time", "fields": {"arm": "cs", "minutes": 45, …}}``)."""
    fields = _adapter(type(command)).dump_python(command, mode="json")
    return {"command": command.name, "fields": fields}


class Unreadable(Exception):
    """A stored payload that is no command. ``reason``: :data:`UNKNOWN` or
    :data:`UNREADABLE`; ``fields``: the fields that failed (their names only: the values are
    what the user typed, and stay out of the log)."""

    def __init__(self, reason: str, fields: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


def command_of(stored: Mapping[str, object]) -> Command[object]:
    """The command a stored payload holds; raises :class:`Unreadable`.

    Reads what :func:`payload` writes, and the format of versions before typed commands,
    ``{"op": "log_time", "args": {…}}`` (the same names and fields), so entries kept by an
    older version still replay. Fields a command doesn't have are ignored."""
    if "command" in stored:
        name, fields = stored.get("command"), stored.get("fields")
    else:
        name, fields = stored.get("op"), stored.get("args")
    kind = KEPT.get(name) if isinstance(name, str) else None
    if kind is None:
        raise Unreadable(UNKNOWN)
    if not isinstance(fields, dict):
        raise Unreadable(UNREADABLE)
    try:
        return _adapter(kind).validate_python(fields)
    except ValidationError as exc:
        failed = exc.errors(include_url=False, include_context=False, include_input=False)
        where = ", ".join(".".join(str(part) for part in error["loc"]) for error in failed)
        raise Unreadable(UNREADABLE, where) from None


#: A write failing for a reason that may pass (not a rule, not the outage) is retried at
#: every replay; after NOTIFY_AFTER failures its author is told once, after PARK_AFTER it is
#: parked. Until then the user's later entries wait behind it (their order is kept); other
#: users' entries go on.
NOTIFY_AFTER = 3
PARK_AFTER = 20
#: Entries read from the outbox at a time.
BATCH = 100

#: Failures that will happen again however often the entry is replayed (a value its command's
#: types let through that its service still can't take).
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
    try:
        command = command_of(entry.payload)
    except Unreadable as exc:
        if exc.reason == UNREADABLE:
            logger.warning("outbox entry %s is malformed: %s", entry.id, exc.fields or "-")
        return await _park(outbox, entry, exc.reason, report.parked)
    token = REPLAY.set(
        Replay(entry.id, entry.operation, entry.table_name, json.dumps(entry.payload),
               entry.timestamp)
    )  # fmt: skip
    try:
        who = TelegramUser(entry.telegram_user_id)
        await command.run(db, who, entry.timestamp, replayed=True)
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
        return await _park(outbox, entry, UNREADABLE, report.parked)
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
    try:
        return command_of(entry.payload).describe().replace("\x00", "")
    except Unreadable:
        return "a change"
