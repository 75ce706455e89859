"""Shared pieces of the benchmark scripts: machine info, a fresh database, the running bot,
reply timing through the emulator, and database-call counters.

Imported by ``bench/*.py`` (run as ``python bench/<script>.py`` from the repository root, so
this folder is on ``sys.path``). Nothing here changes the product: the counters wrap
``services.db.Database._transaction_inner`` and psycopg's ``AsyncConnection.wait`` in the
benchmark process only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from aiolimiter import AsyncLimiter
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.waiting import Ready
from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

# The repository root first on the path: `python bench/x.py` puts only bench/ there.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.app import build_application  # noqa: E402
from bot.embedded_db import EmbeddedPostgres  # noqa: E402
from bot.http import AiohttpRequest  # noqa: E402
from bot.lifecycle import run, running  # noqa: E402
from bot.local_api import BotApiEmulator, SentMessage  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.telegram_io import ResilientRateLimiter  # noqa: E402
from services.db import Database  # noqa: E402
from services.migrations import apply_migrations  # noqa: E402

AnyApp = Application[Any, Any, Any, Any, Any, Any]
T = TypeVar("T")

#: What the database work in progress belongs to: an update's kind while a handler runs it,
#: "background" for everything else (persistence flushes, jobs).
LABEL: ContextVar[str] = ContextVar("bench_label", default="background")


# --- machine and statistics -------------------------------------------------------------------


def meminfo_mb(key: str = "MemTotal") -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(script: str, argv: list[str]) -> None:
    """The header every script prints: command, machine, date."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = meminfo_mb()
    avail = meminfo_mb("MemAvailable")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print(f"# {script} {' '.join(argv)}".rstrip())
    print(
        f"machine: cores={cores} cpu={cpu_model()!r}"
        f" mem_total_mb={mem:.0f} mem_available_mb={avail:.0f}"
        if mem is not None and avail is not None
        else f"machine: cores={cores} cpu={cpu_model()!r}"
    )
    print(
        f"python={platform.python_version()} platform={platform.platform()}"
        f" loadavg_1m={load[0]:.2f}"
    )
    print(
        f"date={dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
        f" cpu_pressure_avg10={cpu_pressure()} py_loop_ms={python_loop_ms():.0f}"
    )
    sys.stdout.flush()


def cpu_pressure() -> str:
    """The share of the last 10 s some task waited for a CPU (/proc/pressure/cpu): how busy
    this shared machine was with other work when the bench started."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return first.split()[1].split("=")[1] + "%"
    except (OSError, IndexError):
        return "n/a"


def python_loop_ms() -> float:
    """A fixed pure-Python loop (best of 3), to compare this CPU with another machine's."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the two nearest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --- processes ------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(path: Path) -> list[str]:
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, seconds; 0 if gone."""
    try:
        fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    except (OSError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(entry / "stat")[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` value in kB (e.g. VmRSS), 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size (shared pages divided among their users), kB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def postgres_pids(pgdata: Path) -> list[int]:
    """The postmaster of ``pgdata`` and its children (backends, checkpointer, WAL writer...)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [postmaster, *children(postmaster)]


# --- the database ---------------------------------------------------------------------------


def _dsn_for(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


@dataclass
class BenchDatabase:
    """A fresh, migrated database on the embedded server (temporary folder) or on a given one."""

    server_dsn: str
    dsn: str
    name: str
    _server: EmbeddedPostgres | None = None
    _tmp: Path | None = None

    def xacts(self) -> int:
        """``xact_commit + xact_rollback`` of the bench database (asked from another database,
        so the question itself is not counted)."""
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            row = conn.execute(
                "select xact_commit + xact_rollback from pg_stat_database where datname = %s",
                (self.name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def postgres_pids(self) -> list[int]:
        """The embedded server's processes ([] for a server given by URL)."""
        return postgres_pids(self._server.pgdata) if self._server is not None else []

    def close(self) -> None:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.server_dsn, autocommit=True) as conn,
        ):
            conn.execute(f'drop database if exists "{self.name}" with (force)')
        if self._server is not None:
            self._server.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def open_database(server_url: str | None) -> BenchDatabase:
    """Create ``aelpher_bench_<random>`` on ``server_url`` (a maintenance DSN), or on an
    embedded server started in a temporary folder, and apply the migrations."""
    tmp: Path | None = None
    server: EmbeddedPostgres | None = None
    if server_url is None:
        tmp = Path(tempfile.mkdtemp(prefix="aelpher-bench-pg-"))
        server = EmbeddedPostgres(tmp)
        server_url = server.start()
    name = f"aelpher_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = _dsn_for(server_url, name)
    asyncio.run(apply_migrations(dsn))
    return BenchDatabase(server_url, dsn, name, server, tmp)


def add_database_url(parser: argparse.ArgumentParser) -> None:
    """The ``--database-url`` option of the scripts that run on a fresh database."""
    parser.add_argument(
        "--database-url",
        default=None,
        help="maintenance DSN of a PostgreSQL server to create the bench database on"
        " (default: an embedded server in a temporary folder)",
    )


def on_fresh_database(
    server_url: str | None, bench: Callable[[BenchDatabase], Coroutine[Any, Any, T]]
) -> T:
    """Run ``bench`` (on the bot's event loop) with a fresh, migrated database, dropped after."""
    db = open_database(server_url)
    try:
        return run(bench(db))
    finally:
        db.close()


# --- a network delay between the bot and PostgreSQL -----------------------------------------


class DelayProxy:
    """A TCP proxy that holds every chunk of bytes ``delay`` seconds in each direction before
    passing it on, in order: a database ``delay`` away (one round trip costs ``2 * delay``),
    as a bot and a database in different regions are. Chunks sent meanwhile are not held up
    behind one another (a pipeline's statements leave together and arrive together). It runs
    in a child process with an event loop of its own, so the bot's work never delays its
    timers (a network does not share the bot's CPU). ``dsn(dsn)`` is ``dsn`` pointed at it.
    """

    def __init__(self, target_dsn: str, delay: float) -> None:
        params = conninfo_to_dict(target_dsn)
        self.delay = delay
        self._host = str(params.get("host") or "localhost")
        self._port = int(params.get("port") or 5432)
        self._process: Any = None
        self._conn: Connection | None = None
        self.port = 0

    async def __aenter__(self) -> DelayProxy:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_delay_proxy_process,
            args=(self._host, self._port, self.delay, child),
            daemon=True,
        )
        self._process.start()
        self.port = await asyncio.to_thread(self._conn.recv)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None and self._process is not None
        with contextlib.suppress(OSError, EOFError):
            self._conn.send("stop")
        await asyncio.to_thread(self._process.join, 10)
        if self._process.is_alive():
            self._process.kill()

    def dsn(self, dsn: str) -> str:
        return make_conninfo(dsn, host="127.0.0.1", port=str(self.port))


def _delay_proxy_process(host: str, port: int, delay: float, conn: Connection) -> None:
    """Child process: serve the delaying proxy until the parent says stop."""

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if host.startswith("/"):  # a Unix socket folder, as libpq names it
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Pass what ``reader`` gives to ``writer``, each chunk ``delay`` after it arrived."""
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await held.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(1 << 16)
                held.put_nowait((loop.time() + delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.to_thread(conn.recv)  # "stop"
        server.close()

    asyncio.run(main())


# --- counting database work -----------------------------------------------------------------


@dataclass
class DbCounters:
    """Transactions, round trips and statements, per label (see :data:`LABEL`)."""

    transactions: Counter[str] = field(default_factory=Counter)
    round_trips: Counter[str] = field(default_factory=Counter)
    statements: Counter[str] = field(default_factory=Counter)
    texts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    #: time spent in ``execute`` per statement text (with ``record_texts``), seconds
    text_seconds: defaultdict[str, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    #: wall time spent waiting for the database (all round trips), seconds
    db_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    #: Bot API requests made (getUpdates excluded) and the time they took, seconds
    api_calls: Counter[str] = field(default_factory=Counter)
    api_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    record_texts: bool = True
    #: every transaction and every new connection since the counters were installed (never
    #: reset); the server counts one transaction per backend start too
    all_transactions: int = 0
    all_connections: int = 0

    def reset(self) -> None:
        self.transactions.clear()
        self.round_trips.clear()
        self.statements.clear()
        self.texts.clear()
        self.text_seconds.clear()
        self.db_seconds.clear()
        self.api_calls.clear()
        self.api_seconds.clear()

    def copy(self) -> DbCounters:
        return DbCounters(
            transactions=self.transactions.copy(),
            round_trips=self.round_trips.copy(),
            statements=self.statements.copy(),
            texts={k: v.copy() for k, v in self.texts.items()},
            text_seconds=defaultdict(
                lambda: defaultdict(float),
                {k: defaultdict(float, v) for k, v in self.text_seconds.items()},
            ),
            db_seconds=defaultdict(float, self.db_seconds),
            api_calls=self.api_calls.copy(),
            api_seconds=defaultdict(float, self.api_seconds),
            record_texts=self.record_texts,
            all_transactions=self.all_transactions,
            all_connections=self.all_connections,
        )


_installed: DbCounters | None = None


def _count_answers(gen: Generator[Any, Any, Any], counts: Counter[str], label: str) -> Any:
    """Delegate to psycopg's generator ``gen``, counting one round trip under ``label`` if
    the server's answer was read during it (the socket turned readable). A wait that only
    flushes what a pipeline queued is not one; a COMMIT on an idle connection, which returns
    at once, is not either."""
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
                counts[label] += 1
                counted = True
            try:
                request = gen.send(answer)
            except StopIteration as stop:
                return stop.value


def install_counters() -> DbCounters:
    """Wrap the unit of work and psycopg so that every transaction, server round trip and
    statement is counted under the current :data:`LABEL` (benchmark process only), with the
    time spent waiting for the database and for Bot API requests (getUpdates excluded).

    Round trips are ``AsyncConnection.wait`` calls that reach the server: one per statement,
    one per BEGIN, one per COMMIT/ROLLBACK (the pool's own COMMIT on an idle connection
    returns without one and is not counted).
    """
    global _installed
    if _installed is not None:
        return _installed
    counters = DbCounters()
    original_tx = Database._transaction_inner
    original_wait = psycopg.AsyncConnection.wait
    original_execute = psycopg.AsyncCursor.execute
    originals = {cls: cls.do_request for cls in (HTTPXRequest, AiohttpRequest)}
    original_connect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    def transaction_inner(db: Database, *args: Any) -> Any:
        counters.transactions[LABEL.get()] += 1
        counters.all_transactions += 1
        return original_tx(db, *args)

    async def wait(conn: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        label = LABEL.get()
        started = time.perf_counter()
        try:
            counted = _count_answers(gen, counters.round_trips, label)
            return await original_wait(conn, counted, *args, **kwargs)
        finally:
            counters.db_seconds[label] += time.perf_counter() - started

    async def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        counters.all_connections += 1
        return await original_connect(cls, *args, **kwargs)

    async def do_request(request: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        original_request = originals[type(request)]
        if url.endswith("/getUpdates"):
            return await original_request(request, url, *args, **kwargs)
        label = LABEL.get()
        counters.api_calls[label] += 1
        started = time.perf_counter()
        try:
            return await original_request(request, url, *args, **kwargs)
        finally:
            counters.api_seconds[label] += time.perf_counter() - started

    async def execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        label = LABEL.get()
        counters.statements[label] += 1
        if not counters.record_texts:
            return await original_execute(cur, query, *args, **kwargs)
        text = query if isinstance(query, str) else str(query)
        key = " ".join(text.split())[:90]
        counters.texts[label][key] += 1
        started = time.perf_counter()
        try:
            return await original_execute(cur, query, *args, **kwargs)
        finally:
            counters.text_seconds[label][key] += time.perf_counter() - started

    Database._transaction_inner = transaction_inner  # type: ignore[method-assign,assignment]
    psycopg.AsyncConnection.wait = wait  # type: ignore[method-assign,assignment]
    psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign,assignment]
    HTTPXRequest.do_request = do_request  # type: ignore[method-assign,assignment]
    AiohttpRequest.do_request = do_request  # type: ignore[method-assign,assignment]
    psycopg.AsyncConnection.connect = classmethod(connect)  # type: ignore[method-assign,assignment]
    _installed = counters
    return counters


class Tracker:
    """Wraps ``app.process_update``: runs each update under ``LABEL = classify(update)``
    for the counters, times its handling, counts finished updates, tells when none is left."""

    def __init__(self, classify: Callable[[Update], str] | None = None) -> None:
        self.classify = classify or classify_update
        self.handler_ms: dict[str, list[float]] = defaultdict(list)
        self.processed = 0
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._changed = asyncio.Event()

    def install(self, app: AnyApp) -> None:
        process = app.process_update

        async def process_update(update: object) -> None:
            label = self.classify(update) if isinstance(update, Update) else "other"
            token = LABEL.set(label)
            self.in_flight += 1
            self.idle.clear()
            started = time.perf_counter()
            try:
                await process(update)
            finally:
                self.handler_ms[label].append(1000 * (time.perf_counter() - started))
                LABEL.reset(token)
                self.in_flight -= 1
                self.processed += 1
                self._changed.set()
                if self.in_flight == 0:
                    self.idle.set()

        app.process_update = process_update  # type: ignore[method-assign]

    async def wait_processed(self, count: int, timeout: float = 60.0) -> float:
        """Wait until ``count`` updates were handled in all; return when (perf_counter)."""
        deadline = time.perf_counter() + timeout
        while self.processed < count:
            self._changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{self.processed} updates handled, expected {count}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return time.perf_counter()


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The baseline handler: reply with the text after /echo, then stop (registered in group
    -2, before the private-chat gate, by :func:`add_echo`)."""
    assert update.effective_message is not None and update.effective_chat is not None
    text = (update.effective_message.text or "").partition(" ")[2] or "echo"
    await update.effective_chat.send_message(text)
    raise ApplicationHandlerStop


async def echo2(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Like :func:`echo`, but two messages one after the other (one more Bot API call)."""
    assert update.effective_chat is not None
    await update.effective_chat.send_message("echo one")
    await update.effective_chat.send_message("echo two")
    raise ApplicationHandlerStop


def add_echo(app: AnyApp) -> None:
    """``/echo`` and ``/echo2`` in group -3, before the gate (-2) and everything after it."""
    app.add_handler(CommandHandler("echo", echo), group=-3)
    app.add_handler(CommandHandler("echo2", echo2), group=-3)


def classify_update(update: Update) -> str:
    """``/command`` for commands, ``button`` for callback queries, ``text`` otherwise."""
    if update.callback_query is not None:
        return "button"
    text = update.effective_message.text if update.effective_message else None
    if text and text.startswith("/"):
        return text.split()[0].split("@")[0]
    return "text"


class ExtraRoundTrips:
    """Adds ``count`` ``select 1`` round trips to the next unit of work once armed (the
    sensitivity bench: what one more round trip costs a command, all else equal)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.armed = False
        self.added = 0
        inner = Database._transaction_inner

        @asynccontextmanager
        async def transaction_inner(db: Database, *args: Any) -> Any:
            async with inner(db, *args) as uow:
                if self.armed:
                    self.armed = False
                    for _ in range(self.count):
                        await uow.execute("select 1")
                    self.added += self.count
                yield uow

        Database._transaction_inner = transaction_inner  # type: ignore[method-assign,assignment]


#: set by the sensitivity bench; ``latency.sender`` arms it for kinds ending in "+rt"
EXTRA: ExtraRoundTrips | None = None


def extra_round_trips(count: int) -> ExtraRoundTrips:
    global EXTRA
    EXTRA = ExtraRoundTrips(count)
    return EXTRA


# --- the running bot --------------------------------------------------------------------------


def set_overall_rate(app: AnyApp, rate: float) -> None:
    """Replace the overall bucket of PTB's AIORateLimiter (30 messages/s in the product,
    Telegram's broadcast limit) with a fresh one of ``rate`` per second, and let each private
    chat's budget burst that far too; the limiter itself stays in the request path."""
    limiter = app.bot.rate_limiter
    if limiter is not None and getattr(limiter, "_base_limiter", None) is not None:
        limiter._base_limiter = AsyncLimiter(rate, 1)
    if isinstance(limiter, ResilientRateLimiter):  # and each private chat's budget
        limiter.chat_burst = int(rate)


#: the overall rate the benches use unless they measure the limiter itself
UNLIMITED = 1_000_000.0


@asynccontextmanager
async def bot_running(
    emu: BotApiEmulator | RemoteEmulator,
    dsn: str,
    *,
    concurrent_updates: bool | int = False,
    before_start: Callable[[AnyApp], None] | None = None,
    rate_limited: bool = False,
    **settings_overrides: Any,
) -> AsyncIterator[AnyApp]:
    """The product's Application (``build_application``) against ``emu`` and ``dsn``; the
    rate limiter's overall bucket raised unless ``rate_limited``."""
    data_dir = Path(tempfile.mkdtemp(prefix="aelpher-bench-data-"))
    settings = load_settings(_env_file=None, data_dir=data_dir, **settings_overrides)
    app = build_application(
        settings,
        dsn,
        token=emu.token,
        base_url=emu.base_url,
        base_file_url=emu.file_base_url,
        concurrent_updates=concurrent_updates,
        run_migrations=False,
    )
    if not rate_limited:
        set_overall_rate(app, UNLIMITED)
    if before_start is not None:
        before_start(app)
    try:
        async with running(app, poll_interval=0.0, poll_timeout=1):
            yield app
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def nba_message(emu: BotApiEmulator, chat_id: int, arm: str = "cs") -> SentMessage:
    """The latest /nba message of ``arm`` that has a Lock/Unlock button."""
    for msg in reversed(emu.sent(chat_id)):
        for row in msg.buttons:
            for _text, data in row:
                if data and data.startswith(("nba:lock:", "nba:unlock:")) and f":{arm}:" in data:
                    return msg
    raise LookupError(f"no /nba {arm} message with a lock button in chat {chat_id}")


def lock_button(emu: BotApiEmulator, chat_id: int, message_id: int) -> str:
    """The current Lock/Unlock callback data of a /nba message."""
    for row in emu.message(chat_id, message_id).buttons:
        for _text, data in row:
            if data and data.startswith(("nba:lock:", "nba:unlock:")):
                return data
    raise LookupError(f"message {message_id} has no lock button")


# --- the emulator in a process of its own -----------------------------------------------------

#: one update to enqueue: (kind, user id, argument); kind "text" (argument: the text),
#: "press" (argument: "<message id> <callback data>"), "lock" (argument: a message id:
#: press that message's Lock/Unlock button as it is now) or "latest" (argument: a prefix of
#: callback data: press the latest button of the chat whose data starts with it)
Item = tuple[str, int, str]


#: what every bench user sends first (each causes one bot message)
ONBOARDING = (
    "/start",
    "/cancel",
    "/add cs 3 Read SICP chapter 3",
    "/add ibm 2 Write the design doc",
    "/nba",
)


class _Arrivals:
    """In the emulator process: when each chat's bot messages arrived ("sent" or "edited"),
    timed by the emulator's listener while it serves the request (the moment the reply
    reaches "Telegram")."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self._cond = threading.Condition()
        self.times: dict[int, list[float]] = defaultdict(list)
        emu.subscribe(self._on_event)

    def _on_event(self, event: str, message: SentMessage) -> None:
        now = time.perf_counter()
        if event in ("sent", "edited"):
            with self._cond:
                self.times[message.chat_id].append(now)
                self._cond.notify_all()

    def count(self, chat_id: int) -> int:
        with self._cond:
            return len(self.times[chat_id])

    def wait(self, targets: dict[int, int], timeout: float) -> dict[int, float]:
        """Wait until each chat has its target count; the arrival time of each target."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: all(len(self.times[c]) >= n for c, n in targets.items()), timeout
            )
            if not done:
                short = {
                    c: len(self.times[c]) for c, n in targets.items() if len(self.times[c]) < n
                }
                raise TimeoutError(f"bot messages per chat {short}, expected {targets}")
            return {c: self.times[c][n - 1] for c, n in targets.items()}


def latest_button(emu: BotApiEmulator, chat_id: int, prefix: str) -> tuple[int, str]:
    """The message id and callback data of the latest message of ``chat_id`` with a button
    whose data starts with ``prefix`` (as the message is now)."""
    for msg in reversed(emu.sent(chat_id)):
        for row in emu.message(chat_id, msg.message_id).buttons:
            for _text, data in row:
                if data and data.startswith(prefix):
                    return msg.message_id, data
    raise LookupError(f"no message with a {prefix!r} button in chat {chat_id}")


def _enqueue(emu: BotApiEmulator, items: list[Item]) -> None:
    for kind, user, text in items:
        if kind == "text":
            emu.send_text(user, text, first_name=f"U{user}")
        elif kind == "lock":
            emu.press(user, int(text), lock_button(emu, user, int(text)), strict=False)
        elif kind == "latest":  # the latest button whose data starts with the argument
            message_id, data = latest_button(emu, user, text)
            emu.press(user, message_id, data, strict=False)
        else:
            message_id, data = text.split(" ", 1)
            emu.press(user, int(message_id), data, strict=False)


def _timed(
    emu: BotApiEmulator, arrivals: _Arrivals, items: list[Item], timeout: float, messages: int
) -> Any:
    """Enqueue ``items`` (each causing ``messages`` bot messages), wait for those messages;
    return the enqueue time and each chat's last arrival, in this process's clock."""
    targets: Counter[int] = Counter({user: arrivals.count(user) for _, user, _ in items})
    for _, user, _ in items:
        targets[user] += messages
    started = time.perf_counter()
    _enqueue(emu, items)
    return started, arrivals.wait(dict(targets), timeout)


class _Flood:
    """In the emulator process: one user sending ``per_second`` copies of a text, in steps
    of 10 ms, on a thread of its own, until ``total`` are sent or it is stopped."""

    def __init__(
        self, emu: BotApiEmulator, user: int, text: str, per_second: float, total: int
    ) -> None:
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(emu, user, text, per_second, total), daemon=True
        )
        self._thread.start()

    def _run(
        self, emu: BotApiEmulator, user: int, text: str, per_second: float, total: int
    ) -> None:
        started = time.perf_counter()
        while self.sent < total and not self._stop.wait(0.01):
            due = min(total, int((time.perf_counter() - started) * per_second)) - self.sent
            for _ in range(due):
                emu.send_text(user, text, first_name=f"U{user}")
            self.sent += due

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.sent


def _emulator_process(conn: Connection) -> None:
    """Child process: serve a BotApiEmulator and answer the parent's requests on ``conn``."""
    with BotApiEmulator() as emu:
        arrivals = _Arrivals(emu)
        conn.send((emu.token, emu.base_url, emu.file_base_url))
        flood: _Flood | None = None
        while True:
            request, arg = conn.recv()
            if request == "stop":
                conn.send(None)
                return
            if request == "flood_start":  # (user, text, per second, total)
                flood = _Flood(emu, *arg)
                conn.send(None)
                continue
            if request == "flood_stop":  # how many the flood sent
                conn.send(flood.stop() if flood is not None else 0)
                flood = None
                continue
            try:
                conn.send(_answer(emu, arrivals, request, arg))
            except Exception as exc:  # handed to the parent, which raises it
                conn.send(exc)


def _answer(emu: BotApiEmulator, arrivals: _Arrivals, request: str, arg: Any) -> Any:
    if request == "enqueue":
        _enqueue(emu, arg)
        return len(arg)
    if request == "timed":  # (items, timeout, messages)
        return _timed(emu, arrivals, *arg)
    if request == "queued_then_timed":  # (untimed items first, then timed items, timeout)
        first, items, timeout = arg
        _enqueue(emu, first)
        return _timed(emu, arrivals, items, timeout, 1)
    if request == "lock_buttons":
        found = {}
        for user in arg:
            msg = nba_message(emu, user)
            found[user] = (msg.message_id, lock_button(emu, user, msg.message_id))
        return found
    if request == "calls":
        return len(emu.calls())
    if request == "pending":  # updates the bot has not fetched (confirmed) yet
        return emu.pending_updates
    if request == "failed_calls":
        failed: Counter[str] = Counter()
        for call in emu.calls()[arg:]:
            if not call.ok:
                reason = (call.description or "").split(":")[-1].strip()[:50]
                failed[f"{call.method} {call.status} {reason}"] += 1
        return failed
    if request == "count_text":
        return sum(1 for m in emu.sent() if arg in m.plain_text)
    raise ValueError(f"unknown request {request!r}")


class RemoteEmulator:
    """The Bot API emulator in a child process: its HTTP serving does not compete with the
    bot for this process's GIL, as Telegram would not. Driven over a pipe."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_emulator_process, args=(child,), daemon=True)
        self.process.start()
        self.token, self.base_url, self.file_base_url = self._conn.recv()
        self._lock = threading.Lock()

    def call(self, request: str, arg: Any = None) -> Any:
        with self._lock:
            self._conn.send((request, arg))
            answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def acall(self, request: str, arg: Any = None) -> Any:
        """:meth:`call` in a thread, so the bot's event loop keeps running meanwhile."""
        return await asyncio.to_thread(self.call, request, arg)

    async def timed(
        self, items: list[Item], timeout: float = 60.0, messages: int = 1
    ) -> tuple[float, dict[int, float]]:
        """Enqueue ``items``, each causing ``messages`` bot messages, and wait for those: the
        enqueue time and, per chat, the arrival of its last one (the emulator's clock)."""
        started, arrived = await self.acall("timed", (items, timeout, messages))
        return started, arrived

    async def onboard(self, users: list[int]) -> dict[int, int]:
        """Each user: /start, /cancel (ends onboarding), two NBAs, /nba (a step for all users,
        then the next). Returns each user's /nba message id (the one the button benches press)."""
        for text in ONBOARDING:
            await self.timed([("text", user, text) for user in users])
        found = await self.acall("lock_buttons", users)
        return {user: message_id for user, (message_id, _) in found.items()}

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self.call("stop")
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
