"""Footprint: start-up time to ready and idle resident memory of ``python -m bot``.

    python bench/footprint.py [--n 3] [--idle 3]

The bot runs as it ships, ``python -m bot`` in a subprocess, with the embedded PostgreSQL in a
temporary ``DATA_DIR`` and ``TELEGRAM_BOT_TOKEN`` / ``TELEGRAM_API_BASE_URL`` pointing at the
Bot API emulator in this process. The data folder is initialised first (``python -m bot
migrate``: initdb and the migrations), and the server it leaves stopped.

Then ``--n`` times: start the bot with the database initialised but its server stopped (the
bot starts it, as after a reboot), time until its ``setMyCommands`` call reaches the emulator
(= ready: database up, migrations checked, pool open), let it idle ``--idle`` seconds, read
``VmRSS`` (and ``VmHWM``, the peak) of the bot process from ``/proc/<pid>/status`` and of the
PostgreSQL processes it runs (separate processes: reported apart, with their PSS, which counts
shared buffers once), stop it with SIGTERM and wait for the server to stop too. One more
start with the server already running shows what start-up costs without the server's.

Prints ``rss_mb=<median idle RSS of the bot process>`` and, last,
``startup_seconds=<median time to ready>``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchlib import ROOT, print_machine, pss_kb, status_kb
from benchlib import postgres_pids as server_pids

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator

#: log lines of ``python -m bot`` that mark the start-up phases
PHASES = {
    "embedded PostgreSQL ready": "postgres up",
    "database schema is up to date": "migrations checked",
    "applied migrations": "migrations applied",
    "ready": "ready (logged)",
}
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


@dataclass
class Run:
    ready_s: float
    rss_mb: float
    hwm_mb: float
    pss_mb: float
    pg_rss_mb: float
    pg_pss_mb: float
    pg_processes: int
    stop_s: float
    phases: list[tuple[str, float]]


def bot_env(emu: BotApiEmulator, data_dir: Path) -> dict[str, str]:
    """The environment of ``python -m bot``: this one, minus any database or webhook
    settings, plus the emulator, the data folder, and the repository on the path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "WEBHOOK_", "SUPABASE_", "TELEGRAM_", "ALLOWED_"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=emu.token,
        TELEGRAM_API_BASE_URL=emu.base_url,
        TELEGRAM_API_FILE_BASE_URL=emu.file_base_url,
        DATA_DIR=str(data_dir),
        LOG_LEVEL="INFO",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def phases(log: str, started_wall: float) -> list[tuple[str, float]]:
    """Seconds from the process start to each start-up log line."""
    found = []
    for line in log.splitlines():
        match = _STAMP.match(line)
        if not match:
            continue
        for marker, name in PHASES.items():
            if marker in match[2]:
                stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append((name, stamp - started_wall))
                break
    return found


def wait_stopped(pgdata: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (pgdata / "postmaster.pid").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the embedded PostgreSQL did not stop")
        time.sleep(0.05)


def one_run(
    emu: BotApiEmulator, data_dir: Path, workdir: Path, idle: float, timeout: float = 30.0
) -> Run:
    """Start ``python -m bot``, wait for setMyCommands, idle, measure, SIGTERM."""
    log_path = workdir / "bot.log"
    seen = len(emu.calls("setMyCommands"))
    with log_path.open("w") as log:
        started_wall = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            env=bot_env(emu, data_dir),
            cwd=workdir,  # no .env there
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            emu.wait_for_calls("setMyCommands", seen + 1, timeout)
            ready = time.perf_counter() - started
            time.sleep(idle)
            if proc.poll() is not None:
                raise RuntimeError(f"the bot exited: {log_path.read_text()[-2000:]}")
            pg = server_pids(data_dir / "pgdata")
            run = Run(
                ready_s=ready,
                rss_mb=status_kb(proc.pid, "VmRSS") / 1024,
                hwm_mb=status_kb(proc.pid, "VmHWM") / 1024,
                pss_mb=pss_kb(proc.pid) / 1024,
                pg_rss_mb=sum(status_kb(p, "VmRSS") for p in pg) / 1024,
                pg_pss_mb=sum(pss_kb(p) for p in pg) / 1024,
                pg_processes=len(pg),
                stop_s=0.0,
                phases=[],
            )
            stopping = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
            run.stop_s = time.perf_counter() - stopping
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run.phases = phases(log_path.read_text(), started_wall)
    return run


def initialise(emu: BotApiEmulator, data_dir: Path, workdir: Path) -> float:
    """``python -m bot migrate``: initdb + migrations; returns its wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        env=bot_env(emu, data_dir),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -m bot migrate failed:\n{done.stdout}{done.stderr}")
    wait_stopped(data_dir / "pgdata")
    return elapsed


def python_seconds(code: str, workdir: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, check=True)
    return time.perf_counter() - started


def describe(label: str, run: Run) -> None:
    steps = ", ".join(f"{name} {at:.2f} s" for name, at in run.phases)
    print(
        f"{label}: ready in {run.ready_s:.2f} s ({steps}); idle bot rss={run.rss_mb:.1f} MB"
        f" peak={run.hwm_mb:.1f} MB pss={run.pss_mb:.1f} MB; postgres {run.pg_processes}"
        f" processes rss={run.pg_rss_mb:.1f} MB pss={run.pg_pss_mb:.1f} MB;"
        f" SIGTERM to exit {run.stop_s:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="cold starts (3)")
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds before RSS (3)")
    args = parser.parse_args(argv)
    print_machine("python bench/footprint.py", sys.argv[1:] if argv is None else argv)
    base = Path(tempfile.mkdtemp(prefix="aelpher-bench-footprint-"))
    data_dir, workdir = base / "data", base / "cwd"
    workdir.mkdir(parents=True)
    runs: list[Run] = []
    try:
        with BotApiEmulator() as emu:
            env = bot_env(emu, data_dir)
            bare = python_seconds("pass", workdir, env)
            python_seconds("import bot.runner, bot.app", workdir, env)  # compiles .pyc
            imports = python_seconds("import bot.runner, bot.app", workdir, env)
            print(f"python start {bare:.2f} s; python start + importing the bot {imports:.2f} s")
            init = initialise(emu, data_dir, workdir)
            print(f"data folder initialised (python -m bot migrate) in {init:.2f} s")
            for i in range(args.n):
                run = one_run(emu, data_dir, workdir, args.idle)
                wait_stopped(data_dir / "pgdata")
                describe(f"cold start {i + 1} (server stopped)", run)
                runs.append(run)
            server = EmbeddedPostgres(data_dir)  # the server already running
            server.start()
            try:
                describe("start with the server running", one_run(emu, data_dir, workdir, 0.5))
            finally:
                server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"postgres_rss_mb={statistics.median(r.pg_rss_mb for r in runs):.1f}")
    print(f"postgres_pss_mb={statistics.median(r.pg_pss_mb for r in runs):.1f}")
    print(f"rss_mb={statistics.median(r.rss_mb for r in runs):.1f}")
    print(f"startup_seconds={statistics.median(r.ready_s for r in runs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
