"""DATA_DIR and what the bot keeps there are readable by the owner only."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from services.files import private_dir
from services.outbox import Outbox


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


def test_an_existing_world_readable_data_dir_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    private_dir(data_dir)
    assert mode(data_dir) == 0o700
