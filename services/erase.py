"""/delete: erase every row of the user's Aelpher data and the Telegram link.

The account itself (``auth.users``) stays: on Supabase it is the user's login, which the bot
does not own. Everything runs in one unit of work as the user (RLS), so only that user's rows
can go, and either all of them go or none does.
"""

from __future__ import annotations

from services.db import Database, Principal
from services.repos import global_metrics, user_data

__all__ = ["count_data", "delete_everything"]


async def count_data(db: Database, user_id: Principal) -> dict[str, int]:
    """How many rows the user has in each table (what /delete would remove)."""
    async with db.user_uow(user_id, read_only=True) as uow:
        return await user_data.count_all(uow)


async def delete_everything(db: Database, user_id: Principal) -> dict[str, int]:
    """Delete the user's rows in every per-user table, the Telegram link included.

    Takes the per-user write lock first, so a write already under way finishes before, and
    one that comes after finds no account (NotLinked). Returns the rows deleted per table.
    """
    async with db.user_uow(user_id) as uow:
        await global_metrics.get(uow, for_update=True)
        deleted = {name: await user_data.delete_all(uow, name) for name in user_data.TABLE_NAMES}
        await uow.commit()
    return deleted
