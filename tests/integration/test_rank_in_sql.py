"""The rules the one-statement writes compute in SQL, against services/rules.py as the oracle.

Lock, Unlock, Done and /add re-rank the theater in the statement that writes (so the write,
the ranking and COMMIT cost one round trip), and /log stores the overload risk the same way.
The replies still come from services/rules.py. Over random theaters (gaps, ages down to the
second, early-progress bonuses, a lock or a manual pick), what the statement stores must be
what ``state.plan_items`` (the ranking of services/rules.py) and ``rules.overload`` give.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services import accounts, rules, state, tracking
from services.db import Database
from services.models import NbaItem
from services.repos import execution_logs, nba_items

NOW = datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)
#: one open item: gap, seconds since last updated (the rounding of stale days to a tenth
#: of a day sits on multiples of 4320 s), days since created, early-progress bonus
ITEM = st.tuples(
    st.integers(0, 5),
    st.one_of(st.integers(0, 40 * 86400), st.integers(0, 200).map(lambda n: n * 4320)),
    st.integers(0, 60),
    st.booleans(),
)
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def theater_of(
    db: Database, items: list[tuple[int, int, int, bool]], locked: int | None, manual: int | None
) -> tuple[uuid.UUID, list[NbaItem]]:
    """A new user whose cs theater holds ``items`` (item ``locked`` locked, ``manual``
    picked by hand); the items as stored."""
    tg = uuid.uuid4().int % 10**9
    user, _ = await accounts.create_local_account(db, tg, tg, "Oracle", NOW - timedelta(days=90))
    async with db.privileged() as uow:
        for n, (gap, age, created, bonus) in enumerate(items):
            await uow.execute(
                "insert into nba_items (user_id, arm_type, title, gap, stale_days,"
                " has_early_progress_bonus, is_locked, is_manually_selected, is_current,"
                " created_at, last_updated) values (%s, 'cs', %s, %s, 3.5, %s, %s, %s, %s, %s,"
                " %s)",
                (
                    user, f"item {n}", gap, bonus, n == locked, n == manual, n == 0,
                    NOW - timedelta(days=created, seconds=n), NOW - timedelta(seconds=age),
                ),
            )  # fmt: skip
        await uow.commit()
    return user, await stored(db, user)


async def stored(db: Database, user: uuid.UUID) -> list[NbaItem]:
    async with db.privileged() as uow:
        rows = await uow.fetchall(
            "select * from nba_items where user_id = %s order by created_at, id", (user,)
        )
    return [NbaItem.from_row({k: r[k] for k in NbaItem.__dataclass_fields__}) for r in rows]


def expected(before: list[NbaItem], changed: dict[uuid.UUID, NbaItem]) -> dict[uuid.UUID, Any]:
    """Every item as the rules would store it after ``changed``: ``plan_items``' rows."""
    _, changes = state.plan_items(before, changed, NOW)
    final = {i.id: i for i in before}
    final.update({i.id: i for i in changed.values()})
    final.update({i.id: i for i in changes.after})
    return {k: _state(v) for k, v in final.items()}


def _state(item: NbaItem) -> tuple[Any, ...]:
    return (
        item.is_current, item.stale_days, item.is_locked, item.is_manually_selected,
        item.completed_at, item.last_updated, item.has_early_progress_bonus,
    )  # fmt: skip


async def lock_scenario(
    dsn: str, items: list[Any], locked: int | None, manual: int | None, press: int, lock: bool
) -> None:
    async with Database(dsn, max_size=2) as db:
        user, before = await theater_of(db, items, locked, manual)
        item = before[press % len(before)]
        async with state.locked(db, user) as uow:
            done = await nba_items.set_lock_once(uow, item.id, lock, NOW)
        other_locked = any(i.is_locked and i.id != item.id for i in before)
        assert done.fine == (not (lock and other_locked))
        if not done.fine:
            assert [_state(i) for i in await stored(db, user)] == [_state(i) for i in before]
            return
        flipped = item.is_locked != lock
        new = replace(item, is_locked=lock, last_updated=NOW) if flipped else item
        want = expected(before, {item.id: new})
        assert {i.id: _state(i) for i in await stored(db, user)} == want
        assert {i.id: _state(i) for i in done.items} == want  # what the reply is built from


async def done_scenario(dsn: str, items: list[Any], locked: int | None, press: int) -> None:
    async with Database(dsn, max_size=2) as db:
        user, before = await theater_of(db, items, locked, None)
        item = before[press % len(before)]
        async with state.locked(db, user) as uow:
            done = await execution_logs.done_once(uow, item.id, NOW, "k", NOW - state.WEEK)
        assert done.changed.fine and done.log is not None
        assert done.log.action == rules.done_action(item.title)
        new = replace(
            item, completed_at=NOW, last_updated=NOW, is_current=False, is_locked=False,
            is_manually_selected=False,
        )  # fmt: skip
        want = expected(before, {item.id: new})
        assert {i.id: _state(i) for i in await stored(db, user)} == want


async def add_scenario(dsn: str, items: list[Any], locked: int | None, manual: int | None) -> None:
    async with Database(dsn, max_size=2) as db:
        user, before = await theater_of(db, items, locked, manual)
        new_id = uuid.uuid4()
        async with state.locked(db, user) as uow:
            added = await nba_items.add_once(uow, new_id, "cs", "new", 3, None, NOW)
        assert added.fine
        after = await stored(db, user)
        new = next(i for i in after if i.id == new_id)
        fresh = replace(new, stale_days=Decimal("0.0"), is_current=False)
        _, changes = state.plan_items([*before, fresh], {}, NOW)
        final = {i.id: i for i in [*before, fresh]}
        final.update({i.id: i for i in changes.after})
        assert {i.id: _state(i) for i in after} == {k: _state(v) for k, v in final.items()}


@pytest.mark.slow
@EXAMPLES
@given(
    items=st.lists(ITEM, min_size=1, max_size=5),
    locked=st.one_of(st.none(), st.integers(0, 4)),
    manual=st.one_of(st.none(), st.integers(0, 4)),
    press=st.integers(0, 4),
    lock=st.booleans(),
)
def test_lock_and_unlock_rank_as_the_rules(
    database_dsn: str,
    items: list[Any],
    locked: int | None,
    manual: int | None,
    press: int,
    lock: bool,
) -> None:
    asyncio.run(lock_scenario(database_dsn, items, locked, manual, press, lock))


@pytest.mark.slow
@EXAMPLES
@given(
    items=st.lists(ITEM, min_size=1, max_size=5),
    locked=st.one_of(st.none(), st.integers(0, 4)),
    press=st.integers(0, 4),
)
def test_done_ranks_as_the_rules(
    database_dsn: str, items: list[Any], locked: int | None, press: int
) -> None:
    asyncio.run(done_scenario(database_dsn, items, locked, press))


@pytest.mark.slow
@EXAMPLES
@given(
    items=st.lists(ITEM, min_size=0, max_size=5),
    locked=st.one_of(st.none(), st.integers(0, 4)),
    manual=st.one_of(st.none(), st.integers(0, 4)),
)
def test_add_ranks_as_the_rules(
    database_dsn: str, items: list[Any], locked: int | None, manual: int | None
) -> None:
    asyncio.run(add_scenario(database_dsn, items, locked, manual))


async def risk_scenario(dsn: str, logged: list[int], minutes: int, capacity: int) -> None:
    async with Database(dsn, max_size=2) as db:
        tg = uuid.uuid4().int % 10**9
        user, _ = await accounts.create_local_account(db, tg, tg, "Risk", NOW - timedelta(days=30))
        async with db.privileged() as uow:
            await uow.execute(
                "update user_settings set weekly_capacity_hours = %s where user_id = %s",
                (capacity, user),
            )
            for n, m in enumerate(logged):  # spread over the past days, none today
                await uow.execute(
                    "insert into execution_logs (user_id, arm_type, action, duration, timestamp)"
                    " values (%s, 'ibm', 'x', %s, %s)",
                    (user, m, NOW - timedelta(days=1 + n % 9, minutes=n)),
                )
            await uow.commit()
        result = await tracking.log_time(db, user, "cs", minutes, "now", NOW)
        async with db.privileged() as uow:
            row = await uow.fetchone(
                "select overload_risk from global_metrics where user_id = %s", (user,)
            )
        assert row is not None
        week = sum(m for n, m in enumerate(logged) if 1 + n % 9 < 7)  # the 7 days up to now
        assert row["overload_risk"] == result.overload.risk
        assert result.overload == rules.overload(week + minutes, capacity)


@pytest.mark.slow
@EXAMPLES
@given(
    logged=st.lists(st.integers(1, 900), max_size=8),
    minutes=st.integers(1, 900),
    capacity=st.integers(1, 168),
)
def test_log_stores_the_risk_of_the_rules(
    database_dsn: str, logged: list[int], minutes: int, capacity: int
) -> None:
    asyncio.run(risk_scenario(database_dsn, logged, minutes, capacity))
