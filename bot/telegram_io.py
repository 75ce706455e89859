"""How the bot talks to Telegram: rate limiting with bounded retries, and per-update logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter, Application, BaseUpdateProcessor

from handlers.errors import describe

logger = logging.getLogger(__name__)
update_log = logging.getLogger("bot.updates")


class ResilientRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (about 30 messages/s overall, 20/min per group, waits out 429s)
    plus bounded retries of passing network faults.

    Retried: 5xx answers and connection errors (the request did not get through), and
    timeouts of every method except ``send*`` (a timed-out send may have been delivered,
    and a duplicate message is worse than a late error). Never retried: 400, 403, 409.
    """

    def __init__(self, *, network_retries: int = 3, base_delay: float = 0.5) -> None:
        super().__init__(max_retries=3)
        self.network_retries = network_retries
        self.base_delay = base_delay

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        delay = self.base_delay
        for attempt in range(self.network_retries + 1):
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:
                raise
            except TimedOut:
                if endpoint.startswith("send") or attempt == self.network_retries:
                    raise
            except NetworkError as exc:
                if attempt == self.network_retries:
                    raise
                logger.info("telegram %s failed (%s); retrying", endpoint, exc)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


class LoggingApplication(Application):  # type: ignore[type-arg]
    """Logs one line per update: id, user, chat, what was asked, and how long it took.

    Never the message text (it may be private); commands are logged by name only.
    """

    async def process_update(self, update: object) -> None:
        started = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            if isinstance(update, Update):
                update_log.info(
                    "%s handled in %.1f ms",
                    describe(update),
                    1000 * (time.perf_counter() - started),
                )


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Handle updates of different users concurrently, and each user's updates in order.

    PTB's own concurrency is per update, which would let two steps of one person's
    conversation race; keying on the user keeps conversations and double taps ordered while
    a burst from many users uses the database pool in parallel.
    """

    # Updates waiting for their user's turn must not hold a processing slot (PTB's own
    # semaphore is taken before do_process_update), so PTB's cap is only a bound on the
    # updates in flight, and the real concurrency is this class's own semaphore, taken after
    # the user's lock.
    QUEUED_MAX = 1024

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(self.QUEUED_MAX)
        self.workers = max_concurrent_updates
        self._running = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = 0
        if isinstance(update, Update):
            if update.effective_user is not None:
                key = update.effective_user.id
            elif update.effective_chat is not None:
                key = update.effective_chat.id
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock, self._running:
                await coroutine
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""
