"""Running the bot: long polling, webhook mode, or the local console."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.app import build_application
from bot.database import resolve_database
from bot.lifecycle import ALLOWED_UPDATES, new_event_loop, serve_until_signalled
from bot.settings import Settings
from bot.webhook import Webhook

logger = logging.getLogger(__name__)


def run_bot(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM: webhook mode when WEBHOOK_URL is set, else long polling."""
    handle = resolve_database(settings)
    try:
        app = build_application(settings, handle.dsn)
        # run_polling runs (and at the end closes) the current loop: ours.
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        if settings.webhook_url is not None:
            assert settings.webhook_secret is not None
            logger.info("webhook mode on port %d", settings.port)
            hook = Webhook(
                settings.webhook_url, settings.webhook_secret.get_secret_value(), settings.port
            )
            try:
                loop.run_until_complete(serve_until_signalled(app, webhook=hook))
            finally:
                loop.close()
        else:
            logger.info("long polling")
            app.run_polling(allowed_updates=ALLOWED_UPDATES)
    finally:
        handle.stop()
    return 0


def run_console(settings: Settings) -> int:
    """Chat with the bot in this terminal (or from piped input)."""
    from bot.console import run_console_session

    return run_console_session(settings, sys.stdin, sys.stdout)
