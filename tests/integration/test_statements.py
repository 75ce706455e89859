"""Statements per command, and what the few statements must still guarantee.

Command latency is dominated by the number of SQL statements each command sends (see
docs/performance.md), so each service call below sends an exact number of statements after
the impersonation (which services/db.py sends itself, before the first repository call, with
the per-user write lock riding along): a change that adds a statement fails, and so does one
that drops a statement (a write that silently stopped happening). They are counted by
wrapping ``UnitOfWork.fetchone/fetchall/execute/commit_with``: the real queries still run
against the real database.

Fewer statements must not cost correctness: reads happen after the per-user lock (a read
sharing the lock's statement would use a snapshot taken before the wait), the partial unique
indexes hold while one statement moves a flag from one item to another, and every returned
view equals a fresh read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services import accounts, nba, state, status, tracking
from services.db import Database, UnitOfWork
from services.errors import Conflict
from services.repos import execution_logs, nba_items, theaters, user_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Statements:
    """The statements sent through every unit of work since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def reset(self) -> None:
        self.sent.clear()

    def __len__(self) -> int:
        return len(self.sent)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    counted = Statements()
    for name in ("fetchone", "fetchall", "execute", "commit_with"):
        original = getattr(UnitOfWork, name)

        def wrap(original: Any) -> Any:
            async def counting(self: UnitOfWork, query: Any, params: Any = None) -> Any:
                counted.sent.append(str(query))
                return await original(self, query, params)

            return counting

        monkeypatch.setattr(UnitOfWork, name, wrap(original))
    yield counted


async def new_user(db: Database, tg: int = 2001) -> uuid.UUID:
    user_id, created = await accounts.create_local_account(db, tg, tg, "Test", T0)
    assert created
    return user_id


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def count(statements: Statements, call: Awaitable[Any]) -> int:
    statements.reset()
    await call
    return len(statements)


# Exact counts after the impersonation; the per-user write lock (state.locked) rides the
# opening, so it is not one of them. Before the first budget the same calls sent: view 4,
# status 6, log 6, lock 8-9, unlock 8, select 8-10, progress/done 10.
BUDGET = {
    "view": 1,  # theaters + open items
    "status": 1,  # settings + metrics + theaters + open items + both 7-day windows
    # one statement checks (settings, theater, the day's and the week's minutes) and writes
    # (log + theater + metrics), and commits with it
    "log": 1,
    "log duplicate": 1,  # the same statement finds the key taken and returns the earlier log
    "button": 2,  # read (item + theater + open items), write (flags + ranking)
    # one statement reads the item and its theater, changes the flag, re-ranks, writes
    "lock": 1,
    "lock, nothing to change": 1,  # the same statement: only the re-rank (nothing here)
    "add": 1,  # insert + read (the new item does not become current here: nothing to rerank)
    "auto": 2,  # read (theater + open items), write (flags + ranking)
    "progress": 2,  # read, write (log + item + ranking + theater + metrics)
    "progress duplicate": 3,  # as "log duplicate"
    # read (settings, the log, its theater's logs that day), the update, the risk (read,
    # write), the theater
    "minutes": 5,
}


async def test_statements_per_command(db: Database, statements: Statements) -> None:
    user = await new_user(db)
    top = await nba.add_item(db, user, "cs", 4, "Top", T0)
    low = await nba.add_item(db, user, "cs", 1, "Low", T0)
    await nba.add_item(db, user, "ibm", 2, "Other", T0)
    await tracking.log_time(db, user, "cs", 30, "earlier", T0 - timedelta(days=2))
    at = T0 + timedelta(hours=1)
    top_id, low_id = top.item.id, low.item.id

    measured: dict[str, list[int]] = {}

    async def check(kind: str, call: Callable[[], Awaitable[Any]]) -> None:
        measured.setdefault(kind, []).append(await count(statements, call()))

    await check("view", lambda: nba.view(db, user, ["ibm", "cs"], at))
    await check("view", lambda: nba.view(db, user, ["cs"], at))
    await check("status", lambda: status.status_view(db, user, at))
    await check("log", lambda: tracking.log_time(db, user, "cs", 25, "x", at, dedupe_key="k1"))
    await check(
        "log duplicate", lambda: tracking.log_time(db, user, "cs", 25, "x", at, dedupe_key="k1")
    )
    await check("log", lambda: tracking.log_time(db, user, "ibm", None, "no minutes", at))
    await check("lock", lambda: nba.lock(db, user, low_id, at))  # moves the current item
    await check("lock, nothing to change", lambda: nba.lock(db, user, low_id, at))  # locked
    await check("lock", lambda: nba.unlock(db, user, low_id, at))
    await check("button", lambda: nba.select(db, user, low_id, at))
    await check("button", lambda: nba.select(db, user, top_id, at))
    await check("auto", lambda: nba.auto(db, user, "cs", at))
    await check("button", lambda: nba.edit_item(db, user, low_id, at, gap=5))
    await check("add", lambda: nba.add_item(db, user, "cs", 5, "Newest", at))
    await check("progress", lambda: nba.progress(db, user, top_id, 20, at, dedupe_key="p1"))
    await check(
        "progress duplicate", lambda: nba.progress(db, user, top_id, 20, at, dedupe_key="p1")
    )
    await check("progress", lambda: nba.done(db, user, low_id, at, minutes=10))
    await check("button", lambda: nba.delete_item(db, user, low_id, at))  # a done item
    await check("button", lambda: nba.delete_item(db, user, top_id, at))  # an open one
    last = await nba.add_item(db, user, "cs", 2, "Last", at)
    finished = await nba.done(db, user, last.item.id, at)
    assert finished.log is not None
    log_id = finished.log.id
    await check("minutes", lambda: tracking.set_log_minutes(db, user, log_id, 15, at))

    off = {k: v for k, v in measured.items() if set(v) != {BUDGET[k]}}
    assert not off, f"statements other than the budget {BUDGET}: {off}"
    assert measured.keys() == BUDGET.keys()


async def test_rerank_sends_two_statements(db: Database, statements: Statements) -> None:
    user = await new_user(db)
    for gap in range(3):
        await nba.add_item(db, user, "cs", gap, f"Item {gap}", T0)
    async with db.user_uow(user) as uow:
        await state.begin_write(uow)
        statements.reset()
        await state.rerank(uow, "cs", T0 + timedelta(days=3))  # stale days change
        assert len(statements) == 2  # read, write
        await uow.commit()


# --- the view a change returns is the database's -------------------------------------------


def _shape(view: nba.TheaterNba) -> list[tuple[Any, ...]]:
    return [
        (r.item.id, r.is_current, r.score, r.explanation, r.item.is_current, r.item.stale_days,
         r.item.is_locked, r.item.is_manually_selected, r.item.last_updated, r.item.title,
         r.item.gap, r.item.has_early_progress_bonus)
        for r in view.ranked
    ]  # fmt: skip


async def test_returned_views_equal_a_fresh_read(db: Database) -> None:
    user = await new_user(db)
    a = (await nba.add_item(db, user, "cs", 2, "A", T0)).item.id
    b = (await nba.add_item(db, user, "cs", 3, "B", T0 + timedelta(hours=1))).item.id
    c = (await nba.add_item(db, user, "cs", 1, "C", T0 + timedelta(hours=2))).item.id
    steps: list[Callable[[datetime], Awaitable[Any]]] = [
        lambda t: nba.lock(db, user, a, t),
        lambda t: nba.unlock(db, user, a, t),
        lambda t: nba.select(db, user, c, t),
        lambda t: nba.select(db, user, a, t),
        lambda t: nba.auto(db, user, "cs", t),
        lambda t: nba.edit_item(db, user, c, t, title="C2", gap=5),
        lambda t: nba.progress(db, user, b, 15, t),
        lambda t: nba.done(db, user, c, t),
        lambda t: nba.add_item(db, user, "cs", 4, "D", t),
        lambda t: nba.delete_item(db, user, a, t),
    ]
    for n, step in enumerate(steps):
        at = T0 + timedelta(days=1, hours=5 * n)
        result = await step(at)
        returned = result if isinstance(result, nba.TheaterNba) else result.theater
        (fresh,) = await nba.view(db, user, ["cs"], at)
        assert returned.status == fresh.status
        assert _shape(returned) == _shape(fresh), n
        current = await rows(
            db, "select id from nba_items where user_id = %s and is_current"
            " and completed_at is null", user,
        )  # fmt: skip
        expected = [] if fresh.current is None else [{"id": fresh.current.item.id}]
        assert current == expected, n
        if isinstance(result, nba.ItemResult):
            stored = await rows(db, "select * from nba_items where id = %s", result.item.id)
            assert stored[0]["last_updated"] == result.item.last_updated
            assert stored[0]["completed_at"] == result.item.completed_at
            assert stored[0]["is_current"] == result.item.is_current


async def test_log_writes_the_same_rows(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 600, "long day", T0 - timedelta(days=3))
    later = T0 + timedelta(days=4)
    result = await tracking.log_time(db, user, "ibm", 30, "more", later, details="d")
    assert result.status == "active"
    # 600 min fell out of the window: only the new 30 count
    assert result.overload.minutes == 30
    theater = await rows(
        db, "select status, last_activity from theaters where user_id = %s and arm_type = 'ibm'",
        user,
    )  # fmt: skip
    assert theater == [{"status": "active", "last_activity": later}]
    metrics = await rows(
        db, "select overload_risk, last_computed from global_metrics where user_id = %s", user
    )
    assert metrics == [{"overload_risk": result.overload.risk, "last_computed": later}]
    (log,) = await rows(
        db, "select action, details, duration, timestamp from execution_logs"
        " where user_id = %s and timestamp = %s", user, later,
    )  # fmt: skip
    assert log == {"action": "more", "details": "d", "duration": 30, "timestamp": later}


async def test_a_flag_can_move_between_items_in_one_statement(db: Database) -> None:
    """A row gives up ``is_current`` while taking ``is_manually_selected``, another takes
    ``is_current``: the writes are ordered (or split) so no unique index sees two."""
    user = await new_user(db)
    first = (await nba.add_item(db, user, "cs", 5, "First", T0)).item
    second = (await nba.add_item(db, user, "cs", 1, "Second", T0)).item
    async with db.user_uow(user) as uow:
        await state.begin_write(uow)
        found = (await nba_items.theaters_with_items(uow, ["cs"]))["cs"]
        before = {i.id: i for i in found.items}
        assert before[first.id].is_current
        after = (
            replace(before[first.id], is_current=False, is_manually_selected=True),
            replace(before[second.id], is_current=True),
        )
        changes = nba_items.Changes(before, after)
        assert len(changes.statements()) == 2  # the take phase alone would clash
        stored = await nba_items.apply_changes(uow, changes)
        await uow.commit()
    assert stored[first.id].is_manually_selected and not stored[first.id].is_current
    assert stored[second.id].is_current
    # the usual case, one statement: the current item moves when another is locked
    for n in range(6):
        target = (first, second)[n % 2].id
        await nba.unlock(db, user, (second, first)[n % 2].id, T0)
        locked = await nba.lock(db, user, target, T0)
        assert locked.theater.current is not None
        assert locked.theater.current.item.id == target


async def test_repeated_presses_write_once(db: Database, statements: Statements) -> None:
    user = await new_user(db)
    item = (await nba.add_item(db, user, "cs", 3, "Read", T0)).item.id
    first = await nba.done(db, user, item, T0, minutes=20, dedupe_key="cb:7")
    again = await nba.done(db, user, item, T0 + timedelta(seconds=2), dedupe_key="cb:7")
    assert not first.duplicate and again.duplicate
    assert again.log is not None and first.log is not None and again.log.id == first.log.id
    with pytest.raises(nba.ItemGone):  # the same item, another press
        await nba.done(db, user, item, T0, dedupe_key="cb:8")
    logged = await tracking.log_time(db, user, "ibm", 5, "x", T0, dedupe_key="u:1")
    statements.reset()
    repeated = await tracking.log_time(db, user, "ibm", 5, "x", T0, dedupe_key="u:1")
    assert repeated.duplicate and repeated.log == logged.log
    assert repeated.overload == logged.overload and repeated.status == logged.status
    assert len(statements) == BUDGET["log duplicate"]
    found = await rows(db, "select dedupe_key from execution_logs where user_id = %s", user)
    assert sorted(r["dedupe_key"] for r in found) == ["cb:7", "u:1"]


# --- reads come after the per-user lock --------------------------------------------------


async def _waiting_for_a_lock(db: Database) -> None:
    for _ in range(200):
        found = await rows(
            db, "select count(*) as n from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock'",
        )  # fmt: skip
        if found[0]["n"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the second write never waited for the lock")


async def _while_holding_the_lock(
    db: Database,
    user: uuid.UUID,
    write: Callable[[UnitOfWork], Awaitable[Any]],
    waiting: Callable[[], Awaitable[Any]],
) -> Any:
    """Run ``waiting`` while another transaction holds the user's lock, then let that one
    commit ``write``: ``waiting`` must see it."""
    async with db.user_uow(user) as uow:
        await state.begin_write(uow)
        await write(uow)
        task = asyncio.create_task(waiting())
        await _waiting_for_a_lock(db)
        await uow.commit()
    return await task


async def test_a_log_waiting_for_the_lock_sees_the_block(db: Database) -> None:
    user = await new_user(db)

    async def block(uow: UnitOfWork) -> None:
        await theaters.set_blocked(uow, "ibm", "away", "blocked", T0)

    result = await _while_holding_the_lock(
        db, user, block, lambda: tracking.log_time(db, user, "ibm", 20, "mail", T0)
    )
    assert result.status == "blocked"
    found = await rows(
        db, "select status from theaters where user_id = %s and arm_type = 'ibm'", user
    )
    assert found == [{"status": "blocked"}]


async def test_a_log_waiting_for_the_lock_counts_the_minutes_before_it(db: Database) -> None:
    user = await new_user(db)

    async def log(uow: UnitOfWork) -> None:
        await execution_logs.insert(uow, "cs", "before", None, 600, T0)

    result = await _while_holding_the_lock(
        db, user, log, lambda: tracking.log_time(db, user, "cs", 60, "after", T0)
    )
    assert result.overload.minutes == 660
    metrics = await rows(db, "select overload_risk from global_metrics where user_id = %s", user)
    assert metrics == [{"overload_risk": result.overload.risk}]


async def test_a_log_waiting_for_the_lock_uses_the_new_capacity(db: Database) -> None:
    user = await new_user(db)

    async def capacity(uow: UnitOfWork) -> None:
        await user_settings.update(uow, weekly_capacity_hours=10)

    result = await _while_holding_the_lock(
        db, user, capacity, lambda: tracking.log_time(db, user, "cs", 300, "long", T0)
    )
    assert (result.overload.capacity_hours, result.overload.risk) == (10, Decimal("50.00"))
    metrics = await rows(db, "select overload_risk from global_metrics where user_id = %s", user)
    assert metrics == [{"overload_risk": Decimal("50.00")}]


async def test_a_select_waiting_for_the_lock_sees_the_other_lock(db: Database) -> None:
    user = await new_user(db)
    top = (await nba.add_item(db, user, "cs", 5, "Top", T0)).item.id
    low = (await nba.add_item(db, user, "cs", 1, "Low", T0)).item.id

    async def lock_top(uow: UnitOfWork) -> None:
        await nba_items.set_flags(uow, top, now=T0, locked=True)

    with pytest.raises(Conflict, match="locked"):
        await _while_holding_the_lock(db, user, lock_top, lambda: nba.select(db, user, low, T0))


async def test_progress_waiting_for_the_lock_sees_the_completion(db: Database) -> None:
    user = await new_user(db)
    item = (await nba.add_item(db, user, "cs", 3, "Read", T0)).item.id

    async def complete(uow: UnitOfWork) -> None:
        await nba_items.complete(uow, item, T0)

    with pytest.raises(nba.ItemGone):
        await _while_holding_the_lock(
            db, user, complete, lambda: nba.progress(db, user, item, 10, T0)
        )
    logs = await rows(db, "select 1 from execution_logs where user_id = %s", user)
    assert logs == []
