"""SQL for ``user_settings``."""

from __future__ import annotations

from typing import Any

from services.db import UnitOfWork
from services.models import UserSettings

# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS, and in
# update() column names checked against EDITABLE first (values are parameters).
_COLUMNS = (
    "user_id, timezone, quiet_start, quiet_end, brief_time, review_day, review_time,"
    " idle_after_hours, overload_threshold, weekly_capacity_hours, overload_snoozed_until,"
    " focus_minutes"
)
# The columns a user may change, so update() never interpolates anything else into SQL.
EDITABLE = frozenset(_COLUMNS.replace(" ", "").split(",")) - {"user_id"}


async def ensure(uow: UnitOfWork) -> None:
    await uow.execute(
        "insert into user_settings (user_id) values (auth.uid()) on conflict (user_id) do nothing"
    )


async def get(uow: UnitOfWork) -> UserSettings | None:
    row = await uow.fetchone(f"select {_COLUMNS} from user_settings")
    return UserSettings.from_row(row) if row else None


async def update(uow: UnitOfWork, **changes: Any) -> None:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not a user setting: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    await uow.execute(f"update user_settings set {assignments}", changes)


#: The per-user write lock of :func:`lock_with_metrics`, reading nothing; no row if the user
#: lacks the settings or metrics row. A unit of work's ``first`` statement
#: (``services.state.locked``).
LOCK = (
    "select 1 as locked from user_settings s join global_metrics g on g.user_id = s.user_id"
    " for update of g"
)


#: Whether the user has the rows :data:`LOCK` locks: a condition for a statement that
#: commits with the lock in one round trip (it must write nothing when the lock found none,
#: as the unit of work then raises NotLinked after the COMMIT).
HAS_LOCK_ROWS = (
    "exists (select 1 from user_settings ls join global_metrics lg on lg.user_id = ls.user_id)"
)


async def lock_with_metrics(uow: UnitOfWork) -> UserSettings | None:
    """The settings, with the user's global_metrics row locked (the per-user write lock)."""
    row = await uow.fetchone(
        f"select {', '.join('s.' + c.strip() for c in _COLUMNS.split(','))}"
        " from user_settings s join global_metrics g on g.user_id = s.user_id"
        " for update of g"
    )
    return UserSettings.from_row(row) if row else None
