"""How the bot talks to Telegram: rate limiting with bounded retries, and per-update logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter, Application

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
