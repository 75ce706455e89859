"""The bot's event loop, and running an Application inside a loop someone else owns (tests,
console, benchmarks).

:func:`running` starts an Application the way PTB's ``run_polling`` does (initialize →
post_init → updates → start, then the reverse down to post_shutdown), with updates from long
polling or from the webhook endpoint (``bot/webhook.py``); :func:`serve_until_signalled`
runs it until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from telegram.ext import Application

from bot.webhook import Webhook, serve

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop the bot runs on: uvloop's where it is installed (Linux and macOS), which
    handles about 14 % more updates per second than asyncio's (docs/performance.md §2);
    asyncio's elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


@asynccontextmanager
async def running(
    app: Application[Any, Any, Any, Any, Any, Any],
    *,
    poll_interval: float = 0.0,
    poll_timeout: int = 1,
    webhook: Webhook | None = None,
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Start ``app`` with long polling (or, given ``webhook``, its HTTP endpoint); stop it
    cleanly on exit."""
    server = None
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        if webhook is not None:
            server = serve(app, webhook)
            await app.bot.set_webhook(
                webhook.url, secret_token=webhook.secret, allowed_updates=ALLOWED_UPDATES
            )
        elif app.updater is not None:
            await app.updater.start_polling(
                poll_interval=poll_interval,
                timeout=poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        await app.start()
        yield app
    finally:
        if server is not None:
            server.stop()
            await server.close_all_connections()
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)


async def serve_until_signalled(
    app: Application[Any, Any, Any, Any, Any, Any], *, webhook: Webhook | None = None
) -> None:
    """Run ``app`` until SIGINT or SIGTERM (what platforms send on deploy): in-flight updates
    finish, the job queue stops, the pool closes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(app, poll_timeout=10, webhook=webhook):
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
