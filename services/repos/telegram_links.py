"""SQL for ``telegram_links`` and the ``auth.users`` rows the bot creates.

Looking a Telegram user up, and creating or linking an account, happen before the Aelpher user
is known, so these functions run on a privileged unit of work. A user may only read their own
link (under RLS, and through the Data API); every write runs privileged.

services/db.py switches a link back on (:func:`reactivate`) when its user writes again, so
this module imports services.db for types only (services.db imports it). The impersonation
that opens every unit of work reads ``telegram_links`` too; it stays in services/db.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

if TYPE_CHECKING:
    from services.db import UnitOfWork


@dataclass(frozen=True, slots=True)
class TelegramLink:
    telegram_user_id: int
    user_id: UUID
    chat_id: int
    active: bool
    linked_at: datetime | None


# f-string SQL in this module interpolates only _COLUMNS (a fixed column list).
_COLUMNS = "telegram_user_id, user_id, chat_id, active, linked_at"


async def lock_telegram_user(uow: UnitOfWork, telegram_user_id: int) -> None:
    """Take the transaction-scoped lock of one Telegram user's account (held until the
    transaction ends): two /start of the same person at once create one account."""
    await uow.execute(
        "select pg_advisory_xact_lock(hashtextextended(%s, 1))", (f"tg:{telegram_user_id}",)
    )


async def by_telegram_user(uow: UnitOfWork, telegram_user_id: int) -> TelegramLink | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from telegram_links where telegram_user_id = %s",
        (telegram_user_id,),
    )
    return TelegramLink(**row) if row else None


async def by_user(uow: UnitOfWork, user_id: UUID) -> TelegramLink | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from telegram_links where user_id = %s", (user_id,)
    )
    return TelegramLink(**row) if row else None


async def create_local_user(uow: UnitOfWork, telegram_user_id: int, name: str | None) -> UUID:
    """Create the auth.users row for a local-mode account (privileged)."""
    user_id = uuid4()
    meta = json.dumps({"telegram_user_id": telegram_user_id, "name": name or ""})
    await uow.execute(
        "insert into auth.users (id, aud, role, raw_user_meta_data, raw_app_meta_data)"
        " values (%s, 'authenticated', 'authenticated', %s::jsonb,"
        ' \'{"provider": "telegram"}\'::jsonb)',
        (user_id, meta),
    )
    return user_id


async def delete_local_user(uow: UnitOfWork) -> int:
    """Delete the user's ``auth.users`` row if the bot created it (local mode); run as the bot.

    Only an account made by :func:`create_local_user` (provider ``telegram``) ever goes: a
    Supabase Auth user belongs to the Supabase project.
    """
    return await uow.execute(
        "delete from auth.users where id = auth.uid()"
        " and raw_app_meta_data ->> 'provider' = 'telegram'"
    )


async def user_exists(uow: UnitOfWork, user_id: UUID) -> bool:
    row = await uow.fetchone("select 1 as one from auth.users where id = %s", (user_id,))
    return row is not None


async def link(
    uow: UnitOfWork, telegram_user_id: int, user_id: UUID, chat_id: int, now: datetime
) -> None:
    """Link (or re-link) a Telegram user; refuses silently nothing: conflicts raise."""
    await uow.execute(
        "insert into telegram_links (telegram_user_id, user_id, chat_id, active, linked_at)"
        " values (%s, %s, %s, true, %s)"
        " on conflict (telegram_user_id) do update set user_id = excluded.user_id,"
        " chat_id = excluded.chat_id, active = true, linked_at = excluded.linked_at",
        (telegram_user_id, user_id, chat_id, now),
    )


async def unlink(uow: UnitOfWork, telegram_user_id: int) -> int:
    return await uow.execute(
        "delete from telegram_links where telegram_user_id = %s", (telegram_user_id,)
    )


async def set_active(uow: UnitOfWork, telegram_user_id: int, active: bool, chat_id: int) -> int:
    return await uow.execute(
        "update telegram_links set active = %s, chat_id = %s"
        " where telegram_user_id = %s and (active is distinct from %s or chat_id <> %s)",
        (active, chat_id, telegram_user_id, active, chat_id),
    )


async def reactivate(uow: UnitOfWork, telegram_user_id: int) -> int:
    """Switch a link back on (its user wrote again after blocking the bot); privileged."""
    return await uow.execute(
        "update telegram_links set active = true where telegram_user_id = %s and not active",
        (telegram_user_id,),
    )


async def deactivate_chat(uow: UnitOfWork, chat_id: int) -> int:
    return await uow.execute(
        "update telegram_links set active = false where chat_id = %s and active", (chat_id,)
    )


async def deactivate_all_but(uow: UnitOfWork, allowed: Collection[int]) -> int:
    """Switch off every active link of a Telegram user not in ``allowed``."""
    return await uow.execute(
        "update telegram_links set active = false"
        " where active and not (telegram_user_id = any(%s))",
        (list(allowed),),
    )
