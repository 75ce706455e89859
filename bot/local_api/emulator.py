"""The emulator, put together from its parts (see the package docstring)."""

from __future__ import annotations

from bot.local_api.server import _Server
from bot.local_api.testing import _TestSide


class BotApiEmulator(_Server, _TestSide):
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
