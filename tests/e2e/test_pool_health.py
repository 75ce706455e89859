"""The pool against a restarted server and an exhausted pool, through the running bot.

A connection the server closed while it sat idle in the pool (a restart, a terminated
backend) is found and replaced before any statement is sent, so no user sees a failure; a
pool whose every connection is in use while the server answers is "busy", not an outage:
nothing is kept in the outbox and nobody is told the database is unreachable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from handlers.deps import DEPS_KEY, Deps
from handlers.errors import BUSY, INTERNAL, UNREACHABLE
from services.db import Database
from tests.harness import Chat, Clock, bot_running, make_settings

pytestmark = pytest.mark.slow


def deps_of(app: Any) -> Deps:
    deps: Deps = app.bot_data[DEPS_KEY]
    return deps


async def fill_pool(app: Any, connections: int) -> None:
    """Have the bot's pool open ``connections`` connections (idle again afterwards)."""
    db = deps_of(app).db

    async def use() -> None:
        async with db.privileged(read_only=True) as uow:
            await uow.fetchone("select pg_sleep(0.1)")

    await asyncio.gather(*(use() for _ in range(connections)))
    assert db.pool.get_stats()["pool_size"] >= connections


async def terminate_backends(dsn: str) -> int:
    """End every client backend of the bot's database but this one, waiting until each has
    exited (so each pooled connection has its FATAL message and end of file)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "select count(*) filter (where pg_terminate_backend(pid, 5000)) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and backend_type = 'client backend'"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def every_command_answers(chat: Chat, round_no: int) -> None:
    """Reads and writes through the bot, each answered as usual."""
    failures = (UNREACHABLE, INTERNAL, "can't reach", "went wrong", "will sync")
    (status,) = await chat.send("/status")
    (logged,) = await chat.send(f"/log cs 20 after restart {round_no}")
    (nba,) = await chat.send("/nba")
    (history,) = await chat.send("/history")
    for reply in (status, logged, nba, history):
        assert not any(f in reply.plain_text for f in failures), reply.plain_text
    assert "cs" in status.plain_text
    assert f"after restart {round_no}" in history.plain_text


async def test_terminated_backends_cost_no_command(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    _, dsn = server
    settings = make_settings(data_dir=tmp_path / "data", db_pool_max_size=6)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        chat = Chat(emulator, 8101)
        await chat.send("/start")
        await chat.send("/cancel")
        for round_no in (1, 2):
            await fill_pool(app, 6)
            assert await terminate_backends(dsn) >= 6
            await every_command_answers(chat, round_no)
    assert await actions(dsn) == ["after restart 1", "after restart 2"]


async def test_server_restart_costs_no_command(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = make_settings(data_dir=tmp_path / "data", db_pool_max_size=6)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        chat = Chat(emulator, 8103)
        await chat.send("/start")
        await chat.send("/cancel")
        await fill_pool(app, 6)
        await asyncio.to_thread(pg.halt)
        await asyncio.to_thread(pg.resume)
        await every_command_answers(chat, 1)
    assert await actions(dsn) == ["after restart 1"]


async def actions(dsn: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("select action from execution_logs order by timestamp")
        return [r[0] for r in await cur.fetchall()]


async def test_exhausted_pool_is_busy_not_an_outage(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    _, dsn = server
    settings = make_settings(
        data_dir=tmp_path / "data", db_pool_max_size=2, db_connect_timeout_seconds=1
    )
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        chat = Chat(emulator, 8102)
        await chat.send("/start")
        await chat.send("/cancel")
        deps = deps_of(app)
        pool = deps.db.pool
        held = [await pool.getconn() for _ in range(2)]  # every connection in use
        try:
            (busy,) = await chat.send("/log cs 30 while busy")
            (read,) = await chat.send("/status")
        finally:
            for conn in held:
                await pool.putconn(conn)
        for reply in (busy, read):
            assert reply.plain_text == BUSY
            assert "reach the database" not in reply.plain_text
        assert deps.outbox is not None and await deps.outbox.count_pending() == 0

        (logged,) = await chat.send("/log cs 30 once free")  # free again: as usual
        assert "once free" in logged.plain_text or "30" in logged.plain_text
        assert logged.plain_text != BUSY

    assert await actions(dsn) == ["once free"]


@pytest.mark.parametrize("read_only", [True, False])
async def test_connection_lost_before_the_opening_is_opened_again(
    server: tuple[EmbeddedPostgres, str], read_only: bool
) -> None:
    """A connection that passed the check but broke before the unit of work's opening got its
    answer: the opening (which never commits) goes again on a fresh connection."""
    _, dsn = server
    async with Database(dsn, max_size=2) as db, db.privileged(read_only=read_only) as uow:
        pid = uow.conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            await admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
        row = await uow.fetchone("select pg_backend_pid() as pid, 1 as one")
        assert row is not None and row["one"] == 1 and row["pid"] != pid
        if not read_only:
            await uow.execute("create table opened_again (id int)")
            await uow.commit()
    async with Database(dsn, max_size=1) as db, db.privileged(read_only=True) as uow:
        found = await uow.fetchone("select to_regclass('opened_again') is not null as made")
    assert found is not None and found["made"] is (not read_only)
