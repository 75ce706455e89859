"""End-to-end harness: the real Application, over HTTP, against the local Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.waiting import Ready

from bot.app import build_application
from bot.lifecycle import running
from bot.local_api import BotApiEmulator, SentMessage
from bot.settings import Settings, load_settings
from bot.webhook import Webhook


@dataclass
class Clock:
    """A controllable clock for the bot (real time unless set)."""

    fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)

    def set(self, moment: datetime) -> None:
        self.fixed = moment

    def advance(self, **delta: float) -> datetime:
        self.fixed = self() + timedelta(**delta)
        return self.fixed


@dataclass
class Chat:
    """One Telegram user talking to the bot in a private chat."""

    emu: BotApiEmulator
    user_id: int
    first_name: str = "Test"
    seen: int = field(default=0)

    async def send(
        self, text: str, *, replies: int = 1, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Send a message and wait for ``replies`` new bot messages; return them."""
        self.emu.send_text(self.user_id, text, first_name=self.first_name)
        return await self._wait(replies, timeout)

    async def press(
        self, message: SentMessage, button_text: str, *, replies: int = 0, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Press a button; wait until the callback was answered and ``replies`` new messages."""
        answered = len(self.emu.calls("answerCallbackQuery"))
        self.emu.press(self.user_id, message.message_id, button_text=button_text)
        await self.emu.wait_calls("answerCallbackQuery", answered + 1, timeout)
        await self.settle()
        return await self._wait(replies, timeout)

    async def press_data(
        self,
        message_id: int,
        data: str,
        *,
        strict: bool = False,
        replies: int = 0,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """Press a button by its data (by default, one the message need not show any more);
        wait until the callback was answered and ``replies`` new messages."""
        answered = len(self.emu.calls("answerCallbackQuery"))
        self.emu.press(self.user_id, message_id, data, strict=strict)
        await self.emu.wait_calls("answerCallbackQuery", answered + 1, timeout)
        await self.settle()
        return await self._wait(replies, timeout) if replies else []

    async def settle(self, quiet: float = 0.15, timeout: float = 10.0) -> None:
        """Wait until the bot made no API call for ``quiet`` seconds (its handler finished)."""
        await self.emu.wait_idle(quiet=quiet, timeout=timeout)

    async def _wait(self, count: int, timeout: float) -> list[SentMessage]:
        if count == 0:
            await self.emu.wait_updates_consumed(timeout)
            await self.settle()
            self.seen = len(self.emu.sent(self.user_id))
            return []
        found = await self.emu.wait_messages(self.user_id, self.seen + count, timeout)
        new = found[self.seen :]
        self.seen = len(found)
        return new

    def message(self, message_id: int) -> SentMessage:
        return self.emu.message(self.user_id, message_id)

    def last(self) -> SentMessage:
        return self.emu.sent(self.user_id)[-1]


def as_url(dsn: str) -> str:
    """DATABASE_URL must be a URL; the embedded test server gives a key=value string."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return dsn
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    user = quote(params.pop("user", "postgres"), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}" if password else user
    dbname = quote(params.pop("dbname", "postgres"), safe="")
    host = params.pop("host", "localhost")
    if host.startswith("/"):
        params["host"] = host
        host = ""
    port = params.pop("port", None)
    netloc = f"{auth}@{host}" + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{dbname}" + (f"?{urlencode(params)}" if params else "")


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test: no .env, and a fresh DATA_DIR unless one is given."""
    overrides.setdefault("data_dir", tempfile.mkdtemp(prefix="aelpher-test-"))
    return load_settings(_env_file=None, **overrides)


def outage_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a bot whose database a test halts: the outbox in ``tmp_path``, and a short
    connect timeout so the outage is noticed at once."""
    return make_settings(data_dir=tmp_path / "data", db_connect_timeout_seconds=2, **overrides)


@asynccontextmanager
async def bot_running(
    emu: BotApiEmulator,
    dsn: str,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    **build: Any,
) -> AsyncIterator[Any]:
    """Build and run the real Application against ``emu`` and the database at ``dsn``."""
    app = build_application(
        settings or make_settings(),
        dsn,
        token=emu.token,
        base_url=emu.base_url,
        base_file_url=emu.file_base_url,
        run_migrations=False,
        deps_overrides={"clock": clock or Clock()},
        **build,
    )
    async with running(app):
        yield app


_WEBHOOK_SECRET = "two-instances-0123456789abcdefghij"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """Two instances of the bot on one database, in webhook mode: points Telegram's webhook
    (the emulator's) at one instance or the other, like a load balancer with no sticky
    routing."""

    def __init__(self, apps: list[Any], hooks: list[Webhook]) -> None:
        self.apps = apps
        self.hooks = hooks

    async def to(self, n: int) -> None:
        hook = self.hooks[n]
        await self.apps[n].bot.set_webhook(hook.url, secret_token=hook.secret)


@asynccontextmanager
async def two_instances(
    emulator: BotApiEmulator, dsn: str, clock: Clock, **settings: Any
) -> AsyncIterator[Balancer]:
    apps, hooks = [], []
    async with AsyncExitStack() as stack:
        for _ in range(2):
            port = free_port()
            hook = Webhook(
                f"http://127.0.0.1:{port}/telegram", _WEBHOOK_SECRET, port, listen="127.0.0.1"
            )
            app = build_application(
                make_settings(**settings), dsn, token=emulator.token, base_url=emulator.base_url,
                base_file_url=emulator.file_base_url, run_migrations=False,
                deps_overrides={"clock": clock},
            )  # fmt: skip
            await stack.enter_async_context(running(app, webhook=hook))
            apps.append(app)
            hooks.append(hook)
        yield Balancer(apps, hooks)


@asynccontextmanager
async def dashboard_running(
    emu: BotApiEmulator, dsn: str, *, clock: Clock | None = None, **settings: Any
) -> AsyncIterator[tuple[str, Any]]:
    """The bot with its dashboard (long polling: on ``WEBAPP_PORT``, a free port), and the
    dashboard's URL (``http://127.0.0.1:<port>/app/``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/app/"
    config = make_settings(webapp_url=url, webapp_port=port, **settings)
    async with bot_running(emu, dsn, settings=config, clock=clock or Clock()) as app:
        yield url, app


async def data_api(
    dsn: str, user: uuid.UUID, sql: str, *, before_constraints: bool = False
) -> bool:
    """Run ``sql`` as PostgREST runs a request of ``user`` (role ``authenticated``, the JWT's
    claims, RLS). ``before_constraints``: as if the ``*_sane`` constraints did not exist yet
    (they are dropped, and re-added NOT VALID in the same transaction). False if refused."""
    claims = json.dumps({"sub": str(user), "role": "authenticated"})
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        defs: list[tuple[str, str, str]] = []
        if before_constraints:
            cur = await conn.execute(
                "select conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " from pg_constraint where conname like '%\\_sane'"
            )
            defs = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
            for table, name, _ in defs:
                await conn.execute(f"alter table {table} drop constraint {name}")
        await conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (claims,),
        )
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the rest intact
                await conn.execute(sql)
            accepted = True
        except psycopg.Error:
            accepted = False
        await conn.execute("reset role")
        for table, name, definition in defs:
            await conn.execute(f"alter table {table} add constraint {name} {definition}")
        await conn.commit()
    return accepted


class RoundTrips:
    """Round trips to PostgreSQL made while handling updates (not by background jobs): each
    time the server's answer is read (a statement on its own, a pipeline, several statements
    in one message: one each)."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0


def _handling_an_update() -> bool:
    task = asyncio.current_task()
    return task is not None and task.get_name().endswith("process_concurrent_update")


def _answered(gen: Any, counter: RoundTrips) -> Any:
    """Delegate to psycopg's generator ``gen``, counting one round trip if the server's
    answer was read during it (a wait that only flushes queued statements is none)."""
    counted = False
    try:
        request = gen.send(None)
    except StopIteration as stop:
        return stop.value
    while True:
        try:
            answer = yield request
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # thrown in by the waiting function
            try:
                request = gen.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            if not counted and answer and answer & Ready.R:
                counter.count += 1
                counted = True
            try:
                request = gen.send(answer)
            except StopIteration as stop:
                return stop.value


@contextmanager
def counting_server_round_trips() -> Iterator[RoundTrips]:
    """Count the round trips of update handling as the server sees them: each time psycopg
    waits for the server and reads its answer (a statement on its own, a pipeline, several
    statements in one message: one each, however they are sent)."""
    counter = RoundTrips()
    wait = psycopg.AsyncConnection.wait

    async def counted_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        if not _handling_an_update():
            return await wait(self, gen, *args, **kwargs)
        return await wait(self, _answered(gen, counter), *args, **kwargs)

    psycopg.AsyncConnection.wait = counted_wait  # type: ignore[method-assign,assignment]
    try:
        yield counter
    finally:
        psycopg.AsyncConnection.wait = wait  # type: ignore[method-assign]


class CuttingProxy:
    """A TCP proxy to PostgreSQL that, once armed, forwards the next request whole (with
    ``marker``: the next one holding those bytes) and drops the connection instead of
    passing the server's answer back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port  # host: a directory for a socket file
        self.armed = False
        self.marker: bytes | None = None
        self.cut = asyncio.Event()

    def arm(self, marker: bytes | None = None) -> None:
        self.armed, self.marker = True, marker

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.host.startswith("/"):
            up_reader, up_writer = await asyncio.open_unix_connection(
                f"{self.host}/.s.PGSQL.{self.port}"
            )
        else:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        doomed = False

        async def up() -> None:
            nonlocal doomed
            while data := await reader.read(65536):
                if self.armed and (self.marker is None or self.marker in data):
                    self.armed, doomed = False, True
                up_writer.write(data)
                await up_writer.drain()

        async def down() -> None:
            while data := await up_reader.read(65536):
                if doomed:
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


@asynccontextmanager
async def cutting_proxy(dsn: str) -> AsyncIterator[tuple[str, CuttingProxy]]:
    """A :class:`CuttingProxy` in front of the database at ``dsn``: its connection string
    and the proxy."""
    params = conninfo_to_dict(dsn)
    proxy = CuttingProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield make_conninfo(dsn, host="127.0.0.1", port=str(port)), proxy
    finally:
        server.close()
