"""The composition root: ``build_application(settings)`` assembles the PTB Application."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, Defaults
from tornado.httpserver import HTTPServer

from bot.database import make_database, migrate, wait_for_database
from bot.http import AiohttpRequest
from bot.scheduler import start_jobs
from bot.settings import Settings
from bot.telegram_io import LoggingApplication, PerUserUpdateProcessor, ResilientRateLimiter
from bot.webapp import api as webapp
from handlers import conversation, register_handlers
from handlers.deps import DEPS_KEY, Deps
from services import accounts
from services.outbox import Outbox

logger = logging.getLogger(__name__)

COMMANDS: list[tuple[str, str]] = [
    ("nba", "current Next Best Action per theater"),
    ("log", "log time: /log cs 45 read chapter 3"),
    ("add", "add an NBA: /add cs 4 Read SICP chapter 3"),
    ("focus", "start a timed focus session: /focus cs 50m"),
    ("status", "both theaters, energy and overload risk"),
    ("reflect", "record evidence: /reflect cs Passed the mock exam, 78%"),
    ("history", "recent logs and reflections"),
    ("progress", "set progress: /progress cs 40"),
    ("energy", "split energy: /energy 60"),
    ("block", "block a theater: /block ibm travelling"),
    ("unblock", "unblock a theater: /unblock ibm"),
    ("undo", "undo the latest log"),
    ("stats", "chart of the last 14 days"),
    ("settings", "time zone, quiet hours, brief, thresholds"),
    ("export", "all your data as JSON and CSV"),
    ("link", "connect your Aelpher account (emailed code)"),
    ("unlink", "disconnect this chat from your account"),
    ("delete", "erase all your Aelpher data"),
    ("help", "every command with an example"),
    ("cancel", "leave the current conversation"),
]


def build_application(
    settings: Settings,
    dsn: str,
    *,
    token: str | None = None,
    base_url: str | None = None,
    base_file_url: str | None = None,
    concurrent_updates: bool | int | None = None,
    run_migrations: bool = True,
    deps_overrides: dict[str, Any] | None = None,
    database_wait_seconds: float | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Build the bot: HTML defaults, rate limiter, handlers, pool opened in post_init."""
    real_token = token or (
        settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
    )
    if real_token is None:
        raise ValueError("a bot token is required to build the application")
    db = make_database(settings, dsn)
    outbox = Outbox(
        settings.data_dir / "outbox.sqlite3",
        max_per_user=settings.outbox_max_per_user,
        max_total=settings.outbox_max_total,
    )
    db.on_linked = outbox.remember_linked
    deps = Deps(
        db=db,
        outbox=outbox,
        allowed_user_ids=settings.allowed_telegram_user_ids,
        webapp_url=settings.webapp_url,
        supabase_url=settings.supabase_url,
        supabase_anon_key=(
            settings.supabase_anon_key.get_secret_value() if settings.supabase_anon_key else None
        ),
        **(deps_overrides or {}),
    )

    servers: list[HTTPServer] = []

    async def prepare_database() -> None:
        await wait_for_database(dsn, give_up_after=database_wait_seconds)
        if run_migrations:
            await migrate(dsn)

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if db.pool.closed:
            await prepare_database()
            await db.open()
        if settings.allowed_telegram_user_ids:  # no nudges for anyone no longer allowed
            switched_off = await accounts.apply_allow_list(db, settings.allowed_telegram_user_ids)
            if switched_off:
                logger.info("allow-list: nudges off for %d linked user(s) not on it", switched_off)
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
        await start_jobs(app, settings.scan_interval_seconds)  # every job: bot/scheduler.py
        if settings.webapp_url is not None and settings.webhook_url is None:
            # long polling: the dashboard on a server of its own (webhook mode: bot/webhook.py)
            host = urlsplit(settings.webapp_url).hostname or ""
            local = host in ("localhost", "127.0.0.1")  # this machine only
            try:
                servers.append(webapp.serve(app, settings.webapp_port, host if local else ""))
                logger.info("dashboard on port %d", settings.webapp_port)
            except OSError as exc:  # the chat works without it
                logger.error("dashboard not served on port %d: %s", settings.webapp_port, exc)
        logger.info("bot @%s ready", app.bot.username)

    async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        while servers:
            server = servers.pop()
            server.stop()
            await server.close_all_connections()
        await db.close()
        outbox.close()

    builder = (
        ApplicationBuilder()
        .token(real_token)
        .base_url(base_url or settings.telegram_api_base_url)
        .base_file_url(base_file_url or settings.telegram_api_file_base_url)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .application_class(LoggingApplication)
        .rate_limiter(ResilientRateLimiter())
        .concurrent_updates(PerUserUpdateProcessor(_concurrency(concurrent_updates, settings)))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        # aiohttp instead of PTB's default httpx: less than half the CPU per Bot API call
        # (docs/performance.md); the timeouts are the ones the default request would get.
        .request(AiohttpRequest(connect_timeout=10, read_timeout=15, pool_timeout=5))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
    )
    app = builder.build()
    assert isinstance(app, LoggingApplication)  # .application_class above
    app.bot_data[DEPS_KEY] = deps
    register_handlers(app)
    app.update_scope = conversation.update_scope
    return app


def _concurrency(requested: bool | int | None, settings: Settings) -> int:
    """How many users' updates run at once: by default one per database connection."""
    if requested is None or requested is True:
        return settings.db_pool_max_size
    if requested is False:
        return 1
    return max(1, int(requested))
