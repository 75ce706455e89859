"""Secrets never persist: what the bot stores or exports is redacted like its logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.__main__ import RedactSecrets
from bot.console import _redact
from bot.http import AiohttpRequest
from bot.local_api import BotApiEmulator
from handlers.nudges import make_sender
from services import accounts, tracking
from services.db import Database
from services.nudges.scan import run_scan
from services.nudges.settings import update_settings
from services.redact import redact
from tests.harness import Chat, Clock, bot_running

# A fake token with the shape the redaction looks for (bot id, colon, 20+ characters); never
# configured anywhere and never issued by Telegram.
TOKEN = "123456789:FAKE-test-token-not-from-telegram"
SECRET = TOKEN.partition(":")[2]
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
IDLE = T0 + timedelta(hours=72)


def test_any_bot_token_is_masked_configured_or_not() -> None:
    url = f"url='https://api.telegram.org/bot{TOKEN}/sendMessage'"
    assert redact(url) == "url='https://api.telegram.org/bot***/sendMessage'"
    assert redact(f"token {TOKEN}.") == "token ***."
    assert redact("password hunter22 here", ["hunter22"]) == "password *** here"
    keep = "idle:cs:2026-11-02T12:00:00.000000Z:1 at 12:30, 45 min"
    assert redact(keep) == keep
    # The log filter and the console use the same function.
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", (url,), None)
    RedactSecrets([]).filter(record)
    assert SECRET not in record.getMessage() and "bot***" in record.getMessage()
    assert SECRET not in _redact(url, [])


@asynccontextmanager
async def malformed_bot_api() -> AsyncIterator[Bot]:
    """A Bot API that answers getMe, and everything else with a malformed HTTP response: the
    client's error then quotes the request URL, token included."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(65536)
        if b"/getMe" in request.split(b"\r\n", 1)[0]:
            me = {"id": 7123456789, "is_bot": True, "first_name": "A", "username": "a_bot"}
            body = json.dumps({"ok": True, "result": me}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=AiohttpRequest())
    try:
        async with bot:
            yield bot
    finally:
        server.close()
        await server.wait_closed()


async def test_a_send_error_quoting_the_token_is_stored_and_exported_without_it(
    db: Database, database_dsn: str
) -> None:
    user, _ = await accounts.create_local_account(db, 51001, 51001, "A", T0)
    await update_settings(db, user, now=T0, quiet_start=None, quiet_end=None)
    await tracking.block(db, user, "ibm", None, T0)
    async with malformed_bot_api() as garbled:
        with pytest.raises(Exception, match=SECRET):  # the real error text holds the token
            await garbled.send_message(51001, "hello")
        report = await run_scan(db, IDLE, make_sender(garbled))
    assert report.retry_later == 1
    async with db.privileged() as uow:
        (row,) = await uow.fetchall("select last_error from nudges where user_id = %s", (user,))
    assert "ClientResponseError" in row["last_error"] and "bot***" in row["last_error"]
    assert SECRET not in row["last_error"]

    async with db.privileged() as uow:  # stored before errors were redacted
        await uow.execute(
            "insert into nudges (user_id, kind, dedupe_key, status, last_error)"
            " values (%s, 'brief', 'brief:2026-01-01', 'failed', %s)",
            (user, f"NetworkError: url='http://x/bot{TOKEN}/sendMessage'"),
        )
        await uow.commit()

    with BotApiEmulator(token=TOKEN) as emu:
        async with bot_running(emu, database_dsn, clock=Clock(IDLE)):
            emu.register_user(51001)
            files = await Chat(emu, 51001).send("/export", replies=2)
    assert all(f.document is not None and SECRET.encode() not in f.document for f in files)
    assert files[0].document is not None
    exported = json.loads(files[0].document)["tables"]["nudges"]
    assert len(exported) == 2 and all("bot***" in n["last_error"] for n in exported)
