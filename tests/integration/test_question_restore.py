"""Storing a question again after its close committed with a step's write (the step then
asked for more, or kept the question): only if no newer question was asked meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime

from services import questions
from services.db import Database, QuestionKey
from services.repos.open_questions import Stored

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
KEY = QuestionKey(7301, 7301)


async def stored(db: Database) -> Stored | None:
    return await questions.peek(db, KEY)


async def test_a_closed_question_is_stored_again(db: Database) -> None:
    asked = questions.ask("log", "confirm", {"arm": "cs"}, T0)
    await questions.restore(db, KEY, asked, T0)
    found = await stored(db)
    assert found is not None
    assert (found.flow, found.step, found.token, found.draft) == (
        "log",
        "confirm",
        asked.token,
        {"arm": "cs"},
    )


async def test_a_newer_question_stays(db: Database) -> None:
    newer = questions.ask("reflect", "evidence", {"arm": "ibm"}, T0)
    await questions.store_now(db, KEY, newer, T0)
    await questions.restore(db, KEY, questions.ask("log", "confirm", {"arm": "cs"}, T0), T0)
    found = await stored(db)
    assert found is not None and found.token == newer.token
    await questions.close_now(db, KEY)
