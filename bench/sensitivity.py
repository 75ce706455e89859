"""What one more database round trip, or one more Bot API call, adds to a command's latency.

    python bench/sensitivity.py [--n 150] [--users 30] [--extra 6] [--database-url DSN]

Same set-up and method as ``bench/latency.py`` (the real Application, the emulator over HTTP,
real PostgreSQL, one update at a time, each preceded by an echo). Interleaved in each round:

* ``/echo2``: the echo handler sending two messages one after the other instead of one, so
  ``p50(/echo2) - p50(/echo)`` is the cost of one more sequential Bot API call;
* ``/log`` as it ships, and ``/log+rt``: the same command with ``--extra`` ``select 1``
  statements added inside its transaction, so ``(p50(/log+rt) - p50(/log)) / extra`` is the
  cost of one more database round trip inside a command. (/log, a write, runs in a
  transaction of several statements; /status is now one pipelined round trip with no room
  for more.)

These two prices turn "this fix removes k round trips / one API call from the critical path"
into an expected gain in milliseconds (docs/performance.md).

The last line is ``ms_per_round_trip=<n>``.
"""

from __future__ import annotations

import argparse
import sys

from benchlib import (
    AnyApp,
    BenchDatabase,
    RemoteEmulator,
    Tracker,
    add_database_url,
    add_echo,
    bot_running,
    extra_round_trips,
    install_counters,
    on_fresh_database,
    percentile,
    print_machine,
)
from latency import ECHO, rounds

KINDS = ("/echo2", "/log", "/log+rt")


async def bench(db: BenchDatabase, args: argparse.Namespace) -> float:
    install_counters()
    extra = extra_round_trips(args.extra)
    tracker = Tracker()

    def prepare(app: AnyApp) -> None:
        add_echo(app)
        tracker.install(app)

    with RemoteEmulator() as emu:
        async with bot_running(emu, db.dsn, before_start=prepare):
            users = list(range(300_001, 300_001 + args.users))
            nba_ids = await emu.onboard(users)
            await rounds(emu, tracker, users, nba_ids, args.warmup, 0, KINDS)
            extra.added = 0
            samples = await rounds(emu, tracker, users, nba_ids, args.n, args.warmup, KINDS)
    p50 = {kind: percentile(values, 50) for kind, values in samples.items()}
    print(f"users={args.users} rounds={args.n} extra round trips per /log+rt={args.extra}")
    print(f"{'update':<11} {'n':>5} {'p50_ms':>7} {'p95_ms':>7}")
    for kind in (ECHO, *KINDS):
        values = samples[kind]
        print(f"{kind:<11} {len(values):>5} {p50[kind]:>7.2f} {percentile(values, 95):>7.2f}")
    assert extra.added == args.extra * len(samples["/log+rt"]), "extra round trips not run"
    per_call = p50["/echo2"] - p50[ECHO]
    per_trip = (p50["/log+rt"] - p50["/log"]) / args.extra
    print(f"ms_per_api_call={per_call:.2f}")
    return float(per_trip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150, help="measured rounds (150)")
    parser.add_argument("--users", type=int, default=30, help="distinct users (30)")
    parser.add_argument("--warmup", type=int, default=15, help="unrecorded rounds (15)")
    parser.add_argument("--extra", type=int, default=6, help="extra round trips (6)")
    add_database_url(parser)
    args = parser.parse_args(argv)
    print_machine("python bench/sensitivity.py", sys.argv[1:] if argv is None else argv)
    per_trip = on_fresh_database(args.database_url, lambda db: bench(db, args))
    print(f"ms_per_round_trip={per_trip:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
