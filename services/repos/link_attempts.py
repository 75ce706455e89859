"""SQL for ``link_attempts``: /link's code requests and wrong codes, counted per subject.

A subject is a Telegram user (``tg:<id>``) or an email address (``email:<sha-256>``; the address
itself is not stored). Each row expires when it leaves its limit's window, and every write
first deletes the expired rows, so the table holds at most the last hour's attempts.

Privileged unit of work only: no API role may read or write this table. Counting and adding
happen under one transaction-scoped advisory lock, so two instances (or two Telegram users
guessing one address's code at once) cannot both take the last allowed attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.db import UnitOfWork

Kind = Literal["code_request", "wrong_code"]

_LOCK = "select pg_advisory_xact_lock(hashtextextended('aelpher:link_attempts', 0))"

_PURGE = "delete from link_attempts where expires_at <= %s"

_COUNT = (
    "select subject, count(*)::int as n, min(expires_at) as first_expiry from link_attempts"
    " where kind = %(kind)s and subject = any(%(subjects)s::text[]) and expires_at > %(now)s"
    " group by subject"
)

_ADD = (
    "insert into link_attempts (kind, subject, at, expires_at)"
    " select %(kind)s, s, %(now)s, %(expires)s from unnest(%(subjects)s::text[]) as s"
    " returning id"
)

_REMOVE = "delete from link_attempts where id = any(%s::bigint[])"


@dataclass(frozen=True, slots=True)
class Count:
    """A subject's attempts still inside the window, and when the first of them expires."""

    subject: str
    n: int
    first_expiry: datetime | None


async def lock(uow: UnitOfWork) -> None:
    """Serialise counting and adding across transactions and instances."""
    await uow.execute(_LOCK)


async def purge(uow: UnitOfWork, now: datetime) -> int:
    """Delete the rows whose window has passed."""
    return await uow.execute(_PURGE, (now,))


async def counts(
    uow: UnitOfWork, kind: Kind, subjects: Sequence[str], now: datetime
) -> dict[str, Count]:
    """The live attempts of each subject (subjects with none are absent)."""
    rows = await uow.fetchall(_COUNT, {"kind": kind, "subjects": list(subjects), "now": now})
    return {r["subject"]: Count(r["subject"], r["n"], r["first_expiry"]) for r in rows}


async def add(
    uow: UnitOfWork, kind: Kind, subjects: Sequence[str], now: datetime, expires: datetime
) -> list[int]:
    """Record one attempt for each subject; returns the new rows' ids."""
    rows = await uow.fetchall(
        _ADD, {"kind": kind, "subjects": list(subjects), "now": now, "expires": expires}
    )
    return [int(r["id"]) for r in rows]


async def remove(uow: UnitOfWork, ids: Sequence[int]) -> int:
    """Take back attempts (e.g. a code that turned out right)."""
    return await uow.execute(_REMOVE, (list(ids),))
