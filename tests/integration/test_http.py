"""``bot.http.AiohttpRequest``: the real PTB Bot (and Application) over aiohttp against the
local Bot API emulator: parameters, uploads, downloads, errors, timeouts, the pool limit,
long polling, and a shutdown that leaves no connection open and no warning behind.

Run with ``-W error`` too: an unclosed session or connection would then fail the test.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import socket
import struct
import time
import warnings
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters
from telegram.request import BaseRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.http import AiohttpRequest
from bot.lifecycle import running
from bot.local_api import BotApiEmulator

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    # PTB's own (RetryAfter.__init__ reads retry_after), ignored in pyproject.toml as well; a
    # mark outranks `-W error`, the ini setting does not
    pytest.mark.filterwarnings(
        "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning"
    ),
]

USER = 777_001


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def client_sockets(port: int) -> int:
    """Sockets of this process connected to ``port`` on this host (the client side)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
            count += 1
    return count


HAS_PROC = Path("/proc/net/tcp").exists()
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="counts sockets through /proc")


def make_bot(
    emu: BotApiEmulator,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
) -> Bot:
    return Bot(
        emu.token,
        base_url=emu.base_url,
        base_file_url=emu.file_base_url,
        request=request or AiohttpRequest(connection_pool_size=8, read_timeout=5),
        get_updates_request=get_updates_request or AiohttpRequest(connection_pool_size=1),
    )


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    emulator.register_user(USER, first_name="Ada")
    async with make_bot(emulator) as bot:
        yield bot


# --- parameters and uploads -------------------------------------------------------------------


async def test_get_me_on_initialize(bot: Bot) -> None:
    assert bot.username == "aelpher_test_bot"


async def test_send_message_html_and_callback_keyboard(bot: Bot, emulator: BotApiEmulator) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Lock", callback_data="n:lk:cs:1"),
                InlineKeyboardButton("Done ✓", callback_data="n:dn:cs:1"),
            ]
        ]
    )
    text = "<b>Read SICP</b> ch. 3 &amp; notes — <i>45 min</i> ★ 1+1=2 ?&amp;="
    message = await bot.send_message(USER, text, parse_mode="HTML", reply_markup=keyboard)

    assert message.text == "Read SICP ch. 3 & notes — 45 min ★ 1+1=2 ?&="
    assert [e.type for e in message.entities] == ["bold", "italic"]
    assert message.reply_markup == keyboard
    sent = emulator.sent(USER)[-1]
    assert sent.text == text
    assert sent.buttons == [[("Lock", "n:lk:cs:1"), ("Done ✓", "n:dn:cs:1")]]
    call = emulator.calls("sendMessage")[-1]
    assert call.transport == "form"
    assert call.params["chat_id"] == USER


async def test_send_document_multipart_bytes_and_download(
    bot: Bot, emulator: BotApiEmulator
) -> None:
    content = bytes(range(256)) * 300 + b"\r\n--boundary?\r\n"
    message = await bot.send_document(
        USER,
        document=content,
        filename="отчёт 2024.csv",
        caption="<b>Your</b> export",
        parse_mode="HTML",
    )

    assert message.document is not None
    assert message.document.file_name == "отчёт 2024.csv"
    assert message.caption == "Your export"
    sent = emulator.sent(USER)[-1]
    assert sent.document == content
    assert sent.filename == "отчёт 2024.csv"
    call = emulator.calls("sendDocument")[-1]
    assert call.transport == "multipart"
    assert call.params["caption"] == "<b>Your</b> export"
    # and back: getFile, then a GET of the file (BaseRequest.retrieve)
    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content


async def test_send_large_document(bot: Bot, emulator: BotApiEmulator) -> None:
    """Over 1 MB of bytes: sent from a buffer, without aiohttp's ResourceWarning."""
    content = os.urandom(3 << 20)
    message = await bot.send_document(USER, document=content, filename="big.bin")
    assert message.document is not None and message.document.file_size == len(content)
    assert emulator.sent(USER)[-1].document == content


async def test_send_photo_bytes_and_file_handle(bot: Bot, emulator: BotApiEmulator) -> None:
    image = png(4, 3)
    message = await bot.send_photo(USER, photo=image, caption="chart")
    assert message.photo and message.caption == "chart"
    assert emulator.sent(USER)[-1].photo == image

    # a file handle that PTB hands over unread (content: IO[bytes] in the field tuple)
    handle = InputFile(io.BytesIO(png(6, 5)), filename="chart.png", read_file_handle=False)
    second = await bot.send_photo(USER, photo=handle)
    assert second.photo
    assert emulator.sent(USER)[-1].photo == png(6, 5)


async def test_quote_in_file_name_is_escaped_as_httpx_does(
    bot: Bot, emulator: BotApiEmulator
) -> None:
    message = await bot.send_document(USER, document=b"x", filename='a "b".txt')
    assert emulator.sent(USER)[-1].filename == "a %22b%22.txt"
    assert message.document is not None


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (403, Forbidden), (429, RetryAfter), (502, NetworkError)],
)
async def test_error_statuses(
    bot: Bot, emulator: BotApiEmulator, status: int, error: type[Exception]
) -> None:
    emulator.fail_next("sendMessage", status=status)
    with pytest.raises(error) as caught:
        await bot.send_message(USER, "fails")
    assert not isinstance(caught.value, TimedOut)
    if status == 502:
        assert "Bad Gateway" in str(caught.value)
    # the connection stays usable
    assert (await bot.send_message(USER, "works")).text == "works"


async def test_read_timeout_is_timed_out(bot: Bot, emulator: BotApiEmulator) -> None:
    emulator.slow_next("sendMessage", 1.0)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "slow", read_timeout=0.2)
    assert time.monotonic() - started < 0.8
    assert (await bot.send_message(USER, "next")).text == "next"


async def test_default_read_timeout_of_the_instance(emulator: BotApiEmulator) -> None:
    emulator.register_user(USER)
    request = AiohttpRequest(read_timeout=0.2)
    assert request.read_timeout == 0.2
    async with make_bot(emulator, request) as bot:
        emulator.slow_next("sendMessage", 1.0)
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "slow")
        assert (await bot.send_message(USER, "slow is fine", read_timeout=2)).text


async def test_stalled_upload_times_out_at_the_overall_deadline() -> None:
    """aiohttp has no write timeout: an upload the server never reads ends at
    connect + write + read timeouts (the read timer itself starts only after the body)."""
    release = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await release.wait()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AiohttpRequest(connect_timeout=0.2, read_timeout=0.2) as request:
            data = RequestData(
                [
                    RequestParameter.from_input("chat_id", USER),
                    RequestParameter.from_input(
                        "document", InputFile(b"\x00" * (64 << 20), filename="big.bin")
                    ),
                ]
            )
            started = time.monotonic()
            with pytest.raises(TimedOut):
                await request.post(
                    f"http://127.0.0.1:{port}/bot1:x/sendDocument", data, write_timeout=0.3
                )
            assert 0.6 <= time.monotonic() - started < 3.0
    finally:
        release.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_connection_refused_is_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AiohttpRequest(connect_timeout=2) as request:
        with pytest.raises(NetworkError) as caught:
            await request.post(f"http://127.0.0.1:{port}/bot123:abc/getMe")
    assert not isinstance(caught.value, TimedOut)
    assert "aiohttp.Client" in str(caught.value)


async def test_pool_limit_and_pool_timeout(emulator: BotApiEmulator) -> None:
    emulator.register_user(USER)
    request = AiohttpRequest(connection_pool_size=2, pool_timeout=0.1)
    async with make_bot(emulator, request) as bot:
        before = len(emulator.calls("sendMessage"))
        emulator.slow_next("sendMessage", 0.8, times=2)
        slow = [asyncio.create_task(bot.send_message(USER, f"slow {i}")) for i in range(2)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(TimedOut, match="Pool timeout"):
            await bot.send_message(USER, "no slot")
        assert time.monotonic() - started < 0.5
        done = await asyncio.gather(*slow)
        assert sorted(m.text or "" for m in done) == ["slow 0", "slow 1"]
        texts = [c.params["text"] for c in emulator.calls("sendMessage")[before:]]
        assert "no slot" not in texts

        # a burst never opens more connections than the pool size
        await asyncio.gather(*(bot.send_message(USER, f"burst {i}") for i in range(20)))
        if HAS_PROC:
            assert client_sockets(emulator.port) <= 2


# --- long polling -----------------------------------------------------------------------------


async def test_get_updates_long_polling(emulator: BotApiEmulator) -> None:
    # the read timeout is shorter than the poll: PTB adds the poll's timeout to it
    updates_request = AiohttpRequest(connection_pool_size=1, read_timeout=0.5)
    async with make_bot(emulator, get_updates_request=updates_request) as bot:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, emulator.send_text, USER, "hello")
        started = time.monotonic()
        updates = await bot.get_updates(timeout=3)
        waited = time.monotonic() - started
        assert 0.25 < waited < 2.0
        assert [u.message.text for u in updates if u.message] == ["hello"]

        started = time.monotonic()
        assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None and update.effective_message is not None
    await update.effective_chat.send_message(
        f"<b>echo</b> {update.effective_message.text}", parse_mode="HTML"
    )


@needs_proc
async def test_application_polls_and_replies_then_closes_everything(
    emulator: BotApiEmulator,
) -> None:
    app = (
        ApplicationBuilder()
        .token(emulator.token)
        .base_url(emulator.base_url)
        .base_file_url(emulator.file_base_url)
        .request(AiohttpRequest(connection_pool_size=16, read_timeout=5))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with running(app, poll_interval=0.0, poll_timeout=1):
        for i in range(5):
            emulator.send_text(USER + i, f"hi {i}")
        for i in range(5):
            [reply] = await emulator.wait_messages(USER + i, 1)
            assert reply.plain_text == f"echo hi {i}"
        assert client_sockets(emulator.port) >= 2  # getUpdates + at least one other
    assert client_sockets(emulator.port) == 0


# --- lifecycle --------------------------------------------------------------------------------


@needs_proc
async def test_shutdown_closes_connections_without_warnings(emulator: BotApiEmulator) -> None:
    emulator.register_user(USER)
    request = AiohttpRequest(connection_pool_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with make_bot(emulator, request) as bot:
            await asyncio.gather(*(bot.send_message(USER, f"m{i}") for i in range(8)))
            assert client_sockets(emulator.port) > 1  # kept alive for reuse
        assert client_sockets(emulator.port) == 0
        del bot
        gc.collect()
    assert [str(w.message) for w in caught] == []

    with pytest.raises(NetworkError, match="not initialized"):  # PTB wraps the RuntimeError
        await request.post(f"{emulator.base_url}{emulator.token}/getMe")
    await request.shutdown()  # twice is fine

    # and it can be initialized again, like PTB's HTTPXRequest
    async with request:
        result = await request.post(f"{emulator.base_url}{emulator.token}/getMe")
        assert isinstance(result, dict) and result["username"] == "aelpher_test_bot"
    assert client_sockets(emulator.port) == 0


async def test_rejects_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)
