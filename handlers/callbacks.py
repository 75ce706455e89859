"""The one callback-data codec: ``<area>:<verb>[:<arg>...]``, at most 64 bytes.

Areas and verbs are whole words (lower case, hyphens between words): ``nba:lock:cs:<item>``,
``nudge:snooze:ibm``, ``log:minutes:<log>:30``. Item and log ids travel as 32 hex characters
(a UUID without dashes), theaters as ``ibm``/``cs``. A question's buttons carry its token
first, ``q:<token>:<verb>[:<arg>...]`` (handlers/conversation.py, :func:`question`).

Every button is built with :func:`encode` (or :func:`question`), every press parsed with
:func:`decode` (or :func:`decode_question`), and every handler's pattern made by
:func:`pattern`, so the format lives here alone. Clients can forge callback data: a decoded
id is only a request, which the services check against the pressing user's own rows (RLS).
Data this bot did not make, or made in an older format (``n:lk:…``, ``g:lg:…``), matches no
handler's pattern: the fallback answers :data:`STALE` (handlers/errors.py). A handler that
finds its data malformed raises :class:`BadCallback`, answered the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from services.models import ARMS, Arm

MAX_BYTES = 64
#: What a button answers when its data is not (or no longer) the bot's.
STALE = "That button is no longer valid."
#: The area of a question's buttons (the token follows it).
QUESTION = "q"

_PART = re.compile(r"[A-Za-z0-9_.+-]*")  # whole parts only: fullmatch (no final newline)
#: an id: a UUID's 32 lower-case hex digits
_ID = re.compile(r"[0-9a-f]{32}")
#: an area or a verb: whole words
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")  # fullmatch


class BadCallback(ValueError):
    """Callback data this bot did not make (or an old version of it)."""


def _join(parts: tuple[str | int | UUID, ...]) -> str:
    texts = [p.hex if isinstance(p, UUID) else str(p) for p in parts]
    for text in texts:
        if not _PART.fullmatch(text):
            raise ValueError(f"callback part has a reserved character: {text!r}")
    data = ":".join(texts)
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
    return data


def _word(text: str) -> str:
    if not _WORD.fullmatch(text):
        raise ValueError(f"callback area or verb is not a whole word: {text!r}")
    return text


def encode(area: str, verb: str, *args: str | int | UUID) -> str:
    """The data of a button: raises ValueError past 64 bytes, on a reserved character, or
    when the area or the verb is not a whole word."""
    if area == QUESTION:
        raise ValueError("a question's buttons are made by question()")
    return _join((_word(area), _word(verb), *args))


def question(token: str, verb: str, *args: str | int | UUID) -> str:
    """The data of a question's button: ``q:<token>:<verb>[:<arg>...]``."""
    return _join((QUESTION, token, _word(verb), *args))


@dataclass(frozen=True, slots=True)
class Callback:
    """A parsed press: ``area`` and ``verb`` plus typed accessors for the arguments."""

    area: str
    verb: str
    args: tuple[str, ...]

    def uuid(self, index: int = 0) -> UUID:
        """An id as the bot writes it: 32 lower-case hex characters (no other spelling)."""
        text = self.args[index] if index < len(self.args) else ""
        if not _ID.fullmatch(text):
            raise BadCallback("expected an id")
        return UUID(hex=text)

    def arity(self, count: int) -> Callback:
        """This press, if it carries exactly ``count`` arguments (BadCallback otherwise)."""
        if len(self.args) != count:
            raise BadCallback(f"expected {count} argument(s)")
        return self

    def number(self, index: int = 0, low: int = -(10**9), high: int = 10**9) -> int:
        try:
            value = int(self.args[index])
        except (IndexError, ValueError):
            raise BadCallback("expected a number") from None
        if not low <= value <= high:
            raise BadCallback("number out of range")
        return value

    def arm(self, index: int = 0) -> Arm:
        value = self.args[index] if index < len(self.args) else ""
        for arm in ARMS:
            if value == arm:
                return arm
        raise BadCallback("expected a theater")

    def text(self, index: int = 0) -> str:
        try:
            return self.args[index]
        except IndexError:
            raise BadCallback("missing argument") from None


def decode(data: str | None) -> Callback:
    """Parse callback data made by :func:`encode`; BadCallback for anything else."""
    if not data or len(data.encode()) > MAX_BYTES:
        raise BadCallback("empty or oversized")
    parts = data.split(":")
    if len(parts) < 2 or not all(_PART.fullmatch(p) for p in parts):
        raise BadCallback("malformed")
    return Callback(parts[0], parts[1], tuple(parts[2:]))


def decode_question(data: str | None) -> tuple[str, Callback]:
    """Parse a question's button made by :func:`question`: its token, and the press (area
    ``q``, the verb and its arguments); BadCallback for anything else."""
    cb = decode(data)
    if cb.area != QUESTION or not cb.args:
        raise BadCallback("not a question's button")
    return cb.verb, Callback(QUESTION, cb.args[0], cb.args[1:])


def pattern(area: str, *verbs: str) -> str:
    """An anchored regex for CallbackQueryHandler: every callback of ``area``, or only those
    whose verb is one of ``verbs``."""
    if not verbs:
        return rf"^{re.escape(area)}:"
    return rf"^{re.escape(area)}:(?:{'|'.join(re.escape(v) for v in verbs)})(?::|$)"
