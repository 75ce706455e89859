"""SQL for ``focus_messages``: where a focus session's message is, and the claims that make
its reminders go out once (services/focus.py; handlers/focus.py).

The bot's own table: no API role reaches it. Every statement here runs in a privileged unit
of work (the jobs that redraw the message and send the reminders serve every user). The
session is read with it by :data:`_WATCH`, which joins what a user may have written (the
session, its item, the settings) only on the user's own rows: the item must be the session
user's, the chat must still be that user's active link.

f-string SQL in this module interpolates only the fixed fragments defined here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from services.db import UnitOfWork
from services.repos.focus_sessions import COLUMNS as SESSION_COLUMNS

_WATCH = (
    f"select {SESSION_COLUMNS}, i.title, s.user_id, m.chat_id, m.message_id, m.shown,"
    " m.edits_stopped, m.times_up_for, m.still_asked_at,"
    " coalesce(u.timezone, 'UTC') as timezone, u.quiet_start, u.quiet_end"
    " from focus_messages m join focus_sessions s on s.id = m.session_id"
    " join telegram_links l on l.user_id = s.user_id and l.chat_id = m.chat_id and l.active"
    " left join nba_items i on i.id = s.item_id and i.user_id = s.user_id"
    " left join user_settings u on u.user_id = s.user_id"
)


async def insert(
    uow: UnitOfWork, session_id: UUID, chat_id: int, message_id: int, shown: str
) -> None:
    """Where the session message went (a second message of the same session replaces it)."""
    await uow.execute(
        "insert into focus_messages (session_id, chat_id, message_id, shown)"
        " values (%s, %s, %s, %s) on conflict (session_id) do update"
        " set chat_id = excluded.chat_id, message_id = excluded.message_id,"
        " shown = excluded.shown, edits_stopped = false",
        (session_id, chat_id, message_id, shown[:4096]),
    )


async def watch(uow: UnitOfWork, session_id: UUID) -> dict[str, Any] | None:
    """The session (stopped or not) with its message, if the bot sent one to a chat that is
    still the user's."""
    row = await uow.fetchone(f"{_WATCH} where m.session_id = %s", (session_id,))
    return dict(row) if row else None


async def running(uow: UnitOfWork) -> list[dict[str, Any]]:
    """Every session not stopped that has a message (what the jobs watch after a restart)."""
    return [dict(r) for r in await uow.fetchall(f"{_WATCH} where s.stopped_at is null")]


async def claim_redraw(uow: UnitOfWork, session_id: UUID, text: str) -> dict[str, Any] | None:
    """Claim drawing ``text``: the message's chat and id if it shows something else and
    redraws have not stopped (with several instances, one of them draws it)."""
    row = await uow.fetchone(
        "update focus_messages set shown = %(text)s where session_id = %(id)s"
        " and not edits_stopped and shown is distinct from %(text)s"
        " returning chat_id, message_id",
        {"id": session_id, "text": text[:4096]},
    )
    return dict(row) if row else None


async def stop_edits(uow: UnitOfWork, session_id: UUID) -> None:
    await uow.execute(
        "update focus_messages set edits_stopped = true where session_id = %s", (session_id,)
    )


async def claim_times_up(uow: UnitOfWork, session_id: UUID, planned: int) -> bool:
    """Claim the "Time's up" of the planned length ``planned`` (once per length)."""
    count = await uow.execute(
        "update focus_messages set times_up_for = %(planned)s where session_id = %(id)s"
        " and (times_up_for is null or times_up_for < %(planned)s)",
        {"id": session_id, "planned": planned},
    )
    return count == 1


async def release_times_up(uow: UnitOfWork, session_id: UUID, planned: int) -> None:
    """Give back a claim whose message could not be sent (a later run tries again)."""
    await uow.execute(
        "update focus_messages set times_up_for = null"
        " where session_id = %s and times_up_for = %s",
        (session_id, planned),
    )


async def claim_still(uow: UnitOfWork, session_id: UUID, now: datetime) -> bool:
    """Claim the session's one "Still working?"."""
    count = await uow.execute(
        "update focus_messages set still_asked_at = %s"
        " where session_id = %s and still_asked_at is null",
        (now, session_id),
    )
    return count == 1


async def release_still(uow: UnitOfWork, session_id: UUID) -> None:
    await uow.execute(
        "update focus_messages set still_asked_at = null where session_id = %s", (session_id,)
    )
