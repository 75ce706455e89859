"""SQL for ``nudges``: the ledger that makes each nudge go out once.

A row is *claimed* (inserted under its unique ``(user_id, dedupe_key)``) before anything is
sent, then ends ``sent`` or ``failed``; a claimed row whose ``next_attempt_at`` has passed (a
crash after the claim, a passing send failure) is taken again by a later scan. Claiming and
taking retries run on the scan's privileged unit of work; the per-row steps (re-check, attempt,
outcome) run in the user's own unit of work, under RLS. The ledger is the bot's: users may only
read it (through the Data API too), so the per-row locks and writes run as the connecting role
inside that unit of work (:func:`services.repos.bot_role.as_bot`).

``last_error`` is shown to the user (/export, the Data API): it is stored redacted
(:func:`_error`), since an error's text may quote a request URL with the bot token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm
from services.redact import redact
from services.repos.bot_role import as_bot
from services.repos.scan import row_is_sane

NudgeKind = Literal["idle", "overload", "brief", "review"]
NudgeStatus = Literal["claimed", "sent", "failed"]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One ``nudges`` row."""

    id: UUID
    user_id: UUID
    kind: NudgeKind
    arm_type: Arm | None
    dedupe_key: str
    status: NudgeStatus
    attempts: int
    claimed_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    episode_at: datetime | None
    risk: Decimal | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NewClaim:
    """A nudge the scan found due, to be claimed under ``dedupe_key``."""

    user_id: UUID
    kind: NudgeKind
    arm_type: Arm | None
    dedupe_key: str
    episode_at: datetime | None = None
    risk: Decimal | None = None


# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS and _SANE (a
# check built from fixed column names, services/repos/scan.py).
_COLUMNS = (
    "id, user_id, kind, arm_type, dedupe_key, status, attempts, claimed_at, sent_at,"
    " next_attempt_at, episode_at, risk, last_error"
)

# Rows go in sorted by (user, key), so two claimers never wait on each other in a cycle.
_CLAIM = (
    "insert into nudges (user_id, kind, arm_type, dedupe_key, status, attempts, claimed_at,"
    " next_attempt_at, episode_at, risk)"
    " select v.user_id, v.kind, v.arm, v.key, 'claimed', 0, %(now)s, %(lease)s, v.episode,"
    " v.risk"
    " from unnest(%(users)s::uuid[], %(kinds)s::text[], %(arms)s::text[], %(keys)s::text[],"
    "             %(episodes)s::timestamptz[], %(risks)s::numeric[])"
    "      with ordinality as v(user_id, kind, arm, key, episode, risk, ord)"
    " order by v.ord"
    " on conflict (user_id, dedupe_key) do nothing"
    f" returning {_COLUMNS}"
)

# Claimed rows whose lease/retry delay has passed; taking one renews its lease, and SKIP
# LOCKED lets two scans share the work without both taking a row. A row that breaks the
# ``*_sane`` constraints (written before them, through the Data API) is left alone: renewing
# its lease would fail, and the statement with it, for every user.
_SANE = row_is_sane("nudges", "nudges", writing="next_attempt_at")
_TAKE_RETRIES = (
    "with due as ("
    "  select id from nudges"
    f"  where status = 'claimed' and next_attempt_at <= %(now)s and {_SANE}"
    "  order by next_attempt_at limit %(limit)s"
    "  for update skip locked)"
    " update nudges x set next_attempt_at = %(lease)s from due where x.id = due.id"
    f" returning {', '.join('x.' + c.strip() for c in _COLUMNS.split(','))}"
)

_COUNT_RETRIES = (
    "select count(*)::int as n from nudges where status = 'claimed' and next_attempt_at <= %s"
    f" and {_SANE}"
)


async def _write(uow: UnitOfWork, query: str, params: Any) -> int:
    """A ledger write from a user's unit of work, made as the bot."""
    async with as_bot(uow):
        return await uow.execute(query, params)


def _error(text: str) -> str:
    """An error as ``last_error`` keeps it: without secrets, at most 500 characters."""
    return redact(text)[:500]


async def claim(
    uow: UnitOfWork, claims: Sequence[NewClaim], now: datetime, lease_until: datetime
) -> list[LedgerRow]:
    """Insert the claims that are not in the ledger yet; return the rows this call inserted."""
    if not claims:
        return []
    ordered = sorted(claims, key=lambda c: (str(c.user_id), c.dedupe_key))
    rows = await uow.fetchall(
        _CLAIM,
        {
            "now": now,
            "lease": lease_until,
            "users": [c.user_id for c in ordered],
            "kinds": [c.kind for c in ordered],
            "arms": [c.arm_type for c in ordered],
            "keys": [c.dedupe_key for c in ordered],
            "episodes": [c.episode_at for c in ordered],
            "risks": [c.risk for c in ordered],
        },
    )
    return [LedgerRow(**row) for row in rows]


async def take_retries(
    uow: UnitOfWork, now: datetime, lease_until: datetime, limit: int
) -> list[LedgerRow]:
    """Take the claimed rows that are due for another attempt (privileged)."""
    rows = await uow.fetchall(_TAKE_RETRIES, {"now": now, "lease": lease_until, "limit": limit})
    return [LedgerRow(**row) for row in rows]


async def count_retries(uow: UnitOfWork, now: datetime) -> int:
    row = await uow.fetchone(_COUNT_RETRIES, (now,))
    return int(row["n"]) if row else 0


async def lock(uow: UnitOfWork, nudge_id: UUID) -> LedgerRow | None:
    """The row, locked for this transaction (RLS: only the user's own)."""
    async with as_bot(uow):
        row = await uow.fetchone(
            f"select {_COLUMNS} from nudges where id = %s and user_id = auth.uid() for update",
            (nudge_id,),
        )
    return LedgerRow(**row) if row else None


async def start_attempt(
    uow: UnitOfWork, nudge_id: UUID, lease_until: datetime, risk: Decimal | None
) -> None:
    """Count an attempt about to be made; the lease keeps other scans off it meanwhile."""
    await _write(
        uow,
        "update nudges set attempts = attempts + 1, next_attempt_at = %s,"
        " risk = coalesce(%s, risk) where id = %s",
        (lease_until, risk, nudge_id),
    )


async def mark_sent(uow: UnitOfWork, nudge_id: UUID, now: datetime) -> None:
    await _write(
        uow,
        "update nudges set status = 'sent', sent_at = %s, next_attempt_at = null,"
        " last_error = null where id = %s and status = 'claimed'",
        (now, nudge_id),
    )


async def mark_failed(uow: UnitOfWork, nudge_id: UUID, error: str) -> None:
    """Final: this nudge will not be sent."""
    await _write(
        uow,
        "update nudges set status = 'failed', next_attempt_at = null, last_error = %s"
        " where id = %s and status = 'claimed'",
        (_error(error), nudge_id),
    )


async def retry_later(
    uow: UnitOfWork, nudge_id: UUID, at: datetime, error: str | None = None
) -> None:
    """Leave the row claimed, to be taken again by a scan at or after ``at``."""
    await _write(
        uow,
        "update nudges set next_attempt_at = %s, last_error = coalesce(%s, last_error)"
        " where id = %s and status = 'claimed'",
        (at, _error(error) if error else None, nudge_id),
    )


async def note_error(
    uow: UnitOfWork, nudge_id: UUID, error: str, retry_at: datetime, max_attempts: int
) -> None:
    """Count a failed preparation as an attempt; the last allowed one makes the row failed."""
    await _write(
        uow,
        "update nudges set attempts = attempts + 1, last_error = %(error)s,"
        " next_attempt_at = case when attempts + 1 >= %(max)s then null else %(at)s end,"
        " status = case when attempts + 1 >= %(max)s then 'failed' else status end"
        " where id = %(id)s and status = 'claimed'",
        {"error": _error(error), "max": max_attempts, "at": retry_at, "id": nudge_id},
    )


async def delete(uow: UnitOfWork, nudge_id: UUID) -> None:
    """Withdraw a claim that must not be sent (the re-check said no): the key is free again."""
    await _write(uow, "delete from nudges where id = %s and status = 'claimed'", (nudge_id,))
