"""Next Best Actions: viewing, adding, editing, deleting, lock/unlock/select/auto, progress, done.

Every public function is one unit of work for one user: it takes the user's write lock,
changes what it must, re-ranks the theater and refreshes the derived state, then commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services import rules, state, validation
from services.db import Database, Principal, UnitOfWork
from services.errors import Conflict, NotFound
from services.models import ARMS, Arm, ExecutionLog, NbaItem, TheaterStatus
from services.repos import execution_logs, nba_items


class ItemGone(NotFound):
    """The item a button pointed at was completed, deleted, or never was the user's."""

    def __init__(self) -> None:
        super().__init__("item")


@dataclass(frozen=True, slots=True)
class TheaterNba:
    """One theater's ranked open items, the current one first."""

    arm: Arm
    status: TheaterStatus
    ranked: tuple[rules.RankedItem, ...]

    @property
    def current(self) -> rules.RankedItem | None:
        return self.ranked[0] if self.ranked and self.ranked[0].is_current else None

    @property
    def others(self) -> tuple[rules.RankedItem, ...]:
        return tuple(r for r in self.ranked if not r.is_current)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """An item after a change, and its theater as it now stands."""

    item: NbaItem
    theater: TheaterNba
    log: ExecutionLog | None = None
    duplicate: bool = False


async def _theater_nba(uow: UnitOfWork, arm: Arm, now: datetime) -> TheaterNba:
    theater = await state.theater(uow, arm)
    items = await nba_items.open_items(uow, arm)
    return TheaterNba(arm, theater.status, tuple(rules.rank(items, now)))


async def view(
    db: Database, user_id: Principal, arms: Sequence[Arm], now: datetime
) -> list[TheaterNba]:
    """The ranked items of the given theaters (fresh scores as of ``now``)."""
    async with db.user_uow(user_id) as uow:
        return [await _theater_nba(uow, arm, now) for arm in arms]


async def _open_item(uow: UnitOfWork, item_id: UUID) -> NbaItem:
    item = await nba_items.get(uow, item_id)  # RLS: another user's id reads as missing
    if item is None or item.completed_at is not None:
        raise ItemGone()
    return item


async def _finish(uow: UnitOfWork, item_id: UUID, arm: Arm, now: datetime) -> ItemResult:
    await state.rerank(uow, arm, now)
    theater = await _theater_nba(uow, arm, now)
    item = await nba_items.get(uow, item_id)
    assert item is not None
    await uow.commit()
    return ItemResult(item, theater)


async def add_item(
    db: Database,
    user_id: Principal,
    arm: Arm,
    gap: int,
    title: str,
    now: datetime,
    description: str | None = None,
) -> ItemResult:
    """Add an open item to ``arm`` and re-rank."""
    title = validation.clean_title(title)
    gap = validation.check_gap(gap)
    description = validation.clean_description(description)
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item_id = await nba_items.insert(uow, arm, title, gap, description, now)
        return await _finish(uow, item_id, arm, now)


async def edit_item(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    *,
    title: str | None = None,
    gap: int | None = None,
) -> ItemResult:
    """Change an open item's title and/or gap."""
    new_title = validation.clean_title(title) if title is not None else None
    new_gap = validation.check_gap(gap) if gap is not None else None
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item = await _open_item(uow, item_id)
        await nba_items.update_fields(
            uow,
            item_id,
            title=new_title if new_title is not None else item.title,
            gap=new_gap if new_gap is not None else item.gap,
            now=now,
        )
        return await _finish(uow, item_id, item.arm_type, now)


async def delete_item(
    db: Database, user_id: Principal, item_id: UUID, now: datetime
) -> TheaterNba:
    """Delete an item (open or done) and re-rank its theater."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item = await nba_items.get(uow, item_id)
        if item is None:
            raise ItemGone()
        await nba_items.delete(uow, item_id)
        await state.rerank(uow, item.arm_type, now)
        theater = await _theater_nba(uow, item.arm_type, now)
        await uow.commit()
        return theater


async def _locked_other(uow: UnitOfWork, item: NbaItem) -> NbaItem | None:
    for other in await nba_items.open_items(uow, item.arm_type):
        if other.is_locked and other.id != item.id:
            return other
    return None


async def lock(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Lock an item: it becomes (and stays) current until unlocked or done."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item = await _open_item(uow, item_id)
        other = await _locked_other(uow, item)
        if other is not None:
            raise Conflict(
                f"“{other.title}” is already locked in {item.arm_type}: unlock it first."
            )
        if not item.is_locked:
            await nba_items.set_flags(uow, item_id, now=now, locked=True)
        return await _finish(uow, item_id, item.arm_type, now)


async def unlock(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Unlock an item: ranking decides again."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item = await _open_item(uow, item_id)
        if item.is_locked:
            await nba_items.set_flags(uow, item_id, now=now, locked=False)
        return await _finish(uow, item_id, item.arm_type, now)


async def select(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Pick an item by hand (clears any other manual pick); refused while another is locked."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        item = await _open_item(uow, item_id)
        other = await _locked_other(uow, item)
        if other is not None:
            raise Conflict(
                f"“{other.title}” is locked in {item.arm_type}: unlock it before choosing"
                " another item."
            )
        if not item.is_manually_selected:
            await nba_items.clear_manual(uow, item.arm_type, now)
            await nba_items.set_flags(uow, item_id, now=now, manual=True)
        return await _finish(uow, item_id, item.arm_type, now)


async def auto(db: Database, user_id: Principal, arm: Arm, now: datetime) -> TheaterNba:
    """Clear the manual pick of ``arm``: the score decides (a lock still wins)."""
    async with db.user_uow(user_id) as uow:
        await state.begin_write(uow)
        await nba_items.clear_manual(uow, arm, now)
        await state.rerank(uow, arm, now)
        theater = await _theater_nba(uow, arm, now)
        await uow.commit()
        return theater


async def _duplicate(
    uow: UnitOfWork, item: NbaItem, key: str | None, now: datetime
) -> ItemResult | None:
    """If ``key`` was already recorded, the result of that earlier write (nothing new)."""
    if key is None:
        return None
    earlier = await execution_logs.by_dedupe_key(uow, key)
    if earlier is None:
        return None
    return ItemResult(item, await _theater_nba(uow, item.arm_type, now), earlier, True)


async def progress(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    minutes: int,
    now: datetime,
    *,
    dedupe_key: str | None = None,
) -> ItemResult:
    """Record progress on an item: a log of ``minutes``, the early-progress bonus, activity."""
    minutes = validation.check_minutes(minutes)

    async def apply(uow: UnitOfWork, item: NbaItem) -> None:
        await nba_items.set_flags(uow, item.id, now=now, early_bonus=True)

    return await _work_on_item(
        db, user_id, item_id, now, minutes, dedupe_key, lambda title: title, apply
    )


async def done(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    *,
    minutes: int | None = None,
    dedupe_key: str | None = None,
) -> ItemResult:
    """Complete an item: a "Done: <title>" log, completed_at, the next item becomes current."""
    if minutes is not None:
        minutes = validation.check_minutes(minutes)

    async def apply(uow: UnitOfWork, item: NbaItem) -> None:
        await nba_items.complete(uow, item.id, now)

    return await _work_on_item(
        db, user_id, item_id, now, minutes, dedupe_key, rules.done_action, apply
    )


async def _work_on_item(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    minutes: int | None,
    dedupe_key: str | None,
    action: Callable[[str], str],
    apply: Callable[[UnitOfWork, NbaItem], Awaitable[None]],
) -> ItemResult:
    """Log work on an open item, change it (``apply``), mark activity, re-rank: one transaction.

    A repeated ``dedupe_key`` returns the earlier result and writes nothing.
    """
    async with db.user_uow(user_id) as uow:
        settings = await state.begin_write(uow)
        item = await nba_items.get(uow, item_id)
        if item is None:
            raise ItemGone()
        if (dup := await _duplicate(uow, item, dedupe_key, now)) is not None:
            return dup
        if item.completed_at is not None:
            raise ItemGone()
        log = await execution_logs.insert(
            uow, item.arm_type, action(item.title), None, minutes, now, dedupe_key
        )
        await apply(uow, item)
        theater = await state.theater(uow, item.arm_type)
        await state.refresh_status(uow, theater, now, settings, last_activity=now)
        await state.recompute_risk(uow, now, settings)
        result = await _finish(uow, item_id, item.arm_type, now)
        return ItemResult(result.item, result.theater, log)


async def all_theaters(db: Database, user_id: Principal, now: datetime) -> list[TheaterNba]:
    return await view(db, user_id, ARMS, now)
