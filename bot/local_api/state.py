"""The emulator's state: users, chats, messages, files, the update queue and callback
queries, with the message store (what the bot sent, as Telegram's JSON and as
:class:`~bot.local_api.records.SentMessage` snapshots) and the loop-side wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from bot.local_api.entities import ParsedText
from bot.local_api.images import image_size
from bot.local_api.limits import ERR_CONFLICT_POLLING, ERR_NOT_MODIFIED
from bot.local_api.records import (
    Call,
    CallbackAnswer,
    FloodLimits,
    JSONDict,
    MessageVersion,
    SentMessage,
    WebhookDelivery,
)
from bot.local_api.request import _bad, _MethodImpl

_LOGGER = logging.getLogger(__name__)

DEFAULT_TOKEN: Final = "123456:TEST-token-for-local-emulator"


@dataclass(eq=False)
class _StoredFile:
    file_id: str
    unique_id: str
    data: bytes
    filename: str | None
    mime_type: str | None
    width: int = 0
    height: int = 0
    path: str | None = None
    source_url: str | None = None

    def size_json(self) -> JSONDict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.unique_id,
            "width": self.width,
            "height": self.height,
            "file_size": len(self.data),
        }

    def document_json(self) -> JSONDict:
        doc: JSONDict = {
            "file_id": self.file_id,
            "file_unique_id": self.unique_id,
            "file_size": len(self.data),
        }
        if self.filename:
            doc["file_name"] = self.filename
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc


@dataclass(eq=False)
class _QueuedUpdate:
    update: JSONDict
    replay: bool
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def kind(self) -> str:
        return next((k for k in self.update if k != "update_id"), "")


@dataclass(eq=False)
class _Msg:
    seq: int
    chat_id: int
    message_id: int
    from_bot: bool
    date: int
    kind: str
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    plain_text: str = ""
    entities: list[JSONDict] = field(default_factory=list)
    reply_markup: JSONDict | None = None
    file: _StoredFile | None = None
    edits: int = 0
    edit_date: int | None = None
    history: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False
    reply_to: int | None = None
    raw: JSONDict | None = None


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Delay:
    seconds: float
    remaining: int


@dataclass
class _CallbackQuery:
    query_id: str
    chat_id: int
    message_id: int
    user_id: int
    data: str | None
    created: float
    answered: bool = False


def _inline_part(markup: JSONDict | None) -> JSONDict | None:
    """The part of a reply markup Telegram echoes in Message.reply_markup."""
    if not markup or "inline_keyboard" not in markup:
        return None
    rows = [list(row) for row in markup["inline_keyboard"] if row]
    return {"inline_keyboard": copy.deepcopy(rows)} if rows else None


class _State:
    """The emulator's state and the base of every part of ``BotApiEmulator``.

    ``__init__`` holds every attribute (what threads share is guarded by ``_lock``); this
    class adds the wake-ups of long polls and the webhook loop (on the emulator's event
    loop), the file store and the message store. The other parts are mixins over it:
    validation.py, methods.py and server.py (the Bot API over HTTP), users.py (what a
    user does) and testing.py (what only tests and benchmarks use).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        bot_username: str = "aelpher_test_bot",
        *,
        bot_first_name: str = "Aelpher",
        strict_html: bool = True,
        flood_limits: FloodLimits | None = None,
        webhook_max_attempts: int = 4,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
        callback_query_timeout: float | None = None,
        max_recorded_calls: int = 100_000,
        first_message_id: int = 1,
    ) -> None:
        self.token = token
        #: the id of the first message in every chat (the local console continues across
        #: restarts from where it stopped, as Telegram's ids do)
        self.first_message_id = first_message_id
        self.bot_username = bot_username
        self.strict_html = strict_html
        self.flood_limits = flood_limits
        self.webhook_max_attempts = max(1, webhook_max_attempts)
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.callback_query_timeout = callback_query_timeout
        prefix = token.split(":", 1)[0]
        self.bot_user: JSONDict = {
            "id": int(prefix) if prefix.isdigit() else 1,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

        self._lock = threading.RLock()
        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._blocked: set[int] = set()
        self._messages: dict[tuple[int, int], _Msg] = {}
        self._next_message_ids: dict[int, int] = {}
        self._seq = itertools.count(1)
        self._visible_from_seq = 0
        self._queue: deque[_QueuedUpdate] = deque()
        self._next_update_id = 1
        self._max_update_id = 0
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._poll_terminated_by = ERR_CONFLICT_POLLING
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = 40
        self._webhook_last_error: tuple[int, str] | None = None
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._bot_texts: dict[tuple[str, str], str] = {}
        self._menu_buttons: dict[int | None, JSONDict] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callback_queries: dict[str, _CallbackQuery] = {}
        self._callback_counter = itertools.count(1)
        self._calls: deque[Call] = deque(maxlen=max_recorded_calls)
        self._call_counts: dict[str, int] = {}
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._sent_counts: dict[int | None, int] = {}
        self._callback_answers: list[CallbackAnswer] = []
        self._webhook_deliveries: list[WebhookDelivery] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._flood: dict[object, deque[float]] = {}
        self._listeners: list[Callable[[str, SentMessage], None]] = []

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._closing = False
        self._port = 0
        self._start_error: BaseException | None = None

        self._methods: dict[str, tuple[str, _MethodImpl]] = {}
        for name, impl in self._method_table().items():
            self._methods[name.lower()] = (name, impl)

    def _method_table(self) -> dict[str, _MethodImpl]:
        """The Bot API methods by name (defined in methods.py)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------
    # Loop-side wake-ups
    # ----------------------------------------------------------------------------------------

    def _notify_waiters(self) -> None:
        """Wake long polls and the webhook loop (must run on the emulator loop)."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._notify_waiters)

    def _new_waiter(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        return fut

    async def _await_waiter(self, fut: asyncio.Future[None], delay: float | None) -> None:
        try:
            await asyncio.wait_for(fut, delay)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    # ----------------------------------------------------------------------------------------
    # File store
    # ----------------------------------------------------------------------------------------

    def _store_file(
        self,
        data: bytes,
        filename: str | None,
        mime_type: str | None,
        kind: str,
        *,
        source_url: str | None = None,
    ) -> _StoredFile:
        number = next(self._file_counter)
        stored = _StoredFile(
            file_id=f"EMU{kind[:3].upper()}{number:08d}",
            unique_id=f"U{number:08d}",
            data=data,
            filename=filename,
            mime_type=mime_type,
            source_url=source_url,
        )
        size = image_size(data) if kind in ("photo", "sticker") else None
        if size:
            stored.width, stored.height = size
        with self._lock:
            self._files[stored.file_id] = stored
        return stored

    # ----------------------------------------------------------------------------------------
    # Message store
    # ----------------------------------------------------------------------------------------

    def _alloc_message_id(self, chat_id: int) -> int:
        with self._lock:
            message_id = self._next_message_ids.get(chat_id, self.first_message_id)
            self._next_message_ids[chat_id] = message_id + 1
            return message_id

    def next_message_id(self, chat_id: int) -> int:
        """The id the next message in ``chat_id`` will get."""
        with self._lock:
            return self._next_message_ids.get(chat_id, self.first_message_id)

    def _message_json(self, msg: _Msg, *, with_reply: bool = True) -> JSONDict:
        if msg.raw is not None:
            return copy.deepcopy(msg.raw)
        result: JSONDict = {
            "message_id": msg.message_id,
            "from": dict(self.bot_user),
            "chat": dict(self._chats.get(msg.chat_id) or {"id": msg.chat_id, "type": "private"}),
            "date": msg.date,
        }
        if msg.edit_date is not None:
            result["edit_date"] = msg.edit_date
        if msg.kind == "text":
            result["text"] = msg.plain_text
            if msg.entities:
                result["entities"] = copy.deepcopy(msg.entities)
        else:
            assert msg.file is not None
            if msg.kind == "photo":
                result["photo"] = [msg.file.size_json()]
            else:
                result["document"] = msg.file.document_json()
            if msg.plain_text:
                result["caption"] = msg.plain_text
                if msg.entities:
                    result["caption_entities"] = copy.deepcopy(msg.entities)
        if with_reply and msg.reply_to is not None:
            target = self._messages.get((msg.chat_id, msg.reply_to))
            if target is not None:
                reply = self._message_json(target, with_reply=False)
                reply.pop("reply_to_message", None)
                result["reply_to_message"] = reply
        inline = _inline_part(msg.reply_markup)
        if inline is not None:
            result["reply_markup"] = inline
        return result

    def _snapshot(self, msg: _Msg) -> SentMessage:
        data = msg.file.data if msg.file is not None else None
        return SentMessage(
            message_id=msg.message_id,
            chat_id=msg.chat_id,
            kind=msg.kind,
            text=msg.text,
            plain_text=msg.plain_text,
            parse_mode=msg.parse_mode,
            entities=copy.deepcopy(msg.entities),
            reply_markup=copy.deepcopy(msg.reply_markup),
            caption=msg.caption,
            document=data if msg.kind == "document" else None,
            photo=data if msg.kind == "photo" else None,
            filename=msg.file.filename if msg.file is not None else None,
            mime_type=msg.file.mime_type if msg.file is not None else None,
            file_id=msg.file.file_id if msg.file is not None else None,
            edits=msg.edits,
            history=list(msg.history),
            deleted=msg.deleted,
            date=msg.date,
            reply_to_message_id=msg.reply_to,
            message=self._message_json(msg),
        )

    def _emit(self, event: str, snapshot: SentMessage) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, snapshot)
            except Exception:
                _LOGGER.exception("Bot API emulator listener failed")

    def _create_bot_message(
        self,
        chat_id: int,
        kind: str,
        *,
        text: str | None,
        caption: str | None,
        parse_mode: str | None,
        parsed: ParsedText,
        reply_markup: JSONDict | None,
        reply_to: int | None,
        file: _StoredFile | None = None,
    ) -> JSONDict:
        with self._lock:
            msg = _Msg(
                seq=next(self._seq),
                chat_id=chat_id,
                message_id=self._alloc_message_id(chat_id),
                from_bot=True,
                date=int(time.time()),
                kind=kind,
                text=text,
                caption=caption,
                parse_mode=parse_mode,
                plain_text=parsed.text,
                entities=parsed.entities,
                reply_markup=reply_markup,
                file=file,
                reply_to=reply_to,
            )
            self._messages[(chat_id, msg.message_id)] = msg
            for key in (chat_id, None):
                self._sent_counts[key] = self._sent_counts.get(key, 0) + 1
            result = self._message_json(msg)
            snapshot = self._snapshot(msg)
        self._emit("sent", snapshot)
        return result

    def _apply_edit(
        self,
        msg: _Msg,
        *,
        text: str | None,
        caption: str | None,
        parse_mode: str | None,
        parsed: ParsedText,
        reply_markup: JSONDict | None,
    ) -> JSONDict:
        with self._lock:
            old_inline = _inline_part(msg.reply_markup)
            if (
                parsed.text == msg.plain_text
                and parsed.entities == msg.entities
                and _inline_part(reply_markup) == old_inline
            ):
                raise _bad(ERR_NOT_MODIFIED[len("Bad Request: ") :])
            msg.history.append(
                MessageVersion(
                    text=msg.text,
                    caption=msg.caption,
                    plain_text=msg.plain_text,
                    parse_mode=msg.parse_mode,
                    entities=copy.deepcopy(msg.entities),
                    reply_markup=copy.deepcopy(msg.reply_markup),
                    time=time.time(),
                )
            )
            if msg.kind == "text":
                msg.text = text
            else:
                msg.caption = caption
            msg.parse_mode = parse_mode
            msg.plain_text = parsed.text
            msg.entities = parsed.entities
            if reply_markup is not None or old_inline is not None:
                msg.reply_markup = reply_markup
            msg.edits += 1
            msg.edit_date = int(time.time())
            result = self._message_json(msg)
            snapshot = self._snapshot(msg)
        self._emit("edited", snapshot)
        return result
