"""Secrets out of everything the bot writes down: log lines, the console, the database, exports.

One function, :func:`redact`, used by the log filter (``bot/__main__.py``), the local console
(``bot/console.py``) and every text the services persist or export that may quote an error
(``nudges.last_error``, /export). It replaces with ``***``:

- any Telegram bot token, configured or not: ``<digits>:<20 or more of A-Z a-z 0-9 _ ->``,
  so ``https://api.telegram.org/bot123456:AAE.../sendMessage`` (the request URL aiohttp puts
  into its errors) becomes ``https://api.telegram.org/bot***/sendMessage``;
- every secret the process was configured with (:func:`remember`: the token, the database
  password, API keys, the webhook secret) and any passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "redact", "remember"]

MASK = "***"
_TOKEN = re.compile(r"(?<![0-9])[0-9]{3,}:[A-Za-z0-9_-]{20,}")
_remembered: set[str] = set()


def remember(secrets: Iterable[str], *, min_length: int = 6) -> None:
    """Redact these secrets from now on, everywhere in this process (shorter ones are
    ignored: masking every "test" would garble the text more than it protects)."""
    _remembered.update(s for s in secrets if len(s) >= min_length)


def redact(text: str, secrets: Iterable[str] = (), *, min_length: int = 6) -> str:
    """``text`` with every bot token and every secret (remembered or given) masked."""
    found = _remembered | {s for s in secrets if len(s) >= min_length}
    for secret in sorted(found, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _TOKEN.sub(MASK, text)
