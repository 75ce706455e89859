"""Fairness: another user's /help while one user floods the bot, against /help at rest.

    python bench/fairness.py [--rest 30] [--samples 30] [--rate 1000] [--gap 0.05]
                             [--rounds 3] [--flood 1600] [--rate-limited] [--database-url DSN]

The product's Application (``bot.app.build_application``, concurrent updates as shipped: one
slot per pool connection) runs against the local Bot API emulator over HTTP (in a process of
its own, ``benchlib.RemoteEmulator``), long polling with poll interval 0, on a fresh database.
One user, the flooder, is set up (/start, /cancel, two NBAs, /nba). Other users send /help
(no database work), one at a time, each timed from its enqueueing in the emulator to its
answer reaching the emulator. The overall 30 messages/s bucket of the rate limiter is raised,
as in the other benches, so what is measured is the bot's own scheduling (``--rate-limited``:
the limiter as shipped).

1. At rest: ``--rest`` /help.
2. During a flood: the flooder sends ``--flood`` /status (one transaction each) at ``--rate``
   updates per second, from a thread of the emulator's process, far faster than one user's
   updates are handled (they run one after the other); meanwhile ``--samples`` /help,
   ``--gap`` seconds apart. Then the bot is left to finish.
3. Behind a queued flood: ``--rounds`` times, ``--flood`` /status of the flooder are queued at
   once and a /help right behind them (the bot reads, and PTB parses, every update ahead of
   it); the bot is left to finish between rounds.

The script prints each phase's p50 and p90, the flooder's updates handled and "slow down"
replies, the ratio of phase 3 to phase 1, and last ``ratio_p50_flood_vs_rest=<phase 2 p50 /
phase 1 p50>`` (target: at most 3).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from benchlib import (
    BenchDatabase,
    Item,
    RemoteEmulator,
    Tracker,
    add_database_url,
    bot_running,
    on_fresh_database,
    percentile,
    print_machine,
)

FLOODER = 300_001
OTHERS = 310_001
FLOOD_TEXT = "/status"


async def help_after(emu: RemoteEmulator, user: int, queued: list[Item] | None = None) -> float:
    """One /help of ``user`` (behind ``queued``, enqueued first): seconds to its answer."""
    started, arrived = await emu.acall(
        "queued_then_timed", (queued or [], [("text", user, "/help")], 600.0)
    )
    return float(arrived[user] - started)


async def settle(emu: RemoteEmulator, app: Any, timeout: float = 900.0) -> None:
    """Wait until no update is pending in the emulator or in the bot."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if (
            await emu.acall("pending") == 0
            and app.update_queue.empty()
            and app.update_processor.current_concurrent_updates == 0
        ):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the bot did not finish the flood")


def line(name: str, values: list[float]) -> str:
    return (
        f"{name}: n={len(values)} p50={1000 * percentile(values, 50):.1f} ms"
        f" p90={1000 * percentile(values, 90):.1f} ms max={1000 * max(values):.1f} ms"
    )


async def bench(db: BenchDatabase, args: argparse.Namespace) -> float:
    tracker = Tracker()
    with RemoteEmulator() as emu:
        async with bot_running(
            emu,
            db.dsn,
            concurrent_updates=True,
            before_start=tracker.install,
            rate_limited=args.rate_limited,
        ) as app:
            await emu.onboard([FLOODER])
            others = [OTHERS + n for n in range(10)]
            for user in others:  # warm-up
                await help_after(emu, user)
            rest = [await help_after(emu, others[n % 10]) for n in range(args.rest)]

            handled_before = tracker.processed
            slow_before = await emu.acall("count_text", "Slow down")
            started = time.perf_counter()
            await emu.acall("flood_start", (FLOODER, FLOOD_TEXT, args.rate, args.flood))
            during = []
            for n in range(args.samples):
                await asyncio.sleep(args.gap)
                during.append(await help_after(emu, others[n % 10]))
            flood_sent = await emu.acall("flood_stop")
            flood_seconds = min(time.perf_counter() - started, flood_sent / args.rate)
            await settle(emu, app)
            handled = tracker.processed - handled_before - len(during)
            slow = await emu.acall("count_text", "Slow down") - slow_before

            behind = []
            for n in range(args.rounds):
                queued: list[Item] = [("text", FLOODER, FLOOD_TEXT)] * args.flood
                behind.append(await help_after(emu, others[n % 10], queued))
                await settle(emu, app)
            slow_behind = await emu.acall("count_text", "Slow down") - slow_before - slow

    rest_p50 = percentile(rest, 50)
    print(line("/help at rest", rest))
    print(
        f"flood: {flood_sent} {FLOOD_TEXT} in {flood_seconds:.1f} s ({args.rate:g}/s),"
        f" flooder_updates_handled={handled} slow_down_replies={slow}"
    )
    print(line("/help during the flood", during))
    print(
        line(f"/help behind {args.flood} queued updates", behind)
        + f" slow_down_replies={slow_behind}"
    )
    print(f"ratio_p50_behind_queued_flood_vs_rest={percentile(behind, 50) / rest_p50:.2f}")
    return percentile(during, 50) / rest_p50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", type=int, default=30, help="/help at rest (default 30)")
    parser.add_argument("--samples", type=int, default=30, help="/help in the flood (30)")
    parser.add_argument("--rate", type=float, default=1000, help="flood updates/s (1000)")
    parser.add_argument("--gap", type=float, default=0.05, help="s between /help (0.05)")
    parser.add_argument("--rounds", type=int, default=3, help="queued floods (default 3)")
    parser.add_argument("--flood", type=int, default=1600, help="flood size (default 1600)")
    parser.add_argument(
        "--rate-limited", action="store_true", help="the rate limiter's 30 messages/s as shipped"
    )
    add_database_url(parser)
    args = parser.parse_args(argv)
    print_machine("python bench/fairness.py", sys.argv[1:] if argv is None else argv)
    ratio = on_fresh_database(args.database_url, lambda db: bench(db, args))
    print(f"ratio_p50_flood_vs_rest={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
