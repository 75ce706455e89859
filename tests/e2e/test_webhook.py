"""Webhook mode: a strong secret, compared in constant time, checked before anything runs."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build_application
from bot.lifecycle import running
from bot.local_api import BotApiEmulator
from bot.settings import SettingsError, load_settings
from bot.webhook import Webhook
from services.db import Database
from tests.harness import Clock, free_port, make_settings

SECRET = "s0123456789abcdefghijklmnopqrst_"  # 32 characters: the shortest accepted


def test_a_short_secret_stops_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as info:
        load_settings(
            _env_file=None, webhook_url="https://bot.example.com/telegram", webhook_secret="x" * 31
        )
    (problem,) = info.value.problems
    assert problem.startswith("WEBHOOK_SECRET:") and "at least 32" in problem
    with pytest.raises(SettingsError) as info:
        load_settings(
            _env_file=None, webhook_url="https://bot.example.com/telegram", webhook_secret="a" * 40
        )
    (problem,) = info.value.problems
    assert problem.startswith("WEBHOOK_SECRET:") and "random" in problem
    ok = load_settings(
        _env_file=None, webhook_url="https://bot.example.com/telegram", webhook_secret=SECRET
    )
    assert ok.webhook_secret is not None


async def test_updates_come_in_only_with_the_secret_compared_in_constant_time(
    db: Database, database_dsn: str, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    app = build_application(
        make_settings(), database_dsn, token=emulator.token, base_url=emulator.base_url,
        base_file_url=emulator.file_base_url, run_migrations=False,
        deps_overrides={"clock": Clock()},
    )  # fmt: skip
    async with running(app, webhook=Webhook(url, SECRET, port, listen="127.0.0.1")):
        emulator.send_text(7001, "/start")  # Telegram posts it with the secret
        await emulator.wait_messages(7001, 1, timeout=10)
        assert "Welcome" in emulator.sent(7001)[0].plain_text
        assert compared and all(b == SECRET.encode() for _, b in compared)

        forged = {"update_id": 99, "message": {"message_id": 1, "date": 0,
                  "chat": {"id": 7001, "type": "private"},
                  "from": {"id": 7001, "is_bot": False, "first_name": "X"},
                  "text": "/log cs 99 forged"}}  # fmt: skip
        async with httpx.AsyncClient() as client:
            for headers in (
                {},
                {"X-Telegram-Bot-Api-Secret-Token": SECRET[::-1]},  # same length, wrong
                {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},  # a prefix
            ):
                answer = await client.post(url, json=forged, headers=headers)
                assert answer.status_code == 403
            garbage = await client.post(
                url, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                                    "Content-Type": "application/json"},
            )  # fmt: skip
            assert garbage.status_code == 400
    async with db.privileged(read_only=True) as uow:
        assert await uow.fetchall("select 1 from execution_logs where action = 'forged'") == []
