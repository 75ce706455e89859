"""Throughput with concurrent updates: a burst of updates from many users, updates per second.

    python bench/throughput.py [--n 1200] [--users 200] [--concurrency 16] [--pool-size N]
                               [--echo-n 600] [--rate-limited-n 150] [--database-url DSN]

The product's Application (``bot.app.build_application`` with ``concurrent_updates``) runs
against the local Bot API emulator over HTTP, long polling with poll interval 0, on a fresh
database (the embedded PostgreSQL in a temporary folder unless ``--database-url`` names a
server's maintenance connection string). Each of ``--users`` users sends /start, /cancel,
adds two NBAs and asks /nba. Then ``--n`` updates are enqueued at once, round-robin over the
users, an equal mix of /nba, /log, /status and the Lock/Unlock button of the user's /nba
message, and the clock runs from the first enqueue until the bot has finished handling the
last of them (every reply sent). A warm-up burst of a fifth of that comes first. Then, on
the same bot, ``--echo-n`` updates to a bare ``/echo`` handler: the ceiling of PTB and its HTTP
client on this machine, without any database work.

The emulator runs in a process of its own (``benchlib.RemoteEmulator``): in a thread of the
bot's process its HTTP serving would take the bot's GIL, which Telegram does not. Concurrency
defaults to 16 (about the pool's 10 connections plus the updates busy with Bot API calls):
the fastest setting measured; PTB's ``True`` (256) is slower and, in a burst, makes updates
wait more than the pool's 3 s timeout for a connection (docs/performance.md).

The product's rate limiter sends at most 30 messages per second overall (Telegram's
broadcast limit, SPEC §5): with it no bot replying to every update can exceed about 30
updates/s, whatever its speed. So the measured burst runs with that bucket raised (the
limiter stays in the path) and reports the bot's own capacity; a second, smaller burst
(``--rate-limited-n``, 0 to skip) runs with the limiter as shipped and is reported as
``updates_per_second_rate_limited``.

The last line is ``updates_per_second=<n>`` (the capacity, limiter bucket raised).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from benchlib import (
    AnyApp,
    BenchDatabase,
    Item,
    RemoteEmulator,
    Tracker,
    add_database_url,
    add_echo,
    bot_running,
    cpu_seconds,
    install_counters,
    on_fresh_database,
    percentile,
    print_machine,
    set_overall_rate,
)
from telegram.constants import FloodLimit

KINDS = ("/nba", "/log", "/status", "button")
SETUP = ("/start", "/cancel", "/add cs 3 Read SICP chapter 3", "/add ibm 2 Write the design doc")


class Burst:
    """Builds bursts of the mix, user by user, pressing each user's Lock/Unlock in turn."""

    def __init__(self, users: list[int], buttons: dict[int, tuple[int, str]]) -> None:
        self.users = users
        self.buttons = buttons
        self.presses: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()

    def items(self, count: int, round_no: int) -> list[Item]:
        items: list[Item] = []
        for i in range(count):
            user = self.users[i % len(self.users)]
            kind = KINDS[(i + i // len(self.users)) % len(KINDS)]
            self.kinds[kind] += 1
            if kind == "/log":
                items.append(("text", user, f"/log cs 25 burst {round_no}.{i}"))
            elif kind == "button":
                # Lock, then Unlock, ... (not strict: a press may overtake the previous redraw)
                message_id, data = self.buttons[user]
                verb = ("nba:lock:", "nba:unlock:")[self.presses[user] % 2]
                self.presses[user] += 1
                target = data.split(":", 2)[2]  # <arm>:<item>
                items.append(("press", user, f"{message_id} {verb}{target}"))
            else:
                items.append(("text", user, kind))
        return items


async def run_burst(emu: RemoteEmulator, tracker: Tracker, items: list[Item]) -> float:
    """Enqueue ``items`` at once; return the seconds until the bot has handled them all."""
    base = tracker.processed
    started = time.perf_counter()
    await emu.acall("enqueue", items)
    done = await tracker.wait_processed(base + len(items), timeout=max(60.0, len(items) / 10))
    return done - started


async def onboard(emu: RemoteEmulator, tracker: Tracker, users: list[int]) -> None:
    """Each user: /start, /cancel, two NBAs, /nba (a step for all users, then the next)."""
    for text in (*SETUP, "/nba"):
        await run_burst(emu, tracker, [("text", user, text) for user in users])


def cpu_now(emu: RemoteEmulator, db: BenchDatabase) -> tuple[float, float, float]:
    """CPU seconds so far: this process (the bot), the emulator process, PostgreSQL."""
    return (
        sum(os.times()[:2]),
        cpu_seconds(emu.pid),
        sum(cpu_seconds(pid) for pid in db.postgres_pids()),
    )


async def bench(db: BenchDatabase, emu: RemoteEmulator, args: argparse.Namespace) -> float:
    counters = install_counters()
    counters.record_texts = False
    tracker = Tracker()
    concurrency: bool | int = True if args.concurrency == 256 else args.concurrency

    def prepare(app: AnyApp) -> None:
        add_echo(app)
        tracker.install(app)

    overrides = {"db_pool_max_size": args.pool_size} if args.pool_size else {}
    async with bot_running(
        emu, db.dsn, concurrent_updates=concurrency, before_start=prepare, **overrides
    ) as app:
        users = list(range(200_001, 200_001 + args.users))
        await onboard(emu, tracker, users)
        burst = Burst(users, await emu.acall("lock_buttons", users))
        await app.update_persistence()
        await run_burst(emu, tracker, burst.items(max(len(KINDS), args.n // 5), 0))  # warm-up
        await app.update_persistence()

        counters.reset()
        tracker.handler_ms.clear()
        burst.kinds.clear()
        items = burst.items(args.n, 1)
        calls_before = await emu.acall("calls")
        queued_before = await emu.acall("count_text", "reach the database")
        cpu_before = cpu_now(emu, db)
        elapsed = await run_burst(emu, tracker, items)
        cpu_after = cpu_now(emu, db)
        measured = counters.copy()
        handler = [ms for values in tracker.handler_ms.values() for ms in values]
        failed = await emu.acall("failed_calls", calls_before)
        queued = await emu.acall("count_text", "reach the database") - queued_before
        mix = " ".join(f"{k}={v}" for k, v in sorted(burst.kinds.items()))

        echo_rate: float | None = None
        if args.echo_n > 0:
            echo_cpu_before = cpu_now(emu, db)[0]
            echo_items: list[Item] = [
                ("text", users[i % len(users)], f"/echo ping {i}") for i in range(args.echo_n)
            ]
            echo_s = await run_burst(emu, tracker, echo_items)
            echo_cpu = cpu_now(emu, db)[0] - echo_cpu_before
            echo_rate = args.echo_n / echo_s

        limited: float | None = None
        if args.rate_limited_n > 0:
            set_overall_rate(app, FloodLimit.MESSAGES_PER_SECOND)
            limited_s = await run_burst(emu, tracker, burst.items(args.rate_limited_n, 2))
            limited = args.rate_limited_n / limited_s

    print(
        f"users={args.users} concurrent_updates={args.concurrency}"
        f" db_pool_max_size={args.pool_size or 'default (10)'}"
    )
    print(f"burst: {args.n} updates ({mix}) all handled in {elapsed:.2f} s")
    print(
        "handling time per update (process_update, waiting for the loop and the pool"
        f" included): p50={percentile(handler, 50):.1f} ms p95={percentile(handler, 95):.1f} ms"
    )
    own = [k for k in measured.transactions if k != "background"]
    print(
        f"database: {sum(measured.transactions[k] for k in own) / args.n:.2f} transactions and"
        f" {sum(measured.round_trips[k] for k in own) / args.n:.2f} round trips per update;"
        f" background (persistence flushes): {measured.transactions['background']} transactions"
    )
    bot_cpu, emu_cpu, pg_cpu = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
    print(
        f"cpu during the burst: bot process {bot_cpu:.2f} s ({1000 * bot_cpu / args.n:.2f} ms per"
        f" update), emulator process {emu_cpu:.2f} s, postgres {pg_cpu:.2f} s, over"
        f" {elapsed:.2f} s wall"
    )
    print(
        f"failed Bot API calls: {sum(failed.values())}{' ' + str(dict(failed)) if failed else ''};"
        f" replies saying the database is unreachable: {queued}"
    )
    if echo_rate is not None:
        print(
            f"the same bot, {args.echo_n} updates to the bare /echo handler (no database; the"
            f" ceiling of PTB + HTTP on this machine): {echo_rate:.1f} updates/s, bot process"
            f" {1000 * echo_cpu / args.echo_n:.2f} ms CPU per update"
        )
    if limited is not None:
        print(
            f"as shipped (AIORateLimiter, {FloodLimit.MESSAGES_PER_SECOND} messages/s overall),"
            f" {args.rate_limited_n} updates: updates_per_second_rate_limited={limited:.1f}"
        )
    return float(args.n / elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1200, help="updates in the burst (1200)")
    parser.add_argument("--users", type=int, default=200, help="distinct users (200)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="concurrent updates (16; 256 is PTB's True)"
    )
    parser.add_argument(
        "--pool-size", type=int, default=0, help="DB_POOL_MAX_SIZE (default: the setting's, 10)"
    )
    parser.add_argument(
        "--echo-n",
        type=int,
        default=600,
        help="updates in a burst to the bare /echo handler (600; 0 skips it)",
    )
    parser.add_argument(
        "--rate-limited-n",
        type=int,
        default=150,
        help="updates in the burst with the rate limiter as shipped (150; 0 skips it)",
    )
    add_database_url(parser)
    args = parser.parse_args(argv)
    print_machine("python bench/throughput.py", sys.argv[1:] if argv is None else argv)
    with RemoteEmulator() as emu:
        rate = on_fresh_database(args.database_url, lambda db: bench(db, emu, args))
    print(f"updates_per_second={rate:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
