"""/delete: erase every row of the user's Aelpher data, the Telegram link and, in local mode,
the account itself.

Everything happens in one unit of work as the user, under the per-user write lock, so either
all of it goes or none does. The user's own tables are emptied under RLS; the bot's tables
(the Telegram link, the nudge ledger), which users may only read, and the account are deleted
as the bot in the same transaction, filtered on the user's id (``auth.uid()``).

The account (``auth.users``):

* **local mode**: the bot created it at /start (provider ``telegram``, with the person's name
  and Telegram id), so it goes too, and a later /start makes a fresh one;
* **Supabase mode**: it is the person's Supabase Auth user (their login to the Aelpher app),
  which belongs to the Supabase project; the bot never deletes it, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.db import Database, Principal
from services.repos import global_metrics, open_questions, telegram_links, user_data
from services.repos.bot_role import as_bot

__all__ = ["Erased", "count_data", "delete_everything"]


@dataclass(frozen=True, slots=True)
class Erased:
    """What /delete removed: rows per table, and whether the account went too."""

    rows: dict[str, int]
    account_deleted: bool


async def count_data(db: Database, user_id: Principal) -> dict[str, int]:
    """How many rows the user has in each table (what /delete would remove)."""
    async with db.user_uow(user_id, read_only=True) as uow:
        return await user_data.count_all(uow)


async def delete_everything(db: Database, user_id: Principal, *, local_account: bool) -> Erased:
    """Delete the user's rows in every per-user table, the Telegram link included, the open
    questions of the Telegram users linked to them (in every chat: their drafts hold the
    user's text), and with ``local_account`` (local mode) the ``auth.users`` row the bot
    created.

    Run as the answer to the /delete confirmation, this joins that question's transaction and
    deletes its row too; the engine's own close of it afterwards then finds nothing, which is
    fine.

    Takes the per-user write lock first, so a write already under way finishes before, and
    one that comes after finds no account (NotLinked).
    """
    async with db.user_uow(user_id) as uow:
        await global_metrics.get(uow, for_update=True)
        async with as_bot(uow):  # before the links that name the Telegram users go
            await open_questions.delete_of_account(uow)
        deleted = {name: await user_data.delete_all(uow, name) for name in user_data.TABLE_NAMES}
        uow.link_removed = True  # the unit of work answering /delete must not re-note the link
        account_deleted = False
        if local_account:
            async with as_bot(uow):
                account_deleted = await telegram_links.delete_local_user(uow) > 0
        await uow.commit()
    return Erased(deleted, account_deleted)
