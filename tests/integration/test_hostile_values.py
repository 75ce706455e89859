"""What a user stores through the Supabase Data API never stops the scan or another user.

Every user holds a JWT and can write their own rows without the bot (as ``authenticated``,
with their claims: :func:`data_api` does exactly that). Whatever the database accepts must at
worst skip that one user: the nudge scan goes on and delivers everyone else's nudges, and the
user's own /status, /nba, /stats and /export answer (a clear message naming the table and
column, never a crash). Rows written before the ``*_sane`` constraints existed
(:func:`data_api` with ``before_constraints``) hold anything PostgreSQL can store.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers import render
from handlers.nudges import render_nudge
from services import accounts, nba, sanity, stats, status, tracking
from services.db import Database
from services.errors import DomainError
from services.export import export_data
from services.models import ARMS
from services.nudges.messages import IdleNudge, Nudge
from services.nudges.scan import run_scan
from services.nudges.settings import update_settings
from tests.harness import data_api

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
IDLE = T0 + timedelta(hours=72)
NO_QUIET: dict[str, Any] = {"quiet_start": None, "quiet_end": None}
VICTIM, MALLORY = 41001, 41002

# --- writing as the Data API does -----------------------------------------------------------


async def new_user(db: Database, tg: int) -> uuid.UUID:
    """A linked local account, last active at T0, with no quiet hours and ibm blocked: at
    IDLE exactly one nudge is due (cs idle)."""
    user, created = await accounts.create_local_account(db, tg, tg, "Test", T0)
    assert created
    await update_settings(db, user, now=T0, **NO_QUIET)
    await tracking.block(db, user, "ibm", None, T0)
    return user


class Outbox:
    """A ``send`` for the scan that renders each nudge as the bot would and keeps it."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Nudge, str]] = []

    async def __call__(self, chat_id: int, nudge: Nudge) -> None:
        text, _ = render_nudge(nudge)
        self.sent.append((chat_id, nudge, text))

    def idle_for(self, chat_id: int) -> list[str]:
        return [t for c, n, t in self.sent if c == chat_id and isinstance(n, IdleNudge)]


async def views_answer(db: Database, user: uuid.UUID, now: datetime) -> list[str]:
    """Run the user's /status, /nba, /stats, /history and /export (services and renderers):
    each answers, or raises a DomainError whose message is returned. Anything else fails."""
    messages: list[str] = []

    async def status_() -> None:
        render.render_status(await status.status_view(db, user, now))

    async def nba_() -> None:
        views = await nba.view(db, user, list(ARMS), now)
        render.render_nba(views)
        render.nba_keyboard(views)

    async def stats_() -> None:
        view = await stats.stats_view(db, user, now)
        view.caption()

    async def history_() -> None:
        found = await status.history(db, user, None)
        render.render_history(found.entries, found.timezone, None)

    async def export_() -> None:
        found = await export_data(db, user, now)
        json.loads(found.json_bytes())
        found.zip_bytes()

    for view in (status_, nba_, stats_, history_, export_):
        try:
            await view()
        except DomainError as exc:
            messages.append(exc.user_message)
    return messages


# --- hostile values -------------------------------------------------------------------------

INSTANTS = [
    "'infinity'", "'-infinity'", "'10000-01-01 00:00+00'", "'294276-12-31 00:00+00'",
    "'4713-01-01 00:00+00 BC'", "'9999-12-31 23:00+00'", "'0001-01-01 00:00+00'",
    "'1969-12-31 23:59+00'", "'2199-12-31 23:59+00'", "'epoch'", "null",
]  # fmt: skip
NUMBERS = ["'NaN'", "'Infinity'", "'-Infinity'", "-1", "999.99", "null"]
CLOCKS = ["'24:00'", "'23:59:59.999999'", "'00:00'", "null"]
ZONES = ["'Mars/Olympus'", "''", "'America'", "'../../etc/passwd'", "'Etc/GMT+12'", "'UTC '"]
BIG = "repeat('x', 20000)"

# (statement template, values); the statement runs as the hostile user, under RLS.
WRITES: list[tuple[str, list[str]]] = [
    ("update theaters set last_activity = {v} where arm_type = 'cs'", INSTANTS),
    ("update theaters set snoozed_until = {v} where arm_type = 'cs'", INSTANTS),
    ("update theaters set idle_check_at = {v}", INSTANTS),
    ("update theaters set created_at = {v}", INSTANTS),
    ("update theaters set status = {v}", ["null", "'blocked'", "'warm'"]),
    ("update theaters set total_progress = {v}", NUMBERS),
    ("update theaters set energy_allocation = {v}", ["null", "0", "100"]),
    ("update user_settings set overload_snoozed_until = {v}", INSTANTS),
    ("update user_settings set brief_check_at = {v}", INSTANTS),
    ("update user_settings set review_check_at = {v}", INSTANTS),
    ("update user_settings set brief_time = {v}, brief_check_at = 'epoch'", CLOCKS),
    ("update user_settings set quiet_start = {v}, quiet_end = {v}", CLOCKS),
    ("update user_settings set review_day = 2, review_time = {v}", CLOCKS),
    ("update user_settings set timezone = {v}", ZONES),
    ("update global_metrics set overload_risk = {v}, overload_check_at = 'epoch'", NUMBERS),
    ("update global_metrics set combined_progress = {v}", NUMBERS),
    ("update global_metrics set last_computed = {v}", INSTANTS),
    ("update global_metrics set energy_allocation_ibm = {v}", ["null", "-5", "2147483647"]),
    (
        "insert into nba_items (user_id, arm_type, title, last_updated, stale_days, gap)"
        " values (auth.uid(), 'cs', 'hostile', {v}, 0, 3)",
        INSTANTS,
    ),
    (
        "insert into nba_items (user_id, arm_type, title, stale_days, gap, is_current)"
        " values (auth.uid(), 'cs', 'hostile', {v}, null, null)",
        NUMBERS,
    ),
    (
        "insert into nba_items (user_id, arm_type, title, description)"
        " values (auth.uid(), 'cs', {v}, {v})",
        [BIG, "'<b>&'"],
    ),
    (
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp)"
        " values (auth.uid(), 'cs', 'x', " + BIG + ", 2147483647, {v})",
        INSTANTS,
    ),
    (
        "insert into reflections (user_id, arm_type, evidence, timestamp)"
        " values (auth.uid(), 'ibm', 'e', {v})",
        INSTANTS,
    ),
    (
        "insert into nudges (user_id, kind, arm_type, dedupe_key, status, claimed_at,"
        " next_attempt_at, risk) values (auth.uid(), 'idle', null, 'x', 'claimed', {v},"
        " '2026-01-01', 'NaN')",
        INSTANTS,
    ),
    (
        "insert into nudges (user_id, kind, dedupe_key, status, sent_at, claimed_at)"
        " select auth.uid(), 'idle', 'idle:cs:' || to_char(last_activity at time zone 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ':1', 'sent', {v}, {v} from theaters"
        " where arm_type = 'cs'",
        INSTANTS,
    ),
    (
        "insert into sync_queue (user_id, operation, table_name, payload, timestamp)"
        " values (auth.uid(), 'INSERT', 'x', (repeat('[', 3000) || repeat(']', 3000))::jsonb,"
        " {v})",
        INSTANTS,
    ),
    ("update telegram_links set linked_at = {v}", INSTANTS),
]

HOSTILE = st.tuples(
    st.sampled_from(range(len(WRITES))).flatmap(
        lambda i: st.tuples(st.just(WRITES[i][0]), st.sampled_from(WRITES[i][1]))
    ),
    st.booleans(),
)


async def scenario(dsn: str, writes: Sequence[tuple[tuple[str, str], bool]]) -> None:
    async with Database(dsn, max_size=3) as db:
        async with db.privileged() as uow:
            await uow.execute("truncate auth.users, bot_persistence cascade")
            await uow.commit()
        victim = await new_user(db, VICTIM)
        mallory = await new_user(db, MALLORY)
        for (template, value), before in writes:
            await data_api(dsn, mallory, template.format(v=value), before_constraints=before)

        outbox = Outbox()
        await run_scan(db, IDLE, outbox)
        assert len(outbox.idle_for(VICTIM)) == 1, "the victim's due nudge was not delivered"
        await run_scan(db, IDLE + timedelta(days=1), outbox)
        assert len(outbox.idle_for(VICTIM)) == 2, "the victim's next nudge was not delivered"

        for message in await views_answer(db, mallory, IDLE):
            assert message  # a specific sentence, never empty
        assert await views_answer(db, victim, IDLE) == []


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=st.lists(HOSTILE, min_size=1, max_size=3))
def test_no_stored_value_stops_the_scan_or_reaches_another_user(
    database_dsn: str, writes: list[tuple[tuple[str, str], bool]]
) -> None:
    asyncio.run(scenario(database_dsn, writes))


# --- each hostile value, one at a time ------------------------------------------------------


@asynccontextmanager
async def own_db(dsn: str) -> AsyncIterator[Database]:
    async with Database(dsn, max_size=3) as db:
        async with db.privileged() as uow:
            await uow.execute("truncate auth.users, bot_persistence cascade")
            await uow.commit()
        yield db


@pytest.mark.parametrize(
    ("template", "value"),
    [(template, value) for template, values in WRITES for value in values[:2]],
)
def test_rows_from_before_the_constraints_skip_only_their_user(
    database_dsn: str, template: str, value: str
) -> None:
    asyncio.run(scenario(database_dsn, [((template, value), True)]))


NEAR_THE_END = "'2199-12-31 23:59+00'"
LAST_YEAR_POSTGRES_HAS = "'294276-12-31 00:00+00'"
FORGED_EPISODE = next(t for t, _ in WRITES if "'sent', {v}, {v}" in t)


@pytest.mark.parametrize(
    ("template", "value", "before"),
    [
        # The scan adds 24 h to the last nudge of the episode: past the constraints' end,
        (FORGED_EPISODE, NEAR_THE_END, False),
        # and past PostgreSQL's own end, which fails the statement unless clamped first.
        (FORGED_EPISODE, LAST_YEAR_POSTGRES_HAS, True),
        ("update theaters set snoozed_until = {v} where arm_type = 'cs'", NEAR_THE_END, False),
        (
            "update user_settings set overload_snoozed_until = {v};"
            " update global_metrics set overload_risk = 99, overload_check_at = 'epoch'",
            LAST_YEAR_POSTGRES_HAS,
            True,
        ),
    ],
)
def test_values_near_the_end_of_the_range_are_computed_with(
    database_dsn: str, template: str, value: str, before: bool
) -> None:
    asyncio.run(scenario(database_dsn, [((template, value), before)]))


async def test_the_constraints_refuse_what_the_bot_cannot_use(
    db: Database, database_dsn: str, alice: uuid.UUID
) -> None:
    user, _ = await accounts.create_local_account(db, 42001, 42001, "A", T0)
    refused = {
        "update theaters set last_activity = 'infinity'",
        "update theaters set snoozed_until = '-infinity'",
        "update theaters set last_activity = '10000-01-01'",
        "update theaters set last_activity = '1969-12-31 23:59:59.999999+00'",
        "update theaters set last_activity = '2200-01-01 00:00+00'",
        "update user_settings set overload_snoozed_until = 'infinity'",
        "update user_settings set quiet_start = '24:00', quiet_end = '08:00'",
        "update global_metrics set overload_risk = 'NaN'",
        "insert into nudges (user_id, kind, dedupe_key, risk)"
        " values (auth.uid(), 'overload', 'k', 'NaN')",
        "insert into nba_items (user_id, arm_type, title, last_updated)"
        " values (auth.uid(), 'cs', 't', 'infinity')",
    }
    accepted = {
        "update theaters set last_activity = '1970-01-01 00:00+00'",
        "update theaters set snoozed_until = '2199-12-31 23:59:59.999999+00'",
        "update user_settings set brief_check_at = 'epoch'",
        "update theaters set snoozed_until = null",
    }
    for sql in sorted(refused):
        assert not await data_api(database_dsn, user, sql), sql
    for sql in sorted(accepted):
        assert await data_api(database_dsn, user, sql), sql


async def test_every_sane_constraint_is_known_to_the_code(db: Database) -> None:
    async with db.privileged() as uow:
        rows = await uow.fetchall(
            "select conrelid::regclass::text as t, conname, convalidated"
            " from pg_constraint where conname like '%\\_sane'"
        )
    found = {r["conname"] for r in rows}
    expected = {
        f"{table}_{column}_sane"
        for table, columns in sanity.SANE_COLUMNS.items()
        for column in columns
    }
    assert found == expected
    # NOT VALID: old rows never fail it; a table created after them has no old rows
    assert not any(r["convalidated"] for r in rows if r["t"] != "focus_sessions")
