"""The bot's event loop, and running an Application inside a loop someone else owns (tests,
console, benchmarks).

``run_polling`` owns its loop and signals; :func:`running` does the same steps in the same
order (initialize → post_init → updater → start, then the reverse down to post_shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from telegram.ext import Application

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
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Start ``app`` with long polling; stop it cleanly on exit."""
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        if app.updater is not None:
            await app.updater.start_polling(
                poll_interval=poll_interval,
                timeout=poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        await app.start()
        yield app
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
