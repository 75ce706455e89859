"""The one callback-data codec: ``<area>:<verb>[:<arg>...]``, at most 64 bytes.

Item ids travel as 32 hex characters (a UUID without dashes), theaters as ``ibm``/``cs``.
Every button is built with :func:`encode` and every press parsed with :func:`decode`, so the
format lives here alone. Clients can forge callback data: a decoded id is only a request,
which the services check against the pressing user's own rows (RLS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from services.models import ARMS, Arm

MAX_BYTES = 64
_PART = re.compile(r"^[A-Za-z0-9_.+-]*$")


class BadCallback(ValueError):
    """Callback data this bot did not make (or an old version of it)."""


def encode(*parts: str | int | UUID) -> str:
    """Join parts into callback data; raises ValueError past 64 bytes or on a bad part."""
    texts = [p.hex if isinstance(p, UUID) else str(p) for p in parts]
    for text in texts:
        if not _PART.match(text):
            raise ValueError(f"callback part has a reserved character: {text!r}")
    data = ":".join(texts)
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
    return data


@dataclass(frozen=True, slots=True)
class Callback:
    """A parsed press: ``area`` and ``verb`` plus typed accessors for the arguments."""

    area: str
    verb: str
    args: tuple[str, ...]

    def uuid(self, index: int = 0) -> UUID:
        try:
            return UUID(hex=self.args[index])
        except (IndexError, ValueError):
            raise BadCallback("expected an id") from None

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
    if len(parts) < 2 or not all(_PART.match(p) for p in parts):
        raise BadCallback("malformed")
    return Callback(parts[0], parts[1], tuple(parts[2:]))


def pattern(area: str) -> str:
    """An anchored regex matching every callback of one area, for CallbackQueryHandler."""
    return rf"^{re.escape(area)}:"
