"""Delivery: each claimed row of the ledger, re-checked, built, sent and recorded.

Per claimed row (:func:`deliver_one`), in the user's own unit of work: take the user's write
lock, refresh stale days, statuses and risk, **re-check** (a theater active again, snoozed or
blocked, a risk under the threshold, an overload snooze, a schedule turned off: the claim is
*deleted*, so the key is free should the nudge become due again, and nothing is sent), defer an
idle/overload nudge that now falls into quiet hours, build the message data, count the attempt,
commit; then send outside any transaction and record the outcome: ``sent`` (final), a passing
failure (retried later, at most :data:`MAX_ATTEMPTS` attempts), ``failed`` (permanent error, or
403: the link is switched off too and the scan ignores the user until they write again). Each
user's rows are delivered on their own (:func:`deliver`): a failure never reaches another
user's delivery, and data the bot cannot use (``services/sanity.py``) marks that nudge
``failed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from services import accounts, rules, sanity, state
from services.db import Database, UnitOfWork
from services.errors import NotLinked
from services.models import ARMS, Arm, NbaItem, Theater, UserSettings
from services.nudges.localtime import in_quiet, quiet_end, zone
from services.nudges.messages import (
    Blocked,
    BriefNudge,
    IdleNudge,
    NbaLine,
    Nudge,
    OverloadNudge,
    ReviewNudge,
    Send,
    SendFailed,
    TheaterBrief,
    TheaterReview,
)
from services.nudges.planning import skip_user
from services.repos import execution_logs, global_metrics, nba_items, scan, telegram_links
from services.repos import nudges as ledger
from services.repos import theaters as theaters_repo
from services.repos.nudges import LedgerRow

__all__ = ["DELIVERY_CONCURRENCY", "LEASE", "MAX_ATTEMPTS", "deliver", "deliver_one"]

logger = logging.getLogger(__name__)

#: A claim's lease: a claimed row untouched for this long is retried by a later scan.
LEASE = timedelta(minutes=5)
#: Attempts to send one nudge before it is given up (status 'failed').
MAX_ATTEMPTS = 5
#: Wait before retrying a passing failure (or Telegram's retry_after, if longer).
RETRY_DELAY = timedelta(minutes=1)
#: Users whose nudges are delivered at the same time (each holds a pool connection briefly).
DELIVERY_CONCURRENCY = 4
#: How far back the weekly review looks.
REVIEW_WINDOW = timedelta(days=7)
_REVIEW_SAMPLE = 3
_KIND_ORDER: dict[str, int] = {"brief": 0, "review": 1, "overload": 2, "idle": 3}


@dataclass(frozen=True, slots=True)
class _Ready:
    nudge: Nudge
    chat_id: int
    attempts: int


async def deliver(
    db: Database,
    rows: Sequence[LedgerRow],
    now: datetime,
    send: Send,
    *,
    concurrency: int = DELIVERY_CONCURRENCY,
) -> Counter[str]:
    """Re-check, send and record each claimed row; one user's nudges go out in order."""
    by_user: dict[UUID, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one_user(user_rows: list[LedgerRow]) -> None:
        async with gate:
            for row in sorted(user_rows, key=lambda r: (_KIND_ORDER[r.kind], str(r.dedupe_key))):
                try:
                    outcome = await deliver_one(db, row, now, send)
                except Exception as exc:  # never another user's delivery
                    logger.warning("nudge %s: %s", row.id, type(exc).__name__)
                    outcome = "error"
                outcomes[outcome] += 1

    await asyncio.gather(*(one_user(r) for r in by_user.values()))
    return outcomes


async def deliver_one(db: Database, row: LedgerRow, now: datetime, send: Send) -> str:
    """One claimed row: re-check, send, record. Returns the outcome's name."""
    try:
        ready = await _prepare(db, row, now)
    except Exception as exc:
        unreadable = exc if isinstance(exc, sanity.UnreadableData) else sanity.explain(exc)
        if unreadable is not None:  # what the user stored: skip them, final for this one
            skip_user(row.user_id, unreadable.where)
            reason = f"unreadable data: {unreadable.where}"
            await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, reason))
            return "failed"
        # Counted as an attempt (bounded); a later scan tries again.
        logger.exception("could not prepare nudge %s (%s)", row.id, row.kind)
        reason = f"{type(exc).__name__}: {exc}"
        await _record(
            db,
            row,
            lambda uow: ledger.note_error(uow, row.id, reason, now + RETRY_DELAY, MAX_ATTEMPTS),
        )
        return "error"
    if isinstance(ready, str):
        return ready
    try:
        await send(ready.chat_id, ready.nudge)
    except Blocked as exc:
        blocked = f"blocked: {exc}"
        await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, blocked))
        await accounts.deactivate_chat(db, ready.chat_id)
        logger.info("nudge %s: the user blocked the bot; link switched off", row.id)
        return "blocked"
    except SendFailed as exc:
        return await _after_failure(db, row, ready, now, exc, exc.permanent, exc.retry_after)
    except Exception as exc:  # a fault in the sender itself: treat as passing, bounded
        logger.exception("nudge %s: sender raised", row.id)
        return await _after_failure(db, row, ready, now, exc, False, None)
    await _record(db, row, lambda uow: ledger.mark_sent(uow, row.id, now))
    return "sent"


async def _after_failure(
    db: Database,
    row: LedgerRow,
    ready: _Ready,
    now: datetime,
    exc: BaseException,
    permanent: bool,
    retry_after: float | None,
) -> str:
    reason = str(exc) if isinstance(exc, SendFailed) else f"{type(exc).__name__}: {exc}"
    if permanent or ready.attempts >= MAX_ATTEMPTS:
        logger.warning("nudge %s given up after %d attempts: %s", row.id, ready.attempts, reason)
        await _record(db, row, lambda uow: ledger.mark_failed(uow, row.id, reason))
        return "failed"
    delay = max(RETRY_DELAY, timedelta(seconds=retry_after or 0))
    await _record(db, row, lambda uow: ledger.retry_later(uow, row.id, now + delay, reason))
    return "retry"


async def _record(
    db: Database, row: LedgerRow, write: Callable[[UnitOfWork], Awaitable[None]]
) -> None:
    """Write an outcome, retrying briefly: a sent nudge must not stay 'claimed'."""
    for pause in (0.2, 0.5, 1.0, None):
        try:
            async with db.user_uow(row.user_id) as uow:
                await write(uow)
                await uow.commit()
            return
        except Exception:
            if pause is None:
                logger.exception("could not record the outcome of nudge %s", row.id)
                return
            await asyncio.sleep(pause)


async def _prepare(db: Database, row: LedgerRow, now: datetime) -> _Ready | str:
    async with db.user_uow(row.user_id) as uow:
        try:
            settings = await state.begin_write(uow)
        except NotLinked:  # the account lost its settings or metrics row
            await ledger.mark_failed(uow, row.id, "account incomplete")
            await uow.commit()
            return "failed"
        sanity.check([settings], zone=False)  # an unknown zone: UTC, as the scan decided
        current = await ledger.lock(uow, row.id)
        if current is None or current.status != "claimed":
            return "skipped"  # another scan finished it
        link = await telegram_links.by_user(uow, row.user_id)
        if link is None or not link.active:
            await ledger.mark_failed(uow, row.id, "no active Telegram link")
            await uow.commit()
            return "failed"
        if current.attempts >= MAX_ATTEMPTS:
            await ledger.mark_failed(uow, row.id, f"gave up after {current.attempts} attempts")
            await uow.commit()
            return "failed"
        both, overload = await _refresh(uow, settings, now)
        reason = _recheck(current, settings, both, overload, now)
        if reason is not None:
            await _withdraw(uow, current, settings, both, now)
            await uow.commit()
            logger.info("nudge %s withdrawn: %s", row.id, reason)
            return "cancelled"
        if current.kind in ("idle", "overload"):
            tz = zone(settings.timezone)
            if in_quiet(now, tz, settings.quiet_start, settings.quiet_end):
                end = quiet_end(now, tz, settings.quiet_start, settings.quiet_end)
                await ledger.retry_later(uow, row.id, end)
                await uow.commit()
                return "deferred"
        nudge = await _build(uow, current, settings, both, overload, now)
        risk = overload.risk if current.kind == "overload" else None
        await ledger.start_attempt(uow, row.id, now + LEASE, risk)
        await uow.commit()
        return _Ready(nudge, link.chat_id, current.attempts + 1)


async def _refresh(
    uow: UnitOfWork, settings: UserSettings, now: datetime
) -> tuple[dict[Arm, Theater], rules.Overload]:
    """Fresh stale days, current items, statuses and risk for the user (under their lock).

    What the user stored is checked as it is read (``state.rerank`` and ``state.theater``
    raise UnreadableData), before the refresh computes with it or writes to those rows."""
    for arm in ARMS:
        await state.rerank(uow, arm, now)
        await state.refresh_status(uow, await state.theater(uow, arm), now, settings)
    overload = await state.recompute_risk(uow, now, settings)
    return await theaters_repo.get_all(uow), overload


def _recheck(
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    overload: rules.Overload,
    now: datetime,
) -> str | None:
    """Why this nudge must not go out now (None: send it)."""
    if row.kind == "idle":
        assert row.arm_type is not None
        theater = both[row.arm_type]
        if theater.status == "blocked":
            return "theater blocked"
        if theater.snoozed_until is not None and theater.snoozed_until > now:
            return "theater snoozed"
        if row.episode_at is not None and theater.last_activity != row.episode_at:
            return "new activity"
        if rules.theater_status(theater.last_activity, now, settings.idle_after_hours) != "idle":
            return "not idle"
    elif row.kind == "overload":
        if overload.risk < settings.overload_threshold:
            return "risk below threshold"
        if settings.overload_snoozed_until is not None and settings.overload_snoozed_until > now:
            return "overload snoozed"
    elif row.kind == "brief" and settings.brief_time is None:
        return "brief turned off"
    elif row.kind == "review" and (settings.review_day is None or settings.review_time is None):
        return "review turned off"
    return None


async def _withdraw(
    uow: UnitOfWork,
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    now: datetime,
) -> None:
    """Delete the claim (its key is free again) and point the hint at the next chance."""
    await ledger.delete(uow, row.id)
    if row.kind == "idle" and row.arm_type is not None:
        theater = both[row.arm_type]
        at = theater.last_activity + timedelta(hours=settings.idle_after_hours)
        if theater.snoozed_until is not None and theater.snoozed_until > now:
            at = max(at, theater.snoozed_until)
        await scan.pull_idle_hint(uow, row.arm_type, at)
    elif row.kind == "overload":
        snooze = settings.overload_snoozed_until
        await scan.set_own_overload_hint(uow, snooze if snooze and snooze > now else None)


def _nba_line(items: Sequence[NbaItem], now: datetime) -> NbaLine | None:
    ranked = rules.rank(items, now)
    if not ranked or not ranked[0].is_current:
        return None
    top = ranked[0]
    return NbaLine(top.item.id, top.item.title, top.explanation)


async def _build(
    uow: UnitOfWork,
    row: LedgerRow,
    settings: UserSettings,
    both: dict[Arm, Theater],
    overload: rules.Overload,
    now: datetime,
) -> Nudge:
    if row.kind == "idle":
        assert row.arm_type is not None
        theater = both[row.arm_type]
        items = await nba_items.open_items(uow, row.arm_type)
        return IdleNudge(
            nudge_id=row.id,
            user_id=row.user_id,
            arm=row.arm_type,
            days_idle=rules.stale_days(theater.last_activity, now),
            last_activity=theater.last_activity,
            timezone=settings.timezone if sanity.known_zone(settings.timezone) else "UTC",
            current=_nba_line(items, now),
        )
    if row.kind == "overload":
        return OverloadNudge(row.id, row.user_id, overload, settings.overload_threshold)
    metrics = await global_metrics.get(uow)
    assert metrics is not None
    items = await nba_items.open_items_all(uow)
    if row.kind == "brief":
        briefs = tuple(
            TheaterBrief(
                arm=arm,
                status=rules.theater_status(
                    both[arm].last_activity,
                    now,
                    settings.idle_after_hours,
                    blocked=both[arm].status == "blocked",
                ),
                progress=both[arm].total_progress,
                energy=both[arm].energy_allocation,
                current=_nba_line([i for i in items if i.arm_type == arm], now),
                blocked_reason=both[arm].blocked_reason,
            )
            for arm in ARMS
        )
        local_day = date.fromisoformat(row.dedupe_key.removeprefix("brief:"))
        combined = rules.combined_progress(both["ibm"].total_progress, both["cs"].total_progress)
        return BriefNudge(row.id, row.user_id, local_day, briefs, overload, combined)
    return await _build_review(uow, row, both, metrics.energy_allocation_ibm, overload, now)


async def _build_review(
    uow: UnitOfWork,
    row: LedgerRow,
    both: dict[Arm, Theater],
    energy_ibm: int,
    overload: rules.Overload,
    now: datetime,
) -> ReviewNudge:
    since = now - REVIEW_WINDOW
    minutes = await execution_logs.minutes_by_arm(uow, since, now)
    shares = rules.minute_shares(minutes)
    week = await scan.week_in_review(uow, since, now, _REVIEW_SAMPLE)
    reviews = tuple(
        TheaterReview(
            arm=arm,
            minutes=minutes[arm],
            minute_share=shares[arm],
            energy_share=both[arm].energy_allocation,
            done=week[arm].done,
            done_titles=week[arm].done_titles,
            reflections=week[arm].reflections,
            evidence=week[arm].evidence,
        )
        for arm in ARMS
    )
    total = sum(minutes.values())
    drifted: Arm | None = None
    points = Decimal(0)
    if total > 0:
        top = max(reviews, key=lambda r: r.drift)
        if top.drift >= 1:
            drifted, points = top.arm, top.drift
    return ReviewNudge(
        nudge_id=row.id,
        user_id=row.user_id,
        week=row.dedupe_key.removeprefix("review:"),
        theaters=reviews,
        total_minutes=total,
        drifted=drifted,
        drift_points=points,
        energy_ibm=energy_ibm,
        overload=overload,
    )
