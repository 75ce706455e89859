"""Configuration: one frozen pydantic-settings object read from the environment and `.env`.

Nothing else in the project reads ``os.environ``. Secrets are ``SecretStr`` so they never show in
``repr`` or logs; ``DATABASE_URL`` is kept secret as a whole because it carries the password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The shortest WEBHOOK_SECRET accepted (about 190 bits from the 64-character alphabet).
WEBHOOK_SECRET_MIN = 32
#: A random secret of 32 characters from 64 has about 25 different ones; fewer than this is
#: a pattern, not a secret.
WEBHOOK_SECRET_DISTINCT = 10

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting of the bot (SPEC §6); `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_api_file_base_url: str = "https://api.telegram.org/file/bot"
    database_url: SecretStr | None = None
    data_dir: Path = Path(".aelpher")
    supabase_url: str | None = None
    supabase_anon_key: SecretStr | None = None
    allowed_telegram_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    port: int = Field(default=8443, ge=1, le=65535)
    webapp_url: str | None = None
    webapp_port: int = Field(default=8080, ge=1, le=65535)
    scan_interval_seconds: int = Field(default=60, ge=1, le=86_400)
    log_level: LogLevel = "INFO"
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    db_transaction_pooler: Literal["auto", "on", "off"] = "auto"
    outbox_max_per_user: int = Field(default=200, ge=1, le=100_000)
    outbox_max_total: int = Field(default=10_000, ge=1, le=10_000_000)

    @field_validator(
        "telegram_bot_token",
        "database_url",
        "supabase_url",
        "supabase_anon_key",
        "webhook_url",
        "webhook_secret",
        "webapp_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("db_transaction_pooler", mode="before")
    @classmethod
    def _lower_switch(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowed_telegram_user_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError(
                    "must be a comma-separated list of numeric Telegram user ids"
                ) from None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            bot_id, sep, rest = value.get_secret_value().partition(":")
            if not sep or not bot_id.isdigit() or not rest:
                raise ValueError("must look like '123456789:ABC...' as given by @BotFather")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgres://", "postgresql://")
        ):
            raise ValueError("must be a postgresql:// connection string")
        return value

    @field_validator("telegram_api_base_url", "telegram_api_file_base_url", "supabase_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        # Telegram only calls https webhooks; plain http is allowed for a local Bot API server.
        local = value is not None and value.startswith(("http://127.0.0.1", "http://localhost"))
        if value is not None and not value.startswith("https://") and not local:
            raise ValueError("must be a public https:// URL (Telegram only calls https webhooks)")
        return value

    @field_validator("webapp_url")
    @classmethod
    def _check_webapp_url(cls, value: str | None) -> str | None:
        # Telegram opens Mini Apps over https only; plain http is for trying it on this machine.
        if value is None:
            return value
        parts = urlsplit(value)
        local = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
        if not ((parts.scheme == "https" and parts.hostname) or local):
            raise ValueError(
                "must be the public https:// URL of the dashboard (http:// only for localhost"
                " or 127.0.0.1), e.g. https://bot.example.com/app/"
            )
        if not parts.path.endswith(("/app/", "/app")) or parts.query or parts.fragment:
            raise ValueError("must end in /app/ (where the bot serves the dashboard)")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _check_pairs(self) -> Settings:
        if (self.supabase_url is None) != (self.supabase_anon_key is None):
            raise ValueError("SUPABASE_URL and SUPABASE_ANON_KEY must be set together")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Anyone who knows the URL can post forged updates; only the secret tells Telegram's
        # requests apart, so it must be long enough not to be guessed (Telegram takes 1-256
        # characters of this alphabet).
        if value is None:
            return value
        secret = value.get_secret_value()
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        if not set(secret) <= allowed or len(secret) > 256:
            raise ValueError("must be at most 256 characters of A-Z, a-z, 0-9, _ and -")
        make_one = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        if len(secret) < WEBHOOK_SECRET_MIN:
            raise ValueError(
                f"must be at least {WEBHOOK_SECRET_MIN} characters (it has {len(secret)});"
                f" {make_one}"
            )
        if len(set(secret)) < WEBHOOK_SECRET_DISTINCT:  # "aaaa…", "abab…": guessable
            raise ValueError(f"must be random, not a few characters repeated; {make_one}")
        return value

    @property
    def supabase_mode(self) -> bool:
        """True when account linking goes through Supabase Auth one-time codes."""
        return self.supabase_url is not None

    @property
    def embedded_database(self) -> bool:
        """True when no DATABASE_URL is set and the bot runs its own PostgreSQL."""
        return self.database_url is None


class SettingsError(Exception):
    """Start-up configuration problems, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one clear line per problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {message}" if loc else message)
        raise SettingsError(problems) from None
