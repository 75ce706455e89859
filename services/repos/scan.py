"""SQL of the nudge scan: which rows are due, across all users, and the scan's hint columns.

The decision queries run on the scheduler's privileged unit of work and read only rows whose
hint (``theaters.idle_check_at``, ``global_metrics.overload_check_at``,
``user_settings.brief_check_at`` / ``review_check_at``, added by migration
``20261126000300_nudge_scan``) has passed, through partial indexes, so a scan costs what is
due, not what exists. Each query locks the rows it returns (``FOR UPDATE ... SKIP LOCKED``):
two scans running at once split the rows between them instead of both acting on one, and
the scan never waits for a user's write (it skips that row until the next scan).

The hint columns belong to the scan; this module holds every statement that writes them.
The review's reads across ``nba_items`` and ``reflections`` live here too.

Any user can write their own rows through the Supabase Data API, so the statements that read
across users must not fail on what one user stored (``services/sanity.py``):

- a candidate row carries ``writable``: whether it satisfies the ``*_sane`` constraints
  (rows written before those constraints may not). The scan never writes to a row that is not
  (the update would fail on the constraint, and with it the scan for everyone): it skips that
  user. Its arithmetic runs only on writable rows;
- times read from other rows (the ledger, the overload snooze) are clamped into
  [EARLIEST, LATEST] (:func:`_clamp`) before any arithmetic, so none can overflow;
- the hints it writes are capped below LATEST (:data:`_CAP`), which the constraints require.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm
from services.sanity import EARLIEST, LATEST, SANE_COLUMNS

# f-string SQL in this module interpolates only fixed identifiers and fragments: the bounds
# below, column names (SANE_COLUMNS, a hint column chosen from two fixed names), table
# aliases, and expressions of this module (_capped, _clamp, row_is_sane).

# --- values written outside the bot -----------------------------------------------------------

_EARLIEST = f"timestamptz '{EARLIEST.isoformat()}'"
_LATEST = f"timestamptz '{LATEST.isoformat()}'"
#: The latest hint the constraints allow.
_CAP = f"({_LATEST} - interval '1 microsecond')"


def _capped(expr: str) -> str:
    """A hint (null: none) no later than the constraints allow."""
    return f"(case when ({expr}) is null then null else least(({expr}), {_CAP}) end)"


def _clamp(expr: str) -> str:
    """``expr`` (a timestamptz, maybe 'infinity' or year 200000) within [EARLIEST, LATEST];
    null stays null."""
    return (
        f"(case when ({expr}) < {_EARLIEST} then {_EARLIEST}"
        f" when ({expr}) >= {_LATEST} then {_LATEST} else ({expr}) end)"
    )


def row_is_sane(table: str, alias: str, *, writing: str = "") -> str:
    """SQL: the row ``alias`` of ``table`` satisfies its ``*_sane`` constraints, the column
    ``writing`` aside (an update replaces it, so its old value does not matter)."""
    checks = []
    for column, kind in SANE_COLUMNS[table].items():
        if column == writing:
            continue
        ref = f'{alias}."{column}"'
        if kind == "instant":
            ok = f"{ref} >= {_EARLIEST} and {ref} < {_LATEST}"
        elif kind == "number":
            ok = f"{ref} <> 'NaN'"
        else:
            ok = f"{ref} < time '24:00'"
        checks.append(f"({ref} is null or ({ok}))")
    return "(" + " and ".join(checks) + ")"


# --- decision queries -----------------------------------------------------------------------

_SETTINGS = (
    " coalesce(s.timezone, 'UTC') as timezone,"
    " case when s.user_id is null then time '22:00' else s.quiet_start end as quiet_start,"
    " case when s.user_id is null then time '08:00' else s.quiet_end end as quiet_end,"
    " l.chat_id, coalesce(l.active, false) as linked"
)
# Per-candidate lookups. ``offset 0`` keeps each one a nested index lookup per candidate: the
# planner may not turn them into hash joins over whole tables, which would cost O(users).
_LOOKUPS = (
    " left join lateral (select * from user_settings s0 where s0.user_id = c.user_id offset 0)"
    "   s on true"
    " left join lateral (select chat_id, active from telegram_links l0"
    "   where l0.user_id = c.user_id offset 0) l on true"
)

#: Idle theaters: the theater's own hint has passed; the ledger of this idle episode (keys
#: ``idle:<arm>:<last_activity>:<n>``, n = 1..3) says whether the next nudge is due now.
#: ``due_from`` is when the next nudge of the episode may go out (null: none left).
IDLE_CANDIDATES = (
    "with c as ("
    "  select t.user_id, t.arm_type, t.last_activity, t.snoozed_until,"
    f"   {row_is_sane('theaters', 't', writing='idle_check_at')} as writable,"
    "    'idle:' || t.arm_type || ':' || to_char(t.last_activity at time zone 'UTC',"
    "      'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || ':' as key_prefix"
    "  from theaters t"
    "  where t.idle_check_at <= %(now)s and t.idle_check_at is not null"
    "    and t.status <> 'blocked' and t.last_activity is not null"
    "  order by t.idle_check_at"
    "  limit %(limit)s"
    "  for update of t skip locked)"
    " select c.*, coalesce(s.idle_after_hours, 72) as idle_hours,"
    + _SETTINGS
    + ", h.sent_count, h.pending,"
    "   case when not c.writable then null"
    "        when h.sent_count >= %(max_idle)s then null"
    "        when h.pending then %(lease)s::timestamptz"
    "        else greatest(c.last_activity"
    "                        + make_interval(hours => coalesce(s.idle_after_hours, 72)),"
    f"                     c.snoozed_until, {_clamp('h.last_at')} + %(repeat)s)"
    "   end as due_from"
    " from c" + _LOOKUPS + " cross join lateral ("
    "   select count(*)::int as sent_count,"
    "     max(coalesce(x.sent_at, x.claimed_at)) as last_at,"
    "     coalesce(bool_or(x.status = 'claimed'), false) as pending"
    "   from nudges x"
    "   where x.user_id = c.user_id"
    "     and x.dedupe_key = any(array[c.key_prefix || '1', c.key_prefix || '2',"
    "                                  c.key_prefix || '3'])) h"
)

#: Overload: risk at or over the threshold, and no overload nudge in the last 24 h or a rise
#: of 10 points since the last one. The previous overload nudge names the next one's key
#: (``overload:after:<previous id>``), so every instance computes the same key.
OVERLOAD_CANDIDATES = (
    "with c as ("
    "  select g.user_id, g.overload_risk,"
    f"   {row_is_sane('global_metrics', 'g', writing='overload_check_at')} as writable"
    "  from global_metrics g"
    "  where g.overload_check_at <= %(now)s and g.overload_check_at is not null"
    "  order by g.overload_check_at"
    "  limit %(limit)s"
    "  for update of g skip locked)"
    " select c.*, coalesce(s.overload_threshold, 80) as threshold,"
    + _SETTINGS
    + ", p.id as previous_id,"
    "   case when not c.writable then null"
    "        when c.overload_risk < coalesce(s.overload_threshold, 80) then null"
    "        when p.status = 'claimed' then %(lease)s::timestamptz"
    f"       else coalesce(greatest({_clamp('s.overload_snoozed_until')},"
    "               case when p.id is null or c.overload_risk >= coalesce(p.risk, 0) + %(rise)s"
    f"                   then null else {_clamp('coalesce(p.sent_at, p.claimed_at)')}"
    "                                  + %(repeat)s end),"
    "             %(now)s)"
    "   end as due_from"
    " from c" + _LOOKUPS + " left join lateral ("
    "   select x.id, x.risk, x.status, x.sent_at, x.claimed_at from nudges x"
    "   where x.user_id = c.user_id and x.kind = 'overload'"
    "   order by x.claimed_at desc, x.id desc limit 1) p on true"
)

_SCHEDULE = (
    "with c as ("
    "  select s1.user_id, " + _clamp("s1.{column}") + " as check_at,"
    "   {writable} as writable"
    "  from user_settings s1"
    "  where s1.{column} <= %(now)s and s1.{column} is not null"
    "  order by s1.{column}"
    "  limit %(limit)s"
    "  for update of s1 skip locked)"
    " select c.*, {at} as at, {day} as day," + _SETTINGS + " from c" + _LOOKUPS
)
#: Daily brief: the hint is the next scheduled instant (or 'epoch': recompute it).
BRIEF_CANDIDATES = _SCHEDULE.format(
    column="brief_check_at",
    at="s.brief_time",
    day="null::int",
    writable=row_is_sane("user_settings", "s1", writing="brief_check_at"),
)
#: Weekly review: as the brief, on the user's review day.
REVIEW_CANDIDATES = _SCHEDULE.format(
    column="review_check_at",
    at="s.review_time",
    day="s.review_day::int",
    writable=row_is_sane("user_settings", "s1", writing="review_check_at"),
)


@dataclass(frozen=True, slots=True)
class Reach:
    """Where and when a user may be written to."""

    timezone: str
    quiet_start: time | None
    quiet_end: time | None
    chat_id: int | None
    linked: bool


@dataclass(frozen=True, slots=True)
class IdleCandidate:
    user_id: UUID
    arm_type: Arm
    last_activity: datetime
    key_prefix: str
    sent_count: int
    due_from: datetime | None
    reach: Reach
    #: the theater row satisfies its constraints (else the scan must not write to it)
    writable: bool = True


@dataclass(frozen=True, slots=True)
class OverloadCandidate:
    user_id: UUID
    risk: Decimal
    previous_id: UUID | None
    due_from: datetime | None
    reach: Reach
    writable: bool = True


@dataclass(frozen=True, slots=True)
class ScheduleCandidate:
    """A brief or review row whose hint has passed."""

    user_id: UUID
    check_at: datetime
    at: time | None
    day: int | None
    reach: Reach
    writable: bool = True


def _reach(row: Mapping[str, Any]) -> Reach:
    return Reach(
        timezone=str(row["timezone"]),
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        chat_id=row["chat_id"],
        linked=bool(row["linked"]),
    )


async def idle_candidates(
    uow: UnitOfWork,
    now: datetime,
    *,
    lease_until: datetime,
    repeat: object,
    max_per_episode: int,
    limit: int,
) -> list[IdleCandidate]:
    rows = await uow.fetchall(
        IDLE_CANDIDATES,
        {
            "now": now,
            "lease": lease_until,
            "repeat": repeat,
            "max_idle": max_per_episode,
            "limit": limit,
        },
    )
    return [
        IdleCandidate(
            user_id=r["user_id"],
            arm_type=r["arm_type"],
            last_activity=r["last_activity"],
            key_prefix=r["key_prefix"],
            sent_count=r["sent_count"],
            due_from=r["due_from"],
            reach=_reach(r),
            writable=r["writable"],
        )
        for r in rows
    ]


async def overload_candidates(
    uow: UnitOfWork,
    now: datetime,
    *,
    lease_until: datetime,
    repeat: object,
    rise: Decimal,
    limit: int,
) -> list[OverloadCandidate]:
    rows = await uow.fetchall(
        OVERLOAD_CANDIDATES,
        {"now": now, "lease": lease_until, "repeat": repeat, "rise": rise, "limit": limit},
    )
    return [
        OverloadCandidate(
            user_id=r["user_id"],
            risk=r["overload_risk"],
            previous_id=r["previous_id"],
            due_from=r["due_from"],
            reach=_reach(r),
            writable=r["writable"],
        )
        for r in rows
    ]


async def schedule_candidates(
    uow: UnitOfWork, kind: str, now: datetime, *, limit: int
) -> list[ScheduleCandidate]:
    query = BRIEF_CANDIDATES if kind == "brief" else REVIEW_CANDIDATES
    rows = await uow.fetchall(query, {"now": now, "limit": limit})
    return [
        ScheduleCandidate(
            user_id=r["user_id"],
            check_at=r["check_at"],
            at=r["at"],
            day=r["day"],
            reach=_reach(r),
            writable=r["writable"],
        )
        for r in rows
    ]


# --- hints ----------------------------------------------------------------------------------
# The scan sets hints only on rows its decision queries locked, in the same transaction.


async def set_idle_hints(
    uow: UnitOfWork, hints: Sequence[tuple[UUID, Arm, datetime | None]]
) -> None:
    if not hints:
        return
    await uow.execute(
        f"update theaters t set idle_check_at = {_capped('v.next')}"
        " from unnest(%s::uuid[], %s::text[], %s::timestamptz[]) as v(user_id, arm, next)"
        " where t.user_id = v.user_id and t.arm_type = v.arm",
        ([h[0] for h in hints], [h[1] for h in hints], [h[2] for h in hints]),
    )


async def set_overload_hints(
    uow: UnitOfWork, hints: Sequence[tuple[UUID, datetime | None]]
) -> None:
    if not hints:
        return
    await uow.execute(
        f"update global_metrics g set overload_check_at = {_capped('v.next')}"
        " from unnest(%s::uuid[], %s::timestamptz[]) as v(user_id, next)"
        " where g.user_id = v.user_id",
        ([h[0] for h in hints], [h[1] for h in hints]),
    )


async def set_schedule_hints(
    uow: UnitOfWork, kind: str, hints: Sequence[tuple[UUID, datetime | None]]
) -> None:
    if not hints:
        return
    column = "brief_check_at" if kind == "brief" else "review_check_at"
    await uow.execute(
        f"update user_settings s set {column} = {_capped('v.next')}"
        " from unnest(%s::uuid[], %s::timestamptz[]) as v(user_id, next)"
        " where s.user_id = v.user_id",
        ([h[0] for h in hints], [h[1] for h in hints]),
    )


# Per-user (RLS) variants, used after a re-check withdrew a claim or settings changed.


async def pull_idle_hint(uow: UnitOfWork, arm: Arm, at: datetime) -> None:
    """Make the theater's next idle look no later than ``at``."""
    await uow.execute(
        "update theaters set idle_check_at ="
        f" least(coalesce(idle_check_at, %(at)s), %(at)s, {_CAP})"
        " where arm_type = %(arm)s",
        {"at": at, "arm": arm},
    )


async def set_own_overload_hint(uow: UnitOfWork, at: datetime | None) -> None:
    await uow.execute(
        f"update global_metrics set overload_check_at = {_capped('%(at)s::timestamptz')}",
        {"at": at},
    )


async def set_own_schedule_hint(uow: UnitOfWork, kind: str, at: datetime | None) -> None:
    column = "brief_check_at" if kind == "brief" else "review_check_at"
    await uow.execute(
        f"update user_settings set {column} = {_capped('%(at)s::timestamptz')}", {"at": at}
    )


# --- what the weekly review reports -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmWeek:
    """One theater's completed NBAs and reflections in a window (newest first)."""

    done: int
    done_titles: tuple[str, ...]
    reflections: int
    evidence: tuple[str, ...]


async def week_in_review(
    uow: UnitOfWork, since: datetime, until: datetime, sample: int
) -> dict[Arm, ArmWeek]:
    """NBAs completed and reflections recorded per theater in (since, until]."""
    rows = await uow.fetchall(
        "with done as ("
        "  select arm_type, count(*)::int as n,"
        "    (array_agg(title order by completed_at desc))[1:%(sample)s] as titles"
        "  from nba_items where completed_at > %(since)s and completed_at <= %(until)s"
        "  group by arm_type),"
        " refl as ("
        "  select arm_type, count(*)::int as n,"
        '    (array_agg(evidence order by "timestamp" desc))[1:%(sample)s] as evidence'
        '  from reflections where "timestamp" > %(since)s and "timestamp" <= %(until)s'
        "  group by arm_type)"
        " select a.arm_type, coalesce(d.n, 0) as done, coalesce(d.titles, '{}') as titles,"
        "   coalesce(r.n, 0) as reflections, coalesce(r.evidence, '{}') as evidence"
        " from unnest(array['ibm', 'cs']) as a(arm_type)"
        " left join done d on d.arm_type = a.arm_type"
        " left join refl r on r.arm_type = a.arm_type",
        {"since": since, "until": until, "sample": sample},
    )
    return {
        r["arm_type"]: ArmWeek(
            done=r["done"],
            done_titles=tuple(r["titles"]),
            reflections=r["reflections"],
            evidence=tuple(r["evidence"]),
        )
        for r in rows
    }


async def plan_for_now(uow: UnitOfWork) -> None:
    """Plan the scan's queries for this transaction's values, without JIT.

    JIT off: the scan's row estimates can pass jit_above_cost at a million users, and
    compiling then costs more than the query. Custom plans always: the queries are prepared
    (the pool prepares what it runs twice), and after five runs PostgreSQL may switch a
    prepared statement to a generic plan, which cannot see how few hints are due at ``now``;
    the scan's plans rest on that (at 100k users the bench measured no difference yet: 73.9
    against 77.0 ms, within its noise)."""
    await uow.execute(
        "select set_config('jit', 'off', true),"
        " set_config('plan_cache_mode', 'force_custom_plan', true)"
    )
