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

The package, by job (:class:`BotApiEmulator` in emulator.py puts the parts together; each
part is a class over ``_State``)::

    limits.py      Telegram's limits and error texts
    entities.py    HTML, MarkdownV2 and Markdown parsed into visible text and entities
    images.py      image sizes (Telegram's photo checks) and a tiny PNG
    records.py     the public records: SentMessage, MessageVersion, Call, CallbackAnswer, ...
    request.py     one request: typed parameters, uploads, Telegram's error format
    state.py       _State: every attribute, the loop-side wake-ups, the file and message store
    validation.py  _Validation: the checks the methods share (text, markup, chats, flood, ...)
    methods.py     _Methods: the Bot API methods (getUpdates, sendMessage, editMessageText, ...)
    server.py      _Server: the HTTP server thread, routing, one call's execution, webhooks
    users.py       _UserSide: what a user does (send, press, block) and what the console watches
    testing.py     _TestSide: what only tests and benchmarks use (inspection, faults, waiting)

The names below are the public ones; private helpers are imported from their modules.
"""

from bot.local_api.emulator import BotApiEmulator
from bot.local_api.entities import (
    EntityParseError,
    ParsedText,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    parse_text,
    utf16_len,
)
from bot.local_api.images import image_size
from bot.local_api.records import (
    Call,
    CallbackAnswer,
    FloodLimits,
    MessageVersion,
    SentMessage,
    WebhookDelivery,
)
from bot.local_api.state import DEFAULT_TOKEN

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
