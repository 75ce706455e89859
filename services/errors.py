"""Domain errors: small exceptions that carry what the user needs to hear.

Every error has a ``user_message`` property, a plain-text English sentence that names the
field, the valid range or the limit. The bot HTML-escapes it before sending, so messages may
quote user input (shortened to a few dozen characters) verbatim.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = [
    "Conflict",
    "DomainError",
    "Empty",
    "ForbiddenCharacter",
    "Implausible",
    "InvalidSetting",
    "InvalidTheater",
    "InvalidTimezone",
    "NotANumber",
    "NotFound",
    "NotLinked",
    "NothingToUndo",
    "OutOfRange",
    "Superseded",
    "TooLong",
]

_QUOTE_LIMIT = 40


def _label(field: str) -> str:
    """Return ``field`` with its first letter in upper case ("gap" -> "Gap")."""
    return field[:1].upper() + field[1:]


def _quote(text: str) -> str:
    """Return user input shortened for quoting inside a message."""
    one_line = " ".join(text.replace("\x00", " ").split())
    if len(one_line) > _QUOTE_LIMIT:
        one_line = one_line[: _QUOTE_LIMIT - 1] + "…"
    return f"'{one_line}'"


def _number(value: object) -> str:
    """Format a number for a message: no exponent, no trailing zeros after the point."""
    if isinstance(value, float):
        value = Decimal(str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    return str(value)


class DomainError(Exception):
    """Base class of every error a service raises for the user to read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self._message = message

    @property
    def user_message(self) -> str:
        """A plain-text sentence the bot can show (it HTML-escapes it)."""
        return self._message


class OutOfRange(DomainError):
    """A number outside its valid range: "Gap must be between 0 and 5 (got 7)."."""

    def __init__(
        self, field: str, value: object, low: object, high: object, unit: str = ""
    ) -> None:
        self.field = field
        self.value = value
        self.low = low
        self.high = high
        self.unit = unit
        sep = "" if unit in ("", "%") else " "
        super().__init__(
            f"{_label(field)} must be between {_number(low)} and {_number(high)}{sep}{unit}"
            f" (got {_number(value)})."
        )


class TooLong(DomainError):
    """Text over its limit: "Title is too long: 250 characters, the limit is 200."."""

    def __init__(self, field: str, limit: int, length: int) -> None:
        self.field = field
        self.limit = limit
        self.length = length
        super().__init__(
            f"{_label(field)} is too long: {length} characters, the limit is {limit}."
        )


class Empty(DomainError):
    """Required text that is empty after trimming: "Title can't be empty."."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{_label(field)} can't be empty.")


class ForbiddenCharacter(DomainError):
    """Text holding a character that can't be stored (NUL, or half of a UTF-16 surrogate pair
    that is not valid Unicode text): "Title can't contain …"."""

    def __init__(self, field: str, what: str = "the NUL character (\\x00)") -> None:
        self.field = field
        super().__init__(f"{_label(field)} can't contain {what}: remove it and send it again.")


class Superseded(DomainError):
    """A change kept during an outage that a later live change of the same setting replaced."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"you changed the {what} again after sending this, so I kept that.")


class InvalidTheater(DomainError):
    """A theater name other than ibm or cs: "Unknown theater 'xyz': use ibm or cs."."""

    def __init__(self, value: str) -> None:
        self.value = value
        if value.strip():
            message = f"Unknown theater {_quote(value)}: use ibm or cs."
        else:
            message = "Choose a theater: ibm or cs."
        super().__init__(message)


class InvalidSetting(DomainError):
    """A setting typed in a form the bot does not understand (the message says which)."""


class InvalidTimezone(DomainError):
    """A time zone that is not an IANA name known to this machine's tz database."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(
            f"Unknown time zone {_quote(value)}: use an IANA name such as Europe/Berlin,"
            " America/New_York or UTC."
        )


class NotANumber(DomainError):
    """Text where a number was expected: "Minutes must be a whole number (got 'abc')."."""

    def __init__(self, field: str, text: str, *, whole: bool = True) -> None:
        self.field = field
        self.text = text
        self.whole = whole
        kind = "a whole number" if whole else "a number"
        got = _quote(text) if text.strip() else "nothing"
        super().__init__(f"{_label(field)} must be {kind} (got {got}).")


class NotFound(DomainError):
    """Something the user referred to is gone: "That item no longer exists."."""

    def __init__(self, what: str = "item") -> None:
        self.what = what
        super().__init__(f"That {what} no longer exists.")


class Conflict(DomainError):
    """A rule refuses the change, e.g. "Another item is locked in cs: unlock it first."."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def _hours_minutes(minutes: int) -> str:
    """A number of minutes as people read it: "17 h 30 min", "16 h", "45 min"."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


class Implausible(DomainError):
    """A log that would take one theater's minutes for the user's local day over the
    plausible limit; saved only when the user confirms: "That would make 17 h 30 min logged
    in cs today (over 16 h). Save it anyway?"."""

    def __init__(self, arm: str, day_minutes: int, minutes: int, limit: int) -> None:
        self.arm = arm
        #: the day's total in ``arm`` including this log
        self.day_minutes = day_minutes
        #: the minutes of this log
        self.minutes = minutes
        self.limit = limit
        super().__init__(
            f"That would make {_hours_minutes(day_minutes)} logged in {arm} today"
            f" (over {_hours_minutes(limit)}). Save it anyway?"
        )


class NothingToUndo(DomainError):
    """/undo has nothing it may remove: "Nothing to undo: <reason>."."""

    def __init__(self, reason: str) -> None:
        self.reason = reason.strip().rstrip(".")
        super().__init__(f"Nothing to undo: {self.reason}.")


class NotLinked(DomainError):
    """The Telegram user has no (active) link to an Aelpher account."""

    def __init__(self) -> None:
        super().__init__(
            "Your Telegram account isn't linked to Aelpher yet: send /start to set it up,"
            " or /link to connect an existing account."
        )
