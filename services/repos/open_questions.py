"""SQL for ``open_questions``: the one question open per chat (handlers/conversation.py).

The bot's own table: no API role reaches it. The update's unit of work reads it in its
opening (services/db.py); the statements here replace or delete it, as the connecting role,
as the last statements of that unit of work (see :func:`services.repos.bot_role.last_as_bot`),
or in a privileged unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from services.db import QUESTION_CHANGED, QuestionKey, UnitOfWork
from services.repos.bot_role import TO_BOT_FOR_GOOD, last_as_bot

_SAVE = (
    "insert into open_questions"
    " (chat_id, telegram_user_id, flow, step, draft, token, asked_at, expires_at)"
    " values (%(chat)s, %(tg)s, %(flow)s, %(step)s, %(draft)s, %(token)s, %(at)s, %(expires)s)"
    " on conflict (chat_id, telegram_user_id) do update set flow = excluded.flow,"
    " step = excluded.step, draft = excluded.draft, token = excluded.token,"
    " asked_at = excluded.asked_at, expires_at = excluded.expires_at"
)
# Insert the question unless the chat has one (a newer question asked meanwhile stays).
_SAVE_IF_NONE = (
    "insert into open_questions"
    " (chat_id, telegram_user_id, flow, step, draft, token, asked_at, expires_at)"
    " values (%(chat)s, %(tg)s, %(flow)s, %(step)s, %(draft)s, %(token)s, %(at)s, %(expires)s)"
    " on conflict (chat_id, telegram_user_id) do nothing"
)
# Delete the question if it is still the one with the token (a token is never reused: a new
# question has a new one), else fail the transaction with QUESTION_CHANGED (the cast of a
# text that is not a number; computed from the count, so the planner cannot fold it early).
_CLOSE_IF_SAME = (
    "with closed as (delete from open_questions where chat_id = %(chat)s"
    "   and telegram_user_id = %(tg)s and token = %(token)s returning 1)"
    " select case when count(*) = 1 then 1"
    "   else (%(changed)s::text || ': ' || count(*))::int end as closed from closed"
)
_DELETE = (
    "delete from open_questions where chat_id = %(chat)s and telegram_user_id = %(tg)s"
    " returning flow"
)
_PEEK = (
    "select flow, step, draft, token, expires_at from open_questions"
    " where chat_id = %(chat)s and telegram_user_id = %(tg)s"
)
# A question still open at its expiry, claimed by the one instance that deletes it.
_EXPIRE = (
    "delete from open_questions where chat_id = %(chat)s and telegram_user_id = %(tg)s"
    " and token = %(token)s and expires_at <= %(now)s returning flow, step, draft"
)
_PENDING = "select chat_id, telegram_user_id, token, expires_at from open_questions"
_DELETE_OF_ACCOUNT = (
    "delete from open_questions where telegram_user_id in"
    " (select telegram_user_id from telegram_links where user_id = auth.uid())"
)


@dataclass(frozen=True, slots=True)
class Stored:
    """An open question as stored: its draft is still JSON."""

    flow: str
    step: str
    draft: Any
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Pending:
    key: QuestionKey
    token: str
    expires_at: datetime


def _key(key: QuestionKey) -> dict[str, int]:
    return {"chat": key.chat_id, "tg": key.telegram_user_id}


def from_opening(columns: dict[str, Any] | None) -> Stored | None:
    """The question the unit of work's opening read (see services/db.py), if any."""
    if columns is None:
        return None
    return Stored(
        columns["flow"], columns["step"], columns["draft"], columns["token"], columns["expires_at"]
    )


async def peek(uow: UnitOfWork, key: QuestionKey) -> Stored | None:
    """The open question, not locked (privileged unit of work)."""
    row = await uow.fetchone(_PEEK, _key(key))
    return None if row is None else Stored(**row)


@dataclass(frozen=True, slots=True)
class Row:
    """What a question is stored as (the key aside)."""

    flow: str
    step: str
    draft: Any
    token: str
    asked_at: datetime
    expires_at: datetime


def _params(key: QuestionKey, row: Row) -> dict[str, Any]:
    return _key(key) | {
        "flow": row.flow,
        "step": row.step,
        "draft": Jsonb(row.draft),
        "token": row.token,
        "at": row.asked_at,
        "expires": row.expires_at,
    }


async def save(uow: UnitOfWork, key: QuestionKey, row: Row, *, commit: bool = False) -> None:
    """Replace the chat's open question (the last statement of a user's unit of work;
    ``commit``: and commit it, in the same round trip)."""
    await last_as_bot(uow, _SAVE, _params(key, row), commit=commit)


def close_tail(key: QuestionKey, token: str) -> list[tuple[str, Any]]:
    """The statements that close the question with ``token`` as the connecting role, the
    last of a user's unit of work (``UnitOfWork.close_with_write``); they fail the
    transaction with ``QUESTION_CHANGED`` if the chat's question is another one, or none."""
    return [
        (TO_BOT_FOR_GOOD, None),
        (_CLOSE_IF_SAME, _key(key) | {"token": token, "changed": QUESTION_CHANGED}),
    ]


async def save_if_none(uow: UnitOfWork, key: QuestionKey, row: Row) -> None:
    """Store the question unless the chat has one (a privileged unit of work; with the
    COMMIT in the same round trip where it needs one)."""
    await last_as_bot(uow, _SAVE_IF_NONE, _params(key, row), commit=True)


async def delete(uow: UnitOfWork, key: QuestionKey, *, commit: bool = False) -> str | None:
    """Close the chat's open question; the flow it belonged to (None: none was open).
    ``commit``: and commit, in the same round trip."""
    rows = await last_as_bot(uow, _DELETE, _key(key), commit=commit)
    return str(rows[0]["flow"]) if rows else None


async def expire(uow: UnitOfWork, key: QuestionKey, token: str, now: datetime) -> Stored | None:
    """Delete the question if it is still the one with ``token`` and has expired by ``now``:
    it, once, for the one caller that deleted it (privileged unit of work)."""
    row = await uow.fetchone(_EXPIRE, _key(key) | {"token": token, "now": now})
    if row is None:
        return None
    return Stored(row["flow"], row["step"], row["draft"], token, now)


async def pending(uow: UnitOfWork) -> list[Pending]:
    """Every open question, to arm their expiry (privileged unit of work)."""
    rows = await uow.fetchall(_PENDING)
    return [
        Pending(QuestionKey(r["chat_id"], r["telegram_user_id"]), r["token"], r["expires_at"])
        for r in rows
    ]


async def delete_of_account(uow: UnitOfWork) -> int:
    """Close every question of the Telegram users linked to the unit of work's user
    (``auth.uid()``), in every chat: their data is being erased. Run as the bot
    (:func:`services.repos.bot_role.as_bot`), before the links go."""
    return await uow.execute(_DELETE_OF_ACCOUNT)
