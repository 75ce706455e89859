"""The HTTP server: the tornado thread and its lifecycle, request decoding and routing,
the execution of one call (with the injected faults and delays), and webhook delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import tornado.httpclient
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from bot.local_api.limits import MAX_UPLOAD_BYTES
from bot.local_api.methods import _Methods
from bot.local_api.records import Call, JSONDict, WebhookDelivery
from bot.local_api.request import _ApiError, _bad, _Params, _RequestContext, _Upload
from bot.local_api.state import _QueuedUpdate

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


class _Server(_Methods):
    """The Bot API over HTTP on 127.0.0.1, on a thread of its own."""

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
# HTTP handlers
# --------------------------------------------------------------------------------------------


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

    emulator: _Server
    ctx: _RequestContext

    def initialize(self, emulator: _Server) -> None:
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

    emulator: _Server

    def initialize(self, emulator: _Server) -> None:
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
