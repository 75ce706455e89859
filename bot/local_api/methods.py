"""The Bot API methods the emulator implements (``_m_*``, by name in ``_method_table``)."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from bot.local_api.entities import ParsedText, utf16_len
from bot.local_api.images import image_size
from bot.local_api.limits import (
    _CHAT_ACTIONS,
    _COMMAND_RE,
    _DEFAULT_EXCLUDED_UPDATES,
    _SECRET_TOKEN_RE,
    ERR_CHAT_NOT_FOUND,
    ERR_CONFLICT_POLLING,
    ERR_CONFLICT_WEBHOOK,
    ERR_QUERY_TOO_OLD,
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CAPTION_LENGTH,
    MAX_COMMANDS,
    MAX_DOWNLOAD_BYTES,
    MAX_PHOTO_BYTES,
    MAX_TEXT_LENGTH,
    MAX_UPLOAD_BYTES,
)
from bot.local_api.records import CallbackAnswer, JSONDict
from bot.local_api.request import _ApiError, _bad, _MethodImpl, _Params, _RequestContext
from bot.local_api.state import _Msg, _QueuedUpdate
from bot.local_api.validation import _Validation, web_app_url_ok


class _Methods(_Validation):
    """The Bot API methods; each runs on the emulator's event loop."""

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
        if button["type"] == "web_app":
            text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _bad("can't parse MenuButton JSON object: Text must be non-empty")
            if not web_app_url_ok(button.get("web_app")):
                raise _bad("BUTTON_URL_INVALID")
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
