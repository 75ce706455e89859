"""Next Best Actions: viewing, adding, editing, deleting, lock/unlock/select/auto, progress, done.

Every public function is one unit of work for one user: it takes the user's write lock,
changes what it must, re-ranks the theater and refreshes the derived state, then commits.

A change reads what it needs once, after the lock (the item, its theater and the theater's
open items, in one statement), decides the change and the new ranking in Python
(:mod:`services.rules`), writes every changed row in one statement, and builds the theater it
returns from those rows as the database stored them.

Adding an item may happen during a database outage: it is also the command :class:`AddItem`
(:mod:`services.commands`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, TypeVar
from uuid import UUID, uuid4

import psycopg

from services import rules, sanity, state, tracking, validation
from services.commands import Command
from services.db import Database, Principal, UnitOfWork, in_joined_unit
from services.errors import Conflict, NotFound, NotLinked
from services.models import Arm, ExecutionLog, NbaItem, Theater, TheaterStatus
from services.repos import execution_logs, nba_items
from services.repos.nba_items import ItemContext


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
    #: the overload risk after a logged change (None: no log, or a repeat)
    overload: rules.Overload | None = None


def _theater_nba(theater: Theater, items: Sequence[NbaItem], now: datetime) -> TheaterNba:
    return TheaterNba(theater.arm_type, theater.status, tuple(rules.rank(items, now)))


async def view(
    db: Database, user_id: Principal, arms: Sequence[Arm], now: datetime
) -> list[TheaterNba]:
    """The ranked items of the given theaters (fresh scores as of ``now``)."""
    async with db.user_uow(user_id, single=True) as uow:
        found = await nba_items.theaters_with_items(uow, arms)
    views = []
    for arm in arms:
        if arm not in found:
            raise NotLinked()
        sanity.check([found[arm].theater, *found[arm].items])  # written outside the bot?
        views.append(_theater_nba(found[arm].theater, found[arm].items, now))
    return views


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of an item a button pointed at, and the pressed theater as it now stands.

    ``state``: "done" (completed), "deleted" (no such item of the user's: deleted, or never
    theirs; nothing else is told about it), or "open" (still there: something else changed).
    ``title``: the item's title, None when deleted."""

    state: Literal["open", "done", "deleted"]
    title: str | None
    theater: TheaterNba


async def fate(db: Database, user_id: Principal, arm: Arm, item_id: UUID, now: datetime) -> Fate:
    """What became of the item ``item_id`` (after :class:`ItemGone`) and ``arm``'s ranked
    items, in one statement."""
    async with db.user_uow(user_id, single=True) as uow:
        found, item = await nba_items.theater_with_fate(uow, arm, item_id)
    if found is None:
        raise NotLinked()
    sanity.check([found.theater, *found.items])  # written outside the bot?
    theater = _theater_nba(found.theater, found.items, now)
    if item is None:
        return Fate("deleted", None, theater)
    return Fate("done" if item.done else "open", item.title, theater)


async def _save(
    uow: UnitOfWork,
    theater: Theater | None,
    open_items: Sequence[NbaItem],
    changed: Mapping[UUID, NbaItem],
    now: datetime,
    *,
    delete: UUID | None = None,
) -> tuple[TheaterNba, dict[UUID, NbaItem]]:
    """Store ``changed`` (new states of some of the theater's ``open_items``, read after the
    lock) and ``delete`` with the theater re-ranked, in one statement, and commit: the theater
    as it now stands (built from the rows as stored, not read again) and those rows."""
    if theater is None:
        raise NotLinked()
    final, changes = state.plan_items(open_items, changed, now, delete=delete)
    stored = await nba_items.apply_changes(uow, changes, commit=True)
    await uow.commit()  # when there was nothing to write
    return _theater_nba(theater, state.as_stored(final, stored), now), stored


Decide = Callable[[ItemContext, NbaItem], dict[UUID, NbaItem]]


async def _change_item(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    decide: Decide,
    *,
    delete: bool = False,
) -> tuple[NbaItem, TheaterNba]:
    """Take the lock, read the item, its theater and the theater's open items (one
    statement), let ``decide`` (which may raise) give the new states of the items it changes,
    re-rank, write every changed row (one statement), commit: the item as stored and its
    theater as it now stands. ``delete``: delete the item (open or done) instead; otherwise
    it must be open."""
    async with state.locked(db, user_id) as uow:
        ctx = await nba_items.item_context(uow, item_id)
        # RLS: another user's id reads as missing
        if ctx is None or (not delete and ctx.item.completed_at is not None):
            raise ItemGone()
        item = ctx.item
        changed = {} if delete else decide(ctx, item)
        theater, stored = await _save(
            uow, ctx.theater, ctx.items, changed, now, delete=item.id if delete else None
        )
        return stored.get(item.id, item), theater


def _flagged(item: NbaItem, now: datetime, **flags: bool) -> NbaItem:
    """``item`` with the given flags and ``last_updated`` = ``now``, as a flag change
    stores it."""
    return replace(item, last_updated=now, **flags)  # type: ignore[arg-type]


def _without_manual(items: Sequence[NbaItem], now: datetime) -> dict[UUID, NbaItem]:
    """The open manual picks among ``items``, cleared."""
    return {
        i.id: _flagged(i, now, is_manually_selected=False)
        for i in items
        if i.is_manually_selected and i.completed_at is None
    }


async def add_item(
    db: Database,
    user_id: Principal,
    arm: Arm,
    gap: int,
    title: str,
    now: datetime,
    description: str | None = None,
    *,
    item_id: UUID | None = None,
) -> ItemResult:
    """Add an open item to ``arm`` and re-rank. ``item_id``: the new item's id; an item of
    the user's already under it (the same command applied before, its answer lost) is
    returned as it stands, and nothing is written."""
    title = validation.clean_title(title)
    gap = validation.check_gap(gap)
    description = validation.clean_description(description)
    item_id = item_id or uuid4()
    added = await _once(
        db, user_id,
        lambda uow: nba_items.add_once(uow, item_id, arm, title, gap, description, now),
    ) or nba_items.ChangedOne(False, None, [])  # fmt: skip
    if added.fine and added.theater is not None:
        item = next(i for i in added.items if i.id == item_id)
        return ItemResult(item, _theater_nba(added.theater, added.items, now))
    # a theater missing, an open item the ranking can't use, or the item added already: the
    # way of several statements
    async with state.locked(db, user_id) as uow:
        ctx = await nba_items.item_context(uow, item_id)
        if ctx is not None:  # added before: as it stands now
            if ctx.theater is None:
                raise NotLinked()
            await uow.commit()
            return ItemResult(ctx.item, _theater_nba(ctx.theater, ctx.items, now))
        item, found = await nba_items.insert_with_items(
            uow, arm, title, gap, description, now, item_id
        )
        if found is None:
            raise NotLinked()
        theater, stored = await _save(uow, found.theater, found.items, {}, now)
        return ItemResult(stored.get(item.id, item), theater)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddItem(Command[ItemResult]):
    """/add: a new open item in ``arm`` (:func:`add_item`)."""

    name = "add_item"
    operation = "INSERT"
    table_name = "nba_items"

    arm: Arm
    gap: int
    title: str
    #: the new item's id, chosen once, so that the command applied again (kept in the
    #: outbox after its answer was lost) adds nothing more
    item_id: UUID = field(default_factory=uuid4)

    async def run(
        self, db: Database, who: Principal, now: datetime, *, replayed: bool = False
    ) -> ItemResult:
        return await add_item(db, who, self.arm, self.gap, self.title, now, item_id=self.item_id)

    def describe(self) -> str:
        return f"new NBA “{self.title}” in {self.arm}"


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

    def decide(ctx: ItemContext, item: NbaItem) -> dict[UUID, NbaItem]:
        edited = replace(
            item,
            title=new_title if new_title is not None else item.title,
            gap=new_gap if new_gap is not None else item.gap,
            last_updated=now,
        )
        return {item.id: edited}

    return ItemResult(*await _change_item(db, user_id, item_id, now, decide))


async def delete_item(
    db: Database, user_id: Principal, item_id: UUID, now: datetime
) -> TheaterNba:
    """Delete an item (open or done) and re-rank its theater."""
    _, theater = await _change_item(db, user_id, item_id, now, lambda ctx, item: {}, delete=True)
    return theater


def _locked_other(ctx: ItemContext, item: NbaItem) -> NbaItem | None:
    for other in ctx.items:
        if other.is_locked and other.id != item.id:
            return other
    return None


T = TypeVar("T")


async def _once(
    db: Database, user_id: Principal, write: Callable[[UnitOfWork], Awaitable[T]]
) -> T | None:
    """``write``'s one statement in one round trip (the opening, the write lock, the
    statement, COMMIT). None when it failed on a unique index (flags moving both ways, an id
    taken): nothing was written, and the way of several statements gives the answer; inside
    an answer's transaction the failure is the transaction's, and is raised."""
    try:
        async with state.locked(db, user_id) as uow:
            return await write(uow)
    except psycopg.errors.UniqueViolation:
        if in_joined_unit():
            raise
        return None


async def _set_lock_once(
    db: Database, user_id: Principal, item_id: UUID, locked: bool, now: datetime
) -> ItemResult | None:
    """Lock or unlock in one round trip (the opening, the write lock, one statement that
    re-ranks, COMMIT); None when that statement wrote nothing (another item locked, the item
    gone or done, a value the ranking can't use): the way of several statements then gives
    the answer."""
    changed = await _once(
        db, user_id, lambda uow: nba_items.set_lock_once(uow, item_id, locked, now)
    )
    if changed is None or not changed.fine or changed.theater is None:
        return None
    item = next(i for i in changed.items if i.id == item_id)
    still_open = [i for i in changed.items if i.completed_at is None]
    return ItemResult(item, _theater_nba(changed.theater, still_open, now))


async def lock(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Lock an item: it becomes (and stays) current until unlocked or done."""
    once = await _set_lock_once(db, user_id, item_id, True, now)
    if once is not None:
        return once

    def decide(ctx: ItemContext, item: NbaItem) -> dict[UUID, NbaItem]:
        other = _locked_other(ctx, item)
        if other is not None:
            raise Conflict(
                f"“{other.title}” is already locked in {item.arm_type}: unlock it first."
            )
        return {} if item.is_locked else {item.id: _flagged(item, now, is_locked=True)}

    return ItemResult(*await _change_item(db, user_id, item_id, now, decide))


async def unlock(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Unlock an item: ranking decides again."""
    once = await _set_lock_once(db, user_id, item_id, False, now)
    if once is not None:
        return once

    def decide(ctx: ItemContext, item: NbaItem) -> dict[UUID, NbaItem]:
        return {item.id: _flagged(item, now, is_locked=False)} if item.is_locked else {}

    return ItemResult(*await _change_item(db, user_id, item_id, now, decide))


async def select(db: Database, user_id: Principal, item_id: UUID, now: datetime) -> ItemResult:
    """Pick an item by hand (clears any other manual pick); refused while another is locked."""

    def decide(ctx: ItemContext, item: NbaItem) -> dict[UUID, NbaItem]:
        other = _locked_other(ctx, item)
        if other is not None:
            raise Conflict(
                f"“{other.title}” is locked in {item.arm_type}: unlock it before choosing"
                " another item."
            )
        if item.is_manually_selected:
            return {}
        changed = _without_manual(ctx.items, now)
        changed[item.id] = _flagged(item, now, is_manually_selected=True)
        return changed

    return ItemResult(*await _change_item(db, user_id, item_id, now, decide))


async def auto(db: Database, user_id: Principal, arm: Arm, now: datetime) -> TheaterNba:
    """Clear the manual pick of ``arm``: the score decides (a lock still wins)."""
    async with state.locked(db, user_id) as uow:
        found = (await nba_items.theaters_with_items(uow, [arm])).get(arm)
        if found is None:
            raise NotLinked()
        changed = _without_manual(found.items, now)
        theater, _ = await _save(uow, found.theater, found.items, changed, now)
        return theater


async def progress(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    minutes: int,
    now: datetime,
    *,
    dedupe_key: str | None = None,
    confirmed: bool = False,
) -> ItemResult:
    """Record progress on an item: a log of ``minutes``, the early-progress bonus, activity.

    Implausible (nothing written) if it would take the theater's local day over
    :data:`tracking.PLAUSIBLE_DAY_MINUTES`, unless ``confirmed``."""
    minutes = validation.check_minutes(minutes)

    def apply(item: NbaItem) -> NbaItem:
        return _flagged(item, now, has_early_progress_bonus=True)

    return await _work_on_item(
        db, user_id, item_id, now, minutes, dedupe_key, lambda title: title, apply, confirmed
    )


async def done(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    *,
    minutes: int | None = None,
    dedupe_key: str | None = None,
    confirmed: bool = False,
) -> ItemResult:
    """Complete an item: a "Done: <title>" log, completed_at, the next item becomes current.

    With ``minutes``: Implausible (nothing written) if they would take the theater's local
    day over :data:`tracking.PLAUSIBLE_DAY_MINUTES`, unless ``confirmed``."""
    if minutes is not None:
        minutes = validation.check_minutes(minutes)
    else:
        once = await _done_once(db, user_id, item_id, now, dedupe_key)
        if once is not None:
            return once

    def apply(item: NbaItem) -> NbaItem:
        return replace(
            _flagged(item, now, is_current=False, is_locked=False, is_manually_selected=False),
            completed_at=now,
        )

    return await _work_on_item(
        db, user_id, item_id, now, minutes, dedupe_key, rules.done_action, apply, confirmed
    )


async def _done_once(
    db: Database, user_id: Principal, item_id: UUID, now: datetime, dedupe_key: str | None
) -> ItemResult | None:
    """Done without minutes in one round trip (the opening, the write lock, one statement
    that logs, completes, re-ranks and stores the activity and the risk, COMMIT); None when
    that statement wrote nothing (the item done or gone, a repeated press, a value the
    ranking can't use): the way of several statements then gives the answer."""
    done = await _once(
        db, user_id,
        lambda uow: execution_logs.done_once(uow, item_id, now, dedupe_key, now - state.WEEK),
    )  # fmt: skip
    if done is None:
        return None
    theater = done.changed.theater
    if done.log is None or theater is None or done.capacity is None:
        return None
    item = next(i for i in done.changed.items if i.id == item_id)
    still_open = [i for i in done.changed.items if i.completed_at is None]
    status = rules.theater_status(now, now, blocked=theater.status == "blocked")
    ranked = tuple(rules.rank(still_open, now))
    overload = rules.overload(done.week_minutes, done.capacity)
    return ItemResult(
        item, TheaterNba(theater.arm_type, status, ranked), done.log, overload=overload
    )


async def _work_on_item(
    db: Database,
    user_id: Principal,
    item_id: UUID,
    now: datetime,
    minutes: int | None,
    dedupe_key: str | None,
    action: Callable[[str], str],
    apply: Callable[[NbaItem], NbaItem],
    confirmed: bool,
) -> ItemResult:
    """Log work on an open item, change it (``apply`` gives its new state), mark activity,
    refresh the risk, re-rank: one transaction, whose writes are one statement.

    A repeated ``dedupe_key`` returns the earlier result and writes nothing (the insert of
    the log finds the key taken, and every other write of the statement depends on it).
    Minutes that would take the theater's local day over the plausible limit raise
    Implausible before anything is written, unless ``confirmed`` (or the key is repeated).
    Statements: the lock, one read, one write (and a look-up of the earlier log on a repeat).
    """
    async with state.locked(db, user_id) as uow:  # the read below sees every earlier write
        ctx = await execution_logs.item_log_inputs(
            uow, item_id, now - state.WEEK, now, now - tracking.DAY_REACH
        )
        if ctx is None:
            raise ItemGone()
        item, theater, settings = ctx.item, ctx.theater, ctx.settings
        if theater is None or settings is None:
            raise NotLinked()
        if item.completed_at is not None:  # a repeated press of Done, or gone
            earlier = await _earlier(uow, dedupe_key)
            if earlier is None:
                raise ItemGone()
            return ItemResult(item, _theater_nba(theater, ctx.items, now), earlier, True)
        if minutes is not None and not confirmed:
            assert ctx.recent is not None
            today = tracking.local_day(now, settings.timezone)
            refused = tracking.implausible(item.arm_type, minutes, ctx.recent, today)
            if refused is not None:
                # a repeat of work already recorded: its minutes are in the total already
                earlier = await _earlier(uow, dedupe_key)
                if earlier is None:
                    raise refused
                return ItemResult(item, _theater_nba(theater, ctx.items, now), earlier, True)
        final, changes = state.plan_items(ctx.items, {item.id: apply(item)}, now)
        status = state.logged_status(theater, now, settings)
        assert ctx.minutes is not None
        overload = rules.overload(ctx.minutes + (minutes or 0), settings.weekly_capacity_hours)
        recorded = await execution_logs.record(
            uow,
            arm=item.arm_type,
            action=action(item.title),
            details=None,
            duration=minutes,
            now=now,
            dedupe_key=dedupe_key,
            status=status,
            risk=overload.risk,
            changes=changes,
            commit=True,
        )
        if recorded is None:  # a repeated key: the earlier log, and nothing written
            if uow.sealed:  # committed with the write: read it in a transaction of its own
                async with db.user_uow(user_id, read_only=True) as read:
                    earlier = await _earlier(read, dedupe_key)
            else:
                earlier = await _earlier(uow, dedupe_key)
            return ItemResult(item, _theater_nba(theater, ctx.items, now), earlier, True)
        log, stored = recorded
        await uow.commit()
        ranked = tuple(rules.rank(state.as_stored(final, stored), now))
        return ItemResult(
            stored.get(item.id, item), TheaterNba(item.arm_type, status, ranked), log,
            overload=overload,
        )  # fmt: skip


async def _earlier(uow: UnitOfWork, dedupe_key: str | None) -> ExecutionLog | None:
    """The log recorded under ``dedupe_key`` (read only when a repeat is likely: the insert
    found the key taken, or the item is done already)."""
    return None if dedupe_key is None else await execution_logs.by_dedupe_key(uow, dedupe_key)
