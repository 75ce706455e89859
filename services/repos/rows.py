"""Row helpers every repository module shares: a statement that reads several tables at once.

Such a read joins a row of one table with rows of others; each table's columns come with a
prefix (``t_`` theater, ``i_`` open item, ...) and are turned back into the DTOs by name
(:func:`take`), so one statement returns exactly what the separate queries would have. The
reads run in a user's unit of work: RLS keeps every table to that user's rows, so joins need
no ``user_id`` condition (each costs planning time; planning is most of these statements'
cost).

Column names come from the DTOs' fields (:mod:`services.models`), which equal the tables'
columns: fixed identifiers, never input, so building a select list from them with an
f-string (:func:`select_list`) is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from services.models import ExecutionLog, GlobalMetrics, NbaItem, Theater, UserSettings

_M = TypeVar("_M")


def field_names(model: Any) -> tuple[str, ...]:
    """The column names of a DTO (its dataclass fields)."""
    return tuple(f.name for f in fields(model))


ITEM_FIELDS = field_names(NbaItem)
THEATER_FIELDS = field_names(Theater)
LOG_FIELDS = field_names(ExecutionLog)
SETTINGS_FIELDS = field_names(UserSettings)
METRICS_FIELDS = field_names(GlobalMetrics)


def select_list(names: Iterable[str], alias: str, prefix: str) -> str:
    """``alias.c as <prefix>c, ...`` for the given columns (SQL built from fixed
    identifiers: DTO field names, and an alias and prefix the caller spells out)."""
    return ", ".join(f"{alias}.{name} as {prefix}{name}" for name in names)


def take(
    model: Callable[..., _M], names: tuple[str, ...], row: Mapping[str, Any], prefix: str
) -> _M | None:
    """The DTO held in ``row`` under ``prefix`` (None when its first column is null: an
    outer join that found nothing)."""
    if row[prefix + names[0]] is None:
        return None
    return model(**{name: row[prefix + name] for name in names})
