"""Durations and clock times as people type them on a phone.

Pure functions, no I/O. :func:`parse_minutes` reads ``90``, ``90m``, ``90 min``, ``1h30``,
``1h 30m``, ``1.5h``, ``1,5 h``, ``1:30`` and ``2 hours`` (all minutes); :func:`parse_clock`
reads ``7``, ``7am``, ``07:30``, ``7.30``, ``0730``, ``19:30``, ``7:30 pm``, ``noon`` and
``midnight``. Errors name the field and list the accepted forms; ranges are the caller's check
(``validation.check_minutes``).
"""

from __future__ import annotations

import re
from datetime import time
from decimal import ROUND_HALF_UP, Decimal

from services.errors import DomainError, _label, _quote

__all__ = [
    "CLOCK_FORMS",
    "MINUTE_FORMS",
    "NotAClockTime",
    "NotADuration",
    "parse_clock",
    "parse_minutes",
]  # fmt: skip

MINUTE_FORMS = "90, 90m, 1h30, 1h 30m, 1.5h or 1:30"
CLOCK_FORMS = "7, 7am, 07:30, 19:30 or 7:30 pm"

_NUMBER = r"\d{1,5}(?:[.,]\d{1,3})?"
_HOURS_WORD = r"h|hr|hrs|hour|hours"
_MINUTES_WORD = r"m|min|mins|minute|minutes|'"
# "1h30", "1 h 30 m", "1.5h", "90", "90 min": hours and/or minutes, in that order.
_DURATION = re.compile(
    rf"(?:(?P<h>{_NUMBER})\s*(?:{_HOURS_WORD})\.?)?\s*"
    rf"(?:(?P<m>{_NUMBER})\s*(?P<unit>{_MINUTES_WORD})?\.?)?"
)
_COLON = re.compile(r"(?P<h>\d{1,3}):(?P<m>[0-5]\d)")
_CLOCK = re.compile(
    r"(?P<h>\d{1,2})(?:(?:[:.h]|(?<=\d\d)(?=\d\d))(?P<m>[0-5]\d))?\s*(?P<half>a\.?m\.?|p\.?m\.?)?"
)


class NotADuration(DomainError):
    """A duration the bot can't read: names the field and the forms it accepts."""

    def __init__(self, field: str, text: str) -> None:
        got = _quote(text) if text.strip() else "nothing"
        super().__init__(f"{_label(field)} must be a duration like {MINUTE_FORMS} (got {got}).")


class NotAClockTime(DomainError):
    """A time of day the bot can't read: names the field and the forms it accepts."""

    def __init__(self, field: str, text: str) -> None:
        got = _quote(text) if text.strip() else "nothing"
        super().__init__(f"{_label(field)} must be a time like {CLOCK_FORMS} (got {got}).")


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def parse_minutes(text: str, field: str = "minutes") -> int:
    """Whole minutes from a typed duration (hours with a fraction are rounded to the minute).

    ``1h30`` = ``1h 30m`` = ``1.5h`` = ``1:30`` = ``90`` = ``90m`` = 90. A bare number is
    minutes. Raises :class:`NotADuration` for anything else (``1h30h``, ``abc``, ``-5``).
    """
    value = " ".join(text.strip().lower().split())
    colon = _COLON.fullmatch(value)
    if colon:
        return int(colon["h"]) * 60 + int(colon["m"])
    match = _DURATION.fullmatch(value) if value else None
    if match is None or (match["h"] is None and match["m"] is None):
        raise NotADuration(field, text)
    if match["m"] and not match["h"] and not match["unit"] and not match["m"].isdigit():
        raise NotADuration(field, text)  # "1.5": hours or minutes? Say which.
    hours = _decimal(match["h"]) if match["h"] else Decimal(0)
    minutes = _decimal(match["m"]) if match["m"] else Decimal(0)
    if match["h"] and match["m"] and "." in match["h"].replace(",", "."):
        raise NotADuration(field, text)  # "1.5h 10m": one or the other
    total = hours * 60 + minutes
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_clock(text: str, field: str = "time") -> time:
    """A time of day: 24-hour (``19:30``, ``0730``, ``7``) or with am/pm (``7:30 pm``)."""
    value = " ".join(text.strip().lower().split())
    if value == "noon":
        return time(12, 0)
    if value == "midnight":
        return time(0, 0)
    match = _CLOCK.fullmatch(value)
    if match is None:
        raise NotAClockTime(field, text)
    hour, minute = int(match["h"]), int(match["m"] or 0)
    half = (match["half"] or "").replace(".", "")
    if half:
        if not 1 <= hour <= 12:
            raise NotAClockTime(field, text)
        hour = hour % 12 + (12 if half == "pm" else 0)
    elif hour > 23:
        raise NotAClockTime(field, text)
    return time(hour, minute)
