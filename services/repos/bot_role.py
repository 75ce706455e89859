"""Writes of the bot's own rows (``telegram_links``, the ``nudges`` ledger, the accounts it
created) from inside a user's unit of work.

Those tables are read-only to ``authenticated`` (a user holding a Supabase JWT must not be
able to change them through the Data API), and the user's unit of work runs as
``authenticated`` too. So for such a write the transaction switches back to the connecting
role, which bypasses row-level security, and then returns to ``authenticated``; the JWT claims
stay set, so ``auth.uid()`` still names the user and the statements filter on it. On a
privileged unit of work nothing changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import pq
from psycopg.rows import DictRow

from services.db import UnitOfWork

# Transaction-scoped like the impersonation; the role in force before is read first.
_TO_BOT = "select current_setting('role') as was, set_config('role', 'none', true) as now"
_BACK = "select set_config('role', %s, true)"


@asynccontextmanager
async def as_bot(uow: UnitOfWork) -> AsyncIterator[None]:
    """Run the block's statements as the connecting role, then return to the user's role."""
    row = await uow.fetchone(_TO_BOT)
    assert row is not None
    was = str(row["was"])
    try:
        yield
    finally:
        # After a failed statement the transaction is aborted and rolls back, role and all.
        if was != "none" and uow.conn.info.transaction_status == pq.TransactionStatus.INTRANS:
            await uow.execute(_BACK, (was,))


TO_BOT_FOR_GOOD = "select set_config('role', 'none', true)"


async def last_as_bot(
    uow: UnitOfWork, query: str, params: Any = None, *, commit: bool = False
) -> list[DictRow]:
    """Run ``query`` as the connecting role as the last statement of ``uow`` (the role is not
    switched back): the switch and the statement go in one round trip (a pipeline, or behind
    a transaction pooler one message), and with ``commit`` the COMMIT too (the unit of work
    is then done). On a privileged unit of work it is just the statement."""
    if uow.telegram_user_id is None and uow.user_id is None:
        rows = await uow.rows(query, params)
    else:
        return await uow.last_after(TO_BOT_FOR_GOOD, query, params, commit=commit)
    if commit:
        await uow.commit()  # sent by the unit of work as it ends
    return rows
