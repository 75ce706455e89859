"""The one open question per chat: its typed draft, and where it is kept.

A guided form (handlers/conversation.py) asks one question at a time; what it has gathered so
far is a *draft*, a frozen dataclass per flow (``LogDraft`` …), stored as JSON in
``open_questions`` together with the flow's name, the step, a token that the question's
buttons carry, and the moment it expires. A new question replaces the chat's previous one
(and its token, so the old buttons no longer match); a command or /cancel deletes it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from services.db import Database, QuestionKey, UnitOfWork
from services.repos import open_questions
from services.repos.open_questions import Pending, Stored

logger = logging.getLogger(__name__)

#: A question nobody answers for this long is closed (and the person told so).
TIMEOUT = timedelta(minutes=10)

D = TypeVar("D")

__all__ = ["TIMEOUT", "Pending", "Question", "QuestionKey", "Stored"]


@dataclass(frozen=True, slots=True)
class Question(Generic[D]):
    """An open question: which flow asked it, at which step, and the draft so far."""

    flow: str
    step: str
    draft: D
    token: str
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def new_token() -> str:
    """A fresh token for a question's buttons (8 URL-safe characters)."""
    return secrets.token_urlsafe(6)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(draft_type: type[D]) -> TypeAdapter[D]:
    if draft_type not in _ADAPTERS:
        _ADAPTERS[draft_type] = TypeAdapter(draft_type)
    return _ADAPTERS[draft_type]


def typed(stored: Stored, draft_type: type[D]) -> Question[D] | None:
    """The stored question with its draft typed; None if the draft is not one of
    ``draft_type`` (written by another version of the bot): it is then closed."""
    try:
        draft = _adapter(draft_type).validate_python(stored.draft)
    except ValidationError:
        logger.warning("open question of flow %s has a draft it can't read", stored.flow)
        return None
    return Question(stored.flow, stored.step, draft, stored.token, stored.expires_at)


def ask(flow: str, step: str, draft: D, now: datetime) -> Question[D]:
    """A new question (a new token: buttons of the question before it no longer match)."""
    return Question(flow, step, draft, new_token(), now + TIMEOUT)


def _row(question: Question[Any], now: datetime) -> open_questions.Row:
    draft = _adapter(type(question.draft)).dump_python(question.draft, mode="json")
    return open_questions.Row(
        question.flow, question.step, draft, question.token, now, question.expires_at
    )


async def save(
    uow: UnitOfWork,
    key: QuestionKey,
    question: Question[Any],
    now: datetime,
    *,
    commit: bool = False,
) -> None:
    """Make ``question`` the chat's open question (the unit of work's last statement;
    ``commit``: and commit it, in the same round trip)."""
    await open_questions.save(uow, key, _row(question, now), commit=commit)


async def close(uow: UnitOfWork, key: QuestionKey, *, commit: bool = False) -> str | None:
    """Close the chat's open question (the unit of work's last statement; ``commit``: and
    commit, in the same round trip)."""
    return await open_questions.delete(uow, key, commit=commit)


async def close_now(db: Database, key: QuestionKey) -> str | None:
    """Close the chat's open question in a transaction of its own; the flow it was of."""
    async with db.privileged(single=True) as uow:  # one statement: one round trip
        return await open_questions.delete(uow, key, commit=True)


async def store_now(
    db: Database, key: QuestionKey, question: Question[Any], now: datetime
) -> None:
    """Make ``question`` the chat's open question in a transaction of its own."""
    async with db.privileged(single=True) as uow:  # one statement: one round trip
        await save(uow, key, question, now, commit=True)


async def restore(db: Database, key: QuestionKey, question: Question[Any], now: datetime) -> None:
    """Make ``question`` the chat's open question again after it was closed with a write
    that then asked for more (or refused), unless a newer one was asked meanwhile: in a
    transaction of its own."""
    async with db.privileged(single=True) as uow:  # one statement: one round trip
        await open_questions.save_if_none(uow, key, _row(question, now))


def close_with_write(uow: UnitOfWork, key: QuestionKey, question: Question[Any]) -> None:
    """Close ``question`` with the next write of a service joining ``uow``, in its round
    trip (``UnitOfWork.close_with_write``): ``QuestionChanged`` if the chat's question is no
    longer it."""
    uow.close_with_write(open_questions.close_tail(key, question.token))


async def peek(db: Database, key: QuestionKey) -> Stored | None:
    """The chat's open question, read on its own (for people not linked: /link)."""
    async with db.privileged(read_only=True) as uow:
        return await open_questions.peek(uow, key)


async def expire(db: Database, key: QuestionKey, token: str, now: datetime) -> Stored | None:
    """Close the question if it is still ``token``'s and expired: it, for one caller only."""
    async with db.privileged() as uow:
        found = await open_questions.expire(uow, key, token, now)
        await uow.commit()
    return found


async def pending(db: Database) -> list[Pending]:
    """Every open question (to arm their expiry at start-up)."""
    async with db.privileged(read_only=True) as uow:
        return await open_questions.pending(uow)
