"""SQL for ``execution_logs``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, ExecutionLog, NbaItem, Theater, TheaterStatus, UserSettings
from services.repos import global_metrics, nba_items, theaters, user_settings
from services.repos.nba_items import ItemContext
from services.repos.rows import LOG_FIELDS, SETTINGS_FIELDS, THEATER_FIELDS, select_list, take

# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS, the DTO column
# lists (services/repos/rows.py), table aliases, and fragments of the repos modules.
_COLUMNS = "id, user_id, arm_type, action, details, duration, timestamp"

_INSERT = (
    "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp,"
    " dedupe_key) values (auth.uid(), %(e_arm)s, %(e_action)s, %(e_details)s, %(e_duration)s,"
    " %(e_now)s, %(e_key)s)"
    " on conflict (user_id, dedupe_key) where dedupe_key is not null do nothing"
    f" returning {_COLUMNS}"
)


def _insert_params(
    arm: Arm,
    action: str,
    details: str | None,
    duration: int | None,
    now: datetime,
    dedupe_key: str | None,
) -> dict[str, Any]:
    return {
        "e_arm": arm,
        "e_action": action,
        "e_details": details,
        "e_duration": duration,
        "e_now": now,
        "e_key": dedupe_key,
    }


async def insert(
    uow: UnitOfWork,
    arm: Arm,
    action: str,
    details: str | None,
    duration: int | None,
    now: datetime,
    dedupe_key: str | None = None,
) -> ExecutionLog | None:
    """Insert a log; None when a log with the same dedupe key already exists."""
    row = await uow.fetchone(
        _INSERT, _insert_params(arm, action, details, duration, now, dedupe_key)
    )
    return ExecutionLog.from_row(row) if row else None


# --- what recording a log needs, read with other tables' rows (services/repos/rows.py) ------

#: The minutes of every log in (``%(since)s``, ``%(until)s``], as the column ``minutes``.
MINUTES_COLUMN = (
    ", (select coalesce(sum(duration), 0)::bigint from execution_logs"
    " where timestamp > %(since)s and timestamp <= %(until)s) as minutes"
)


def _recent_join(alias: str) -> str:
    """The time and minutes of each log with minutes of ``alias``'s theater in
    (``%(recent)s``, ``%(until)s``], as the arrays ``r.at`` and ``r.minutes`` (``alias``: a
    fixed table alias of the caller's statement)."""
    return (
        " left join lateral (select array_agg(e.timestamp) as at,"
        " array_agg(e.duration) as minutes from execution_logs e"
        f" where e.arm_type = {alias}.arm_type and e.duration is not null"
        " and e.timestamp > %(recent)s and e.timestamp <= %(until)s) r on true"
    )


_RECENT_COLUMNS = ", r.at as r_at, r.minutes as r_minutes"


def _recent(row: Mapping[str, Any]) -> list[tuple[datetime, int]]:
    """The pairs of :func:`_recent_join` (none when the theater has no such log)."""
    return list(zip(row["r_at"] or (), row["r_minutes"] or (), strict=True))


@dataclass(frozen=True, slots=True)
class LogInputs:
    """What recording a log needs: the settings (None if missing), the theaters, the
    minutes logged in the window, and each theater's recent logs with minutes."""

    settings: UserSettings | None
    theaters: dict[Arm, Theater]
    minutes: int
    #: per theater, (timestamp, minutes) of each log with minutes in (recent_since, until]
    recent: dict[Arm, list[tuple[datetime, int]]] = field(default_factory=dict)


async def log_inputs(
    uow: UnitOfWork, since: datetime, until: datetime, recent_since: datetime
) -> LogInputs:
    """The settings, both theaters, the minutes of every log in (since, until] and, per
    theater, the time and minutes of each log with minutes in (recent_since, until], in one
    statement (after the lock, in a statement of its own: see :func:`nba_items.item_context`).
    """
    rows = await uow.fetchall(
        f"select {select_list(SETTINGS_FIELDS, 's', 's_')},"
        f" {select_list(THEATER_FIELDS, 't', 't_')}{MINUTES_COLUMN}{_RECENT_COLUMNS}"
        f" from user_settings s left join theaters t on true{_recent_join('t')}"
        " order by t.arm_type",
        {"since": since, "until": until, "recent": recent_since},
    )
    found: dict[Arm, Theater] = {}
    recent: dict[Arm, list[tuple[datetime, int]]] = {}
    for row in rows:
        theater = take(Theater, THEATER_FIELDS, row, "t_")
        if theater is not None:
            found[theater.arm_type] = theater
            recent[theater.arm_type] = _recent(row)
    if not rows:
        return LogInputs(None, found, 0)
    settings = take(UserSettings, SETTINGS_FIELDS, rows[0], "s_")
    return LogInputs(settings, found, rows[0]["minutes"], recent)


async def item_log_inputs(
    uow: UnitOfWork, item_id: UUID, since: datetime, until: datetime, recent_since: datetime
) -> ItemContext | None:
    """What logging work on one item needs, in one statement: the item, its theater and
    open items (:func:`nba_items.item_context`), the minutes of every log in (since, until],
    the settings, and the time and minutes of each log with minutes of the item's theater in
    (recent_since, until]. None if the item does not exist (or is another user's). After the
    lock, in a statement of its own (see :func:`nba_items.item_context`)."""
    rows = await uow.fetchall(
        nba_items.item_context_sql(
            f"{MINUTES_COLUMN}, {select_list(SETTINGS_FIELDS, 's', 's_')}{_RECENT_COLUMNS}",
            f" left join user_settings s on true{_recent_join('x')}",
        ),
        {"id": item_id, "since": since, "until": until, "recent": recent_since},
    )
    found = nba_items.item_context_of(rows)
    if found is None:
        return None
    first = rows[0]
    return replace(
        found,
        minutes=first["minutes"],
        settings=take(UserSettings, SETTINGS_FIELDS, first, "s_"),
        recent=_recent(first),
    )


async def log_day(
    uow: UnitOfWork, log_id: UUID, reach: timedelta
) -> tuple[UserSettings, ExecutionLog | None, list[tuple[datetime, int]]] | None:
    """The settings, one log (None if there is no such log of the user's) and the time and
    minutes of each other log with minutes of its theater less than ``reach`` before or after
    it, in one statement (after the lock, in a statement of its own: see
    :func:`nba_items.item_context`); None if the user has no settings."""
    row = await uow.fetchone(
        f"select {select_list(SETTINGS_FIELDS, 's', 's_')},"
        f" {select_list(LOG_FIELDS, 'x', 'x_')}{_RECENT_COLUMNS}"
        " from user_settings s left join execution_logs x on x.id = %(id)s"
        " left join lateral (select array_agg(e.timestamp) as at,"
        "   array_agg(e.duration) as minutes from execution_logs e"
        "   where e.arm_type = x.arm_type and e.id <> x.id and e.duration is not null"
        "   and e.timestamp > x.timestamp - %(reach)s"
        "   and e.timestamp < x.timestamp + %(reach)s) r on true",
        {"id": log_id, "reach": reach},
    )
    if row is None:
        return None
    settings = take(UserSettings, SETTINGS_FIELDS, row, "s_")
    assert settings is not None
    return settings, take(ExecutionLog, LOG_FIELDS, row, "x_"), _recent(row)


async def record(
    uow: UnitOfWork,
    *,
    arm: Arm,
    action: str,
    details: str | None,
    duration: int | None,
    now: datetime,
    dedupe_key: str | None,
    status: TheaterStatus,
    risk: Decimal,
    changes: nba_items.Changes | None = None,
    commit: bool = False,
) -> tuple[ExecutionLog, dict[UUID, NbaItem]] | None:
    """Insert a log and, only if it went in, store what it changes: ``arm``'s status and
    last activity (``now``), the overload risk, and item ``changes`` -- one statement.

    None (and nothing written) when a log with the same dedupe key exists. Returns the log
    and the changed items as stored. ``commit``: the unit of work commits with the last
    statement (see ``UnitOfWork.commit_with``).
    """
    gate = " and exists (select 1 from ins)"
    th_sql, params = theaters.update_state_cte(arm, status, now, now, gate)
    gm_sql, gm_params = global_metrics.set_risk_cte(risk, now, gate)
    params.update(gm_params)
    params.update(_insert_params(arm, action, details, duration, now, dedupe_key))
    ctes = [f"ins as ({_INSERT})", th_sql, gm_sql]
    statements = changes.statements() if changes is not None else []
    item_ctes: list[str] = []
    if changes is not None and statements:
        give, take_ = statements[0]
        more, item_params, item_ctes = nba_items.change_ctes(give, take_, changes.delete, gate)
        ctes += more
        params.update(item_params)
    logged = select_list(LOG_FIELDS, "ins", "e_")
    if item_ctes:
        final = (
            f"select {logged}, c.* from ins left join ({nba_items.union_of(item_ctes)}) c on true"
        )
    else:
        final = f"select {logged} from ins"
    sql = f"with {', '.join(ctes)} {final}"
    last = commit and len(statements) <= 1
    rows = await (uow.commit_with(sql, params) if last else uow.fetchall(sql, params))
    if not rows:
        return None
    log = take(ExecutionLog, LOG_FIELDS, rows[0], "e_")
    assert log is not None
    stored = {row["id"]: NbaItem.from_row(row) for row in rows if item_ctes and row["id"]}
    for n, (give, take_) in enumerate(statements[1:], 2):
        stored.update(
            await nba_items.run_changes(
                uow, give, take_, None, commit=commit and n == len(statements)
            )
        )
    return log, stored


async def by_dedupe_key(uow: UnitOfWork, key: str) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from execution_logs where dedupe_key = %s", (key,)
    )
    return ExecutionLog.from_row(row) if row else None


async def latest(uow: UnitOfWork) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"select {_COLUMNS} from execution_logs where timestamp is not null"
        " order by timestamp desc, id desc limit 1 for update"
    )
    return ExecutionLog.from_row(row) if row else None


async def delete(uow: UnitOfWork, log_id: UUID) -> None:
    await uow.execute("delete from execution_logs where id = %s", (log_id,))


async def latest_time(uow: UnitOfWork, arm: Arm) -> datetime | None:
    row = await uow.fetchone(
        "select max(timestamp) as t from execution_logs where arm_type = %s", (arm,)
    )
    return row["t"] if row else None


async def minutes_by_arm(uow: UnitOfWork, since: datetime, until: datetime) -> dict[Arm, int]:
    """Minutes logged per theater in (since, until]."""
    rows = await uow.fetchall(
        "select arm_type, coalesce(sum(duration), 0)::bigint as m from execution_logs"
        " where timestamp > %s and timestamp <= %s group by arm_type",
        (since, until),
    )
    found: dict[Arm, int] = {"ibm": 0, "cs": 0}
    for row in rows:
        found[row["arm_type"]] = row["m"]
    return found


async def recent(uow: UnitOfWork, arm: Arm | None, limit: int) -> list[ExecutionLog]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from execution_logs"
        " where (%(arm)s::text is null or arm_type = %(arm)s)"
        " order by timestamp desc, id desc limit %(limit)s",
        {"arm": arm, "limit": limit},
    )
    return [ExecutionLog.from_row(r) for r in rows]


async def between(uow: UnitOfWork, since: datetime, until: datetime) -> list[ExecutionLog]:
    """Logs with a duration written in (since, until], oldest first (for /stats)."""
    rows = await uow.fetchall(
        f"select {_COLUMNS} from execution_logs"
        " where timestamp > %s and timestamp <= %s and duration is not null"
        " order by timestamp, id",
        (since, until),
    )
    return [ExecutionLog.from_row(r) for r in rows]


async def set_duration(uow: UnitOfWork, log_id: UUID, minutes: int) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"update execution_logs set duration = %s where id = %s returning {_COLUMNS}",
        (minutes, log_id),
    )
    return ExecutionLog.from_row(row) if row else None


async def set_details(uow: UnitOfWork, log_id: UUID, details: str | None) -> ExecutionLog | None:
    row = await uow.fetchone(
        f"update execution_logs set details = %s where id = %s returning {_COLUMNS}",
        (details, log_id),
    )
    return ExecutionLog.from_row(row) if row else None


# --- a log in one statement ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogOnce:
    """What :func:`log_once` did and read: the log it wrote (None: none), or the earlier
    log of the same dedupe key, or why it wrote nothing."""

    #: the day's minutes of the theater allow the log (or it has no minutes, or confirmed)
    plausible: bool
    #: the theater's minutes in the local day (in the user's zone as the database reads
    #: it; in UTC), before this log
    day_minutes: int
    utc_day_minutes: int
    #: the minutes of every log in the 7 days up to now, before this log
    week_minutes: int
    #: the user's weekly capacity and time zone (None: no settings row)
    capacity: int | None
    timezone: str | None
    #: the theater's row exists, and its status before the log
    theater_found: bool
    theater_status: str | None
    log: ExecutionLog | None
    earlier: ExecutionLog | None
    #: the status of the earlier log's theater
    earlier_status: str | None


def _log_once_sql() -> str:
    def in_day(zone: str) -> str:
        day = f"date_trunc('day', %(e_now)s at time zone {zone})"
        return (
            f"e.timestamp >= ({day} at time zone {zone})"
            f" and e.timestamp < (({day} + interval '1 day') at time zone {zone})"
        )

    gate = " and exists (select 1 from ins)"
    utc = "'UTC'"
    return (
        "with s as (select timezone, weekly_capacity_hours as capacity from user_settings),"
        " t as (select arm_type, status from theaters where arm_type = %(e_arm)s),"
        " w as (select coalesce(sum(duration), 0)::bigint as minutes from execution_logs"
        "   where timestamp > %(since)s and timestamp <= %(e_now)s),"
        " d as (select"
        f"   coalesce(sum(e.duration) filter (where {in_day('s.timezone')}), 0)::bigint"
        "     as minutes,"
        f"   coalesce(sum(e.duration) filter (where {in_day(utc)}), 0)::bigint"
        "     as utc_minutes"
        "   from execution_logs e, s where e.arm_type = %(e_arm)s and e.duration is not null"
        "   and e.timestamp > %(recent)s and e.timestamp <= %(e_now)s),"
        # both readings of the day must allow it: the user's zone, and the UTC day the
        # rules take for a zone the database knows but the bot does not
        " ok as (select (%(e_duration)s::int is null or %(confirmed)s::bool"
        "   or greatest(d.minutes, d.utc_minutes) + %(e_duration)s::int <= %(limit)s::int)"
        "   as plausible, d.minutes as day_minutes, d.utc_minutes as utc_day_minutes from d),"
        " ins as (insert into execution_logs (user_id, arm_type, action, details, duration,"
        "   timestamp, dedupe_key) select auth.uid(), %(e_arm)s, %(e_action)s, %(e_details)s,"
        "   %(e_duration)s, %(e_now)s, %(e_key)s from s, t, ok where ok.plausible"
        f"  and {user_settings.HAS_LOCK_ROWS}"
        "   on conflict (user_id, dedupe_key) where dedupe_key is not null do nothing"
        f"  returning {_COLUMNS}),"
        f" {theaters.activity_now_cte(gate)},"
        " "
        + global_metrics.risk_cte(
            "(select minutes from w) + coalesce(%(e_duration)s::int, 0)",
            "select capacity from s",
            gate,
        )
        + ","
        f" x as (select {_COLUMNS}, (select status from theaters h"
        "   where h.arm_type = x.arm_type) as theater_status"
        "   from execution_logs x where dedupe_key = %(e_key)s)"
        " select ok.plausible, ok.day_minutes, ok.utc_day_minutes, w.minutes as week_minutes,"
        " s.capacity, s.timezone,"
        " t.arm_type is not null as theater_found, t.status as theater_status,"
        f" {select_list(LOG_FIELDS, 'ins', 'e_')}, {select_list(LOG_FIELDS, 'x', 'x_')},"
        " x.theater_status as earlier_status"
        " from ok cross join w left join s on true left join t on true"
        " left join ins on true left join x on true"
    )


_LOG_ONCE = _log_once_sql()


async def log_once(
    uow: UnitOfWork,
    *,
    arm: Arm,
    action: str,
    details: str | None,
    duration: int | None,
    now: datetime,
    dedupe_key: str | None,
    week_since: datetime,
    recent_since: datetime,
    day_limit: int,
    confirmed: bool,
) -> LogOnce:
    """Record a log and what it changes, validated, in one statement that commits with
    ``uow`` (the opening, the write lock, this statement and COMMIT: one round trip).

    The statement reads the settings, the theater, the week's minutes and the theater's
    minutes in the user's local day (``now`` in their time zone) and in the UTC day, and
    inserts the log only if both days stay within ``day_limit`` minutes (or ``confirmed``,
    or the log has no minutes) and the theater exists (the caller decides a refusal: the
    day that counts is the UTC day where the bot does not know the zone); only if it went
    in, the theater has activity now (:data:`theaters.ACTIVE_NOW`) and the overload risk
    is stored from the week's minutes (:func:`global_metrics.risk_sql`). A repeated
    ``dedupe_key`` writes nothing and returns the earlier log. A time zone the database
    does not know fails the statement (a DataError): nothing is written."""
    params = _insert_params(arm, action, details, duration, now, dedupe_key) | {
        "since": week_since,
        "recent": recent_since,
        "confirmed": confirmed,
        "limit": day_limit,
        "th_arm": arm,
        "th_now": now,
        "gm_now": now,
    }
    rows = await uow.commit_with(_LOG_ONCE, params)
    row = rows[0]
    return LogOnce(
        plausible=bool(row["plausible"]),
        day_minutes=row["day_minutes"],
        utc_day_minutes=row["utc_day_minutes"],
        week_minutes=row["week_minutes"],
        capacity=row["capacity"],
        timezone=row["timezone"],
        theater_found=bool(row["theater_found"]),
        theater_status=row["theater_status"],
        log=take(ExecutionLog, LOG_FIELDS, row, "e_"),
        earlier=take(ExecutionLog, LOG_FIELDS, row, "x_"),
        earlier_status=row["earlier_status"],
    )


# --- an item done, in one statement -------------------------------------------------------

#: ``rules.done_action(x.title)`` for a title without surrounding white space (the
#: statement below asks that of the title)
_DONE_ACTION = (
    "case when char_length('Done: ' || x.title) > 200"
    " then left('Done: ' || x.title, 199) || '…' else 'Done: ' || x.title end"
)


def _done_once_sql() -> str:
    gate = " and exists (select 1 from ins)"
    item_ctes = nba_items.change_one_ctes(
        {
            "completed_at": "%(now)s",
            "is_current": "false",
            "is_locked": "false",
            "is_manually_selected": "false",
            "last_updated": "%(now)s",
        },
        "x.title !~ '^[[:space:]]|[[:space:]]$'",
        "exists (select 1 from ins)",
        " ins as (insert into execution_logs (user_id, arm_type, action, timestamp, dedupe_key)"
        f"   select auth.uid(), x.arm_type, {_DONE_ACTION}, %(now)s, %(key)s from x, ok, s"
        "   where ok.fine on conflict (user_id, dedupe_key) where dedupe_key is not null"
        f"   do nothing returning {_COLUMNS}),",
    )
    return (
        "with s as (select weekly_capacity_hours as capacity from user_settings),"
        " wk as (select coalesce(sum(duration), 0)::bigint as minutes from execution_logs"
        "   where timestamp > %(since)s and timestamp <= %(now)s),"
        f" {item_ctes},"
        f" {theaters.activity_now_cte(gate, '(select arm_type from x)')}, "
        + global_metrics.risk_cte("select minutes from wk", "select capacity from s", gate)
        + nba_items.change_one_select(
            f", {select_list(LOG_FIELDS, 'e', 'e_')}, wk.minutes as week_minutes, s.capacity",
            " left join ins e on true left join wk on true left join s on true",
        )
    )


_DONE_ONCE = _done_once_sql()


@dataclass(frozen=True, slots=True)
class DoneOnce:
    """What :func:`done_once` did: the item's theater and its items as stored (``changed``;
    not ``fine``: nothing written), the log, the week's minutes and the capacity."""

    changed: nba_items.ChangedOne
    log: ExecutionLog | None
    week_minutes: int
    capacity: int | None


async def done_once(
    uow: UnitOfWork, item_id: UUID, now: datetime, dedupe_key: str | None, week_since: datetime
) -> DoneOnce:
    """Complete an open item in one statement that commits with ``uow``: a "Done: <title>"
    log (no minutes), the item done, its theater re-ranked, the theater's activity and the
    overload risk. Nothing is written unless the item is open, every open item of its
    theater usable, its title without surrounding white space, and the dedupe key new (a
    repeat writes nothing and returns no log)."""
    rows = await uow.commit_with(
        _DONE_ONCE,
        {"id": item_id, "now": now, "key": dedupe_key, "since": week_since, "th_now": now,
         "gm_now": now},
    )  # fmt: skip
    changed = nba_items.changed_one_of(rows)
    first = rows[0] if rows else None
    log = take(ExecutionLog, LOG_FIELDS, first, "e_") if first and changed.fine else None
    if log is None:
        return DoneOnce(nba_items.ChangedOne(False, None, []), None, 0, None)
    assert first is not None
    return DoneOnce(changed, log, first["week_minutes"], first["capacity"])
