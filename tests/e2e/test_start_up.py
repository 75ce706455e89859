"""Start-up through ``python -m bot``: without a token, or with an invalid setting, the bot
stops with one clear line and exit status 2 (the settings themselves:
tests/unit/test_settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_bot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_token_and_no_terminal_exits_with_one_line(tmp_path: Path) -> None:
    result = _run_bot(tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in lines[0]


def test_invalid_setting_stops_start_up(tmp_path: Path) -> None:
    result = _run_bot(tmp_path, PORT="0", TELEGRAM_BOT_TOKEN="1:x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: PORT: Input should be greater than or equal to 1"
    ]
