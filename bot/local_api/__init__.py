"""A local Telegram Bot API server (emulator) over real HTTP.

:class:`BotApiEmulator` serves the Bot API's JSON-over-HTTP protocol on ``127.0.0.1`` so that an
unmodified python-telegram-bot ``Application`` can run against it::

    with BotApiEmulator() as emu:
        app = (
            ApplicationBuilder()
            .token(emu.token)
            .base_url(emu.base_url)
            .base_file_url(emu.file_base_url)
            .build()
        )
        ...
        emu.send_text(42, "/start")
        [reply] = emu.wait_for_messages(42, 1)

It has two users: the end-to-end tests and benchmarks, and the bot's local console mode, which
prints what the bot sends (see :meth:`BotApiEmulator.subscribe`).

The emulator validates requests the way Telegram does (text and caption length after entity
parsing, HTML / MarkdownV2 / Markdown syntax, inline keyboard limits, "message is not modified",
stale callback queries, unknown chats, blocked users, ...) and answers with Telegram's error
format, so PTB raises its real exception classes (``BadRequest``, ``Forbidden``, ``RetryAfter``,
``Conflict``, ``InvalidToken``).

Threading model: the HTTP server (tornado) runs on its own thread with its own asyncio event loop.
Every public method is thread-safe. Waiting helpers come in a blocking flavour
(``wait_for_messages``) and an ``async`` flavour (``wait_messages``) that polls with
:func:`asyncio.sleep`, so it works from any event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import tornado.httpclient
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from bot.local_api.entities import (
    EntityParseError,
    ParsedText,
    _finish_parsed,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    parse_text,
    utf16_len,
)
from bot.local_api.images import image_size
from bot.local_api.limits import (
    _CHAT_ACTIONS,
    _COMMAND_RE,
    _DEFAULT_EXCLUDED_UPDATES,
    _INLINE_BUTTON_ACTIONS,
    _SECRET_TOKEN_RE,
    ERR_BLOCKED,
    ERR_CHAT_NOT_FOUND,
    ERR_CONFLICT_POLLING,
    ERR_CONFLICT_WEBHOOK,
    ERR_QUERY_TOO_OLD,
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CAPTION_LENGTH,
    MAX_COMMANDS,
    MAX_DOWNLOAD_BYTES,
    MAX_INLINE_BUTTONS,
    MAX_INLINE_BUTTONS_PER_ROW,
    MAX_PHOTO_BYTES,
    MAX_TEXT_LENGTH,
    MAX_UPLOAD_BYTES,
)
from bot.local_api.records import (
    Call,
    CallbackAnswer,
    FloodLimits,
    JSONDict,
    MessageVersion,
    SentMessage,
    WebhookDelivery,
)
from bot.local_api.request import _ApiError, _bad, _MethodImpl, _Params, _RequestContext, _Upload
from bot.local_api.state import (
    DEFAULT_TOKEN,
    _Msg,
    _QueuedUpdate,
    _StoredFile,
)
from bot.local_api.testing import _TestSide

__all__ = [
    "DEFAULT_TOKEN",
    "BotApiEmulator",
    "Call",
    "CallbackAnswer",
    "EntityParseError",
    "FloodLimits",
    "MessageVersion",
    "ParsedText",
    "SentMessage",
    "WebhookDelivery",
    "image_size",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "parse_text",
    "utf16_len",
]

_LOGGER = logging.getLogger(__name__)


# Parameters that are strings in the Bot API: PTB sends them raw (not JSON-encoded) in forms.
_STRING_PARAMS: Final = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "ip_address",
        "language_code",
        "action",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "file_id",
        "emoji",
        "title",
        "description",
        "short_description",
        "name",
        "photo",
        "document",
        "sticker",
        "audio",
        "video",
        "animation",
        "voice",
        "video_note",
        "thumbnail",
        "certificate",
        "query",
        "custom_emoji_id",
    }
)


def _coerce_form_value(name: str, raw: str) -> Any:
    if name in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class BotApiEmulator(_TestSide):
    """A local Telegram Bot API server over real HTTP, for tests, benchmarks and console mode.

    Args:
        token: The bot token the server accepts; other tokens get 401 ``Unauthorized``.
        bot_username: The bot's username (``getMe``).
        bot_first_name: The bot's display name.
        strict_html: Reject a bare ``&`` or ``>`` in HTML text, as the Bot API documentation
            requires (real Telegram tolerates them). A bare ``<`` is always rejected.
        flood_limits: Enable 429 flood control for message-sending methods.
        webhook_max_attempts: Delivery attempts per update before the update is dropped.
        webhook_retry_delay: First retry delay in seconds; it doubles on every retry.
        webhook_timeout: Timeout of one webhook POST, in seconds.
        callback_query_timeout: Seconds after which an unanswered callback query is "too old"
            (``None``: never).
        max_recorded_calls: How many API calls :meth:`calls` keeps (oldest are dropped).
    """

    # ----------------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (0 before :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """Bot API base URL for PTB's ``base_url`` (the token is appended by PTB)."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def file_base_url(self) -> str:
        """File download base URL for PTB's ``base_file_url``."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    @property
    def running(self) -> bool:
        """Whether the server thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start the server thread; return once it listens on 127.0.0.1 (on a free port)."""
        if self.running:
            raise RuntimeError("BotApiEmulator is already running")
        self._closing = False
        self._start_error = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="bot-api-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("BotApiEmulator did not start in time")
        if self._start_error is not None:
            raise RuntimeError("BotApiEmulator failed to start") from self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: end long polls, close connections, join the thread. Idempotent."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        if threading.current_thread() is thread:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("BotApiEmulator thread did not stop in time")
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"listening on {self.base_url}" if self.running else "stopped"
        return f"<BotApiEmulator @{self.bot_username} {state}>"

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        ioloop: tornado.ioloop.IOLoop | None = None
        try:
            ioloop = loop.run_until_complete(self._create_ioloop())
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # surfaced by start()
            self._start_error = exc
            _LOGGER.exception("BotApiEmulator server failed")
        finally:
            ready.set()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            if ioloop is not None:
                ioloop.close()
            if not loop.is_closed():
                loop.close()
            asyncio.set_event_loop(None)
            self._loop = None
            self._waiters = set()
            self._port = 0 if self._start_error else self._port

    @staticmethod
    async def _create_ioloop() -> tornado.ioloop.IOLoop:
        return tornado.ioloop.IOLoop.current()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        app = tornado.web.Application(
            [
                (r"/bot([^/]*)/([^/]*)", _ApiHandler, {"emulator": self}),
                (r"/file/bot([^/]*)/(.+)", _FileHandler, {"emulator": self}),
            ],
            default_handler_class=_NotFoundHandler,
            log_function=_quiet_log,
        )
        server = tornado.httpserver.HTTPServer(
            app, max_body_size=MAX_UPLOAD_BYTES + 8 * 1024 * 1024, max_buffer_size=None
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server.add_sockets(sockets)
        self._port = int(sockets[0].getsockname()[1])
        webhook_task = asyncio.create_task(self._webhook_loop(), name="emulator-webhook")
        ready.set()
        _LOGGER.debug("Bot API emulator listening on %s", self.base_url)
        try:
            await self._stop_event.wait()
        finally:
            self._closing = True
            self._notify_waiters()
            server.stop()
            webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await webhook_task
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.close_all_connections(), 3.0)

    # ----------------------------------------------------------------------------------------
    # Request execution
    # ----------------------------------------------------------------------------------------

    async def _execute(
        self,
        token: str,
        method: str,
        values: JSONDict,
        files: Mapping[str, _Upload],
        ctx: _RequestContext,
        transport: str,
    ) -> tuple[int, JSONDict]:
        started = time.time()
        entry = self._methods.get(method.lower())
        name = entry[0] if entry else method
        result: Any = None
        polling = name == "getUpdates"
        if not polling:
            with self._lock:
                self._in_flight += 1
                self._last_activity = time.monotonic()
        try:
            if token != self.token:
                raise _ApiError(401, "Unauthorized")
            if entry is None:
                _LOGGER.warning("Bot API emulator: method %r is not implemented (404)", method)
                raise _ApiError(404, "Not Found")
            delay = self._take_delay(name)
            if delay:
                await asyncio.sleep(delay)
            fault = self._take_fault(name)
            if fault is not None:
                raise fault
            result = await entry[1](_Params(values, files), ctx)
            status, body = 200, {"ok": True, "result": result}
        except _ApiError as err:
            status, body = err.status, err.body()
        except Exception:
            _LOGGER.exception("Bot API emulator: %s failed", name)
            status = 500
            body = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        description = None if status == 200 else str(body.get("description"))
        if status != 200:
            _LOGGER.debug("emulator %s -> %s %s", name, status, description)
        call = Call(
            method=name,
            params=copy.deepcopy(values),
            files={key: upload.filename for key, upload in files.items()},
            time=started,
            status=status,
            description=description,
            result=copy.deepcopy(result),
            transport=transport,
        )
        with self._lock:
            self._calls.append(call)
            self._call_counts[name.lower()] = self._call_counts.get(name.lower(), 0) + 1
            if not polling:
                self._in_flight -= 1
                self._last_activity = time.monotonic()
        return status, body

    def _take_fault(self, method: str) -> _ApiError | None:
        with self._lock:
            for key in (method.lower(), "*"):
                queue = self._faults.get(key)
                if queue:
                    fault = queue[0]
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        queue.popleft()
                    return _ApiError(
                        fault.status, fault.description, retry_after=fault.retry_after
                    )
        return None

    def _take_delay(self, method: str) -> float:
        with self._lock:
            for key in (method.lower(), "*"):
                queue = self._delays.get(key)
                if queue:
                    delay = queue[0]
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        queue.popleft()
                    return delay.seconds
        return 0.0

    def _method_table(self) -> dict[str, _MethodImpl]:
        return {
            "getMe": self._m_get_me,
            "logOut": self._m_true,
            "close": self._m_true,
            "getUpdates": self._m_get_updates,
            "setWebhook": self._m_set_webhook,
            "deleteWebhook": self._m_delete_webhook,
            "getWebhookInfo": self._m_get_webhook_info,
            "setMyCommands": self._m_set_my_commands,
            "getMyCommands": self._m_get_my_commands,
            "deleteMyCommands": self._m_delete_my_commands,
            "setMyDescription": self._m_set_my_description,
            "getMyDescription": self._m_get_my_description,
            "setMyShortDescription": self._m_set_my_short_description,
            "getMyShortDescription": self._m_get_my_short_description,
            "setMyName": self._m_set_my_name,
            "getMyName": self._m_get_my_name,
            "setChatMenuButton": self._m_set_chat_menu_button,
            "getChatMenuButton": self._m_get_chat_menu_button,
            "sendMessage": self._m_send_message,
            "sendPhoto": self._m_send_photo,
            "sendDocument": self._m_send_document,
            "editMessageText": self._m_edit_message_text,
            "editMessageCaption": self._m_edit_message_caption,
            "editMessageReplyMarkup": self._m_edit_message_reply_markup,
            "deleteMessage": self._m_delete_message,
            "deleteMessages": self._m_delete_messages,
            "answerCallbackQuery": self._m_answer_callback_query,
            "sendChatAction": self._m_send_chat_action,
            "getChat": self._m_get_chat,
            "getFile": self._m_get_file,
        }

    # ----------------------------------------------------------------------------------------
    # Validation helpers (called on the loop thread)
    # ----------------------------------------------------------------------------------------

    def _user_lookup(self, user_id: int) -> JSONDict | None:
        with self._lock:
            user = self._users.get(user_id)
            return dict(user) if user else None

    def _parse(
        self,
        text: str,
        parse_mode: str | None,
        explicit_entities: Any,
        *,
        limit: int,
        too_long: str,
        empty: str | None,
    ) -> ParsedText:
        if explicit_entities is not None:
            parsed = _finish_parsed(text, self._check_entities(text, explicit_entities))
        else:
            try:
                parsed = parse_text(
                    text,
                    parse_mode,
                    strict_html=self.strict_html,
                    user_lookup=self._user_lookup,
                )
            except EntityParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from exc
            except ValueError as exc:
                raise _bad("unsupported parse_mode") from exc
        if not parsed.text and empty is not None:
            raise _bad(empty)
        if utf16_len(parsed.text) > limit:
            raise _bad(too_long)
        return parsed

    @staticmethod
    def _check_entities(text: str, entities: Any) -> list[JSONDict]:
        if not isinstance(entities, list):
            raise _bad("can't parse entities JSON object")
        total = utf16_len(text)
        checked: list[JSONDict] = []
        for entity in entities:
            if not isinstance(entity, dict) or not isinstance(entity.get("type"), str):
                raise _bad('can\'t parse MessageEntity: Field "type" must be of type String')
            offset, length = entity.get("offset"), entity.get("length")
            if not isinstance(offset, int) or not isinstance(length, int):
                raise _bad("can't parse MessageEntity: offset and length must be Integers")
            if offset < 0 or length < 0 or offset + length > total:
                raise _bad("can't parse entities: entity is out of the text bounds")
            if length:
                checked.append(dict(entity))
        return checked

    @staticmethod
    def _validate_markup(markup: Any, *, inline_only: bool = False) -> JSONDict | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad("can't parse inline keyboard markup JSON object")
            total = 0
            for row in rows:
                if len(row) > MAX_INLINE_BUTTONS_PER_ROW:
                    raise _bad("reply markup is too long")
                total += len(row)
                for button in row:
                    _validate_inline_button(button)
            if total > MAX_INLINE_BUTTONS:
                raise _bad("reply markup is too long")
            return copy.deepcopy(markup)
        if inline_only:
            raise _bad("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad("can't parse keyboard markup JSON object")
            for row in rows:
                for button in row:
                    label = button if isinstance(button, str) else None
                    if isinstance(button, dict) and isinstance(button.get("text"), str):
                        label = button["text"]
                    if not label:
                        raise _bad("can't parse keyboard button: Text must be non-empty")
            return copy.deepcopy(markup)
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return copy.deepcopy(markup)
        raise _bad("can't parse reply keyboard markup JSON object")

    def _resolve_chat_id(self, p: _Params) -> int:
        raw = p.raw("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            with self._lock:
                for known_id, chat in self._chats.items():
                    if chat.get("username", "").lower() == raw[1:].lower():
                        return known_id
            raise _bad("chat not found")
        chat_id = p.int_opt("chat_id")
        assert chat_id is not None
        return chat_id

    def _writable_chat(self, chat_id: int) -> JSONDict:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat_id in self._blocked and (chat is None or chat["type"] == "private"):
                raise _ApiError(403, ERR_BLOCKED)
            if chat is None:
                raise _ApiError(400, ERR_CHAT_NOT_FOUND)
            return dict(chat)

    def _check_flood(self, chat: JSONDict) -> None:
        limits = self.flood_limits
        if limits is None:
            return
        checks: list[tuple[object, int, float]] = []
        if limits.global_per_second:
            checks.append(("global", limits.global_per_second, 1.0))
        if chat["type"] != "private" and limits.group_per_minute:
            checks.append((("chat", chat["id"]), limits.group_per_minute, 60.0))
        if chat["type"] == "private" and limits.private_per_second:
            checks.append((("chat", chat["id"]), limits.private_per_second, 1.0))
        now = time.monotonic()
        with self._lock:
            for key, limit, window in checks:
                stamps = self._flood.setdefault(key, deque())
                while stamps and stamps[0] <= now - window:
                    stamps.popleft()
                if len(stamps) >= limit:
                    retry = max(1, math.ceil(stamps[0] + window - now))
                    raise _ApiError(
                        429, f"Too Many Requests: retry after {retry}", retry_after=retry
                    )
            for key, _limit, _window in checks:
                self._flood[key].append(now)

    def _reply_target(self, p: _Params, chat_id: int) -> int | None:
        params = p.json_opt("reply_parameters")
        message_id: int | None
        allow = p.bool_opt("allow_sending_without_reply")
        if isinstance(params, dict):
            message_id = params.get("message_id")
            if not isinstance(message_id, int) or isinstance(message_id, bool):
                raise _bad("can't parse ReplyParameters: message_id must be an Integer")
            allow = allow or bool(params.get("allow_sending_without_reply"))
            target_chat = params.get("chat_id", chat_id)
            if target_chat != chat_id:
                return None
        else:
            message_id = p.int_opt("reply_to_message_id")
        if message_id is None:
            return None
        with self._lock:
            target = self._messages.get((chat_id, int(message_id)))
            if target is None or target.deleted:
                if allow:
                    return None
                raise _bad("message to be replied not found")
        return int(message_id)

    def _input_file(self, p: _Params, field_name: str, kind: str) -> _StoredFile:
        upload = p.files.get(field_name)
        if upload is None:
            value = p.raw(field_name)
            if value is None or value == "":
                raise _bad(f"there is no {field_name} in the request")
            if not isinstance(value, str):
                raise _bad("wrong file identifier/HTTP URL specified")
            if value.startswith("attach://"):
                upload = p.files.get(value[len("attach://") :])
                if upload is None:
                    raise _bad("wrong file identifier/HTTP URL specified")
            else:
                with self._lock:
                    existing = self._files.get(value)
                if existing is not None:
                    return existing
                if not value.startswith(("http://", "https://")):
                    raise _bad("wrong file identifier/HTTP URL specified")
                name = urlsplit(value).path.rsplit("/", 1)[-1] or None
                return self._store_file(b"", name, None, kind, source_url=value)
        return self._store_file(upload.data, upload.filename, upload.content_type, kind)

    def _editable(self, p: _Params) -> _Msg:
        if p.raw("inline_message_id") is not None:
            raise _bad("MESSAGE_ID_INVALID")
        chat_id = self._resolve_chat_id(p)
        message_id = p.int_opt("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        self._writable_chat(chat_id)
        with self._lock:
            msg = self._messages.get((chat_id, message_id))
            if msg is None or msg.deleted:
                raise _bad("message to edit not found")
            if not msg.from_bot:
                raise _bad("message can't be edited")
            return msg

    # ----------------------------------------------------------------------------------------
    # Bot API methods
    # ----------------------------------------------------------------------------------------

    async def _m_true(self, p: _Params, ctx: _RequestContext) -> Any:
        return True

    async def _m_get_me(self, p: _Params, ctx: _RequestContext) -> Any:
        return dict(self.bot_user)

    async def _m_get_updates(self, p: _Params, ctx: _RequestContext) -> Any:
        offset = p.int_opt("offset")
        limit = min(max(p.int_opt("limit") or 100, 1), 100)
        timeout = max(p.float_opt("timeout") or 0.0, 0.0)
        allowed = p.json_opt("allowed_updates")
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)
        ):
            raise _bad("can't parse allowed_updates JSON object")
        with self._lock:
            if self._webhook_url:
                raise _ApiError(409, ERR_CONFLICT_WEBHOOK)
            self._poll_generation += 1
            self._poll_terminated_by = ERR_CONFLICT_POLLING
            generation = self._poll_generation
            if allowed is not None:
                self._allowed_updates = list(allowed)
            self._confirm_updates(offset)
        self._notify_waiters()  # terminates an older long poll
        deadline = time.monotonic() + timeout
        while True:
            waiter = self._new_waiter()
            with self._lock:
                if self._poll_generation != generation:
                    self._waiters.discard(waiter)
                    raise _ApiError(409, self._poll_terminated_by)
                stop = self._closing or ctx.closed
                batch = [] if stop else self._collect_updates(limit)
            remaining = deadline - time.monotonic()
            if batch or stop or remaining <= 0:
                self._waiters.discard(waiter)
                return batch
            await self._await_waiter(waiter, remaining)

    def _allowed(self, kind: str) -> bool:
        allowed = self._allowed_updates
        if not allowed:
            return kind not in _DEFAULT_EXCLUDED_UPDATES
        return kind in allowed

    def _confirm_updates(self, offset: int | None) -> None:
        if offset is None:
            return
        if offset < 0:
            while len(self._queue) > -offset:
                self._queue.popleft()
            return
        self._queue = deque(
            q for q in self._queue if not (q.update_id < offset and (q.delivered or not q.replay))
        )

    def _collect_updates(self, limit: int) -> list[JSONDict]:
        batch: list[_QueuedUpdate] = []
        for queued in list(self._queue):
            if not self._allowed(queued.kind):
                self._queue.remove(queued)
                continue
            batch.append(queued)
            if len(batch) >= limit:
                break
        for queued in batch:
            queued.delivered = True
        batch.sort(key=lambda q: q.update_id)
        return [copy.deepcopy(q.update) for q in batch]

    async def _m_set_webhook(self, p: _Params, ctx: _RequestContext) -> Any:
        url = p.str_opt("url") or ""
        secret = p.str_opt("secret_token")
        allowed = p.json_opt("allowed_updates")
        max_connections = p.int_opt("max_connections")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _bad("bad webhook: invalid webhook URL specified")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad("bad webhook: secret token contains unallowed characters")
        if max_connections is not None and not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        if allowed is not None and not isinstance(allowed, list):
            raise _bad("can't parse allowed_updates JSON object")
        with self._lock:
            if p.bool_opt("drop_pending_updates"):
                self._queue.clear()
            if allowed is not None:
                self._allowed_updates = [str(a) for a in allowed]
            if url != self._webhook_url:
                self._webhook_last_error = None
            self._webhook_url = url
            self._webhook_secret = secret if url else None
            self._webhook_max_connections = max_connections or 40
            if url:  # a webhook terminates long polling
                self._poll_generation += 1
                self._poll_terminated_by = "Conflict: terminated by setWebhook request"
        self._notify_waiters()
        return True

    async def _m_delete_webhook(self, p: _Params, ctx: _RequestContext) -> Any:
        with self._lock:
            if p.bool_opt("drop_pending_updates"):
                self._queue.clear()
            self._webhook_url = ""
            self._webhook_secret = None
            self._webhook_last_error = None
        self._notify_waiters()
        return True

    async def _m_get_webhook_info(self, p: _Params, ctx: _RequestContext) -> Any:
        with self._lock:
            info: JSONDict = {
                "url": self._webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._queue),
            }
            if self._webhook_url:
                info["max_connections"] = self._webhook_max_connections
                if self._allowed_updates:
                    info["allowed_updates"] = list(self._allowed_updates)
                if self._webhook_last_error is not None:
                    info["last_error_date"], info["last_error_message"] = self._webhook_last_error
            return info

    def _command_key(self, p: _Params) -> tuple[str, str]:
        scope = p.json_opt("scope") or {"type": "default"}
        valid = {
            "default",
            "all_private_chats",
            "all_group_chats",
            "all_chat_administrators",
            "chat",
            "chat_administrators",
            "chat_member",
        }
        if not isinstance(scope, dict) or scope.get("type") not in valid:
            raise _bad("can't parse BotCommandScope JSON object")
        if scope["type"].startswith("chat"):
            chat_id = scope.get("chat_id")
            with self._lock:
                known = isinstance(chat_id, int) and chat_id in self._chats
            if not known:
                raise _bad("chat not found")
        language = p.str_opt("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _bad("invalid language code specified")
        return json.dumps(scope, sort_keys=True), language

    async def _m_set_my_commands(self, p: _Params, ctx: _RequestContext) -> Any:
        commands = p.json_opt("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > MAX_COMMANDS:
            raise _bad("too many commands specified")
        stored: list[JSONDict] = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand JSON object")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not _COMMAND_RE.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            stored.append({"command": name, "description": description})
        key = self._command_key(p)
        with self._lock:
            if stored:
                self._commands[key] = stored
            else:
                self._commands.pop(key, None)
        return True

    async def _m_get_my_commands(self, p: _Params, ctx: _RequestContext) -> Any:
        key = self._command_key(p)
        with self._lock:
            return copy.deepcopy(self._commands.get(key, []))

    async def _m_delete_my_commands(self, p: _Params, ctx: _RequestContext) -> Any:
        key = self._command_key(p)
        with self._lock:
            self._commands.pop(key, None)
        return True

    def _set_bot_text(self, p: _Params, field_name: str, limit: int) -> bool:
        value = p.str_opt(field_name) or ""
        if len(value) > limit:
            raise _bad(f"{field_name.replace('_', ' ')} is too long")
        with self._lock:
            self._bot_texts[(field_name, p.str_opt("language_code") or "")] = value
        return True

    def _get_bot_text(self, p: _Params, field_name: str) -> JSONDict:
        language = p.str_opt("language_code") or ""
        with self._lock:
            value = self._bot_texts.get((field_name, language))
            if value is None:
                value = self._bot_texts.get((field_name, ""), "")
        if field_name == "name" and not value:
            value = str(self.bot_user["first_name"])
        return {field_name: value}

    async def _m_set_my_description(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._set_bot_text(p, "description", 512)

    async def _m_get_my_description(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._get_bot_text(p, "description")

    async def _m_set_my_short_description(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._set_bot_text(p, "short_description", 120)

    async def _m_get_my_short_description(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._get_bot_text(p, "short_description")

    async def _m_set_my_name(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._set_bot_text(p, "name", 64)

    async def _m_get_my_name(self, p: _Params, ctx: _RequestContext) -> Any:
        return self._get_bot_text(p, "name")

    async def _m_set_chat_menu_button(self, p: _Params, ctx: _RequestContext) -> Any:
        chat_id = self._resolve_chat_id(p) if p.raw("chat_id") is not None else None
        if chat_id is not None:
            self._writable_chat(chat_id)
        button = p.json_opt("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise _bad("can't parse MenuButton JSON object")
        with self._lock:
            self._menu_buttons[chat_id] = dict(button)
        return True

    async def _m_get_chat_menu_button(self, p: _Params, ctx: _RequestContext) -> Any:
        chat_id = self._resolve_chat_id(p) if p.raw("chat_id") is not None else None
        with self._lock:
            button = self._menu_buttons.get(chat_id) or self._menu_buttons.get(None)
        return dict(button or {"type": "commands"})

    def _message_text(self, p: _Params) -> tuple[str, str | None, ParsedText]:
        """The ``text`` of sendMessage/editMessageText, parsed and checked as Telegram does."""
        text = p.str_opt("text")
        if text is None:
            raise _bad("message text is empty")
        parse_mode = p.str_opt("parse_mode") or None
        parsed = self._parse(
            text,
            parse_mode,
            p.json_opt("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
            empty="message text is empty",
        )
        return text, parse_mode, parsed

    async def _m_send_message(self, p: _Params, ctx: _RequestContext) -> Any:
        chat_id = self._resolve_chat_id(p)
        chat = self._writable_chat(chat_id)
        text, parse_mode, parsed = self._message_text(p)
        markup = self._validate_markup(p.json_opt("reply_markup"))
        reply_to = self._reply_target(p, chat_id)
        self._check_flood(chat)
        return self._create_bot_message(
            chat_id,
            "text",
            text=text,
            caption=None,
            parse_mode=parse_mode,
            parsed=parsed,
            reply_markup=markup,
            reply_to=reply_to,
        )

    async def _send_media(self, p: _Params, kind: str) -> Any:
        chat_id = self._resolve_chat_id(p)
        chat = self._writable_chat(chat_id)
        stored = self._input_file(p, kind, kind)
        if kind == "photo" and stored.source_url is None:
            if len(stored.data) > MAX_PHOTO_BYTES:
                raise _bad("file is too big")
            if image_size(stored.data) is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            width, height = stored.width, stored.height
            if width + height > 10000 or max(width, height) > 20 * max(min(width, height), 1):
                raise _bad("PHOTO_INVALID_DIMENSIONS")
        if kind == "document" and stored.source_url is None:
            if not stored.data:
                raise _bad("file must be non-empty")
            if len(stored.data) > MAX_UPLOAD_BYTES:
                raise _ApiError(413, "Request Entity Too Large")
        caption = p.str_opt("caption")
        parse_mode = p.str_opt("parse_mode") or None
        parsed = self._parse(
            caption or "",
            parse_mode,
            p.json_opt("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
            empty=None,
        )
        markup = self._validate_markup(p.json_opt("reply_markup"))
        reply_to = self._reply_target(p, chat_id)
        self._check_flood(chat)
        return self._create_bot_message(
            chat_id,
            kind,
            text=None,
            caption=caption,
            parse_mode=parse_mode,
            parsed=parsed,
            reply_markup=markup,
            reply_to=reply_to,
            file=stored,
        )

    async def _m_send_photo(self, p: _Params, ctx: _RequestContext) -> Any:
        return await self._send_media(p, "photo")

    async def _m_send_document(self, p: _Params, ctx: _RequestContext) -> Any:
        return await self._send_media(p, "document")

    async def _m_edit_message_text(self, p: _Params, ctx: _RequestContext) -> Any:
        msg = self._editable(p)
        if p.str_opt("text") is not None and msg.kind != "text":
            raise _bad("there is no text in the message to edit")
        text, parse_mode, parsed = self._message_text(p)
        markup = self._validate_markup(p.json_opt("reply_markup"), inline_only=True)
        return self._apply_edit(
            msg, text=text, caption=None, parse_mode=parse_mode, parsed=parsed, reply_markup=markup
        )

    async def _m_edit_message_caption(self, p: _Params, ctx: _RequestContext) -> Any:
        msg = self._editable(p)
        if msg.kind == "text":
            raise _bad("there is no caption in the message to edit")
        caption = p.str_opt("caption")
        parse_mode = p.str_opt("parse_mode") or None
        parsed = self._parse(
            caption or "",
            parse_mode,
            p.json_opt("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
            empty=None,
        )
        markup = self._validate_markup(p.json_opt("reply_markup"), inline_only=True)
        return self._apply_edit(
            msg,
            text=None,
            caption=caption,
            parse_mode=parse_mode,
            parsed=parsed,
            reply_markup=markup,
        )

    async def _m_edit_message_reply_markup(self, p: _Params, ctx: _RequestContext) -> Any:
        msg = self._editable(p)
        markup = self._validate_markup(p.json_opt("reply_markup"), inline_only=True)
        with self._lock:
            parsed = ParsedText(msg.plain_text, copy.deepcopy(msg.entities))
            text, caption, parse_mode = msg.text, msg.caption, msg.parse_mode
        return self._apply_edit(
            msg,
            text=text,
            caption=caption,
            parse_mode=parse_mode,
            parsed=parsed,
            reply_markup=markup,
        )

    def _delete(self, chat: JSONDict, message_id: int) -> bool:
        with self._lock:
            msg = self._messages.get((chat["id"], message_id))
            if msg is None or msg.deleted:
                return False
            if not msg.from_bot and chat["type"] != "private":
                raise _bad("message can't be deleted")
            msg.deleted = True
            snapshot = self._snapshot(msg) if msg.from_bot else None
        if snapshot is not None:
            self._emit("deleted", snapshot)
        return True

    async def _m_delete_message(self, p: _Params, ctx: _RequestContext) -> Any:
        chat = self._writable_chat(self._resolve_chat_id(p))
        message_id = p.int_opt("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        if not self._delete(chat, message_id):
            raise _bad("message to delete not found")
        return True

    async def _m_delete_messages(self, p: _Params, ctx: _RequestContext) -> Any:
        chat = self._writable_chat(self._resolve_chat_id(p))
        ids = p.json_opt("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must contain 1-100 message identifiers")
        for message_id in ids:
            if isinstance(message_id, int):
                with contextlib.suppress(_ApiError):
                    self._delete(chat, message_id)
        return True

    async def _m_answer_callback_query(self, p: _Params, ctx: _RequestContext) -> Any:
        query_id = p.str_opt("callback_query_id") or ""
        text = p.str_opt("text")
        if text is not None and utf16_len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad("MESSAGE_TOO_LONG")
        url = p.str_opt("url")
        with self._lock:
            query = self._callback_queries.get(query_id)
            expired = (
                query is not None
                and self.callback_query_timeout is not None
                and time.monotonic() - query.created > self.callback_query_timeout
            )
            if query is None or query.answered or expired:
                raise _bad(ERR_QUERY_TOO_OLD[len("Bad Request: ") :])
            query.answered = True
            self._callback_answers.append(
                CallbackAnswer(
                    query_id=query_id,
                    text=text,
                    show_alert=p.bool_opt("show_alert"),
                    url=url,
                    cache_time=p.int_opt("cache_time"),
                    time=time.time(),
                )
            )
        return True

    async def _m_send_chat_action(self, p: _Params, ctx: _RequestContext) -> Any:
        self._writable_chat(self._resolve_chat_id(p))
        if p.str_opt("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _m_get_chat(self, p: _Params, ctx: _RequestContext) -> Any:
        chat_id = self._resolve_chat_id(p)
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                raise _ApiError(400, ERR_CHAT_NOT_FOUND)
            info = dict(chat)
        info.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": True,
                    "limited_gifts": True,
                    "unique_gifts": True,
                    "premium_subscription": True,
                    "gifts_from_channels": True,
                },
            }
        )
        return info

    async def _m_get_file(self, p: _Params, ctx: _RequestContext) -> Any:
        file_id = p.str_opt("file_id") or ""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                raise _bad("invalid file_id")
            if len(stored.data) > MAX_DOWNLOAD_BYTES:
                raise _bad("file is too big")
            if stored.path is None:
                folder = "photos" if stored.file_id.startswith("EMUPHO") else "documents"
                suffix = ""
                if stored.filename and "." in stored.filename:
                    suffix = "." + stored.filename.rsplit(".", 1)[-1]
                elif folder == "photos":
                    suffix = ".jpg"
                stored.path = f"{folder}/file_{stored.unique_id}{suffix}"
                self._files_by_path[stored.path] = stored
            return {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "file_size": len(stored.data),
                "file_path": stored.path,
            }

    def _file_bytes(self, token: str, path: str) -> bytes | None:
        if token != self.token:
            return None
        with self._lock:
            stored = self._files_by_path.get(path)
            return stored.data if stored is not None else None

    # ----------------------------------------------------------------------------------------
    # Webhook delivery (runs on the emulator loop)
    # ----------------------------------------------------------------------------------------

    async def _webhook_loop(self) -> None:
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            while not self._closing:
                waiter = self._new_waiter()
                with self._lock:
                    item = self._next_webhook_item()
                if item is None:
                    await self._await_waiter(waiter, None)
                    continue
                self._waiters.discard(waiter)
                await self._deliver(client, *item)
        finally:
            client.close()

    def _next_webhook_item(self) -> tuple[str, str | None, _QueuedUpdate] | None:
        if not self._webhook_url:
            return None
        while self._queue:
            queued = self._queue[0]
            if self._allowed(queued.kind):
                return self._webhook_url, self._webhook_secret, queued
            self._queue.popleft()
        return None

    async def _deliver(
        self,
        client: tornado.httpclient.AsyncHTTPClient,
        url: str,
        secret: str | None,
        queued: _QueuedUpdate,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = json.dumps(queued.update)
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error: str | None = None
            reply = b""
            try:
                response = await client.fetch(
                    tornado.httpclient.HTTPRequest(
                        url,
                        method="POST",
                        body=body,
                        headers=headers,
                        request_timeout=self.webhook_timeout,
                        connect_timeout=self.webhook_timeout,
                    ),
                    raise_error=False,
                )
                status = response.code
                reply = response.body or b""
                if response.error is not None and not 200 <= response.code < 300:
                    error = f"Wrong response from the webhook: {response.code} {response.reason}"
            except Exception as exc:
                error = f"Connection failed: {type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            with self._lock:
                self._webhook_deliveries.append(
                    WebhookDelivery(queued.update_id, url, attempt, status, error, time.time())
                )
                present = any(q is queued for q in self._queue)
                if present and (ok or attempt >= self.webhook_max_attempts):
                    self._queue.remove(queued)
                if not ok:
                    self._webhook_last_error = (int(time.time()), error or "Unknown error")
                current = self._webhook_url == url
            if ok:
                await self._webhook_reply(reply)
                return
            if attempt >= self.webhook_max_attempts or not current or not present:
                return
            if self._closing:
                return
            await asyncio.sleep(self.webhook_retry_delay * 2 ** (attempt - 1))

    async def _webhook_reply(self, reply: bytes) -> None:
        """Execute a method call returned in the webhook response body, like Telegram."""
        if not reply.strip():
            return
        try:
            data = json.loads(reply)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            values = {k: v for k, v in data.items() if k != "method"}
            await self._execute(
                self.token, data["method"], values, {}, _RequestContext(), "webhook-reply"
            )


# --------------------------------------------------------------------------------------------
# Module helpers and HTTP handlers
# --------------------------------------------------------------------------------------------


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    text = button.get("text")
    if not isinstance(text, str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not text.strip():
        raise _bad("can't parse inline keyboard button: Text must be non-empty")
    actions = [key for key in _INLINE_BUTTON_ACTIONS if key in button]
    if not actions:
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if len(actions) > 1:
        raise _bad(
            "can't parse inline keyboard button: exactly one of "
            + ", ".join(_INLINE_BUTTON_ACTIONS)
            + " must be specified"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise _bad("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https", "tg")
            or not (parts.netloc or parts.scheme == "tg")
        ):
            raise _bad("BUTTON_URL_INVALID")


def _quiet_log(handler: tornado.web.RequestHandler) -> None:
    """Tornado access log hook: only log at DEBUG level."""
    if _LOGGER.isEnabledFor(logging.DEBUG):
        request = handler.request
        _LOGGER.debug("%s %s -> %s", request.method, request.path, handler.get_status())


def _extract_params(
    request: tornado.httputil.HTTPServerRequest,
) -> tuple[JSONDict, dict[str, _Upload], str]:
    values: JSONDict = {}
    for name, raw_values in request.query_arguments.items():
        values[name] = _coerce_form_value(name, raw_values[-1].decode("utf-8", "replace"))
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    files: dict[str, _Upload] = {}
    if content_type == "application/json":
        transport = "json"
        if request.body.strip():
            try:
                body = json.loads(request.body)
            except ValueError as exc:
                raise _bad("can't parse JSON encoded request") from exc
            if not isinstance(body, dict):
                raise _bad("can't parse JSON encoded request")
            values.update(body)
    else:
        transport = {
            "multipart/form-data": "multipart",
            "application/x-www-form-urlencoded": "form",
        }.get(content_type, "query")
        for name, raw_values in request.body_arguments.items():
            values[name] = _coerce_form_value(name, raw_values[-1].decode("utf-8", "replace"))
        for name, uploads in request.files.items():
            upload = uploads[-1]
            files[name] = _Upload(upload.filename, upload.body, upload.content_type)
    return values, files, transport


class _ApiHandler(tornado.web.RequestHandler):
    """``/bot<token>/<method>``: one Bot API call."""

    emulator: BotApiEmulator
    ctx: _RequestContext

    def initialize(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator
        self.ctx = _RequestContext()

    async def get(self, *args: str, **kwargs: str) -> None:
        await self._serve(args[0], args[1])

    async def post(self, *args: str, **kwargs: str) -> None:
        await self._serve(args[0], args[1])

    def on_connection_close(self) -> None:
        self.ctx.closed = True
        self.emulator._notify_waiters()

    async def _serve(self, token: str, method: str) -> None:
        try:
            values, files, transport = _extract_params(self.request)
        except _ApiError as err:
            status, body = err.status, err.body()
        else:
            status, body = await self.emulator._execute(
                token, method, values, files, self.ctx, transport
            )
        if self.ctx.closed:
            return
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False))


class _FileHandler(tornado.web.RequestHandler):
    """``/file/bot<token>/<file_path>``: download a file (after getFile)."""

    emulator: BotApiEmulator

    def initialize(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator

    def get(self, *args: str, **kwargs: str) -> None:
        data = self.emulator._file_bytes(args[0], args[1])
        if data is None:
            self.set_status(404)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}))
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)


class _NotFoundHandler(tornado.web.RequestHandler):
    """Any other path: Telegram's 404."""

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}))
