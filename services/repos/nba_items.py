"""SQL for ``nba_items``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from services.db import UnitOfWork
from services.models import Arm, NbaItem, Theater, UserSettings
from services.repos.rows import ITEM_FIELDS, THEATER_FIELDS, select_list, take
from services.repos.user_settings import HAS_LOCK_ROWS

# f-string SQL in this module interpolates only fixed identifiers: _COLUMNS, the DTO column
# lists (services/repos/rows.py), _WRITTEN's columns and types, the CTE names give/take/del,
# table aliases, and fragments of this and other repos modules (a ``gate`` is one).
_COLUMNS = (
    "id, user_id, arm_type, title, description, stale_days, gap, has_early_progress_bonus,"
    " is_manually_selected, is_locked, is_current, created_at, last_updated, completed_at"
)


async def open_items(uow: UnitOfWork, arm: Arm) -> list[NbaItem]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from nba_items where arm_type = %s and completed_at is null"
        " order by created_at, id",
        (arm,),
    )
    return [NbaItem.from_row(r) for r in rows]


async def open_items_all(uow: UnitOfWork) -> list[NbaItem]:
    rows = await uow.fetchall(
        f"select {_COLUMNS} from nba_items where completed_at is null order by created_at, id"
    )
    return [NbaItem.from_row(r) for r in rows]


async def get(uow: UnitOfWork, item_id: UUID) -> NbaItem | None:
    row = await uow.fetchone(f"select {_COLUMNS} from nba_items where id = %s", (item_id,))
    return NbaItem.from_row(row) if row else None


async def set_flags(
    uow: UnitOfWork,
    item_id: UUID,
    *,
    now: datetime,
    locked: bool | None = None,
    manual: bool | None = None,
    early_bonus: bool | None = None,
) -> None:
    """Change the given flags of one item (None leaves a flag as it is); touches last_updated."""
    await uow.execute(
        "update nba_items set is_locked = coalesce(%(locked)s, is_locked),"
        " is_manually_selected = coalesce(%(manual)s, is_manually_selected),"
        " has_early_progress_bonus = coalesce(%(bonus)s, has_early_progress_bonus),"
        " last_updated = %(now)s where id = %(id)s",
        {"locked": locked, "manual": manual, "bonus": early_bonus, "now": now, "id": item_id},
    )


async def complete(uow: UnitOfWork, item_id: UUID, now: datetime) -> None:
    await uow.execute(
        "update nba_items set completed_at = %s, is_current = false, is_locked = false,"
        " is_manually_selected = false, last_updated = %s where id = %s",
        (now, now, item_id),
    )


# --- several tables in one statement ------------------------------------------------------
#
# Reads that join an item or a theater with other tables' rows (see services/repos/rows.py).


@dataclass(frozen=True, slots=True)
class TheaterItems:
    """A theater and its open items (by created_at, id), read in one statement."""

    theater: Theater
    items: list[NbaItem]


OPEN_ITEMS_OF = (
    f"select {_COLUMNS} from nba_items n"
    " where n.arm_type = {alias}.arm_type and n.completed_at is null"
)


def _theaters_sql(extra: str = "", joins: str = "") -> str:
    """Theaters (``%(arms)s``) with their open items, and the ``extra`` columns of the
    ``joins``."""
    return (
        f"select {select_list(THEATER_FIELDS, 't', 't_')},"
        f" {select_list(ITEM_FIELDS, 'i', 'i_')}{extra}"
        f" from theaters t left join lateral ({OPEN_ITEMS_OF.format(alias='t')}) i on true"
        f"{joins} where t.arm_type = any(%(arms)s) order by t.arm_type, i.created_at, i.id"
    )


def _theater_items(rows: Sequence[Mapping[str, Any]]) -> dict[Arm, TheaterItems]:
    found: dict[Arm, TheaterItems] = {}
    for row in rows:
        arm = row["t_arm_type"]
        if arm not in found:
            theater = take(Theater, THEATER_FIELDS, row, "t_")
            assert theater is not None
            found[arm] = TheaterItems(theater, [])
        item = take(NbaItem, ITEM_FIELDS, row, "i_")
        if item is not None:
            found[arm].items.append(item)
    return found


async def theaters_with_items(uow: UnitOfWork, arms: Sequence[Arm]) -> dict[Arm, TheaterItems]:
    """The given theaters with their open items, in one statement (missing theaters are
    absent from the result)."""
    rows = await uow.fetchall(_theaters_sql(), {"arms": list(arms)})
    return _theater_items(rows)


@dataclass(frozen=True, slots=True)
class ItemFate:
    """What became of an item: its title, and whether it was completed."""

    title: str
    done: bool


async def theater_with_fate(
    uow: UnitOfWork, arm: Arm, item_id: UUID
) -> tuple[TheaterItems | None, ItemFate | None]:
    """``arm`` with its open items (None if the theater is missing) and what became of one
    item (None if there is no such item: deleted, or another user's), in one statement."""
    rows = await uow.fetchall(
        _theaters_sql(
            ", x.id as x_id, x.title as x_title, x.completed_at is not null as x_done",
            " left join nba_items x on x.id = %(item)s",
        ),
        {"arms": [arm], "item": item_id},
    )
    fate = (
        ItemFate(rows[0]["x_title"], rows[0]["x_done"])
        if rows and rows[0]["x_id"] is not None
        else None
    )
    return _theater_items(rows).get(arm), fate


async def insert_with_items(
    uow: UnitOfWork,
    arm: Arm,
    title: str,
    gap: int,
    description: str | None,
    now: datetime,
    item_id: UUID,
) -> tuple[NbaItem, TheaterItems | None]:
    """Insert an open item (id ``item_id``); returns it and its theater with every open
    item, it included (None for the theater if the user has no such theater)."""
    rows = await uow.fetchall(
        "with ins as (insert into nba_items (id, user_id, arm_type, title, description, gap,"
        " created_at, last_updated) values (%(id)s, auth.uid(), %(arm)s, %(title)s,"
        f" %(description)s, %(gap)s, %(now)s, %(now)s) returning {_COLUMNS})"
        f" select i.new, {select_list(ITEM_FIELDS, 'i', 'i_')},"
        f" {select_list(THEATER_FIELDS, 't', 't_')}"
        f" from (select true as new, {_COLUMNS} from ins"
        f"       union all select false, {_COLUMNS} from nba_items"
        "        where arm_type = %(arm)s and completed_at is null) i"
        " left join theaters t on t.arm_type = i.arm_type"
        " order by i.created_at, i.id",
        {"id": item_id, "arm": arm, "title": title, "description": description, "gap": gap,
         "now": now},
    )  # fmt: skip
    items: list[NbaItem] = []
    new: NbaItem | None = None
    for row in rows:
        item = take(NbaItem, ITEM_FIELDS, row, "i_")
        assert item is not None
        items.append(item)
        if row["new"]:
            new = item
    assert new is not None
    theater = take(Theater, THEATER_FIELDS, rows[0], "t_")
    return new, (TheaterItems(theater, items) if theater is not None else None)


@dataclass(frozen=True, slots=True)
class ItemContext:
    """What a change to one item needs: the item (open or not), its theater, the theater's
    open items and, for work logged on it, the minutes logged in a window and the user's
    settings (:func:`services.repos.execution_logs.item_log_inputs`)."""

    item: NbaItem
    theater: Theater | None
    items: list[NbaItem]
    minutes: int | None = None
    settings: UserSettings | None = None
    #: for work logged on it: (time, minutes) of each log with minutes of the item's
    #: theater since ``recent_since`` (up to the end of the minutes window)
    recent: list[tuple[datetime, int]] | None = None


def item_context_sql(extra: str = "", joins: str = "") -> str:
    """The statement of :func:`item_context`: the item ``%(id)s`` (alias ``x``), its theater
    (``t``) and the theater's open items (``i``), with the ``extra`` columns of the ``joins``
    (another table's module adds its own: SQL text from fixed fragments only)."""
    return (
        f"select {select_list(ITEM_FIELDS, 'x', 'x_')}, {select_list(THEATER_FIELDS, 't', 't_')},"
        f" {select_list(ITEM_FIELDS, 'i', 'i_')}{extra}"
        " from nba_items x"
        " left join theaters t on t.arm_type = x.arm_type"
        f" left join lateral ({OPEN_ITEMS_OF.format(alias='x')}) i on true{joins}"
        " where x.id = %(id)s order by i.created_at, i.id"
    )


def item_context_of(rows: Sequence[Mapping[str, Any]]) -> ItemContext | None:
    """The rows of :func:`item_context_sql` as an ItemContext (None: no rows, no such item)."""
    if not rows:
        return None
    first = rows[0]
    item = take(NbaItem, ITEM_FIELDS, first, "x_")
    assert item is not None
    items = [i for i in (take(NbaItem, ITEM_FIELDS, row, "i_") for row in rows) if i is not None]
    return ItemContext(item, take(Theater, THEATER_FIELDS, first, "t_"), items)


async def item_context(uow: UnitOfWork, item_id: UUID) -> ItemContext | None:
    """What a change to one item needs, in one statement; None if the item does not exist
    (or is another user's).

    Run it after :func:`services.state.begin_write`, in a statement of its own: a statement
    reads with the snapshot taken when it starts, so a read sharing the lock's statement
    would miss what a write committed while that statement waited for the lock.
    """
    return item_context_of(await uow.fetchall(item_context_sql(), {"id": item_id}))


# --- writing item changes -----------------------------------------------------------------

#: the columns a change writes (everything a service may change on an item)
_WRITTEN = (
    ("title", "text"),
    ("gap", "int"),
    ("stale_days", "numeric"),
    ("has_early_progress_bonus", "bool"),
    ("is_manually_selected", "bool"),
    ("is_locked", "bool"),
    ("is_current", "bool"),
    ("last_updated", "timestamptz"),
    ("completed_at", "timestamptz"),
)
#: the flags at most one open item per theater may have (partial unique indexes)
_UNIQUE_FLAGS = ("is_current", "is_locked", "is_manually_selected")


def _open(item: NbaItem, flag: str) -> bool:
    return item.completed_at is None and bool(getattr(item, flag))


def _sets(old: NbaItem, new: NbaItem) -> set[str]:
    return {f for f in _UNIQUE_FLAGS if _open(new, f) and not _open(old, f)}


def _clears(old: NbaItem, new: NbaItem) -> set[str]:
    return {f for f in _UNIQUE_FLAGS if _open(old, f) and not _open(new, f)}


@dataclass(frozen=True, slots=True)
class Changes:
    """Item rows to write (each as its whole new state) and an item to delete.

    PostgreSQL checks the partial unique indexes row by row during an UPDATE, so rows that
    take a unique flag are written after those that give one up (and after the delete): two
    data-modifying CTEs, the second gated on the first having run. Should one row both take
    and give up flags that another row takes, :meth:`statements` splits the work in two.
    """

    before: Mapping[UUID, NbaItem]
    after: tuple[NbaItem, ...]
    delete: UUID | None = None

    def __bool__(self) -> bool:
        return bool(self.after) or self.delete is not None

    def statements(self) -> list[tuple[list[NbaItem], list[NbaItem]]]:
        """The (give-up phase, take phase) of each statement to run, in order."""
        give: list[NbaItem] = []
        take_: list[NbaItem] = []
        for new in self.after:
            (take_ if _sets(self.before[new.id], new) else give).append(new)
        taken: set[str] = set()
        given: set[str] = set()
        for new in take_:
            taken |= _sets(self.before[new.id], new)
            given |= _clears(self.before[new.id], new)
        if not taken & given:
            return [(give, take_)]
        # first everything but the flags taken, then those flags
        middle = [_without_sets(self.before[new.id], new) for new in take_]
        return [(give + middle, []), ([], list(take_))]


def _without_sets(old: NbaItem, new: NbaItem) -> NbaItem:
    return replace(new, **{f: getattr(old, f) for f in _sets(old, new)})


def _phase(name: str, rows: Sequence[NbaItem], gate: str) -> tuple[str, dict[str, Any]]:
    arrays = ", ".join(
        [f"%({name}_id)s::uuid[]"] + [f"%({name}_{col})s::{kind}[]" for col, kind in _WRITTEN]
    )
    assignments = ", ".join(f"{col} = v.{col}" for col, _ in _WRITTEN)
    params: dict[str, Any] = {f"{name}_id": [r.id for r in rows]}
    for col, _ in _WRITTEN:
        params[f"{name}_{col}"] = [getattr(r, col) for r in rows]
    returning = ", ".join(f"n.{c}" for c in ITEM_FIELDS)
    sql = (
        f"{name} as (update nba_items n set {assignments}"
        f" from unnest({arrays}) as v(id, {', '.join(col for col, _ in _WRITTEN)})"
        f" where n.id = v.id{gate} returning {returning})"
    )
    return sql, params


def change_ctes(
    give: Sequence[NbaItem], take_: Sequence[NbaItem], delete: UUID | None, gate: str = ""
) -> tuple[list[str], dict[str, Any], list[str]]:
    """CTEs writing one statement's changes: (the CTEs, their parameters, the names of those
    returning item rows). ``gate`` (" and <condition>") is added to every one of them."""
    ctes: list[str] = []
    params: dict[str, Any] = {}
    item_ctes: list[str] = []
    previous: str | None = None
    if delete is not None:
        ctes.append(f"del as (delete from nba_items where id = %(del_id)s{gate} returning id)")
        params["del_id"] = delete
        previous = "del"
    for name, rows in (("give", give), ("take", take_)):
        if not rows:
            continue
        after = f" and (select count(*) from {previous}) >= 0" if previous else ""
        sql, phase_params = _phase(name, rows, gate + after)
        ctes.append(sql)
        params.update(phase_params)
        item_ctes.append(name)
        previous = name
    return ctes, params, item_ctes


def union_of(item_ctes: Sequence[str]) -> str:
    """A query over every item row the given CTEs returned."""
    return " union all ".join(f"select * from {name}" for name in item_ctes)


async def run_changes(
    uow: UnitOfWork,
    give: Sequence[NbaItem],
    take_: Sequence[NbaItem],
    delete: UUID | None,
    *,
    commit: bool = False,
) -> dict[UUID, NbaItem]:
    """One statement of :meth:`Changes.statements`; the rows as stored. ``commit``: the
    unit of work commits with it (see ``UnitOfWork.commit_with``)."""
    ctes, params, item_ctes = change_ctes(give, take_, delete)
    if not ctes:
        return {}
    final = union_of(item_ctes) if item_ctes else "select id from del"
    sql = f"with {', '.join(ctes)} {final}"
    rows = await (uow.commit_with(sql, params) if commit else uow.fetchall(sql, params))
    return {row["id"]: NbaItem.from_row(row) for row in rows} if item_ctes else {}


async def apply_changes(
    uow: UnitOfWork, changes: Changes, *, commit: bool = False
) -> dict[UUID, NbaItem]:
    """Write ``changes`` (one statement, rarely two; none if there is nothing to write);
    returns the rows as stored. ``commit``: the unit of work commits with the last one
    (when there is nothing to write, it commits as it ends)."""
    stored: dict[UUID, NbaItem] = {}
    statements = changes.statements()
    for n, (give, take_) in enumerate(statements):
        last = commit and n == len(statements) - 1
        delete = changes.delete if n == 0 else None
        stored.update(await run_changes(uow, give, take_, delete, commit=last))
    return stored


# --- one item changed and its theater re-ranked, in one statement ----------------------------
#
# The statement reads the item and its theater's open items, applies the change, re-ranks
# (the ranking of services/rules.py: choose_current, stale_days, score, as SQL), and writes
# the rows that differ, in the two phases of Changes (those giving up a unique flag first),
# all only if the change is allowed and every open item holds values the ranking can use
# (else it writes nothing and says so: the caller takes the way of several statements, which
# gives the answer for each case). ``services/rules.py`` stays the rule for the replies; the
# property test tests/integration/test_rank_in_sql.py checks the two agree.

_EARLIEST_SQL = "'1970-01-01 00:00:00+00'"
_LATEST_SQL = "'2200-01-01 00:00:00+00'"


def usable_sql(alias: str) -> str:
    """Whether the item row ``alias`` holds values the ranking and the item DTO can use (what
    ``services/sanity.py: check`` asks of an item), as an SQL condition."""

    def instant(column: str) -> str:
        return f"{alias}.{column} >= {_EARLIEST_SQL} and {alias}.{column} < {_LATEST_SQL}"

    return (  # coalesce: a NULL in a comparison makes the row unusable, not unknown
        f"coalesce({alias}.title is not null and {alias}.gap between 0 and 5"
        f" and {alias}.stale_days is not null and {alias}.stale_days <> 'NaN'"
        f" and {alias}.has_early_progress_bonus is not null"
        f" and {alias}.is_manually_selected is not null and {alias}.is_locked is not null"
        f" and {alias}.is_current is not null and {instant('created_at')}"
        f" and {instant('last_updated')}"
        f" and ({alias}.completed_at is null or ({instant('completed_at')})), false)"
    )


def stale_days_sql(alias: str) -> str:
    """``rules.stale_days(alias.last_updated, %(now)s)``: days, one decimal, halves up,
    never negative, at most 9999.9."""
    return (
        f"least(9999.9, greatest(0.0, round(extract(epoch from (%(now)s::timestamptz"
        f" - {alias}.last_updated)) / 86400, 1)))"
    )


def score_sql(alias: str, stale: str) -> str:
    """``rules.score``: 10 x gap + 2 x min(stale, 15) + 15 with the early-progress bonus."""
    return (
        f"(10 * {alias}.gap + 2 * least(greatest({stale}, 0), 15)"
        f" + case when {alias}.has_early_progress_bonus then 15 else 0 end)"
    )


#: ``rules.choose_current``'s order: a locked item, else a manual pick, else the highest
#: score, then the earliest created, then the smallest id (over ``r``: new_score)
_CURRENT_ORDER = (
    "case when r.is_locked then 0 when r.is_manually_selected then 1 else 2 end,"
    " r.new_score desc, r.created_at, r.id"
)


def _rerank_and_write(gate: str, before_writes: str = "") -> str:
    """After a CTE ``c`` (every open item of a theater, and the item, as they will be
    stored, bar the ranking; another item's ``o`` row as it is now): the CTEs ``r``, ``w``
    and ``f`` (``c`` re-ranked at ``%(now)s``) and ``d``, ``give`` and ``take``, which write
    the rows of ``f`` that differ from ``o`` if ``gate`` holds, those that give up a unique
    flag first; ``before_writes``: CTEs of the caller's to put before the writes (ending with
    a comma). SQL from fixed fragments only."""
    kept = [c for c in ITEM_FIELDS if c not in dict(_WRITTEN)]
    final = ", ".join(
        f"case when c.completed_at is null then r.new_stale else c.stale_days end as {col}"
        if col == "stale_days"
        else f"(c.completed_at is null and c.id = (select id from w)) as {col}"
        if col == "is_current"
        else f"c.{col}"
        for col, _ in _WRITTEN
    )
    assignments = ", ".join(f"{col} = d.{col}" for col, _ in _WRITTEN)
    differs = " or ".join(f"f.{col} is distinct from o.{col}" for col, _ in _WRITTEN)
    takes = " or ".join(
        f"(f.completed_at is null and f.{flag} and not (o.completed_at is null and o.{flag}))"
        for flag in _UNIQUE_FLAGS
    )
    returning = ", ".join(f"n.{c}" for c in ITEM_FIELDS)
    return (
        f" r as (select c.id, c.is_locked, c.is_manually_selected, c.created_at,"
        f"   {stale_days_sql('c')} as new_stale,"
        f"   {score_sql('c', stale_days_sql('c'))} as new_score"
        "   from c where c.completed_at is null),"
        f" w as (select r.id from r order by {_CURRENT_ORDER} limit 1),"
        f" f as (select {', '.join('c.' + k for k in kept)}, {final}"
        "   from c left join r on r.id = c.id),"
        f" d as (select f.*, ({takes}) as takes from f join o on o.id = f.id where {differs}),"
        f" {before_writes} give as (update nba_items n set {assignments} from d"
        f"   where n.id = d.id and not d.takes and {gate} returning {returning}),"
        f" take as (update nba_items n set {assignments} from d"
        f"   where n.id = d.id and d.takes and {gate}"
        f"   and (select count(*) from give) >= 0 returning {returning})"
    )


def change_one_ctes(
    new: Mapping[str, str], allowed: str, gate: str, before_writes: str = ""
) -> str:
    """The CTEs ``x`` (the item ``%(id)s``), ``t`` (its theater), ``o`` (the theater's open
    items), ``ok`` (``fine``: the item is open, the theater exists, every open item is
    usable, and ``allowed``, a condition over ``x`` and ``o``), ``c`` (every open item, and
    the item: ``new`` gives the item's changed columns as SQL over ``o``), and those of
    :func:`_rerank_and_write` (``f``: as they will be stored, re-ranked at ``%(now)s``; the
    writes if ``gate`` holds). SQL from fixed fragments only."""
    kept = [c for c in ITEM_FIELDS if c not in dict(_WRITTEN)]
    changed = ", ".join(
        f"case when o.id = x.id then {new[col]} else o.{col} end as {col}"
        if col in new
        else f"o.{col}"
        for col, _ in _WRITTEN
    )
    return (
        "x as (select * from nba_items where id = %(id)s),"
        " t as (select h.* from theaters h, x where h.arm_type = x.arm_type),"
        " o as (select n.* from nba_items n, x"
        "   where n.arm_type = x.arm_type and n.completed_at is null),"
        f" ok as (select (x.completed_at is null and exists (select 1 from t) and {HAS_LOCK_ROWS}"
        f"   and {usable_sql('x')} and not exists (select 1 from o where not {usable_sql('o')})"
        f"   and {allowed}) as fine from x),"
        f" c as (select {', '.join('o.' + k for k in kept)}, {changed} from o, x),"
        + _rerank_and_write(gate, before_writes)
    )


@dataclass(frozen=True, slots=True)
class ChangedOne:
    """What a one-statement change did: ``fine`` (False: nothing written, the change was not
    for this way), the theater, and every item of the theater that was open, as stored now
    (the changed item among them)."""

    fine: bool
    theater: Theater | None
    items: list[NbaItem]


def changed_one_of(rows: Sequence[Mapping[str, Any]]) -> ChangedOne:
    if not rows or not rows[0]["fine"]:
        return ChangedOne(False, None, [])
    items = [i for i in (take(NbaItem, ITEM_FIELDS, row, "i_") for row in rows) if i is not None]
    return ChangedOne(True, take(Theater, THEATER_FIELDS, rows[0], "t_"), items)


def change_one_select(extra: str = "", joins: str = "") -> str:
    """The select after :func:`change_one_ctes`: ``fine``, the theater, every item of ``f``
    (none if not fine), with the ``extra`` columns of the ``joins`` (fixed SQL)."""
    return (
        f" select ok.fine, {select_list(THEATER_FIELDS, 't', 't_')},"
        f" {select_list(ITEM_FIELDS, 'i', 'i_')}{extra}"
        f" from ok left join t on ok.fine left join f i on ok.fine{joins}"
        " order by i.created_at, i.id"
    )


#: Lock the item (refused while another item of the theater is locked); unlock it. Its
#: last_updated is now if the flag changes (a press on an item already so changes nothing
#: but the re-rank).
_LOCK_SQL = (
    "with "
    + change_one_ctes(
        {
            "is_locked": "true",
            "last_updated": "case when o.is_locked then o.last_updated else %(now)s end",
        },
        "not exists (select 1 from o where o.is_locked and o.id <> x.id)",
        "(select fine from ok)",
    )
    + change_one_select()
)
_UNLOCK_SQL = (
    "with "
    + change_one_ctes(
        {
            "is_locked": "false",
            "last_updated": "case when o.is_locked then %(now)s else o.last_updated end",
        },
        "true",
        "(select fine from ok)",
    )
    + change_one_select()
)


async def set_lock_once(uow: UnitOfWork, item_id: UUID, locked: bool, now: datetime) -> ChangedOne:
    """Lock (or unlock) an open item and re-rank its theater in one statement that commits
    with ``uow``. Nothing is written (``fine`` False) unless the item is open, no other item
    is locked (for a lock), and every open item of its theater is usable."""
    rows = await uow.commit_with(_LOCK_SQL if locked else _UNLOCK_SQL, {"id": item_id, "now": now})
    return changed_one_of(rows)


def _add_once_sql() -> str:
    columns = ", ".join(ITEM_FIELDS)
    new_row = {
        "id": "%(id)s::uuid",
        "user_id": "auth.uid()",
        "arm_type": "%(arm)s::text",
        "title": "%(title)s::text",
        "description": "%(description)s::text",
        "stale_days": "0.0",
        "gap": "%(gap)s::int",
        "has_early_progress_bonus": "false",
        "is_manually_selected": "false",
        "is_locked": "false",
        "is_current": "false",
        "created_at": "%(now)s::timestamptz",
        "last_updated": "%(now)s::timestamptz",
        "completed_at": "null::timestamptz",
    }
    return (
        "with t as (select * from theaters where arm_type = %(arm)s),"
        " o as (select * from nba_items where arm_type = %(arm)s and completed_at is null),"
        f" ok as (select (exists (select 1 from t) and {HAS_LOCK_ROWS}"
        f"   and not exists (select 1 from o where not {usable_sql('o')})) as fine),"
        f" c as (select {columns} from o"
        f"   union all select {', '.join(f'{new_row[c]} as {c}' for c in ITEM_FIELDS)}),"
        + _rerank_and_write("(select fine from ok)")
        + f", ins as (insert into nba_items ({columns}) select {columns} from f"
        "   where f.id = %(id)s and (select fine from ok)"
        f"   and (select count(*) from take) >= 0 returning {columns})" + change_one_select()
    )


_ADD_ONCE = _add_once_sql()


async def add_once(
    uow: UnitOfWork,
    item_id: UUID,
    arm: Arm,
    title: str,
    gap: int,
    description: str | None,
    now: datetime,
) -> ChangedOne:
    """Insert an open item (id ``item_id``) and re-rank its theater in one statement that
    commits with ``uow``. Nothing is written (``fine`` False) unless the theater exists and
    every open item of it is usable."""
    rows = await uow.commit_with(
        _ADD_ONCE,
        {"id": item_id, "arm": arm, "title": title, "gap": gap, "description": description,
         "now": now},
    )  # fmt: skip
    return changed_one_of(rows)
