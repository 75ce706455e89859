"""Faults: repeated updates and taps, Telegram errors, shutdown, secrets in logs, webhooks."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import tornado.httpclient
import tornado.web
from psycopg.conninfo import conninfo_to_dict

from bot.local_api import BotApiEmulator
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def test_same_update_delivered_twice_records_one_log(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(11001)
    await chat.send("/start")
    update = bot.emu.send_text(11001, "/log cs 30 deep work")
    await chat._wait(1, 10)
    bot.emu.send_raw_update(update)  # Telegram redelivers the very same update
    (again,) = await chat._wait(1, 10)
    assert "Already logged" in again.plain_text
    assert await rows(db, "select action from execution_logs") == [{"action": "deep work"}]


async def test_double_tap_on_done_records_one_log(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(11002)
    await chat.send("/start")
    (view,) = await chat.send("/add ibm 3 Ship it")
    data = view.callback_data("✅ Done")
    await asyncio.gather(
        chat.press_data(view.message_id, data), chat.press_data(view.message_id, data)
    )
    assert await rows(db, "select action from execution_logs") == [{"action": "Done: Ship it"}]


@pytest.mark.slow
async def test_telegram_faults_are_survived(
    bot: BotEnv, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    chat = bot.chat(11003)
    await chat.send("/start")
    bot.emu.fail_next("sendMessage", status=502, description="Bad Gateway")
    (after_5xx,) = await chat.send("/help")  # retried after the 502
    assert "Next Best Actions" in after_5xx.plain_text
    bot.emu.fail_next("sendMessage", status=429, retry_after=1)
    (after_429,) = await chat.send("/help")  # waited out, then sent
    assert "Next Best Actions" in after_429.plain_text
    (view,) = await chat.send("/nba cs")
    await chat.press(view, "➕ Add one")
    await chat.send("/cancel")
    (view,) = await chat.send("/add cs 2 Read")
    await chat.press(view, "🔀 Choose another") if "🔀 Choose another" in str(
        view.buttons
    ) else None
    # "View cs" redraws an unchanged message: Telegram's 400 "not modified" is ignored.
    await chat.press(view, "⚙ Manage")
    manage = chat.message(view.message_id)
    await chat.press(manage, "↩ Back")
    await chat.press_data(view.message_id, manage.callback_data("↩ Back"))
    bot.emu.block_user(11003)
    bot.emu.send_text(11003, "/help")
    await bot.emu.wait_idle()
    assert await rows(db, "select active from telegram_links") == [{"active": False}]
    bot.emu.unblock_user(11003)
    (back,) = await chat.send("/nba cs")  # writing again switches nudges back on
    assert "Read" in back.plain_text
    assert await rows(db, "select active from telegram_links") == [{"active": True}]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def with_password(dsn: str, password: str) -> str:
    """The same database as a postgresql:// URL carrying ``password``."""
    params = conninfo_to_dict(dsn)
    query = {k: str(params[k]) for k in ("host", "port") if params.get(k)}
    return (
        f"postgresql://{quote(str(params.get('user', 'postgres')))}:{quote(password)}@"
        f"/{quote(str(params.get('dbname', 'postgres')))}?{urlencode(query)}"
    )


def bot_process(emu: BotApiEmulator, dsn: str, tmp: Path, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": emu.token,
            "TELEGRAM_API_BASE_URL": emu.base_url,
            "TELEGRAM_API_FILE_BASE_URL": emu.file_base_url,
            "DATABASE_URL": dsn,
            "DATA_DIR": str(tmp / "data"),
            "LOG_LEVEL": "DEBUG",
            **env,
        },
        stdin=subprocess.DEVNULL,
        stdout=(tmp / "bot.log").open("w"),  # a file: a full pipe would block the bot
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
async def test_sigterm_stops_cleanly_and_logs_hold_no_secrets(
    db: Database, database_dsn: str, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    password = "pw-s3cret-never-logged"
    proc = bot_process(emulator, with_password(database_dsn, password), tmp_path)
    try:
        await emulator.wait_calls("setMyCommands", 1, timeout=30)
        emulator.send_text(12001, "/start")
        emulator.send_text(12001, "/log cs 25 private words in a message")
        await emulator.wait_messages(12001, 2, timeout=20)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
        output = (tmp_path / "bot.log").read_text()
        assert proc.returncode == 0, output[-3000:]
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "update=" in output and "handled in" in output  # one line per update
    for secret in (emulator.token, emulator.token.split(":")[1], password):
        assert secret not in output
    # Message texts never appear at INFO or above (PTB's own DEBUG lines may show them).
    above_debug = [line for line in output.splitlines() if " DEBUG " not in line]
    assert not [line for line in above_debug if "private words" in line]
    assert await rows(db, "select action from execution_logs") == [
        {"action": "private words in a message"}
    ]


class RoundRobin(tornado.web.RequestHandler):
    """A tiny load balancer: each webhook request goes to the next instance."""

    def initialize(self, targets: list[str], counter: list[int]) -> None:
        self.targets = targets
        self.counter = counter

    async def post(self) -> None:
        target = self.targets[self.counter[0] % len(self.targets)]
        self.counter[0] += 1
        client = tornado.httpclient.AsyncHTTPClient()
        response = await client.fetch(
            target, method="POST", body=self.request.body, headers=self.request.headers,
            raise_error=False,
        )  # fmt: skip
        self.set_status(response.code)
        self.finish(response.body or b"")


@pytest.mark.slow
async def test_two_webhook_instances_share_the_load(
    db: Database, database_dsn: str, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    proxy_port = free_port()
    counter = [0]
    proxy = tornado.web.Application(
        [(r"/telegram", RoundRobin, {"targets": [f"http://127.0.0.1:{p}/telegram" for p in ports],
                                      "counter": counter})]
    ).listen(proxy_port, address="127.0.0.1")  # fmt: skip
    secret = "webhook-secret_0123456789abcdefghijkl"
    procs = []
    try:
        for n, port in enumerate(ports):
            (tmp_path / str(n)).mkdir()
            procs.append(
                bot_process(
                    emulator, with_password(database_dsn, "x"), tmp_path / str(n),
                    WEBHOOK_URL=f"http://127.0.0.1:{proxy_port}/telegram",
                    WEBHOOK_SECRET=secret, PORT=str(port),
                )
            )  # fmt: skip
        await emulator.wait_calls("setWebhook", 2, timeout=30)
        await asyncio.sleep(1.0)
        users = range(13001, 13011)
        for uid in users:
            emulator.send_text(uid, "/start")
        for uid in users:
            await emulator.wait_messages(uid, 1, timeout=20)
        for uid in users:
            for n in range(3):
                emulator.send_text(uid, f"/log cs {10 + n} task {n}")
        for uid in users:
            await emulator.wait_messages(uid, 4, timeout=30)
        assert counter[0] >= 40
        logs = await rows(db, "select count(*) as n, count(distinct (user_id, action)) as d"
                              " from execution_logs")  # fmt: skip
        assert logs == [{"n": 30, "d": 30}]  # none lost, none doubled

        async with httpx.AsyncClient() as client:
            forged = {"update_id": 999999, "message": {"message_id": 1, "date": 0,
                      "chat": {"id": 13001, "type": "private"},
                      "from": {"id": 13001, "is_bot": False, "first_name": "X"},
                      "text": "/log cs 99 forged"}}  # fmt: skip
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                answer = await client.post(
                    f"http://127.0.0.1:{ports[0]}/telegram", json=forged, headers=headers
                )
                assert answer.status_code == 403
        await asyncio.sleep(0.5)
        forged_rows = await rows(db, "select 1 from execution_logs where action = 'forged'")
        assert forged_rows == []
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proxy.stop()
    assert [p.returncode for p in procs] == [0, 0]
