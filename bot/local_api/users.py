"""The user's side, for the console, the tests and the benchmarks: make users and chats
known, send messages, photos, documents and stickers, press buttons, block the bot; and
what the console watches (``subscribe``, ``callback_answers``, ``pending_updates``).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable

from bot.local_api.entities import utf16_len
from bot.local_api.images import _tiny_png
from bot.local_api.records import CallbackAnswer, JSONDict, SentMessage, _buttons_of
from bot.local_api.state import _CallbackQuery, _inline_part, _Msg, _QueuedUpdate, _State


class _UserSide(_State):
    """What a user does in a chat with the bot, and what the console watches."""

    # ----------------------------------------------------------------------------------------
    # The user's side: users, chats and incoming updates
    # ----------------------------------------------------------------------------------------

    def _register(
        self,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        first_name: str,
        username: str | None,
        language_code: str | None,
        title: str | None = None,
    ) -> tuple[JSONDict, JSONDict]:
        if chat_id is None:
            if chat_type != "private":
                raise ValueError("chat_id is required for group chats")
            chat_id = user_id
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        if chat_type == "private":
            chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
            if username:
                chat["username"] = username
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or f"Test chat {chat_id}"}
        with self._lock:
            self._users[user_id] = user
            if chat_type == "private" or chat_id not in self._chats or title:
                self._chats[chat_id] = chat
            return dict(user), dict(self._chats[chat_id])

    def register_user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = None,
    ) -> None:
        """Make a private chat known (as if the user had started the bot) without an update."""
        self._register(user_id, None, "private", first_name, username, language_code)

    def register_chat(
        self,
        chat_id: int,
        *,
        chat_type: str = "supergroup",
        title: str | None = None,
    ) -> None:
        """Make a group chat known to the bot without an update."""
        if chat_type == "private":
            raise ValueError("use register_user for private chats")
        chat = {"id": chat_id, "type": chat_type, "title": title or f"Test chat {chat_id}"}
        with self._lock:
            self._chats[chat_id] = chat

    def _enqueue(self, update: JSONDict) -> JSONDict:
        with self._lock:
            if "update_id" in update:
                update_id = int(update["update_id"])
                replay = update_id <= self._max_update_id
            else:
                update_id = self._next_update_id
                update = {"update_id": update_id, **update}
                replay = False
            self._max_update_id = max(self._max_update_id, update_id)
            self._next_update_id = max(self._next_update_id, update_id + 1)
            self._queue.append(_QueuedUpdate(copy.deepcopy(update), replay))
            self._last_activity = time.monotonic()
        self._wake()
        return copy.deepcopy(update)

    def _incoming(
        self,
        user_id: int,
        content: JSONDict,
        *,
        chat_id: int | None,
        chat_type: str,
        first_name: str,
        username: str | None,
        language_code: str | None,
        reply_to_message_id: int | None,
    ) -> JSONDict:
        user, chat = self._register(
            user_id, chat_id, chat_type, first_name, username, language_code
        )
        with self._lock:
            message_id = self._alloc_message_id(chat["id"])
            message: JSONDict = {
                "message_id": message_id,
                "from": user,
                "chat": chat,
                "date": int(time.time()),
                **content,
            }
            if reply_to_message_id is not None:
                target = self._messages.get((chat["id"], reply_to_message_id))
                if target is None:
                    raise LookupError(f"no message {reply_to_message_id} in chat {chat['id']}")
                message["reply_to_message"] = self._message_json(target, with_reply=False)
            self._messages[(chat["id"], message_id)] = _Msg(
                seq=next(self._seq),
                chat_id=chat["id"],
                message_id=message_id,
                from_bot=False,
                date=message["date"],
                kind="incoming",
                plain_text=str(content.get("text", content.get("caption", ""))),
                raw=copy.deepcopy(message),
            )
        return self._enqueue({"message": message})

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = None,
        entities: list[JSONDict] | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """Enqueue a text message from ``user_id`` and return the update (a copy).

        ``chat_id`` defaults to ``user_id`` (private chat); group chats need a negative
        ``chat_id`` and ``chat_type="group"`` or ``"supergroup"``. A leading ``/command`` gets a
        ``bot_command`` entity unless ``entities`` is given.
        """
        content: JSONDict = {"text": text}
        if entities is None:
            match = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![^\s])", text)
            entities = (
                [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]
                if match
                else []
            )
        if entities:
            content["entities"] = entities
        return self._incoming(
            user_id,
            content,
            chat_id=chat_id,
            chat_type=chat_type,
            first_name=first_name,
            username=username,
            language_code=language_code,
            reply_to_message_id=reply_to_message_id,
        )

    def send_photo_message(
        self,
        user_id: int,
        *,
        data: bytes | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Test",
        username: str | None = None,
    ) -> JSONDict:
        """Enqueue a photo message (default: a tiny PNG); the bot can download it via getFile."""
        stored = self._store_file(data or _tiny_png(), None, "image/png", "photo")
        content: JSONDict = {"photo": [stored.size_json()]}
        if caption:
            content["caption"] = caption
        return self._incoming(
            user_id,
            content,
            chat_id=chat_id,
            chat_type=chat_type,
            first_name=first_name,
            username=username,
            language_code=None,
            reply_to_message_id=None,
        )

    def send_document_message(
        self,
        user_id: int,
        data: bytes,
        filename: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> JSONDict:
        """Enqueue a document message; the bot can download it via getFile."""
        stored = self._store_file(data, filename, mime_type, "document")
        content: JSONDict = {"document": stored.document_json()}
        if caption:
            content["caption"] = caption
        return self._incoming(
            user_id,
            content,
            chat_id=chat_id,
            chat_type=chat_type,
            first_name="Test",
            username=None,
            language_code=None,
            reply_to_message_id=None,
        )

    def send_sticker(
        self, user_id: int, *, emoji: str = "👍", chat_id: int | None = None
    ) -> JSONDict:
        """Enqueue a sticker message (a non-text message the bot should cope with)."""
        stored = self._store_file(_tiny_png(), "sticker.webp", "image/webp", "sticker")
        sticker: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": len(stored.data),
        }
        return self._incoming(
            user_id,
            {"sticker": sticker},
            chat_id=chat_id,
            chat_type="private" if chat_id is None or chat_id > 0 else "supergroup",
            first_name="Test",
            username=None,
            language_code=None,
            reply_to_message_id=None,
        )

    def send_raw_update(self, update: JSONDict) -> JSONDict:
        """Enqueue an arbitrary update dict; an ``update_id`` is assigned when missing.

        Reusing an ``update_id`` that was already delivered replays the update (it is delivered
        once more even though the bot confirmed that id). Chats and users found in the update's
        message become known, so the bot can answer them.
        """
        for key in ("message", "edited_message", "channel_post", "business_message"):
            message = update.get(key)
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                chat = message["chat"]
                with self._lock:
                    self._chats.setdefault(int(chat["id"]), dict(chat))
                    sender = message.get("from")
                    if isinstance(sender, dict) and not sender.get("is_bot"):
                        self._users.setdefault(int(sender["id"]), dict(sender))
                    key_id = (int(chat["id"]), int(message.get("message_id", 0)))
                    if key_id not in self._messages and key == "message":
                        self._messages[key_id] = _Msg(
                            seq=next(self._seq),
                            chat_id=key_id[0],
                            message_id=key_id[1],
                            from_bot=False,
                            date=int(message.get("date", time.time())),
                            kind="incoming",
                            raw=copy.deepcopy(message),
                        )
        return self._enqueue(copy.deepcopy(update))

    def press(
        self,
        user_id: int,
        message_id: int,
        callback_data: str | None = None,
        *,
        chat_id: int | None = None,
        button_text: str | None = None,
        strict: bool = True,
    ) -> JSONDict:
        """Press an inline button on a message the bot sent; return the callback_query update.

        Give either ``callback_data`` or ``button_text``. With ``strict`` the button must be on
        the message's current keyboard (pass ``strict=False`` to simulate a stale client).
        """
        chat_id = user_id if chat_id is None else chat_id
        with self._lock:
            msg = self._messages.get((chat_id, message_id))
            if msg is None or not msg.from_bot or msg.deleted:
                raise LookupError(f"the bot has no message {message_id} in chat {chat_id}")
            buttons = [b for row in _buttons_of(_inline_part(msg.reply_markup)) for b in row]
            if button_text is not None:
                found = [data for text, data in buttons if text == button_text and data]
                if not found:
                    raise LookupError(f"no callback button {button_text!r} in {buttons!r}")
                callback_data = found[0]
            if callback_data is None:
                raise ValueError("give callback_data or button_text")
            if strict and callback_data not in [data for _text, data in buttons]:
                raise LookupError(
                    f"message {message_id} has no button with callback_data "
                    f"{callback_data!r}; buttons: {buttons!r}"
                )
            user = self._users.get(user_id) or {
                "id": user_id,
                "is_bot": False,
                "first_name": "Test",
            }
            self._users.setdefault(user_id, user)
            query_id = str(4_000_000_000_000 + next(self._callback_counter))
            self._callback_queries[query_id] = _CallbackQuery(
                query_id, chat_id, message_id, user_id, callback_data, time.monotonic()
            )
            query: JSONDict = {
                "id": query_id,
                "from": dict(user),
                "message": self._message_json(msg),
                "chat_instance": str(abs(chat_id) * 7919 % 10**12),
                "data": callback_data,
            }
        return self._enqueue({"callback_query": query})

    def block_user(self, user_id: int, *, notify: bool = True) -> None:
        """The user blocks the bot: sends to their private chat get 403 until unblocked.

        With ``notify`` (and a known chat) a ``my_chat_member`` update (status ``kicked``) is
        enqueued, as Telegram does.
        """
        self._set_blocked(user_id, True, notify)

    def unblock_user(self, user_id: int, *, notify: bool = True) -> None:
        """Undo :meth:`block_user` (enqueues a ``my_chat_member`` update with ``member``)."""
        self._set_blocked(user_id, False, notify)

    def _set_blocked(self, user_id: int, blocked: bool, notify: bool) -> None:
        with self._lock:
            changed = (user_id in self._blocked) != blocked
            if blocked:
                self._blocked.add(user_id)
            else:
                self._blocked.discard(user_id)
            chat = self._chats.get(user_id)
            user = self._users.get(user_id)
        if not (notify and changed and chat is not None and user is not None):
            return
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        old_member: JSONDict = {"status": old, "user": dict(self.bot_user)}
        new_member: JSONDict = {"status": new, "user": dict(self.bot_user)}
        for member in (old_member, new_member):
            if member["status"] == "kicked":
                member["until_date"] = 0
        self._enqueue(
            {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": dict(user),
                    "date": int(time.time()),
                    "old_chat_member": old_member,
                    "new_chat_member": new_member,
                }
            }
        )

    # ----------------------------------------------------------------------------------------
    # What the console watches
    # ----------------------------------------------------------------------------------------

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        """Successful ``answerCallbackQuery`` calls (oldest first)."""
        with self._lock:
            return list(self._callback_answers)

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by getUpdates (or not yet delivered to the webhook)."""
        with self._lock:
            return len(self._queue)

    def subscribe(self, listener: Callable[[str, SentMessage], None]) -> Callable[[], None]:
        """Call ``listener(event, message)`` for "sent", "edited" and "deleted" bot messages.

        Listeners run on the emulator thread and must be quick. Returns an unsubscribe function.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
