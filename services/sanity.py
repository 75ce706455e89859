"""Stored values the bot can work with, and a clear answer when a user's rows hold others.

Every user holds a JWT for the Supabase Data API and can write their own rows without the
bot: ``'infinity'`` or year 20000 in a timestamp, ``'NaN'`` in a numeric, ``'24:00'`` in a
time, NULL where the bot always writes a value, a time zone nobody knows. Three layers keep
such a value from hurting anyone but its owner:

1. The migration ``20261206000200_sane_values`` refuses non-finite and out-of-range values in
   the columns of :data:`SANE_COLUMNS` (NOT VALID: rows written before it keep theirs).
2. Values Python cannot hold load as :class:`services.pgtypes.Unreadable` instead of failing
   the statement (``services/pgtypes.py``).
3. What the bot reads is checked here before it is used (:func:`check`): the views then
   answer with :class:`UnreadableData`, which names the table and column and says what to do;
   the nudge scan skips that one user (``services/nudges/planning.py: skip_user``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import fields
from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from services.errors import DomainError
from services.models import ExecutionLog, GlobalMetrics, NbaItem, Reflection, Theater, UserSettings
from services.pgtypes import Unreadable

__all__ = [
    "EARLIEST",
    "LATEST",
    "SANE_COLUMNS",
    "UnreadableData",
    "check",
    "check_zone",
    "explain",
    "known_zone",
    "problem_of",
]

#: The instants the bot works with: from the epoch (the scan's "recompute" hint) up to, not
#: including, 2200. Python's datetime ends at 9999, and the bot adds days and weeks to
#: stored instants; nothing the bot writes comes near either end.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

ValueKind = Literal["instant", "number", "clock"]

#: The user-writable columns the migration constrains, per table: instants within
#: [EARLIEST, LATEST), numbers not NaN, clock times before 24:00. The constraint of each is
#: named ``<table>_<column>_sane``.
SANE_COLUMNS: dict[str, dict[str, ValueKind]] = {
    "theaters": {
        "last_activity": "instant",
        "snoozed_until": "instant",
        "created_at": "instant",
        "updated_at": "instant",
        "idle_check_at": "instant",
    },
    "nba_items": {
        "created_at": "instant",
        "last_updated": "instant",
        "completed_at": "instant",
        "stale_days": "number",
    },
    "execution_logs": {"timestamp": "instant"},
    "reflections": {"timestamp": "instant"},
    "global_metrics": {
        "last_sync_time": "instant",
        "last_computed": "instant",
        "overload_check_at": "instant",
        "combined_progress": "number",
        "overload_risk": "number",
    },
    "user_settings": {
        "overload_snoozed_until": "instant",
        "brief_check_at": "instant",
        "review_check_at": "instant",
        "quiet_start": "clock",
        "quiet_end": "clock",
        "brief_time": "clock",
        "review_time": "clock",
    },
    "telegram_links": {"linked_at": "instant"},
    "nudges": {
        "claimed_at": "instant",
        "sent_at": "instant",
        "next_attempt_at": "instant",
        "episode_at": "instant",
        "risk": "number",
    },
    "sync_queue": {"timestamp": "instant"},
    "focus_sessions": {"started_at": "instant", "paused_at": "instant", "stopped_at": "instant"},
}

_TABLE_OF: dict[type, str] = {
    Theater: "theaters",
    NbaItem: "nba_items",
    ExecutionLog: "execution_logs",
    Reflection: "reflections",
    GlobalMetrics: "global_metrics",
    UserSettings: "user_settings",
}
_QUOTE = 40


def _quote(value: object) -> str:
    text = " ".join(str(value).split())
    return f"'{text[: _QUOTE - 1]}…'" if len(text) > _QUOTE else f"'{text}'"


class UnreadableData(DomainError):
    """A value in the user's own rows that the bot cannot work with (written outside it)."""

    def __init__(self, table: str, column: str, problem: str, fix: str = "") -> None:
        self.table, self.column, self.problem = table, column, problem
        fix = fix or (
            "Put a valid value there through the Supabase API (or clear it, if it may be"
            " empty) and try again."
        )
        super().__init__(
            f"I can't use your data: {table}.{column} {problem}. It was changed outside the"
            f" bot, probably through the Supabase API. {fix}"
        )

    @property
    def where(self) -> str:
        """``table.column``: for logs, which never show the value itself."""
        return f"{self.table}.{self.column}"


_HINTS: dict[type, dict[str, Any]] = {model: typing.get_type_hints(model) for model in _TABLE_OF}


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint) if isinstance(hint, types.UnionType) else False


def problem_of(value: object, hint: Any = object) -> str | None:
    """What is wrong with a loaded ``value`` of a field typed ``hint`` (None: nothing)."""
    if isinstance(value, Unreadable):
        return f"holds {_quote(value)}, which I can't read"
    if value is None:
        return None if hint is object or _optional(hint) else "is empty, but I need a value there"
    if isinstance(value, datetime):
        if value.tzinfo is None or not EARLIEST <= value < LATEST:
            return f"holds {_quote(value.isoformat())}, outside the dates I work with (1970-2199)"
        return None
    if isinstance(value, Decimal):
        return None if value.is_finite() else f"holds {_quote(value)}, which is not a number"
    if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
        allowed = ", ".join(str(a) for a in typing.get_args(hint))
        return f"holds {_quote(value)}, which is not one of {allowed}"
    if isinstance(value, time) and value.tzinfo is not None:
        return f"holds {_quote(value)}, a time with a zone"
    return None


def check(items: Iterable[object], *, zone: bool = True) -> None:
    """Raise :class:`UnreadableData` for the first value in these DTOs the bot cannot use:
    unreadable, out of range, NaN, NULL where a value is needed, an unknown time zone (unless
    ``zone`` is False: the caller falls back to UTC)."""
    for item in items:
        table = _TABLE_OF[type(item)]
        hints = _HINTS[type(item)]
        for f in fields(item):  # type: ignore[arg-type]
            value = getattr(item, f.name)
            problem = problem_of(value, hints[f.name])
            if problem is not None:
                raise UnreadableData(table, f.name, problem)
        if zone and isinstance(item, UserSettings):
            check_zone(item.timezone)


_CONSTRAINTS = {
    f"{table}_{column}_sane": (table, column)
    for table, columns in SANE_COLUMNS.items()
    for column in columns
}


def explain(exc: BaseException | None) -> UnreadableData | None:
    """The :class:`UnreadableData` behind a write refused by a ``*_sane`` constraint: the row
    it changes still holds a value written before the constraints existed (None: another
    error)."""
    if not isinstance(exc, psycopg.errors.CheckViolation):
        return None
    found = _CONSTRAINTS.get(exc.diag.constraint_name or "")
    if found is None:
        return None
    return UnreadableData(*found, "holds a value outside what I work with")


@cache
def known_zone(name: str) -> bool:
    """Whether ``name`` is a time zone this process knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def check_zone(name: str) -> str:
    """``name`` if it is a known time zone, else :class:`UnreadableData` for
    ``user_settings.timezone`` (which the user can fix with /settings)."""
    if not known_zone(name):
        raise UnreadableData(
            "user_settings",
            "timezone",
            f"holds {_quote(name)}, which is not a time zone I know",
            "Set yours with /settings tz Europe/Berlin (any IANA name) and try again.",
        )
    return name


#: What brings back rows deleted outside the bot.
_RECREATE = "Send /start: it makes the missing rows again (your other data stays)."


def missing_theater(arm: str) -> UnreadableData:
    """The user's theater row for ``arm`` is gone (deleted outside the bot)."""
    return UnreadableData("theaters", "arm_type", f"has no row for {arm}", _RECREATE)


def missing_metrics() -> UnreadableData:
    """The user's ``global_metrics`` row is gone (deleted outside the bot)."""
    return UnreadableData("global_metrics", "user_id", "has no row of yours", _RECREATE)
