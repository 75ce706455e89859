"""How the bot talks to Telegram: rate limiting with bounded retries, per-update logs, and the
update processor (each user in order, users in parallel and in turn, floods bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Update
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter, Application, BaseUpdateProcessor

from handlers.errors import describe

logger = logging.getLogger(__name__)
update_log = logging.getLogger("bot.updates")


#: What a Bot API call returns, as PTB's rate limiter passes it on.
ApiResult = bool | dict[str, Any] | list[dict[str, Any]]

#: Each private chat's own budget: a burst of this many messages, then one a second
#: (Telegram asks bots to keep to about one message a second in a chat, bursts allowed).
CHAT_BURST = 20
CHAT_PER_SECOND = 1.0


class ResilientRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (about 30 messages/s overall, 20/min per group, waits out 429s)
    plus a budget per private chat and bounded retries of passing network faults.

    The per-chat budget is taken before the shared one, so a chat that sends more than its
    share waits on its own budget and leaves the shared 30 messages/s to everyone else: one
    user's flood of commands cannot make another user's replies wait for tokens.

    Retried: 5xx answers and connection errors (the request did not get through), and
    timeouts of every method except ``send*`` (a timed-out send may have been delivered,
    and a duplicate message is worse than a late error). Never retried: 400, 403, 409.
    """

    def __init__(
        self,
        *,
        network_retries: int = 3,
        base_delay: float = 0.5,
        chat_burst: int = CHAT_BURST,
        chat_per_second: float = CHAT_PER_SECOND,
    ) -> None:
        super().__init__(max_retries=3)
        self.network_retries = network_retries
        self.base_delay = base_delay
        self.chat_burst = chat_burst
        self.chat_per_second = chat_per_second
        self._chat_limiters: dict[int, AsyncLimiter] = {}

    def chat_limiter(self, chat_id: int) -> AsyncLimiter:
        """The budget of one private chat (idle ones are forgotten once there are many)."""
        limiters = self._chat_limiters
        if chat_id not in limiters and len(limiters) > 1024:
            for key, limiter in list(limiters.items()):
                if limiter.has_capacity(limiter.max_rate):  # full again: nothing to remember
                    del limiters[key]
        found = limiters.get(chat_id)
        if found is None:
            found = limiters[chat_id] = AsyncLimiter(
                self.chat_burst, self.chat_burst / self.chat_per_second
            )
        return found

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, ApiResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> ApiResult:
        chat_id = data.get("chat_id")
        # A private chat's own budget first; then PTB's limiter, retried on passing faults.
        budget: AbstractAsyncContextManager[Any] = (
            self.chat_limiter(chat_id)
            if isinstance(chat_id, int) and chat_id > 0
            else contextlib.nullcontext()
        )
        async with budget:
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


class LoggingApplication(Application[Any, Any, Any, Any, Any, Any]):
    """Logs one line per update: id, user, chat, what was asked, and how long it took.

    Never the message text (it may be private); commands are logged by name only.
    """

    #: entered around each update's handling (handlers/conversation.py: update_scope)
    update_scope: Callable[[Any, object], AbstractAsyncContextManager[None]] | None = None

    async def process_update(self, update: object) -> None:
        started = time.perf_counter()
        scope = self.update_scope(self, update) if self.update_scope else nullcontext()
        try:
            async with scope:
                await super().process_update(update)
        finally:
            if isinstance(update, Update):
                update_log.info(
                    "%s handled in %.1f ms",
                    describe(update),
                    1000 * (time.perf_counter() - started),
                )


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Handle updates of different users concurrently, and each user's updates in order,
    so that no user can delay the others.

    PTB's own concurrency is per update, which would let two steps of one person's
    conversation race; keying on the user keeps conversations and double taps ordered while
    a burst from many users uses the database pool in parallel.

    Fairness: each user has a FIFO queue of waiting updates, and ``workers`` slots are shared.
    A slot is taken only by an update that runs: a user runs at most one update at a time, and
    users with waiting updates take turns (round robin), so one user's flood holds at most
    one slot and another user's update waits for at most one update of each user ahead of it.
    A waiting update holds nothing but its PTB task.

    Bound: a user with ``queue_limit`` updates waiting gets ONE "slow down" reply (sent by
    the first update over the limit, through the Bot API like any reply) and every further
    update of theirs is dropped (not deferred) until their queue has drained; then the next
    burst is served, and bounded, afresh. A user who keeps flooding is told again at most
    once per ``reply_interval`` seconds (a burst that starts sooner is dropped silently: they
    were just told). Updates of other users are never dropped. Updates with neither a user
    nor a chat (nothing a person sends) share one queue without a bound.
    """

    #: PTB's own cap on updates inside the processor (waiting or running). Ours is the real
    #: bound: the per-user queue limit; PTB's semaphore is only a backstop, taken before
    #: do_process_update (so a waiting update in it would hold everyone's place).
    QUEUED_MAX = 1_000_000
    #: waiting updates per user before the "slow down" reply
    QUEUE_LIMIT = 50
    #: seconds before a user who was told to slow down is told again
    REPLY_INTERVAL = 60.0

    def __init__(
        self,
        max_concurrent_updates: int,
        *,
        queue_limit: int = QUEUE_LIMIT,
        slow_down: Callable[[Update], Awaitable[object]] | None = None,
        reply_interval: float = REPLY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(self.QUEUED_MAX)
        self.workers = max_concurrent_updates
        self.queue_limit = queue_limit
        self._slow_down = slow_down or send_slow_down
        self._free = max_concurrent_updates
        #: per key: the turns of its waiting updates, in arrival order
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        #: keys with an update running
        self._running: set[int] = set()
        #: keys with waiting updates and none running, in the order they get a slot
        self._ready: deque[int] = deque()
        #: keys over their limit: updates dropped since the reply
        self._dropped: dict[int, int] = {}
        self.reply_interval = reply_interval
        self._clock = clock
        #: when each user was last told to slow down (entries older than the interval go)
        self._told: dict[int, float] = {}

    @staticmethod
    def key_of(update: object) -> int:
        """The user an update belongs to (its chat without one; 0: neither)."""
        if isinstance(update, Update):
            if update.effective_user is not None:
                return update.effective_user.id
            if update.effective_chat is not None:
                return update.effective_chat.id
        return 0

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = self.key_of(update)
        waiting = self._waiting.get(key)
        if key != 0 and (
            key in self._dropped or (waiting is not None and len(waiting) >= self.queue_limit)
        ):
            await self._drop(key, update, coroutine)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if waiting is None:
            waiting = self._waiting[key] = deque()
        waiting.append(turn)
        if len(waiting) == 1 and key not in self._running:
            self._ready.append(key)
        self._dispatch()
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():  # the slot was given: hand it on
                self._finished(key)
            else:
                self._withdraw(key, turn)
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            raise
        try:
            await coroutine
        finally:
            self._finished(key)

    def _dispatch(self) -> None:
        """Give free slots to the users whose turn it is."""
        while self._free > 0 and self._ready:
            key = self._ready.popleft()
            waiting = self._waiting[key]
            while waiting and waiting[0].done():  # cancelled while it waited
                waiting.popleft()
            if not waiting:
                self._forget(key)
                continue
            turn = waiting.popleft()
            self._running.add(key)
            self._free -= 1
            turn.set_result(None)

    def _finished(self, key: int) -> None:
        """An update of ``key`` ended: free its slot, queue the user's next turn."""
        self._running.discard(key)
        self._free += 1
        if self._waiting.get(key):
            self._ready.append(key)
        else:
            self._forget(key)
        self._dispatch()

    def _withdraw(self, key: int, turn: asyncio.Future[None]) -> None:
        """A waiting update was cancelled before its turn."""
        waiting = self._waiting.get(key)
        if waiting is not None and turn in waiting:
            waiting.remove(turn)
            if not waiting and key in self._ready:
                self._ready.remove(key)
            if not waiting and key not in self._running:
                self._forget(key)

    def _forget(self, key: int) -> None:
        """The user's queue drained: the burst is over."""
        self._waiting.pop(key, None)
        dropped = self._dropped.pop(key, 0)
        if dropped:
            logger.warning("user %s: %d updates over the queue limit were dropped", key, dropped)

    async def _drop(self, key: int, update: object, coroutine: Awaitable[Any]) -> None:
        """Drop an update over the user's limit; the first of a burst says "slow down"."""
        if inspect.iscoroutine(coroutine):
            coroutine.close()
        first = key not in self._dropped
        self._dropped[key] = self._dropped.get(key, 0) + 1
        if not first or not isinstance(update, Update) or not self._may_tell(key):
            return
        logger.warning(
            "user %s has %d updates waiting; dropping more until they are handled",
            key,
            self.queue_limit,
        )
        try:
            await self._slow_down(update)
        except Exception:  # Telegram refused or is down: the drop stands, logged
            logger.warning("could not send the slow-down reply (%s)", describe(update))

    def _may_tell(self, key: int) -> bool:
        """Whether the user may be told to slow down now (and note that they are)."""
        now = self._clock()
        self._told = {k: t for k, t in self._told.items() if now - t < self.reply_interval}
        if key in self._told:
            return False
        self._told[key] = now
        return True

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


SLOW_DOWN = (
    "⏳ Slow down, please: you've sent more than I can keep up with. I'll answer what I"
    " already have; what you send until then is skipped, so send it again after my replies."
)


async def send_slow_down(update: Update) -> None:
    """The one reply a user over the queue limit gets (per burst)."""
    chat = update.effective_chat
    if chat is not None:
        await chat.send_message(SLOW_DOWN)
    elif update.effective_user is not None:
        await update.get_bot().send_message(update.effective_user.id, SLOW_DOWN)
