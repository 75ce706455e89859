"""Loading values Python cannot represent, without failing the statement that read them.

PostgreSQL stores timestamps of ``'infinity'``, ``'-infinity'``, before year 1 and after year
9999, times of ``'24:00'`` and JSON nested deeper than Python's parser goes; psycopg raises
``DataError`` (or the JSON parser its own error) when a row holding one is fetched, which
would fail the whole statement, whoever else's rows it read. A user can store such values in
their own rows through the Supabase Data API, so every connection of the pool loads these
types through :class:`Unreadable`-tolerant loaders (:func:`configure`, the pool's
``configure`` hook): a value that cannot be loaded arrives as :class:`Unreadable`, and the
code that uses it decides (``services/sanity.py`` names the column to the user; /export
writes the value as the database spells it).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.pq import Format

__all__ = ["TOLERANT_TYPES", "Unreadable", "configure", "register"]

#: The types whose values may not fit Python's.
TOLERANT_TYPES = ("timestamptz", "timestamp", "date", "time", "timetz", "json", "jsonb")


class Unreadable:
    """A stored value Python cannot represent: ``text`` is how the database spells it."""

    __slots__ = ("text", "type_name")

    def __init__(self, text: str, type_name: str) -> None:
        self.text = text
        self.type_name = type_name

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Unreadable({self.type_name})"  # never the value: it may be anything

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unreadable) and (self.text, self.type_name) == (
            other.text,
            other.type_name,
        )

    def __hash__(self) -> int:
        return hash((self.text, self.type_name))


class _Tolerant(Loader):
    """Wraps the loader psycopg would use; a value it refuses becomes :class:`Unreadable`."""

    inner: type[Loader]
    type_name: str

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._inner = self.inner(oid, context)

    def load(self, data: Buffer) -> Any:
        try:
            return self._inner.load(data)
        except Exception:  # DataError, the JSON parser's ValueError/RecursionError, ...
            if self.format == Format.TEXT:
                return Unreadable(bytes(data).decode("utf-8", "replace"), self.type_name)
            return Unreadable(f"(a {self.type_name} value out of range)", self.type_name)


def register(adapters: AdaptersMap) -> None:
    """Make ``adapters`` (a connection's, or psycopg's global map) load the tolerant types
    through :class:`_Tolerant`."""
    for name in TOLERANT_TYPES:
        info = adapters.types.get(name)
        if info is None:
            continue
        for fmt in (Format.TEXT, Format.BINARY):
            inner = adapters.get_loader(info.oid, fmt)
            if inner is None or issubclass(inner, _Tolerant):
                continue
            tolerant = type(
                f"Tolerant{inner.__name__}",
                (_Tolerant,),
                {"inner": inner, "type_name": name, "format": fmt},
            )
            adapters.register_loader(info.oid, tolerant)


async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's ``configure`` hook: every new connection loads tolerantly."""
    register(conn.adapters)
