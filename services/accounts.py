"""Accounts: who a Telegram user is, creating a local account, linking and unlinking."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

import psycopg

from services.db import Database, UnitOfWork
from services.errors import Conflict, NotFound
from services.repos import global_metrics, telegram_links, theaters, user_data, user_settings
from services.repos.telegram_links import TelegramLink


async def find_link(db: Database, telegram_user_id: int) -> TelegramLink | None:
    """The link of a Telegram user, if any (privileged: the user is not known yet)."""
    async with db.privileged(read_only=True) as uow:
        return await telegram_links.by_telegram_user(uow, telegram_user_id)


async def _ensure_rows(uow: UnitOfWork, now: datetime) -> None:
    await theaters.ensure(uow, now)
    await global_metrics.ensure(uow, now)
    await user_settings.ensure(uow)


async def ensure_account(db: Database, user_id: UUID, now: datetime) -> None:
    """Create the user's theaters, metrics and settings if missing (idempotent)."""
    async with db.user_uow(user_id) as uow:
        await _ensure_rows(uow, now)
        await uow.commit()


async def create_local_account(
    db: Database, telegram_user_id: int, chat_id: int, name: str | None, now: datetime
) -> tuple[UUID, bool]:
    """Return the Telegram user's account, creating it (local mode) if there is none.

    The second value says whether it was created now. Safe when two /start arrive at once.
    """
    complete = True
    async with db.privileged() as uow:
        await telegram_links.lock_telegram_user(uow, telegram_user_id)
        link = await telegram_links.by_telegram_user(uow, telegram_user_id)
        if link is not None:
            if not link.active or link.chat_id != chat_id:
                await telegram_links.set_active(uow, telegram_user_id, True, chat_id)
            complete = await user_data.has_own_rows(uow, link.user_id)
            await uow.commit()
            created = False
            user_id = link.user_id
        else:
            user_id = await telegram_links.create_local_user(uow, telegram_user_id, name)
            await telegram_links.link(uow, telegram_user_id, user_id, chat_id, now)
            await uow.commit()
            created = True
    if created or not complete:  # new, or rows deleted outside the bot: /start makes them
        await ensure_account(db, user_id, now)
    return user_id, created


async def link_existing(
    db: Database, telegram_user_id: int, user_id: UUID, chat_id: int, now: datetime
) -> None:
    """Link a Telegram user to an existing Aelpher user (Supabase mode, after the code)."""
    async with db.privileged() as uow:
        if not await telegram_links.user_exists(uow, user_id):
            raise NotFound("account")
        other = await telegram_links.by_user(uow, user_id)
        if other is not None and other.telegram_user_id != telegram_user_id:
            raise Conflict(
                "That Aelpher account is already linked to another Telegram user;"
                " /unlink it there first."
            )
        try:
            await telegram_links.link(uow, telegram_user_id, user_id, chat_id, now)
        except psycopg.errors.UniqueViolation:
            raise Conflict("That Aelpher account is already linked.") from None
        await uow.commit()
    await ensure_account(db, user_id, now)


async def unlink(db: Database, telegram_user_id: int) -> bool:
    """Remove the Telegram link (the Aelpher data stays). True if there was one.

    Privileged: links are read-only to their users (a user's own JWT must not re-point one).
    """
    async with db.privileged() as uow:
        removed = await telegram_links.unlink(uow, telegram_user_id)
        await uow.commit()
    return removed > 0


async def reactivate(
    db: Database, telegram_user_id: int, chat_id: int, now: datetime | None = None
) -> None:
    """The user wrote again: nudges may go to this chat again (privileged). Given ``now``
    (/start), also makes the account's rows again if they were deleted outside the bot."""
    async with db.privileged() as uow:
        await telegram_links.set_active(uow, telegram_user_id, True, chat_id)
        link = await telegram_links.by_telegram_user(uow, telegram_user_id) if now else None
        complete = link is None or await user_data.has_own_rows(uow, link.user_id)
        await uow.commit()
    if not complete and link is not None and now is not None:
        await ensure_account(db, link.user_id, now)


async def deactivate_chat(db: Database, chat_id: int) -> None:
    """The user blocked the bot: stop nudging this chat until they write again."""
    async with db.privileged() as uow:
        await telegram_links.deactivate_chat(uow, chat_id)
        await uow.commit()


async def apply_allow_list(db: Database, allowed: Collection[int]) -> int:
    """Only allowed users are nudged: switch off the links of everyone else (at start-up).

    A user removed from the allow-list can no longer use the bot, so nothing may keep
    writing to them either; their link comes back on by itself if they are allowed again and
    write (as after unblocking the bot). Returns the links switched off.
    """
    async with db.privileged() as uow:
        switched_off = await telegram_links.deactivate_all_but(uow, allowed)
        await uow.commit()
    return switched_off
