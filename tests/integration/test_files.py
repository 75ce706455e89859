"""DATA_DIR and what the bot keeps there are readable by the owner only."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bot.database import resolve_database
from services.files import private_dir
from services.outbox import Outbox
from tests.harness import make_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_outbox_and_its_folder_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    outbox = Outbox(data_dir / "outbox.sqlite3")
    try:
        await outbox.add(1, 1, "INSERT", "execution_logs", {"op": "log_time"}, datetime.now(UTC))
    finally:
        outbox.close()
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "outbox.sqlite3") == 0o600
    for extra in data_dir.glob("outbox.sqlite3-*"):  # SQLite's -wal and -shm, if left
        assert mode(extra) & 0o077 == 0, extra


def test_an_existing_world_readable_data_dir_loses_read_and_write_for_others(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    private_dir(data_dir)
    assert mode(data_dir) == 0o711  # others may pass through (see below), not list or write
    fresh = private_dir(tmp_path / "new" / "data")
    assert mode(fresh) == 0o700


def test_the_embedded_database_starts_stops_and_restarts_in_a_private_data_dir(
    tmp_path: Path,
) -> None:
    """DATA_DIR is private, yet the embedded server (as root: a system user of its own) can
    reach its folder, stop cleanly and start again on the same files."""
    settings = make_settings(data_dir=tmp_path / "data")
    for _ in range(2):
        handle = resolve_database(settings)
        with psycopg.connect(handle.dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        Outbox(tmp_path / "data" / "outbox.sqlite3")._db()  # the bot's files beside pgdata
        handle.stop()
        assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()  # really stopped
    assert mode(tmp_path / "data") & 0o066 == 0  # nobody else may list or read it
