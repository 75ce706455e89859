"""Request validation as Telegram does it: text and caption (entity parsing, length),
explicit entities, reply markup and inline buttons, chat ids, blocked users, flood
limits, reply targets and input files."""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from bot.local_api.entities import (
    EntityParseError,
    ParsedText,
    _finish_parsed,
    parse_text,
    utf16_len,
)
from bot.local_api.limits import (
    _INLINE_BUTTON_ACTIONS,
    ERR_BLOCKED,
    ERR_CHAT_NOT_FOUND,
    MAX_INLINE_BUTTONS,
    MAX_INLINE_BUTTONS_PER_ROW,
)
from bot.local_api.records import JSONDict
from bot.local_api.request import _ApiError, _bad, _Params
from bot.local_api.state import _State, _StoredFile


class _Validation(_State):
    """Checks shared by the Bot API methods; each raises Telegram's error."""

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


def web_app_url_ok(web_app: Any) -> bool:
    """A ``WebAppInfo`` Telegram takes: an object whose ``url`` is https (plain http is
    accepted for localhost and 127.0.0.1 only, so a dashboard on this machine can be tried)."""
    if not isinstance(web_app, dict) or not isinstance(web_app.get("url"), str):
        return False
    parts = urlsplit(web_app["url"])
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")


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
    if "web_app" in button and not web_app_url_ok(button["web_app"]):
        raise _bad("BUTTON_URL_INVALID")
    if "url" in button:
        url = button["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https", "tg")
            or not (parts.netloc or parts.scheme == "tg")
        ):
            raise _bad("BUTTON_URL_INVALID")
