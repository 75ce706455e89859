"""Write commands: a change a person asks for, as typed data, and the one function that runs it.

A command is a frozen dataclass of the values of one write, ``LogTime(arm="cs", minutes=45,
action="read")``, defined next to its service function (:mod:`services.tracking`,
:mod:`services.nba`). Its :meth:`Command.run` calls that function and returns the function's
own result type: ``LogTime`` is a ``Command[LogResult]`` and ``LogTime(...).run(db, who, now)``
is ``tracking.log_time(db, who, "cs", 45, "read", now)``. A command's path is therefore still
three files: the handler builds it, the service module holds it and its function, the repos
hold the SQL.

Every entry point runs the same commands: the chat's handlers through
``handlers/common.py: perform`` (which keeps a command in the outbox when the database is
unreachable, :mod:`services.sync`), and the outbox replay, which reads a kept command back
from its name and fields and runs it through the same ``run`` (``replayed=True``).

Why a method and not a dispatch table: the result type follows from the command's class, so
``perform(update, context, LogTime(...))`` is typed ``LogResult | Queued`` with no overloads
and no casts; a ``singledispatch`` function or a mapping from command type to service function
can only be typed as returning ``Any`` (or one overload per command).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar, Generic, Literal, TypeVar

from services.db import Database, Principal

R_co = TypeVar("R_co", covariant=True)


class Command(ABC, Generic[R_co]):
    """A write with its values; subclasses are frozen, keyword-only dataclasses."""

    __slots__ = ()

    #: The name the outbox stores it under. Stable: kept entries outlive the code that kept
    #: them, and the names are the ones entries had before commands were typed.
    name: ClassVar[str]
    #: What it does to which table, as the outbox's ``sync_queue`` rows record it.
    operation: ClassVar[Literal["INSERT", "UPDATE"]]
    table_name: ClassVar[str]

    @abstractmethod
    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> R_co:
        """Apply it as of ``now`` through its service function. ``replayed``: the outbox
        applies it, and ``now`` is the time the user sent it."""

    @abstractmethod
    def describe(self) -> str:
        """What it changes, for its author: "log “read” in cs"."""
