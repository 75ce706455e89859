"""A write whose COMMIT reached the database but whose answer was lost on the way back.

The one-round-trip writes send the opening, the write and COMMIT together, so a connection
that breaks after sending them leaves the client not knowing whether they applied: the
command is kept in the outbox (as in an outage) and replayed. The replay must not apply it
a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from services import accounts, sync
from services.commands import Command
from services.db import Database, TelegramUser
from services.nba import AddItem
from services.outbox import Outbox
from services.tracking import LogTime, Reflect

T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
TG = 7101


class CuttingProxy:
    """A TCP proxy to PostgreSQL that, once armed, forwards the next request whole and
    drops the connection instead of passing the server's answer back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port  # host: a directory for a socket file
        self.armed = False
        self.cut = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.host.startswith("/"):
            up_reader, up_writer = await asyncio.open_unix_connection(
                f"{self.host}/.s.PGSQL.{self.port}"
            )
        else:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def up() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def down() -> None:
            while data := await up_reader.read(65536):
                if self.armed:
                    self.armed = False
                    await asyncio.sleep(0.2)  # let the server finish the whole request
                    writer.transport.abort()
                    self.cut.set()
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        writer.close()
        up_writer.close()


@contextlib.asynccontextmanager
async def cut_once(
    dsn: str, *, pooler: bool = False
) -> AsyncIterator[tuple[Database, CuttingProxy]]:
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "127.0.0.1")
    proxy = CuttingProxy(host, int(params.get("port") or 5432))
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conninfo = make_conninfo(dsn, host="127.0.0.1", port=str(port))
    db = Database(conninfo, max_size=2, transaction_pooler=pooler)
    await db.open()
    try:
        yield db, proxy
    finally:
        await db.close()
        server.close()


async def rows(db: Database, sql: str) -> list[dict[str, object]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


@pytest.mark.parametrize("pooler", [False, True], ids=["direct", "pooler"])
@pytest.mark.parametrize(
    ("command", "table"),
    [
        (LogTime(arm="cs", minutes=30, action="read", dedupe_key="msg:7101:1"), "execution_logs"),
        (AddItem(arm="cs", gap=3, title="Chapter 3"), "nba_items"),
        (Reflect(arm="cs", evidence="mock exam 78%"), "reflections"),
    ],
)
async def test_a_write_whose_answer_was_lost_is_applied_once(
    db: Database,
    database_dsn: str,
    tmp_path: Path,
    command: Command[object],
    table: str,
    pooler: bool,
) -> None:
    await accounts.create_local_account(db, TG, TG, "A", T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.remember_linked(TG)
    async with cut_once(database_dsn, pooler=pooler) as (cut_db, proxy):
        await sync.perform(cut_db, outbox, TelegramUser(TG), TG, command, T0)  # warm the pool
        await db_delete(db, table)
        proxy.armed = True
        kept = await sync.perform(cut_db, outbox, TelegramUser(TG), TG, command, T0)
        assert proxy.cut.is_set()
    assert isinstance(kept, sync.Queued)
    assert len(await rows(db, f"select id from {table}")) == 1  # the COMMIT went through
    report = await sync.replay(db, outbox)
    assert report.failing == [] and report.parked == []
    assert len(await rows(db, f"select id from {table}")) == 1
    outbox.close()


async def db_delete(db: Database, table: str) -> None:
    async with db.privileged() as uow:
        await uow.execute(f"delete from {table}")
        await uow.commit()
