"""Domain services against the real PostgreSQL: rows written, invariants kept, errors specific."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services import accounts, nba, rules, status, tracking
from services.db import Database
from services.errors import (
    Conflict,
    DomainError,
    Empty,
    NothingToUndo,
    OutOfRange,
    TooLong,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def new_user(db: Database, tg: int = 1001) -> uuid.UUID:
    user_id, created = await accounts.create_local_account(db, tg, tg, "Test", T0)
    assert created
    return user_id


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, object]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def current_titles(db: Database, user: uuid.UUID) -> dict[str, str]:
    found = await rows(
        db,
        "select arm_type, title from nba_items where user_id = %s and is_current"
        " and completed_at is null",
        user,
    )
    return {str(r["arm_type"]): str(r["title"]) for r in found}


async def test_account_creation_is_idempotent(db: Database) -> None:
    user, created = await accounts.create_local_account(db, 7, 7, "A", T0)
    again, created_again = await accounts.create_local_account(db, 7, 7, "A", T0)
    assert created and not created_again and user == again
    await accounts.ensure_account(db, user, T0)
    assert len(await rows(db, "select 1 from theaters where user_id = %s", user)) == 2
    assert len(await rows(db, "select 1 from global_metrics where user_id = %s", user)) == 1
    assert len(await rows(db, "select 1 from user_settings where user_id = %s", user)) == 1


async def test_two_starts_at_once_create_one_account(db: Database) -> None:
    results = await asyncio.gather(
        *(accounts.create_local_account(db, 8, 8, "A", T0) for _ in range(4))
    )
    assert len({r[0] for r in results}) == 1
    assert sum(r[1] for r in results) == 1


async def test_ranking_flow_lock_unlock_done(db: Database) -> None:
    user = await new_user(db)
    a = await nba.add_item(db, user, "cs", 2, "Read SICP 1", T0)
    await nba.add_item(db, user, "cs", 1, "Exercises", T0 + timedelta(minutes=1))
    await nba.add_item(db, user, "cs", 0, "Notes", T0 + timedelta(minutes=2))
    assert await current_titles(db, user) == {"cs": "Read SICP 1"}

    await nba.lock(db, user, a.item.id, T0)
    high = await nba.add_item(db, user, "cs", 5, "Mock exam", T0 + timedelta(minutes=3))
    assert high.theater.current is not None
    assert high.theater.current.item.title == "Read SICP 1"  # the locked one stays current
    assert await current_titles(db, user) == {"cs": "Read SICP 1"}

    unlocked = await nba.unlock(db, user, a.item.id, T0 + timedelta(minutes=4))
    assert unlocked.theater.current is not None
    assert unlocked.theater.current.item.title == "Mock exam"
    assert await current_titles(db, user) == {"cs": "Mock exam"}

    done = await nba.done(db, user, high.item.id, T0 + timedelta(minutes=5), minutes=30)
    assert done.log is not None and done.log.action == "Done: Mock exam"
    assert done.theater.current is not None
    assert done.theater.current.item.title == "Read SICP 1"
    logs = await rows(db, "select action, duration from execution_logs where user_id = %s", user)
    assert logs == [{"action": "Done: Mock exam", "duration": 30}]
    item = await rows(db, "select completed_at, is_current from nba_items where id = %s",
                      high.item.id)  # fmt: skip
    assert item == [{"completed_at": T0 + timedelta(minutes=5), "is_current": False}]


async def test_score_explanation_from_spec(db: Database) -> None:
    user = await new_user(db)
    added = await nba.add_item(db, user, "ibm", 4, "Ship the report", T0)
    await nba.progress(db, user, added.item.id, 25, T0)
    six_days = T0 + timedelta(days=6)
    view = await nba.view(db, user, ["ibm"], six_days)
    current = view[0].current
    assert current is not None
    assert current.explanation == "gap 4 (+40) · stale 6.0 d (+12) · early progress (+15) = 67"


async def test_select_and_auto(db: Database) -> None:
    user = await new_user(db)
    await nba.add_item(db, user, "cs", 5, "Top", T0)
    low = await nba.add_item(db, user, "cs", 1, "Low", T0)
    picked = await nba.select(db, user, low.item.id, T0)
    assert picked.theater.current is not None and picked.theater.current.item.title == "Low"
    back = await nba.auto(db, user, "cs", T0)
    assert back.current is not None and back.current.item.title == "Top"


async def test_select_refused_while_another_is_locked(db: Database) -> None:
    user = await new_user(db)
    top = await nba.add_item(db, user, "cs", 5, "Top", T0)
    low = await nba.add_item(db, user, "cs", 1, "Low", T0)
    await nba.lock(db, user, top.item.id, T0)
    with pytest.raises(Conflict, match="locked"):
        await nba.select(db, user, low.item.id, T0)
    with pytest.raises(Conflict, match="already locked"):
        await nba.lock(db, user, low.item.id, T0)
    assert await current_titles(db, user) == {"cs": "Top"}


async def test_concurrent_select_and_lock_leave_one_current(db: Database) -> None:
    user = await new_user(db)
    items = [(await nba.add_item(db, user, "cs", g, f"Item {g}", T0)).item.id for g in range(4)]
    for _ in range(5):
        results = await asyncio.gather(
            nba.select(db, user, items[0], T0),
            nba.lock(db, user, items[1], T0),
            nba.select(db, user, items[2], T0),
            return_exceptions=True,
        )
        for r in results:
            assert not isinstance(r, Exception) or isinstance(r, Conflict), r
        current = await rows(
            db, "select id from nba_items where user_id = %s and is_current", user
        )
        assert len(current) == 1
        assert current[0]["id"] == items[1]  # the lock wins whenever it landed
        await nba.unlock(db, user, items[1], T0)


async def test_concurrent_logs_each_read_after_the_lock(db: Database) -> None:
    """The write lock goes in one round trip with the read after it; that read still starts
    after the lock is held, so the last of six concurrent logs stores the risk of all six."""
    user = await new_user(db)
    await asyncio.gather(
        *(tracking.log_time(db, user, "cs", 60, f"log {i}", T0) for i in range(6))
    )  # fmt: skip
    (stored,) = await rows(db, "select overload_risk from global_metrics where user_id = %s", user)
    assert stored["overload_risk"] == rules.overload(6 * 60, 40).risk


async def test_log_makes_active_and_undo_restores_activity(db: Database) -> None:
    user = await new_user(db)
    first = T0 + timedelta(hours=1)
    await tracking.log_time(db, user, "cs", 45, "read chapter 3", first)
    later = T0 + timedelta(hours=20)
    result = await tracking.log_time(db, user, "cs", 30, "exercises", later)
    assert result.status == "active"
    undone = await tracking.undo_last(db, user, later + timedelta(minutes=5))
    assert undone.log.action == "exercises"
    assert undone.last_activity == first
    theater = await rows(
        db, "select last_activity, status from theaters where user_id = %s and arm_type = 'cs'",
        user,
    )  # fmt: skip
    assert theater == [{"last_activity": first, "status": "active"}]
    undone = await tracking.undo_last(db, user, later + timedelta(minutes=6))
    assert undone.last_activity == T0  # back to the theater's creation
    with pytest.raises(NothingToUndo, match="no logs"):
        await tracking.undo_last(db, user, later)


async def test_undo_refuses_logs_older_than_a_day(db: Database) -> None:
    user = await new_user(db)
    await tracking.log_time(db, user, "ibm", 10, "standup", T0)
    with pytest.raises(NothingToUndo, match="24 hours"):
        await tracking.undo_last(db, user, T0 + timedelta(hours=24))
    assert len(await rows(db, "select 1 from execution_logs where user_id = %s", user)) == 1


async def test_blocked_theater_stays_blocked_through_logging(db: Database) -> None:
    user = await new_user(db)
    await tracking.block(db, user, "ibm", "travelling", T0)
    result = await tracking.log_time(db, user, "ibm", 20, "emails", T0 + timedelta(hours=1))
    assert result.status == "blocked"
    found = await rows(
        db, "select status, blocked_reason from theaters where user_id = %s and arm_type = 'ibm'",
        user,
    )  # fmt: skip
    assert found == [{"status": "blocked", "blocked_reason": "travelling"}]
    assert await tracking.unblock(db, user, "ibm", T0 + timedelta(hours=2)) == "active"


async def test_overload_risk_and_status_view(db: Database) -> None:
    user = await new_user(db)
    # 31.5 h in the last 7 days against the default 40 h capacity.
    for day in range(7):
        await tracking.log_time(db, user, "ibm", 270, "work", T0 + timedelta(days=day))
    now = T0 + timedelta(days=6, hours=1)
    metrics = await rows(db, "select overload_risk from global_metrics where user_id = %s", user)
    assert metrics == [{"overload_risk": Decimal("78.75")}]
    view = await status.status_view(db, user, now)
    assert view.overload.describe() == "31.5 h of your 40 h weekly capacity in the last 7 days"
    assert view.overload.risk == Decimal("78.75")
    assert view.trend == "↑ 11.25 points in 24 h"
    ibm = view.theaters[0]
    assert (ibm.minutes_7d, ibm.minute_share, ibm.status) == (1890, Decimal("100.0"), "active")


async def test_progress_and_energy(db: Database) -> None:
    user = await new_user(db)
    assert await tracking.set_progress(db, user, "cs", 40, T0) == Decimal("20.00")
    assert await tracking.set_energy(db, user, 60, T0) == (60, 40)
    found = await rows(
        db, "select arm_type, energy_allocation, total_progress from theaters"
        " where user_id = %s order by arm_type", user,
    )  # fmt: skip
    assert found == [
        {"arm_type": "cs", "energy_allocation": 40, "total_progress": Decimal("40.00")},
        {"arm_type": "ibm", "energy_allocation": 60, "total_progress": Decimal("0.00")},
    ]
    metrics = await rows(
        db, "select combined_progress, energy_allocation_ibm, energy_allocation_cs"
        " from global_metrics where user_id = %s", user,
    )  # fmt: skip
    assert metrics == [
        {"combined_progress": Decimal("20.00"), "energy_allocation_ibm": 60,
         "energy_allocation_cs": 40}
    ]  # fmt: skip


async def test_reflection_and_history(db: Database) -> None:
    user = await new_user(db)
    r = await tracking.reflect(db, user, "cs", "Passed the mock exam, 78%", T0)
    await tracking.add_context(db, user, r.id, "after two weeks of practice")
    await tracking.log_time(db, user, "cs", 45, "read chapter 3", T0 + timedelta(minutes=1))
    entries = (await status.history(db, user, "cs", 10)).entries
    assert [(e.kind, e.text) for e in entries] == [
        ("log", "read chapter 3"),
        ("reflection", "Passed the mock exam, 78%"),
    ]
    assert entries[1].detail == "after two weeks of practice"


async def test_dedupe_key_records_one_log(db: Database) -> None:
    user = await new_user(db)
    item = await nba.add_item(db, user, "cs", 3, "Read", T0)
    first = await nba.progress(db, user, item.item.id, 25, T0, dedupe_key="cb:1:5")
    second = await nba.progress(db, user, item.item.id, 25, T0, dedupe_key="cb:1:5")
    assert not first.duplicate and second.duplicate
    log1 = await tracking.log_time(db, user, "cs", 5, "x", T0, dedupe_key="upd:9")
    log2 = await tracking.log_time(db, user, "cs", 5, "x", T0, dedupe_key="upd:9")
    assert log2.duplicate and log2.log.id == log1.log.id
    assert len(await rows(db, "select 1 from execution_logs where user_id = %s", user)) == 2


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda db, u: nba.add_item(db, u, "cs", 7, "x", T0), OutOfRange, "between 0 and 5"),
        (lambda db, u: nba.add_item(db, u, "cs", 1, "   ", T0), Empty, "Title"),
        (lambda db, u: nba.add_item(db, u, "cs", 1, "x" * 201, T0), TooLong, "200"),
        (lambda db, u: tracking.log_time(db, u, "cs", 0, "x", T0), OutOfRange, "1 and 1440"),
        (lambda db, u: tracking.log_time(db, u, "cs", 1441, "x", T0), OutOfRange, "1440"),
        (lambda db, u: tracking.log_time(db, u, "cs", 5, "d", T0, details="y" * 2001),
         TooLong, "2000"),
        (lambda db, u: tracking.reflect(db, u, "cs", "", T0), Empty, "Evidence"),
        (lambda db, u: tracking.set_progress(db, u, "cs", 101, T0), OutOfRange, "100"),
        (lambda db, u: tracking.set_energy(db, u, -1, T0), OutOfRange, "0 and 100"),
    ],
)  # fmt: skip
async def test_bad_input_raises_specific_error_and_writes_nothing(
    db: Database, call: object, error: type[DomainError], fragment: str
) -> None:
    user = await new_user(db)
    before = await rows(db, "select * from theaters where user_id = %s order by arm_type", user)
    with pytest.raises(error) as info:
        await call(db, user)  # type: ignore[operator]
    assert fragment in info.value.user_message
    for table in ("nba_items", "execution_logs", "reflections"):
        assert await rows(db, f"select 1 from {table} where user_id = %s", user) == []
    after = await rows(db, "select * from theaters where user_id = %s order by arm_type", user)
    assert after == before


async def test_other_users_item_reads_as_gone(db: Database) -> None:
    alice = await new_user(db, 1)
    bob = await new_user(db, 2)
    item = await nba.add_item(db, alice, "cs", 3, "Alice's", T0)
    for call in (nba.lock, nba.select, nba.unlock):
        with pytest.raises(nba.ItemGone):
            await call(db, bob, item.item.id, T0)
    with pytest.raises(nba.ItemGone):
        await nba.done(db, bob, item.item.id, T0)
    found = await rows(db, "select is_locked, completed_at from nba_items")
    assert found == [{"is_locked": False, "completed_at": None}]
