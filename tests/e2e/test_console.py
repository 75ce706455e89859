"""The local console: a scripted session through ``python -m bot console``, and its output."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from bot.console import _Console, button_keys
from bot.local_api import (
    DEFAULT_TOKEN,
    BotApiEmulator,
    CallbackAnswer,
    MessageVersion,
    SentMessage,
)
from bot.webapp.initdata import validate
from services.db import Database
from tests.harness import as_url, free_port
from tests.harness import make_settings as make_settings

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = "/start\n/add cs 4 Read SICP chapter 3\n/nba\n\n2\n/status\n/quit\n/help\n"


async def console_run(
    tmp_path: Path, database_dsn: str, script: str, **extra_env: str
) -> tuple[str, str]:
    """``python -m bot console`` with ``script`` as its input; (stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env.update(
        PYTHONPATH=str(ROOT), DATABASE_URL=as_url(database_dsn), DATA_DIR=str(tmp_path / "data")
    )
    env.update(extra_env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        raw_out, raw_err = await asyncio.wait_for(proc.communicate(script.encode()), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
    out, err = raw_out.decode(), raw_err.decode()
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    return out, err


@pytest.mark.slow
async def test_piped_session_prints_a_transcript(
    db: Database, database_dsn: str, tmp_path: Path
) -> None:
    out, err = await console_run(tmp_path, database_dsn, SCRIPT)
    transcript = f"stdout:\n{out}\nstderr:\n{err}"
    lines = out.splitlines()
    assert lines[0].startswith("Local console: using DATABASE_URL"), transcript
    # Each reply follows the line that caused it, in order; "2" pressed Lock on the /nba card
    # (button 1 there is "Add one to ibm", the theater without items).
    markers = [
        "you> /start",
        "Welcome to Aelpher",
        "you> /add cs 4 Read SICP chapter 3",
        "bot> ➕ Added to cs: Read SICP chapter 3",
        "[1] 🔒 Lock  [2] ▶ Start  [3] ▶ Progress  [4] ✅ Done",
        "you> /nba",
        "[1] ➕ Add one to ibm\n",
        "[2] 🔒 Lock cs  [3] ▶ Start cs  [4] ▶ Progress cs  [5] ✅ Done cs",
        "you> 2  [2] → 🔒 Lock cs",
        "bot (edited)> ",
        "🔒 locked",
        "you> /status",
        "Overload risk",
    ]
    positions = [out.find(marker) for marker in markers]
    assert -1 not in positions and positions == sorted(positions), transcript
    # The button's answer and its redraw travel together: the toast comes in either order.
    toast = out.find("bot (toast)> Locked.")
    assert out.find("you> 2  [2] → 🔒 Lock cs") < toast < out.find("you> /status"), transcript
    # Empty lines are skipped; /quit ends the session before the rest of the input.
    assert out.rstrip().endswith("you> /quit"), transcript
    assert "you> /help" not in out and "you> \n" not in out
    for secret in (database_dsn, as_url(database_dsn), DEFAULT_TOKEN):
        assert secret not in out and secret not in err


@pytest.mark.slow
async def test_messages_after_a_restart_are_new_messages(
    db: Database, database_dsn: str, tmp_path: Path
) -> None:
    """Message ids go on across sessions: the same line after a restart is logged again (the
    bot keys once-only writes on the message id). A malformed token doesn't stop the console."""
    out1, err1 = await console_run(
        tmp_path, database_dsn, "/start\n/log cs 20 first session\n/quit\n",
        TELEGRAM_BOT_TOKEN="not-a-token",
    )  # fmt: skip
    assert "Logged in cs: first session (20 min)" in out1, out1
    assert "TELEGRAM_BOT_TOKEN" in err1 and "ignored" in err1
    out2, _ = await console_run(
        tmp_path, database_dsn, "/start\n/log cs 20 second session\n/quit\n"
    )
    assert "Logged in cs: second session (20 min)" in out2, out2
    async with db.privileged(read_only=True) as uow:
        logs = await uow.fetchall("select action from execution_logs order by timestamp")
    assert [row["action"] for row in logs] == ["first session", "second session"]


def test_buttons_that_show_a_number_are_pressed_by_that_number() -> None:
    gap = [(str(g), f"add:gap:{g}") for g in range(6)]
    assert button_keys(gap) == [0, 1, 2, 3, 4, 5]
    minutes = [("15 min", "a"), ("25 min", "b"), ("Other", "c"), ("🔒 Lock", "d")]
    assert button_keys(minutes) == [15, 25, 1, 2]
    marked = [("0", "a"), ("•1•", "b"), ("2", "c"), ("Back", "d")]
    assert button_keys(marked) == [0, 1, 2, 3]
    repeated = [("3", "a"), ("•3•", "b")]  # the second can't have 3 too
    assert button_keys(repeated) == [3, 1]
    times = [("07:30", "a"), ("3 exercises", "b"), ("40 h", "c")]  # not numbers: numbered
    assert button_keys(times) == [1, 2, 40]
    changes = [("+10 min", "a"), ("⏹ Stop & log", "b")]  # a change is not a value
    assert button_keys(changes) == [1, 2]


def _message(message_id: int, kind: str = "text", **fields: object) -> SentMessage:
    values: dict[str, object] = {
        "message_id": message_id,
        "chat_id": 1,
        "kind": kind,
        "text": None,
        "plain_text": "",
        "parse_mode": None,
        "entities": [],
        "reply_markup": None,
        **fields,
    }
    return SentMessage(**values)  # type: ignore[arg-type]


def _keyboard(*rows: list[str]) -> dict[str, object]:
    return {
        "inline_keyboard": [[{"text": t, "callback_data": t.lower()} for t in row] for row in rows]
    }


def test_output_format(tmp_path: Path) -> None:
    emu = BotApiEmulator()
    out = io.StringIO()
    console = _Console(
        make_settings(data_dir=tmp_path),
        emu,
        out,
        interactive=False,
        user_id=1,
        first_name="You",
        secrets=[emu.token],
    )
    nba = _message(
        5,
        plain_text="cs\nRead SICP",
        reply_markup=_keyboard(["Lock", "Progress"], ["Manage"]),
    )
    console._on_message("sent", nba)
    assert out.getvalue() == (
        "bot> cs\n     Read SICP\n     [1] Lock  [2] Progress\n     [3] Manage\n"
    )
    assert console._button("2") == (5, 2, "Progress", "progress")
    assert console._button("4") is None and console._button("two") is None

    # A press answered with a toast, then an edit; an edit that only drops the keyboard is quiet.
    emu._callback_answers.append(CallbackAnswer("q", "Locked.", False, None, None, 0.0))
    old = MessageVersion(None, None, "cs\nRead SICP", None, [], None, 0.0)
    edited = _message(
        5, plain_text="cs\nRead SICP 🔒", history=[old], reply_markup=_keyboard(["Unlock"])
    )
    console._on_message("edited", edited)
    locked = MessageVersion(None, None, "cs\nRead SICP 🔒", None, [], None, 0.0)
    console._on_message("edited", _message(5, plain_text="cs\nRead SICP 🔒", history=[locked]))
    assert out.getvalue().split("[3] Manage\n", 1)[1] == (
        "bot (toast)> Locked.\n"
        "bot (edited)> cs\n"
        "              Read SICP 🔒\n"
        "              [1] Unlock\n"
    )
    assert console._button("1") is None

    # Output arriving while the prompt waits goes on its own line, then the prompt comes back.
    console._show_prompt()
    console._on_message("sent", _message(9, plain_text="⏰ Nudge"))
    assert out.getvalue().endswith("you> \nbot> ⏰ Nudge\nyou> ")
    console.prompt_shown = False

    # Photos and documents are saved under DATA_DIR/console; secrets never show.
    start = len(out.getvalue())
    console._on_message("sent", _message(6, "photo", photo=b"\x89PNG...", plain_text="Chart"))
    console._on_message(
        "sent", _message(7, "document", document=b"{}", filename="export.json", plain_text="")
    )
    console._on_message("sent", _message(8, plain_text=f"token {emu.token}"))
    assert out.getvalue()[start:] == (
        f"bot> [photo saved to {tmp_path / 'console' / 'photo-6.png'}] Chart\n"
        f"bot> [document saved to {tmp_path / 'console' / 'export.json'}]\n"
        "bot> token ***\n"
    )
    assert (tmp_path / "console" / "photo-6.png").read_bytes() == b"\x89PNG..."
    assert (tmp_path / "console" / "export.json").read_bytes() == b"{}"


@pytest.mark.slow
async def test_the_console_prints_the_dashboards_signed_local_address(
    db: Database, database_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    out, _ = await console_run(
        tmp_path, database_dsn, "/start\n/status\n1\n/quit\n", WEBAPP_PORT=str(port)
    )
    found = re.findall(r"http://127\.0\.0\.1:(\d+)/app/#(\S+)", out)
    assert len(found) == 2, out  # at the start, and for the pressed "Open dashboard"
    assert "(open the dashboard in a browser: http://127.0.0.1:" in out
    listed, fragment = found[0]
    assert int(listed) == port
    params = dict(parse_qsl(fragment))
    assert params["tgWebAppVersion"] == "8.0"
    # signed with the console's bot token: the check the dashboard makes passes
    assert validate(params["tgWebAppData"], DEFAULT_TOKEN).id == 1
