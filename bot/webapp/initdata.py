"""Telegram Mini App launch data (``initData``): checking it, and signing it for the console.

Telegram hands the page a query string (``query_id=…&user=…&auth_date=…&hash=…``); the page
sends it back with every API call (``Authorization: tma <initData>``). It is genuine when
``hash`` is hex(HMAC-SHA-256(data_check_string, key)) with key = HMAC-SHA-256("WebAppData",
bot token) and the data-check string is every other field, sorted by name, ``name=value``
joined with line feeds (core.telegram.org/bots/webapps, "Validating data received via the
Mini App"). Only ``hash`` is left out: ``signature`` (the Ed25519 signature for third
parties) is one of the signed fields. Values are checked exactly as received (after the
query string's own percent-decoding), never re-serialised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

#: How old launch data may be: Telegram gives no number; a day is what its own libraries use.
MAX_AGE_SECONDS = 24 * 3600
#: How far in the future ``auth_date`` may be (clocks differ a little).
MAX_SKEW_SECONDS = 60


class InvalidInitData(Exception):
    """Launch data that is malformed, wrongly signed or too old (the message says which)."""


@dataclass(frozen=True, slots=True)
class LaunchUser:
    """The Telegram user the launch data names."""

    id: int
    first_name: str
    auth_date: int


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _check_string(fields: dict[str, str]) -> bytes:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()


def validate(init_data: str, bot_token: str, *, now: float | None = None) -> LaunchUser:
    """The user of genuine, fresh launch data; raises :class:`InvalidInitData` otherwise."""
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidInitData("malformed launch data") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InvalidInitData("a field appears twice")
    presented = fields.pop("hash", "")
    expected = hmac.new(_secret(bot_token), _check_string(fields), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise InvalidInitData("wrong signature")
    try:
        auth_date = int(fields["auth_date"])
        user = json.loads(fields["user"])
        user_id = user["id"]
    except (KeyError, ValueError, TypeError):
        raise InvalidInitData("no user or auth_date") from None
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise InvalidInitData("no user id")
    at = time.time() if now is None else now
    if auth_date < at - MAX_AGE_SECONDS:
        raise InvalidInitData("expired")
    if auth_date > at + MAX_SKEW_SECONDS:
        raise InvalidInitData("auth_date is in the future")
    first_name = user.get("first_name")
    return LaunchUser(user_id, first_name if isinstance(first_name, str) else "", auth_date)


def sign(bot_token: str, user_id: int, first_name: str, auth_date: int) -> str:
    """Launch data for ``user_id`` as Telegram would sign it (the local console, tests)."""
    user = json.dumps({"id": user_id, "first_name": first_name}, separators=(",", ":"))
    fields = {"auth_date": str(auth_date), "query_id": f"console{user_id}", "user": user}
    digest = hmac.new(_secret(bot_token), _check_string(fields), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest})
