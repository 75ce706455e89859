"""Running the bot: long polling, webhook mode, or the local console."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.app import build_application
from bot.database import resolve_database
from bot.lifecycle import new_event_loop
from bot.settings import Settings

logger = logging.getLogger(__name__)


def run_bot(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM: webhook mode when WEBHOOK_URL is set, else long polling."""
    handle = resolve_database(settings)
    try:
        app = build_application(settings, handle.dsn)
        # run_polling/run_webhook run (and at the end close) the current loop: ours.
        asyncio.set_event_loop(new_event_loop())
        if settings.webhook_url is not None:
            assert settings.webhook_secret is not None
            logger.info("webhook mode on port %d", settings.port)
            app.run_webhook(
                listen="0.0.0.0",
                port=settings.port,
                url_path="telegram",
                webhook_url=settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=["message", "callback_query", "my_chat_member"],
            )
        else:
            logger.info("long polling")
            app.run_polling(allowed_updates=["message", "callback_query", "my_chat_member"])
    finally:
        handle.stop()
    return 0


def run_console(settings: Settings) -> int:
    """Chat with the bot in this terminal (or from piped input)."""
    from bot.console import run_console_session

    return run_console_session(settings, sys.stdin, sys.stdout)
