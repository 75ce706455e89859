"""Command latency against a bare echo handler, in one run, over HTTP, on real PostgreSQL.

    python bench/latency.py [--n 200] [--users 50] [--warmup 20] [--database-url DSN] [--sql]
                            [--transaction-pooler] [--db-delay-ms N [--delay-rounds 30]]

The product's Application (``bot.app.build_application``) runs against the local Bot API
emulator (``bot.local_api``) over HTTP, long polling with poll interval 0, on a fresh
database (the embedded PostgreSQL in a temporary folder unless ``--database-url`` names a
server whose maintenance connection string it is). A ``/echo`` CommandHandler is added in group
-2 (before the private-chat gate); it replies with its text and stops.

Each of ``--users`` users sends /start, /cancel, adds two NBAs and asks /nba. Then, after
``--warmup`` unrecorded rounds, ``--n`` rounds each send, from rotating users, one update at
a time and waiting for the bot to be idle again: echo, /nba, echo, /log, echo, /status, echo,
the Lock/Unlock button of that user's /nba message, and two references that are not main
commands: echo, /help (no database work), echo, /nba cs (one theater instead of two).
Latency is the time from enqueueing the update in the emulator to the emulator receiving the
message the update causes (the button: the editMessageText, sent together with the
answerCallbackQuery), taken by an emulator listener (``BotApiEmulator.subscribe``). The
overall 30 messages/s bucket of the rate limiter is raised for the run (its code stays in the
path): this bench sends one update at a time far faster than that, and would otherwise
measure the limiter.

Transactions, round trips and statements per command, and the time spent waiting for
PostgreSQL and for Bot API requests, are counted in this process by wrapping the unit of
work, psycopg and PTB's HTTP request (``benchlib.install_counters``); the transactions are
checked against ``pg_stat_database`` (xact_commit + xact_rollback) for the whole run.
``--sql`` lists each command's statements with their mean time.

The last line is ``ratio_p50_max=<largest command p50 / echo p50>``.

``--db-delay-ms N`` adds, after that table, what a database N ms away costs: the bot talks to
PostgreSQL through a TCP proxy in a child process (``benchlib.DelayProxy``) that holds each
chunk N ms in each direction, so one round trip costs 2N ms. Four runs of the bot, each with
users of its own on the same database: a direct connection and ``DB_TRANSACTION_POOLER=on``,
each with no delay (the same proxy, 0 ms) and with N ms. Each run sends ``--delay-rounds``
rounds (after a few unrecorded ones) of /nba, /status, /log, /add, /reflect, a Lock press
(the /nba message's Lock/Unlock), a Done press (on the reply of the /add just before, same
user) and a guided-form step (the typed action after ``/log cs 25``, which saves the log),
one update at a time. Per command it prints the p50 without and with the delay, the round
trips derived from them, ``(p50 with delay - p50 without) / 2N``, and the round trips
counted in this process. The last lines are ``derived_round_trips_max_direct=<x>`` and
``derived_round_trips_max_pooler=<y>``, before ``ratio_p50_max``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict

import benchlib
from benchlib import (
    AnyApp,
    BenchDatabase,
    DbCounters,
    DelayProxy,
    Item,
    RemoteEmulator,
    Tracker,
    add_database_url,
    add_echo,
    bot_running,
    classify_update,
    install_counters,
    on_fresh_database,
    percentile,
    print_machine,
)
from telegram import Update

COMMANDS = ("/nba", "/log", "/status", "button")
ECHO = "/echo"
#: measured too, for reference, not main commands: /help (no database work), /nba of one
#: theater (one theater read and drawn instead of two), and a guided /log: the command that
#: asks what was done ("/log ask") and the typed answer that saves it ("step", from the same
#: user right after)
REFERENCE = ("/help", "/nba cs", "/log ask", "step")
_ASK = "/log cs 25"
_STEP = "bench step"


def classify(update: Update) -> str:
    """The kind of an update as this bench names it (``/nba cs`` apart from ``/nba``)."""
    text = update.effective_message.text if update.effective_message else None
    if text == _ASK:
        return "/log ask"
    if text is not None and text.startswith(_STEP):
        return "step"
    return text if text in REFERENCE else classify_update(update)


def item(kind: str, user: int, round_no: int, nba_ids: dict[int, int]) -> Item:
    """The update of ``kind`` from ``user``; a kind ending in "+rt" is that command with the
    extra round trips of ``benchlib.EXTRA`` (armed here, so the next unit of work adds them)."""
    if kind.endswith("+rt"):
        assert benchlib.EXTRA is not None
        benchlib.EXTRA.armed = True
        return item(kind.removesuffix("+rt"), user, round_no, nba_ids)
    if kind in (ECHO, "/echo2"):
        return ("text", user, f"{kind} ping {round_no}")
    if kind == "/log":
        return ("text", user, f"/log cs 25 bench round {round_no}")
    if kind == "/log ask":
        return ("text", user, _ASK)
    if kind == "step":
        return ("text", user, f"{_STEP} {round_no}")
    if kind in ("button", "lock"):  # its current Lock/Unlock button, looked up when sent
        return ("lock", user, str(nba_ids[user]))
    if kind == "/add":
        return ("text", user, f"/add cs 3 bench item {round_no}")
    if kind == "/reflect":
        return ("text", user, f"/reflect cs bench evidence {round_no}")
    if kind == "done":  # the Done of cs on the latest message that has one (the /add's reply)
        return ("latest", user, "nba:done:cs:")
    return ("text", user, kind)


async def one(
    emu: RemoteEmulator,
    tracker: Tracker,
    kind: str,
    user: int,
    round_no: int,
    nba_ids: dict[int, int],
) -> float:
    """Send one update, wait for its reply and for the bot to be idle; latency in ms."""
    messages = 2 if kind == "/echo2" else 1  # /echo2: the sensitivity bench's two replies
    started, arrived = await emu.timed([item(kind, user, round_no, nba_ids)], 15, messages)
    await asyncio.wait_for(tracker.idle.wait(), 15)
    return 1000 * (arrived[user] - started)


async def rounds(
    emu: RemoteEmulator,
    tracker: Tracker,
    users: list[int],
    nba_ids: dict[int, int],
    count: int,
    first: int,
    kinds: tuple[str, ...] = (*COMMANDS, *REFERENCE),
) -> dict[str, list[float]]:
    """``count`` rounds: for each kind, an echo then that kind, each from the next user."""
    samples: dict[str, list[float]] = defaultdict(list)
    step = 0
    for r in range(first, first + count):
        for kind in kinds:
            if kind != "step":  # the answer comes from the user who was just asked
                user = users[step % len(users)]
                step += 1
            samples[ECHO].append(await one(emu, tracker, ECHO, user, r, nba_ids))
            samples[kind].append(await one(emu, tracker, kind, user, r, nba_ids))
    return samples


def report(
    samples: dict[str, list[float]],
    tracker: Tracker,
    counters: DbCounters,
    show_sql: bool,
) -> float:
    """Print the table; return the largest p50 ratio of the main commands."""
    echo_p50 = percentile(samples[ECHO], 50)
    print()
    print(
        f"{'update':<8} {'n':>4} {'p50_ms':>7} {'p95_ms':>7} {'ratio_p50':>9}"
        f" {'handler_p50_ms':>14} {'tx/cmd':>6} {'round_trips/cmd':>15}"
        f" {'statements/cmd':>14} {'db_ms/cmd':>9} {'api_calls/cmd':>13} {'api_ms/cmd':>10}"
    )
    worst = 0.0
    for kind in (ECHO, *COMMANDS, *REFERENCE):
        values = samples[kind]
        n = len(values)
        p50, p95 = percentile(values, 50), percentile(values, 95)
        ratio = p50 / echo_p50
        if kind in COMMANDS:
            worst = max(worst, ratio)
        print(
            f"{kind:<8} {n:>4} {p50:>7.2f} {p95:>7.2f} {ratio:>9.2f}"
            f" {percentile(tracker.handler_ms.get(kind, []), 50):>14.2f}"
            f" {counters.transactions[kind] / n:>6.2f}"
            f" {counters.round_trips[kind] / n:>15.2f}"
            f" {counters.statements[kind] / n:>14.2f}"
            f" {1000 * counters.db_seconds[kind] / n:>9.2f}"
            f" {counters.api_calls[kind] / n:>13.2f}"
            f" {1000 * counters.api_seconds[kind] / n:>10.2f}"
        )
    total_updates = sum(len(v) for v in samples.values())
    background = counters.transactions["background"]
    print(
        "(ratio_p50 = p50 / echo p50, the target's ratio; /help (no database work), /nba cs"
        " (one theater), /log ask (a /log that asks what was done) and step (the typed answer,"
        " which saves the log) are references, not main commands; db_ms and api_ms are means of"
        " the time spent waiting for PostgreSQL and for Bot API requests: the button's two"
        " requests overlap, so its api_ms adds both)"
    )
    print(
        f"background work during the measured rounds (persistence flushes, jobs): {background}"
        f" transactions, {counters.round_trips['background']} round trips"
        f" = {background / total_updates:.2f} transactions per update"
    )
    if show_sql:
        for kind in COMMANDS:
            n = len(samples[kind])
            print(f"\nstatements of {kind} (per update; mean ms per execution):")
            seconds = counters.text_seconds[kind]
            for text, times in counters.texts.get(kind, Counter()).most_common():
                print(f"  {times / n:5.2f} x {1000 * seconds[text] / times:5.2f} ms  {text}")
        print("\nstatements of background work (whole measured phase):")
        for text, times in counters.texts.get("background", Counter()).most_common():
            print(f"  {times:5d} x {text}")
    return worst


async def bench(db: BenchDatabase, args: argparse.Namespace) -> float:
    counters = install_counters()
    tracker = Tracker(classify)

    def prepare(app: AnyApp) -> None:
        add_echo(app)
        tracker.install(app)

    xacts_before = db.xacts()
    tx_before, conn_before = counters.all_transactions, counters.all_connections
    with RemoteEmulator() as emu:
        pooler = {"db_transaction_pooler": "on"} if args.transaction_pooler else {}
        async with bot_running(emu, db.dsn, before_start=prepare, **pooler) as app:
            users = list(range(100_001, 100_001 + args.users))
            nba_ids = await emu.onboard(users)
            await app.update_persistence()  # write the set-up's conversation states now
            await rounds(emu, tracker, users, nba_ids, args.warmup, 0)
            counters.reset()
            tracker.handler_ms.clear()
            started = time.perf_counter()
            samples = await rounds(emu, tracker, users, nba_ids, args.n, args.warmup)
            elapsed = time.perf_counter() - started
            measured = counters.copy()
    # The pool is closed now, so the server has flushed the backends' statistics.
    await asyncio.sleep(0.5)
    server_xacts = db.xacts() - xacts_before
    total = sum(len(v) for v in samples.values())
    print(
        f"users={args.users} rounds={args.n} warmup_rounds={args.warmup}"
        f" updates_measured={total} in {elapsed:.1f} s"
    )
    worst = report(samples, tracker, measured, args.sql)
    counted = counters.all_transactions - tx_before
    connections = counters.all_connections - conn_before
    print(
        "check: pg_stat_database xact_commit+xact_rollback delta for the bench database over"
        f" the whole run = {server_xacts}; counted in process: {counted} transactions +"
        f" {connections} connections opened (each backend start commits one) ="
        f" {counted + connections}"
    )
    return worst


# --- a database some milliseconds away ---------------------------------------------------------

#: what the delayed runs measure, in this order, one update at a time
DELAY_KINDS = ("/nba", "/status", "/log", "/add", "/reflect", "lock", "done", "step")
#: the order they are sent in: the Done press right after the /add of its user
_DELAY_ORDER = ("/nba", "/status", "/log", "/add", "done", "/reflect", "lock", "step")


def classify_delayed(update: Update) -> str:
    """The kind of an update in the delayed runs (the presses by their verb)."""
    query = update.callback_query
    if query is not None:
        data = query.data or ""
        return "done" if data.startswith("nba:done:") else "lock"
    return classify(update)


async def delayed_rounds(
    emu: RemoteEmulator,
    tracker: Tracker,
    users: list[int],
    nba_ids: dict[int, int],
    count: int,
    first: int,
) -> dict[str, list[float]]:
    """``count`` rounds of :data:`DELAY_KINDS`, each from the next user; the Done press from
    the user who just sent /add, the step after an unrecorded ``/log cs 25`` of its user."""
    samples: dict[str, list[float]] = defaultdict(list)
    step = 0
    for r in range(first, first + count):
        for kind in _DELAY_ORDER:
            if kind != "done":
                user = users[step % len(users)]
                step += 1
            if kind == "step":
                await one(emu, tracker, "/log ask", user, r, nba_ids)
            samples[kind].append(await one(emu, tracker, kind, user, r, nba_ids))
    return samples


async def delayed_run(
    db: BenchDatabase, args: argparse.Namespace, pooler: bool, delay_ms: float, first_user: int
) -> tuple[dict[str, float], dict[str, float]]:
    """One run of the bot behind a :class:`DelayProxy` of ``delay_ms`` each way: each
    command's p50 (ms) and round trips counted per command."""
    counters = install_counters()
    tracker = Tracker(classify_delayed)
    settings = {"db_transaction_pooler": "on" if pooler else "off"}
    async with DelayProxy(db.dsn, delay_ms / 1000) as proxy:
        dsn = proxy.dsn(db.dsn)
        with RemoteEmulator() as emu:
            async with bot_running(emu, dsn, before_start=tracker.install, **settings):
                users = list(range(first_user, first_user + args.delay_users))
                nba_ids = await emu.onboard(users)
                await delayed_rounds(emu, tracker, users, nba_ids, args.delay_warmup, 0)
                counters.reset()
                samples = await delayed_rounds(
                    emu, tracker, users, nba_ids, args.delay_rounds, args.delay_warmup
                )
                measured = counters.copy()
    p50 = {kind: percentile(samples[kind], 50) for kind in DELAY_KINDS}
    trips = {kind: measured.round_trips[kind] / len(samples[kind]) for kind in DELAY_KINDS}
    return p50, trips


async def delayed(db: BenchDatabase, args: argparse.Namespace) -> None:
    """The table of ``--db-delay-ms``: direct and behind the pooler setting, each without and
    with the delay."""
    delay = args.db_delay_ms
    print()
    print(
        f"database {delay:g} ms away each way (a round trip {2 * delay:g} ms), through a TCP"
        f" proxy in the bench: users={args.delay_users} rounds={args.delay_rounds}"
        f" warmup_rounds={args.delay_warmup}"
    )
    print(
        f"{'update':<9} {'connection':<10} {'p50_ms_0':>8} {'p50_ms_delay':>12}"
        f" {'derived_round_trips':>19} {'counted_round_trips':>19}"
    )
    worst: dict[str, float] = {}
    first_user = 200_001
    for mode in ("direct", "pooler"):
        runs = []
        for ms in (0.0, delay):
            runs.append(await delayed_run(db, args, mode == "pooler", ms, first_user))
            first_user += args.delay_users
        (base, _), (slow, trips) = runs
        for kind in DELAY_KINDS:
            derived = (slow[kind] - base[kind]) / (2 * delay)
            worst[mode] = max(worst.get(mode, 0.0), derived)
            print(
                f"{kind:<9} {mode:<10} {base[kind]:>8.2f} {slow[kind]:>12.2f}"
                f" {derived:>19.2f} {trips[kind]:>19.2f}"
            )
    print(
        "(derived_round_trips = (p50 with the delay - p50 without) / (2 x delay); counted:"
        " server round trips per command in the delayed run; pooler: DB_TRANSACTION_POOLER=on;"
        " lock: the Lock/Unlock press of /nba, done: the Done press on the /add's reply, step:"
        " the typed action that saves a guided /log)"
    )
    print(f"derived_round_trips_max_direct={worst['direct']:.2f}")
    print(f"derived_round_trips_max_pooler={worst['pooler']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="measured rounds (default 200)")
    parser.add_argument("--users", type=int, default=50, help="distinct users (default 50)")
    parser.add_argument("--warmup", type=int, default=20, help="unrecorded rounds (default 20)")
    add_database_url(parser)
    parser.add_argument("--sql", action="store_true", help="list the statements per command")
    parser.add_argument(
        "--transaction-pooler",
        action="store_true",
        help="run the pool as behind a transaction pooler (DB_TRANSACTION_POOLER=on: no"
        " prepared statements, no pipelines), to see what that costs",
    )
    parser.add_argument(
        "--db-delay-ms",
        type=float,
        default=None,
        help="also measure with PostgreSQL this many ms away in each direction (a delaying TCP"
        " proxy in the bench), direct and with DB_TRANSACTION_POOLER=on",
    )
    parser.add_argument(
        "--delay-rounds", type=int, default=30, help="measured rounds per delayed run (30)"
    )
    parser.add_argument(
        "--delay-warmup", type=int, default=3, help="unrecorded rounds per delayed run (3)"
    )
    parser.add_argument(
        "--delay-users", type=int, default=10, help="distinct users per delayed run (10)"
    )
    args = parser.parse_args(argv)
    print_machine("python bench/latency.py", sys.argv[1:] if argv is None else argv)

    async def everything(db: BenchDatabase) -> float:
        worst = await bench(db, args)
        if args.db_delay_ms:
            await delayed(db, args)
        return worst

    worst = on_fresh_database(args.database_url, everything)
    print(f"ratio_p50_max={worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
