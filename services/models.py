"""Frozen DTOs for the Aelpher tables, plus the theater name type.

Field names equal the SQL column names of the seed schema and the SPEC §2 additions, so a
psycopg ``dict_row`` becomes a DTO with ``Model.from_row(row)`` (unknown columns such as
``created_at`` on ``theaters`` are ignored; a missing column is a ``TypeError``). NUMERIC
columns are ``Decimal``, TIMESTAMPTZ columns are aware ``datetime``. Columns that the seed
leaves nullable only by omission (``status``, ``total_progress``, ...) always have their
defaults in practice and are typed as non-null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any, ClassVar, Literal, Self
from uuid import UUID

from services.errors import InvalidTheater

__all__ = [
    "ARMS",
    "STATUSES",
    "Arm",
    "ExecutionLog",
    "GlobalMetrics",
    "NbaItem",
    "Reflection",
    "Theater",
    "TheaterStatus",
    "UserSettings",
    "parse_arm",
]

Arm = Literal["ibm", "cs"]
ARMS: tuple[Arm, ...] = ("ibm", "cs")

TheaterStatus = Literal["active", "warm", "idle", "blocked"]
STATUSES: tuple[TheaterStatus, ...] = ("active", "warm", "idle", "blocked")


def parse_arm(text: str) -> Arm:
    """Return the theater named by ``text`` (case-insensitive, trimmed) or raise."""
    name = text.strip().lower()
    if name == "ibm":
        return "ibm"
    if name == "cs":
        return "cs"
    raise InvalidTheater(text)


class _Row:
    """Mixin giving frozen dataclasses a ``from_row`` constructor."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """Build the DTO from a database row, ignoring columns it has no field for."""
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in row.items() if key in names})


@dataclass(frozen=True, slots=True)
class Theater(_Row):
    """One of a user's two theaters (``theaters`` row)."""

    user_id: UUID
    arm_type: Arm
    status: TheaterStatus
    total_progress: Decimal
    energy_allocation: int
    last_activity: datetime
    snoozed_until: datetime | None
    blocked_reason: str | None


@dataclass(frozen=True, slots=True)
class NbaItem(_Row):
    """A candidate Next Best Action (``nba_items`` row); open while ``completed_at`` is None."""

    id: UUID
    user_id: UUID
    arm_type: Arm
    title: str
    description: str | None
    stale_days: Decimal
    gap: int
    has_early_progress_bonus: bool
    is_manually_selected: bool
    is_locked: bool
    is_current: bool
    created_at: datetime
    last_updated: datetime
    completed_at: datetime | None

    @property
    def is_open(self) -> bool:
        """True while the item is not completed."""
        return self.completed_at is None


@dataclass(frozen=True, slots=True)
class ExecutionLog(_Row):
    """What the user did (``execution_logs`` row); ``duration`` in minutes."""

    id: UUID
    user_id: UUID
    arm_type: Arm
    action: str
    details: str | None
    duration: int | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class FocusSession(_Row):
    """A focus session (``focus_sessions`` row) and, read with it, its item's title (None:
    the item is gone, or not the user's). Values as stored: see services/focus.py for how
    they are clamped before use."""

    id: UUID
    arm_type: Arm
    item_id: UUID | None
    started_at: datetime
    paused_at: datetime | None
    paused_seconds: int
    planned_minutes: int | None
    stopped_at: datetime | None
    log_id: UUID | None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Reflection(_Row):
    """An evidence-backed reflection (``reflections`` row)."""

    id: UUID
    user_id: UUID
    arm_type: Arm
    evidence: str
    context: str | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class GlobalMetrics(_Row):
    """Per-user totals (``global_metrics`` row)."""

    user_id: UUID
    combined_progress: Decimal
    energy_allocation_ibm: int
    energy_allocation_cs: int
    overload_risk: Decimal
    last_sync_time: datetime
    last_computed: datetime


@dataclass(frozen=True, slots=True)
class UserSettings(_Row):
    """Per-user preferences (``user_settings`` row); ``review_day`` 0 = Monday … 6 = Sunday."""

    user_id: UUID
    timezone: str
    quiet_start: time | None
    quiet_end: time | None
    brief_time: time | None
    review_day: int | None
    review_time: time | None
    idle_after_hours: int
    overload_threshold: int
    weekly_capacity_hours: int
    overload_snoozed_until: datetime | None
    #: the length of a focus session started without one (None: no length)
    focus_minutes: int | None = None
