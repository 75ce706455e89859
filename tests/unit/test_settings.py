"""Settings: one clear line per problem, and secrets hidden (the exit without a token:
tests/e2e/test_start_up.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings


def test_defaults_and_secret_hiding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = load_settings(
        telegram_bot_token="123456:secret-token-value",
        database_url="postgresql://postgres:hunter2@db.example.com:6543/postgres",
    )
    assert settings.scan_interval_seconds == 60
    assert settings.data_dir == Path(".aelpher")
    assert "hunter2" not in repr(settings) and "secret-token-value" not in repr(settings)
    assert "hunter2" not in str(settings)


def test_reads_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SCAN_INTERVAL_SECONDS=30\nALLOWED_TELEGRAM_USER_IDS=1, 2\n")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.scan_interval_seconds == 30
    assert settings.allowed_telegram_user_ids == frozenset({1, 2})
    assert settings.log_level == "DEBUG"


def test_each_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as info:
        load_settings(
            port="eighty",
            scan_interval_seconds=0,
            database_url="mysql://x",
            telegram_bot_token="nonsense",
        )
    problems = info.value.problems
    assert len(problems) == 4
    assert any(p.startswith("PORT:") for p in problems)
    assert any(p.startswith("SCAN_INTERVAL_SECONDS:") for p in problems)
    assert any(p.startswith("DATABASE_URL:") and "postgresql://" in p for p in problems)
    assert any(p.startswith("TELEGRAM_BOT_TOKEN:") and "BotFather" in p for p in problems)


def test_pairs_must_be_set_together(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="SUPABASE_URL and SUPABASE_ANON_KEY"):
        load_settings(supabase_url="https://x.supabase.co")
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is required"):
        load_settings(webhook_url="https://bot.example.com/telegram")
