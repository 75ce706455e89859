"""The local console chat: the real application and handlers, driven from a terminal.

``python -m bot console`` (and ``python -m bot`` without a token in a terminal) runs the same
:class:`~telegram.ext.Application` as production against an in-process
:class:`~bot.local_api.BotApiEmulator`, on the embedded database unless ``DATABASE_URL`` is set.

Input, one message per line:

* a line that is just a number ``N`` presses the button shown as ``[N]`` on the most recently
  shown bot message that still has buttons. A button whose label is a number (the gap 0-5,
  "15 min") is shown and pressed by that number, so typing the value you mean presses the
  button with that value; the other buttons are numbered 1, 2, … in reading order, skipping
  those numbers. A number that names no button is sent as text (a typed answer). The press
  is echoed as ``[N] → label``;
* ``/quit`` or ``/exit`` (or end of input, or Ctrl-C) leaves; empty lines are ignored;
* anything else is sent as a text message from the console user.

Message ids continue across sessions (the next free id is kept in
``DATA_DIR/console/message-ids``), as Telegram's do, so a message after a restart is never
mistaken for one from before (the bot keys its once-only writes on them).

Output: every message the bot sends or edits, as the user would see it (``bot>``,
``bot (edited)>``), followed by its numbered buttons; callback answers with text
(``bot (toast)>``); photos and documents are saved under ``DATA_DIR/console/``.

In a terminal a ``you>`` prompt is shown and bot messages are printed as they arrive. With piped
input each line is echoed as ``you> ...`` and the next line is sent only once the bot has
finished reacting, so a scripted session reads like a transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from psycopg.conninfo import conninfo_to_dict
from telegram.ext import Application

from bot.app import build_application
from bot.database import DatabaseHandle, resolve_database
from bot.lifecycle import run, running
from bot.local_api import BotApiEmulator, SentMessage
from bot.settings import Settings
from bot.webapp import initdata
from handlers.dashboard import DASHBOARD_LABEL
from services.files import private_dir, private_file
from services.redact import redact

logger = logging.getLogger(__name__)

CONSOLE_USER_ID = 1
QUIET_SECONDS = 0.3
MAX_WAIT_SECONDS = 10.0
# The console gives up on an unreachable DATABASE_URL instead of waiting for it like a server.
DATABASE_WAIT_SECONDS = 15.0
_POLL_SECONDS = 0.02
_QUIT = frozenset({"/quit", "/exit"})

App = Application[Any, Any, Any, Any, Any, Any]


def run_console_session(
    settings: Settings, stdin: TextIO, stdout: TextIO, *, first_name: str = "You"
) -> int:
    """Chat with the bot over ``stdin``/``stdout``; return the exit code (0 on a clean exit)."""
    interactive = _isatty(stdin)
    where = (
        "using DATABASE_URL"
        if settings.database_url is not None
        else f"embedded PostgreSQL in {_folder(settings.data_dir)}"
    )
    stdout.write(
        f"Local console: {where} — type /help; a number in [brackets] presses that button"
        " (a button that shows a number is pressed by that number); /quit leaves.\n"
    )
    user_id = _console_user_id(settings)
    if settings.webapp_url is None:  # the dashboard, on this machine only
        if _port_free(settings.webapp_port):
            settings = settings.model_copy(
                update={"webapp_url": f"http://127.0.0.1:{settings.webapp_port}/app/"}
            )
        else:
            stdout.write(
                f"(No dashboard: port {settings.webapp_port} is in use; set WEBAPP_PORT.)\n"
            )
    if user_id != CONSOLE_USER_ID:
        stdout.write(
            f"(You are Telegram user {user_id}: ALLOWED_TELEGRAM_USER_IDS leaves"
            f" {CONSOLE_USER_ID} out.)\n"
        )
    stdout.flush()
    secrets: list[str] = []
    if settings.database_url is not None:
        secrets += _dsn_secrets(settings.database_url.get_secret_value())
    if settings.telegram_bot_token is not None:
        secrets.append(settings.telegram_bot_token.get_secret_value())
    handle: DatabaseHandle | None = None
    emu: BotApiEmulator | None = None
    try:
        with _quiet_logging(settings.log_level):
            handle = resolve_database(settings)
            secrets += _dsn_secrets(handle.dsn)
            ids = _MessageIds(settings.data_dir / "console" / "message-ids")
            emu = BotApiEmulator(
                bot_username="aelpher_console_bot",
                strict_html=False,
                first_message_id=ids.start(),
            )
            emu.start()
            secrets.append(emu.token)
            console = _Console(
                settings,
                emu,
                stdout,
                interactive=interactive,
                user_id=user_id,
                first_name=first_name,
                secrets=secrets,
                ids=ids,
            )
            run(console.run(handle.dsn, stdin))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM
        stdout.write("\n")
    except Exception as exc:
        logger.debug("console session failed", exc_info=True)
        message = _redact(f"{type(exc).__name__}: {exc}", secrets)
        print(f"console error: {message}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            stdout.flush()
        if emu is not None:
            emu.stop()
        if handle is not None:
            handle.stop()
    return 0


class _Console:
    """One session: sends lines as the console user and prints what the bot does."""

    def __init__(
        self,
        settings: Settings,
        emu: BotApiEmulator,
        stdout: TextIO,
        *,
        interactive: bool,
        user_id: int,
        first_name: str,
        secrets: list[str],
        ids: _MessageIds | None = None,
    ) -> None:
        self.settings = settings
        self.ids = ids
        self.emu = emu
        self.out = stdout
        self.interactive = interactive
        self.user_id = user_id
        self.first_name = first_name
        self.secrets = secrets
        self.files_dir = settings.data_dir / "console"
        self.saved_names: set[str] = set()
        self.keyboards: dict[int, list[tuple[str, str | None]]] = {}
        self.reply_keyboards: set[int] = set()
        self.toasts_seen = 0
        self.last_activity = 0.0
        self.prompt_shown = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dashboard_url: str | None = None

    # --- running ---------------------------------------------------------------------------

    async def run(self, dsn: str, stdin: TextIO) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        task = asyncio.current_task()
        if task is not None:
            # SIGTERM stops the session as cleanly as Ctrl-C (asyncio.run handles SIGINT).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
        self.toasts_seen = len(self.emu.callback_answers)
        app = build_application(
            self.settings,
            dsn,
            token=self.emu.token,
            base_url=self.emu.base_url,
            base_file_url=self.emu.file_base_url,
            database_wait_seconds=DATABASE_WAIT_SECONDS,
        )
        unsubscribe = self.emu.subscribe(self._listener)
        try:
            async with running(app):
                self._announce_dashboard()
                lines = _LineReader(stdin, loop)
                toasts = asyncio.create_task(self._watch_toasts())
                try:
                    await self._chat(app, lines)
                finally:
                    toasts.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await toasts
                    await asyncio.sleep(0)
                    self._poll_toasts()
        finally:
            unsubscribe()
            self.loop = None

    async def _chat(self, app: App, lines: _LineReader) -> None:
        while True:
            if self.interactive:
                self._show_prompt()
            line = await lines.get()
            self.prompt_shown = False
            if line is None:
                if self.interactive:
                    self._write("\n")
                return
            text = line.strip()
            if not text:
                continue
            button = self._button(text)
            pressed = f"[{button[1]}] → {button[2]}" if button else ""
            if not self.interactive:
                self._write(f"you> {text}" + (f"  {pressed}" if button else "") + "\n")
            elif button:
                self._note(pressed)
            if text.lower() in _QUIT:
                return
            if self.ids is not None:
                self.ids.ensure(self.emu.next_message_id(self.user_id))
            self.last_activity = time.monotonic()
            if button is not None:
                sent = self._press(*button)
            else:
                self.emu.send_text(self.user_id, text, first_name=self.first_name)
                sent = True
            if sent:
                await self._settle(app)

    def _announce_dashboard(self) -> None:
        """Print the dashboard's address, with launch data signed for the console user by
        the console's own bot token (the same check as in Telegram; valid for 24 hours)."""
        base = self.settings.webapp_url
        if base is None:
            return
        launch = initdata.sign(self.emu.token, self.user_id, self.first_name, int(time.time()))
        fragment = urlencode({"tgWebAppData": launch, "tgWebAppVersion": "8.0",
                              "tgWebAppPlatform": "web"})  # fmt: skip
        self.dashboard_url = f"{base}#{fragment}"
        self._write(f"Dashboard (open in a browser): {self.dashboard_url}\n")

    def _button(self, text: str) -> tuple[int, int, str, str | None] | None:
        """(message id, number, label, callback data) when ``text`` names a shown button."""
        target = self._current_keyboard()
        if not text.isdecimal() or target is None:
            return None
        number = int(text)
        keys = button_keys(target[1])
        if number not in keys:
            return None
        label, data = target[1][keys.index(number)]
        return target[0], number, label, data

    def _press(self, message_id: int, number: int, label: str, data: str | None) -> bool:
        if data is None:
            if message_id in self.reply_keyboards:
                self.emu.send_text(self.user_id, label, first_name=self.first_name)
                return True
            if label == DASHBOARD_LABEL and self.dashboard_url:
                self._note(f"open the dashboard in a browser: {self.dashboard_url}")
                return False
            self._note(f"button {number} ({label}) opens a link; the console can't follow it")
            return False
        try:
            self.emu.press(self.user_id, message_id, data)
        except LookupError:
            self.keyboards.pop(message_id, None)
            self._note(f"button {number} ({label}) is no longer there")
            return False
        return True

    async def _settle(self, app: App) -> None:
        """Wait until the bot took the update, finished it, and stayed quiet for a moment."""
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        try:
            await self.emu.wait_updates_consumed(MAX_WAIT_SECONDS)
        except TimeoutError:
            self._note("the bot did not pick up that message in time")
            return
        while time.monotonic() < deadline:
            self._poll_toasts()
            busy = (
                self.emu.pending_updates > 0
                or not app.update_queue.empty()
                or app.update_processor.current_concurrent_updates > 0
            )
            if not busy and time.monotonic() - self.last_activity >= QUIET_SECONDS:
                return
            await asyncio.sleep(_POLL_SECONDS)

    # --- bot output --------------------------------------------------------------------------

    def _listener(self, event: str, message: SentMessage) -> None:
        """Runs on the emulator thread: hand the event to the console's event loop."""
        loop = self.loop
        if message.chat_id != self.user_id or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(self._on_message, event, message)

    def _on_message(self, event: str, message: SentMessage) -> None:
        self._poll_toasts()
        self.last_activity = time.monotonic()
        if event == "deleted":
            self.keyboards.pop(message.message_id, None)
            first = message.plain_text.strip().splitlines()[:1]
            self._emit("bot (deleted)> ", _shorten(first[0]) if first else f"[{message.kind}]")
            return
        buttons = [button for row in message.buttons for button in row]
        if buttons:
            self.keyboards.pop(message.message_id, None)
            self.keyboards[message.message_id] = buttons
            if message.reply_markup and "keyboard" in message.reply_markup:
                self.reply_keyboards.add(message.message_id)
        else:
            self.keyboards.pop(message.message_id, None)
        if event == "edited":
            previous = message.history[-1] if message.history else None
            if previous is not None and previous.plain_text == message.plain_text and not buttons:
                return  # only the keyboard went away, as it does after a press
            prefix = "bot (edited)> "
        else:
            prefix = "bot> "
        self._emit(prefix, self._body(message), message.buttons)

    def _body(self, message: SentMessage) -> str:
        if message.kind == "text":
            return message.plain_text
        data = message.photo if message.kind == "photo" else message.document
        if data is None:
            return f"[{message.kind}] {message.plain_text}".rstrip()
        try:
            path = self._save(message, data)
        except OSError as exc:
            return f"[{message.kind} could not be saved: {exc}] {message.plain_text}".rstrip()
        return f"[{message.kind} saved to {path}] {message.plain_text}".rstrip()

    def _save(self, message: SentMessage, data: bytes) -> Path:
        if message.kind == "document" and message.filename:
            name = Path(message.filename).name or f"document-{message.message_id}"
        elif message.kind == "photo":
            name = f"photo-{message.message_id}{_image_suffix(data)}"
        else:
            name = f"{message.kind}-{message.message_id}"
        if name in self.saved_names:
            stem, suffix = Path(name).stem, Path(name).suffix
            name = f"{stem}-{message.message_id}{suffix}"
        self.saved_names.add(name)
        private_dir(self.files_dir)
        path = self.files_dir / name
        path.write_bytes(data)
        return path

    def _poll_toasts(self) -> None:
        answers = self.emu.callback_answers
        for answer in answers[self.toasts_seen :]:
            if answer.text:
                self.last_activity = time.monotonic()
                kind = "alert" if answer.show_alert else "toast"
                self._emit(f"bot ({kind})> ", answer.text)
        self.toasts_seen = max(self.toasts_seen, len(answers))

    async def _watch_toasts(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self._poll_toasts()

    def _current_keyboard(self) -> tuple[int, list[tuple[str, str | None]]] | None:
        if not self.keyboards:
            return None
        message_id = next(reversed(self.keyboards))
        return message_id, self.keyboards[message_id]

    # --- writing -----------------------------------------------------------------------------

    def _emit(
        self, prefix: str, body: str, rows: list[list[tuple[str, str | None]]] | None = None
    ) -> None:
        indent = " " * len(prefix)
        lines = body.split("\n") or [""]
        out = [prefix + lines[0]] + [indent + line if line else "" for line in lines[1:]]
        keys = iter(button_keys([button for row in rows or [] for button in row]))
        for row in rows or []:
            cells = []
            for label, _data in row:
                key = next(keys)
                cells.append(f"[{key}]" if _number_in(label) == key else f"[{key}] {label}")
            out.append(indent + "  ".join(cells))
        self._print("\n".join(line.rstrip() for line in out))

    def _note(self, text: str) -> None:
        self._print(f"  ({text})")

    def _print(self, text: str) -> None:
        text = _redact(text, self.secrets)
        if self.prompt_shown:
            # Output arriving while the prompt waits: replace the prompt line, then restore it.
            self._write("\r\x1b[K" if _isatty(self.out) else "\n")
        self._write(text + "\n")
        if self.prompt_shown:
            self._write("you> ")

    def _show_prompt(self) -> None:
        self._write("you> ")
        self.prompt_shown = True

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


class _LineReader:
    """Reads lines on a daemon thread (so a blocked read never holds up the exit)."""

    def __init__(self, stdin: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._stdin = stdin
        self._loop = loop
        thread = threading.Thread(target=self._read, name="console-stdin", daemon=True)
        thread.start()

    def _read(self) -> None:
        while True:
            try:
                line: str | None = self._stdin.readline() or None
            except (OSError, ValueError, UnicodeDecodeError):
                line = None
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, line)
            except RuntimeError:  # the session is over
                return
            if line is None:
                return

    async def get(self) -> str | None:
        """The next line (with its newline), or None at end of input."""
        return await self._queue.get()


# --- helpers ----------------------------------------------------------------------------------

# A label that is a number: "3", "•3•", "15 min", "40 h", "60%" (not "07:30", "3 exercises",
# nor a change by a number: "+10 min").
_NUMBER_LABEL = re.compile(r"(?i)^[^\w:+\-]*(\d{1,6})\s*(?:min|h|%)?[^\w:]*$")


def _number_in(label: str) -> int | None:
    """The number a button's label shows ("3", "•3•", "15 min"), if it is one."""
    m = _NUMBER_LABEL.match(label.strip())
    return int(m.group(1)) if m else None


def button_keys(buttons: list[tuple[str, str | None]]) -> list[int]:
    """The number that presses each button (in reading order): a label's own number where it
    is one (and no earlier button took it), else 1, 2, … skipping taken numbers."""
    keys: list[int | None] = []
    taken: set[int] = set()
    for label, _ in buttons:
        value = _number_in(label)
        keys.append(value if value is not None and value not in taken else None)
        if value is not None and value not in taken:
            taken.add(value)
    free = (n for n in itertools.count(1) if n not in taken)
    return [key if key is not None else next(free) for key in keys]


class _MessageIds:
    """Message ids that continue across console sessions, as Telegram's do.

    Ids are reserved in blocks: the file holds the first id no session has used, written
    before any id of the block is handed out, so a crash never lets two messages share one.
    """

    BLOCK = 1000

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reserved = 0

    def start(self) -> int:
        """The first id of this session (and reserve a block from it)."""
        try:
            first = max(1, int(self.path.read_text().strip()))
        except (OSError, ValueError):
            first = 1
        self._reserve(first + self.BLOCK)
        return first

    def ensure(self, next_id: int) -> None:
        """Reserve more before the ids in use come near the end of the block."""
        if next_id + self.BLOCK // 2 > self.reserved:
            self._reserve(next_id + self.BLOCK)

    def _reserve(self, upto: int) -> None:
        private_dir(self.path.parent)
        tmp = private_file(self.path.with_suffix(".tmp"))
        tmp.write_text(f"{upto}\n")
        tmp.replace(self.path)
        self.reserved = upto


def _console_user_id(settings: Settings) -> int:
    """User 1, or the first allowed user when ALLOWED_TELEGRAM_USER_IDS leaves 1 out."""
    allowed = settings.allowed_telegram_user_ids
    if allowed and CONSOLE_USER_ID not in allowed:
        return min(allowed)
    return CONSOLE_USER_ID


def _port_free(port: int) -> bool:
    """Whether the dashboard can listen on ``port`` of 127.0.0.1."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _folder(path: Path) -> str:
    text = str(path)
    return text if text.endswith(("/", "\\")) else text + "/"


def _dsn_secrets(dsn: str) -> list[str]:
    """The connection string itself and its password, to keep them out of the output."""
    found = [dsn]
    with contextlib.suppress(Exception):
        password = conninfo_to_dict(dsn).get("password")
        if password:
            found.append(str(password))
    return found


def _redact(text: str, secrets: list[str]) -> str:
    return redact(text, secrets, min_length=4)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _image_suffix(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    return ".png"


@contextlib.contextmanager
def _quiet_logging(level: str) -> Iterator[None]:
    """Keep INFO chatter (start-up, migrations) out of the chat unless LOG_LEVEL=DEBUG."""
    root = logging.getLogger()
    previous = root.level
    if level != "DEBUG" and previous < logging.WARNING:
        root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(previous)
