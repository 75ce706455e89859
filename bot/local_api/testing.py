"""What only tests and benchmarks use: inspection of what the bot sent and called,
fault injection, and the waiting helpers.

The console uses one thing from here, ``wait_updates_consumed``: it shares the polling
machinery and the timeout report (``dump``) with the other waits, so it stays with them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Final, TypeVar

from bot.local_api.limits import ERR_BLOCKED, ERR_CONFLICT_POLLING
from bot.local_api.records import Call, JSONDict, SentMessage, WebhookDelivery
from bot.local_api.state import _Delay, _Fault
from bot.local_api.users import _UserSide

_T = TypeVar("_T")
_POLL_INTERVAL: Final = 0.005


class _TestSide(_UserSide):
    """Inspection, fault injection and waiting, for tests and benchmarks."""

    # ----------------------------------------------------------------------------------------
    # Test side: inspection
    # ----------------------------------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Messages the bot sent (snapshots, oldest first), optionally for one chat.

        Deleted messages are included with ``deleted=True``. Messages from before
        :meth:`clear` are left out.
        """
        with self._lock:
            messages = sorted(
                (
                    m
                    for m in self._messages.values()
                    if m.from_bot
                    and m.seq > self._visible_from_seq
                    and (chat_id is None or m.chat_id == chat_id)
                ),
                key=lambda m: m.seq,
            )
            return [self._snapshot(m) for m in messages]

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """The current state of one bot message (even from before :meth:`clear`)."""
        with self._lock:
            msg = self._messages.get((chat_id, message_id))
            if msg is None or not msg.from_bot:
                raise LookupError(f"the bot has no message {message_id} in chat {chat_id}")
            return self._snapshot(msg)

    def menu_button(self, chat_id: int | None = None) -> JSONDict:
        """The menu button the bot set for ``chat_id`` (None: the default for every chat)."""
        with self._lock:
            button = self._menu_buttons.get(chat_id) or self._menu_buttons.get(None)
        return dict(button or {"type": "commands"})

    def calls(self, method: str | None = None) -> list[Call]:
        """Every API call received (oldest first), optionally only one method (any case)."""
        with self._lock:
            calls = list(self._calls)
        if method is None:
            return calls
        return [c for c in calls if c.method.lower() == method.lower()]

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST attempt (oldest first)."""
        with self._lock:
            return list(self._webhook_deliveries)

    @property
    def webhook_url(self) -> str:
        """The webhook URL set by the bot ("" when polling)."""
        with self._lock:
            return self._webhook_url

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """The commands set with setMyCommands for a scope (default scope by default)."""
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        with self._lock:
            return copy.deepcopy(self._commands.get(key, []))

    def clear(self) -> None:
        """Forget sent messages, calls, callback answers and webhook deliveries.

        Chats, users, files, pending updates and the messages themselves stay known to the
        server, so the bot can still edit or delete earlier messages; they are just no longer
        reported by :meth:`sent`.
        """
        with self._lock:
            self._visible_from_seq = next(self._seq)
            self._sent_counts.clear()
            self._call_counts.clear()
            self._calls.clear()
            self._callback_answers.clear()
            self._webhook_deliveries.clear()

    def dump(self, limit: int = 20) -> str:
        """A human-readable summary of recent bot messages and API calls (for failures)."""
        lines = ["Bot messages:"]
        for msg in self.sent()[-limit:]:
            flags = " (deleted)" if msg.deleted else ""
            flags += f" (edited x{msg.edits})" if msg.edits else ""
            lines.append(
                f"  chat={msg.chat_id} #{msg.message_id} {msg.kind}{flags}: "
                f"{msg.plain_text[:120]!r} buttons={msg.buttons}"
            )
        if len(lines) == 1:
            lines.append("  (none)")
        lines.append("Recent API calls:")
        for call in self.calls()[-limit:]:
            outcome = "ok" if call.ok else f"{call.status} {call.description}"
            chat = call.params.get("chat_id")
            where = f" chat={chat}" if chat is not None else ""
            lines.append(f"  {call.method}{where} -> {outcome}")
        lines.append(f"Pending updates: {self.pending_updates}")
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------------
    # Test side: fault injection
    # ----------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ("*": any method) fail without effect.

        For status 429 ``retry_after`` defaults to 1 second, so PTB raises ``RetryAfter``.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = _default_error_description(status, retry_after)
        key = method if method == "*" else self._canonical(method).lower()
        with self._lock:
            self._faults.setdefault(key, deque()).append(
                _Fault(status, description, retry_after, max(times, 1))
            )

    def slow_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Delay the next ``times`` calls of ``method`` ("*": any) before they are executed.

        The call still takes effect, so a client that times out meanwhile sees ``TimedOut``
        although the message was sent, as happens with the real API.
        """
        key = method if method == "*" else self._canonical(method).lower()
        with self._lock:
            self._delays.setdefault(key, deque()).append(_Delay(seconds, max(times, 1)))

    def _canonical(self, method: str) -> str:
        entry = self._methods.get(method.lower())
        return entry[0] if entry else method

    # ----------------------------------------------------------------------------------------
    # Test side: waiting
    # ----------------------------------------------------------------------------------------

    def _messages_probe(self, chat_id: int | None, count: int) -> list[SentMessage] | None:
        with self._lock:
            if self._sent_counts.get(chat_id, 0) < count:
                return None
        return self.sent(chat_id)

    def _calls_probe(self, method: str, count: int) -> list[Call] | None:
        with self._lock:
            if self._call_counts.get(method.lower(), 0) < count:
                return None
        calls = self.calls(method)
        return calls if len(calls) >= count else None

    def _consumed_probe(self) -> bool | None:
        return True if self.pending_updates == 0 else None

    def _idle_probe(self, quiet: float) -> bool | None:
        with self._lock:
            idle = (
                not self._queue
                and self._in_flight == 0
                and time.monotonic() - self._last_activity >= quiet
            )
        return True if idle else None

    def _timeout_message(self, what: str, timeout: float) -> str:
        return f"Timed out after {timeout:g}s waiting for {what}.\n{self.dump()}"

    def _wait(self, probe: Callable[[], _T | None], what: str, timeout: float) -> _T:
        """Poll ``probe`` until it returns something, or raise TimeoutError with a dump."""
        deadline = time.monotonic() + timeout
        while (found := probe()) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(what, timeout))
            time.sleep(_POLL_INTERVAL)
        return found

    async def _await(self, probe: Callable[[], _T | None], what: str, timeout: float) -> _T:
        """Async :meth:`_wait` (polls with :func:`asyncio.sleep`, from any event loop)."""
        deadline = time.monotonic() + timeout
        while (found := probe()) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(what, timeout))
            await asyncio.sleep(_POLL_INTERVAL)
        return found

    def wait_for_messages(
        self, chat_id: int | None, count: int = 1, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until the bot sent at least ``count`` messages to ``chat_id`` (None: any).

        Raises:
            TimeoutError: with a dump of recent messages and calls.
        """
        return self._wait(
            lambda: self._messages_probe(chat_id, count),
            f"{count} message(s) in chat {chat_id}",
            timeout,
        )

    async def wait_messages(
        self,
        chat_id: int | None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """Async :meth:`wait_for_messages`."""
        return await self._await(
            lambda: self._messages_probe(chat_id, count),
            f"{count} message(s) in chat {chat_id}",
            timeout,
        )

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Block until at least ``count`` calls of ``method`` were received."""
        return self._wait(
            lambda: self._calls_probe(method, count), f"{count} {method} call(s)", timeout
        )

    async def wait_calls(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Call]:
        """Async :meth:`wait_for_calls`."""
        return await self._await(
            lambda: self._calls_probe(method, count), f"{count} {method} call(s)", timeout
        )

    def wait_for_updates_consumed(self, timeout: float = 10.0) -> None:
        """Block until every enqueued update was confirmed (polling) or delivered (webhook).

        The bot's handler may still be running then; see :meth:`wait_for_idle`.
        """
        self._wait(self._consumed_probe, "updates to be consumed", timeout)

    async def wait_updates_consumed(self, timeout: float = 10.0) -> None:
        """Async :meth:`wait_for_updates_consumed`."""
        await self._await(self._consumed_probe, "updates to be consumed", timeout)

    def wait_for_idle(self, quiet: float = 0.1, timeout: float = 10.0) -> None:
        """Block until the bot looks idle: every update consumed, no API request (other than
        getUpdates) in flight, and no update or request for ``quiet`` seconds.

        Note that an update counts as consumed once PTB *confirms* it (on its next getUpdates),
        which happens before its handler finishes; use this method to wait for the handler.
        A handler that pauses for longer than ``quiet`` between two API calls looks idle.
        """
        self._wait(lambda: self._idle_probe(quiet), "the bot to become idle", timeout)

    async def wait_idle(self, quiet: float = 0.1, timeout: float = 10.0) -> None:
        """Async :meth:`wait_for_idle`."""
        await self._await(lambda: self._idle_probe(quiet), "the bot to become idle", timeout)


def _default_error_description(status: int, retry_after: int | None) -> str:
    defaults = {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: ERR_BLOCKED,
        404: "Not Found",
        409: ERR_CONFLICT_POLLING,
        429: f"Too Many Requests: retry after {retry_after}",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
    if status in defaults:
        return defaults[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"
