"""What the emulator records and reports: the public dataclasses (a message the bot
sent and its earlier versions, an API call, a callback answer, a webhook delivery) and
the flood-control settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class MessageVersion:
    """A previous version of a bot message, recorded when the message is edited."""

    text: str | None
    caption: str | None
    plain_text: str
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    time: float


def _buttons_of(markup: JSONDict | None) -> list[list[tuple[str, str | None]]]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    result: list[list[tuple[str, str | None]]] = []
    for row in rows:
        buttons: list[tuple[str, str | None]] = []
        for button in row:
            if isinstance(button, str):
                buttons.append((button, None))
            else:
                data = button.get("callback_data")
                label = str(button.get("text", ""))
                buttons.append((label, data if isinstance(data, str) else None))
        result.append(buttons)
    return result


@dataclass
class SentMessage:
    """A message the bot sent, as the emulator stores it (a snapshot; edits update the store).

    ``text`` and ``caption`` are the raw strings the bot sent (with markup); ``plain_text`` is
    what the user sees (the parsed text, or the parsed caption for media messages).
    """

    message_id: int
    chat_id: int
    kind: str
    text: str | None
    plain_text: str
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    caption: str | None = None
    document: bytes | None = None
    photo: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    file_id: str | None = None
    edits: int = 0
    history: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False
    date: int = 0
    reply_to_message_id: int | None = None
    message: JSONDict = field(default_factory=dict)

    @property
    def buttons(self) -> list[list[tuple[str, str | None]]]:
        """Keyboard rows as ``(text, callback_data)`` pairs (``None`` for non-callback buttons)."""
        return _buttons_of(self.reply_markup)

    def callback_data(self, button_text: str) -> str:
        """Return the callback data of the button labelled ``button_text``."""
        for row in self.buttons:
            for text, data in row:
                if text == button_text and data is not None:
                    return data
        raise KeyError(f"no callback button {button_text!r} in {self.buttons!r}")


@dataclass(frozen=True)
class Call:
    """One Bot API request the emulator received."""

    method: str
    params: JSONDict
    files: dict[str, str]
    time: float
    status: int
    description: str | None
    result: Any
    transport: str

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status == HTTPStatus.OK


@dataclass(frozen=True)
class CallbackAnswer:
    """An ``answerCallbackQuery`` call that succeeded."""

    query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    time: float


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook."""

    update_id: int
    url: str
    attempt: int
    status: int | None
    error: str | None
    time: float


@dataclass(frozen=True)
class FloodLimits:
    """Optional flood control (429 ``Too Many Requests``) for message-sending methods.

    Defaults follow Telegram's published guidance: 30 messages per second overall and
    20 messages per minute per group. ``private_per_second`` limits a single private chat
    (Telegram's "about one message per second", which it enforces loosely); ``None`` disables a
    limit.
    """

    global_per_second: int | None = 30
    group_per_minute: int | None = 20
    private_per_second: int | None = None
