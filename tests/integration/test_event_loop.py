"""The bot runs on uvloop where it is installed (Linux and macOS), in every way it is run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.ext import Application

from bot.lifecycle import new_event_loop, run
from bot.runner import run_bot
from tests.harness import as_url, make_settings

uvloop = pytest.importorskip("uvloop")


def test_new_event_loop_is_uvloop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_run_runs_the_coroutine_on_it() -> None:
    async def which() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert run(which()) is uvloop.Loop


def test_run_bot_polls_on_it(database_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def run_polling(self: Application[Any, Any, Any, Any, Any, Any], **kwargs: Any) -> None:
        seen.append(asyncio.get_event_loop())  # what PTB's run_polling runs on

    monkeypatch.setattr(Application, "run_polling", run_polling)
    settings = make_settings(telegram_bot_token="123456:TEST", database_url=as_url(database_dsn))
    try:
        assert run_bot(settings) == 0
        assert len(seen) == 1 and isinstance(seen[0], uvloop.Loop)
    finally:
        for loop in seen:
            loop.close()
        asyncio.set_event_loop(None)
