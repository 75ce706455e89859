"""Nudges on Telegram: the scan job, the four messages, their buttons, and block/unblock.

The decisions live in :mod:`services.nudges`; this module renders, sends (translating PTB's
errors into the service's ``SendFailed``/``Blocked``) and handles the ``nudge:…`` buttons. Every
button acts through the pressing user's own unit of work, so forged data changes nothing.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from telegram import Bot, ChatMember, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ChatMemberHandler

from handlers import render
from handlers.callbacks import BadCallback, Callback, decode, encode, pattern
from handlers.common import Context, answer_and_edit, deps, me, message_key, now
from handlers.nba import Unconfirmed, WorkDraft, confirm_first, progress_note
from handlers.render import CAPACITY_CHOICES, esc, keyboard, num, short
from services import accounts, nba, tracking
from services.db import Database, DatabaseUnavailable, TelegramUser
from services.errors import DomainError, Implausible
from services.models import ARMS, Arm
from services.nudges import settings as nudge_settings
from services.nudges.messages import (
    Blocked,
    BriefNudge,
    IdleNudge,
    Nudge,
    OverloadNudge,
    ReviewNudge,
    Send,
    SendFailed,
)
from services.nudges.scan import run_scan

logger = logging.getLogger(__name__)

LOG_MINUTES = 25
SNOOZE = timedelta(days=1)
SHIFT_POINTS = 10
_TITLE = 80
_EVIDENCE = 80


# --- the scan job ---------------------------------------------------------------------------


def make_sender(bot: Bot) -> Send:
    """A ``send`` for :func:`services.nudges.scan.run_scan` that renders and sends one nudge."""

    async def send(chat_id: int, nudge: Nudge) -> None:
        text, markup = render_nudge(nudge)
        try:
            await bot.send_message(chat_id, text, reply_markup=markup)
        except Forbidden as exc:
            raise Blocked(_why(exc)) from exc
        except RetryAfter as exc:
            raise SendFailed(False, _why(exc), retry_after=_seconds(exc)) from exc
        except BadRequest as exc:  # before NetworkError: BadRequest subclasses it
            raise SendFailed(True, _why(exc)) from exc
        except NetworkError as exc:  # includes TimedOut and 5xx
            raise SendFailed(False, _why(exc)) from exc
        except TelegramError as exc:
            raise SendFailed(False, _why(exc)) from exc

    return send


def _why(exc: TelegramError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def nudge_scan_job(context: Context) -> None:
    """Run one nudge scan: decide, claim and send what is due (the repeating job)."""
    d = deps(context)
    try:
        report = await run_scan(d.db, d.clock(), make_sender(context.bot))
    except DatabaseUnavailable as exc:
        logger.warning("nudge scan skipped: database unavailable (%s)", exc)
        return
    if report.claimed or report.retried or report.failed:
        logger.info(
            "nudge scan: %d due, %d claimed, %d retried, %d sent, %d withdrawn, %d failed,"
            " %d blocked, %d deferred",
            report.due,
            report.claimed,
            report.retried,
            report.sent,
            report.cancelled,
            report.failed,
            report.blocked,
            report.deferred,
        )


# --- rendering ------------------------------------------------------------------------------


def _days(value: Decimal) -> str:
    return f"{num(value)} day" if value == 1 else f"{num(value)} days"


def _hours(minutes: int) -> str:
    return num((Decimal(minutes) / 60).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def render_idle(n: IdleNudge) -> str:
    lines = [
        f"🔴 <b>{esc(n.arm)}</b> has been idle for {_days(n.days_idle)}"
        f" (last activity {esc(render.when(n.last_activity, n.timezone))})."
    ]
    if n.current is not None:
        lines.append(f"➤ Next: <b>{esc(short(n.current.title, _TITLE))}</b>")
        lines.append(f"<i>{esc(n.current.explanation)}</i>")
        lines.append(f"Even {LOG_MINUTES} minutes gets it moving again.")
    else:
        lines.append("No open Next Best Action there yet.")
        lines.append(f"Add one: <code>/add {esc(n.arm)} 3 What to do next</code>")
    return "\n".join(lines)


def idle_keyboard(n: IdleNudge) -> InlineKeyboardMarkup:
    log = (
        encode("nudge", "log", n.arm, n.current.item_id)
        if n.current is not None
        else encode("nudge", "log", n.arm)
    )
    return keyboard(
        [
            [(f"▶ Log {LOG_MINUTES} min", log)],
            [
                ("💤 Snooze 1 day", encode("nudge", "snooze", n.arm)),
                ("⛔ Block", encode("nudge", "block", n.arm)),
            ],
        ]
    )


def render_overload(n: OverloadNudge) -> str:
    o = n.overload
    return (
        f"⚠️ Overload risk <b>{num(o.risk)}%</b>, at or over your {n.threshold}% threshold.\n"
        f"{esc(o.describe())}.\n"
        f"Plan a lighter day, or adjust your capacity if {o.capacity_hours} h no longer fits."
    )


def overload_keyboard() -> InlineKeyboardMarkup:
    return keyboard(
        [
            [
                ("💤 Snooze 1 day", encode("nudge", "snooze-overload")),
                ("⏱ Adjust capacity", encode("nudge", "capacity")),
            ]
        ]
    )


def render_brief(n: BriefNudge) -> str:
    lines = [f"☀️ <b>Daily brief</b> · {n.local_date.strftime('%a %d %b')}"]
    for t in n.theaters:
        icon = render.STATUS_ICON.get(t.status, "")
        status = esc(t.status)
        if t.status == "blocked" and t.blocked_reason:
            status += f" ({esc(short(t.blocked_reason, 60))})"
        lines.append("")
        lines.append(
            f"{icon} <b>{esc(t.arm)}</b> {status} · progress {num(t.progress)}%"
            f" · energy {t.energy}%"
        )
        if t.current is not None:
            lines.append(f"➤ {esc(short(t.current.title, _TITLE))}")
        else:
            lines.append(f"No open NBA: <code>/add {esc(t.arm)} 3 What to do next</code>")
    lines.append("")
    lines.append(
        f"Combined progress {num(n.combined_progress)}% · overload risk"
        f" <b>{num(n.overload.risk)}%</b>"
    )
    lines.append(f"{esc(n.overload.describe())}.")
    return "\n".join(lines)


def brief_keyboard() -> InlineKeyboardMarkup:
    return keyboard([[(f"View {arm}", render.view_data(arm)) for arm in ARMS]])


def render_review(n: ReviewNudge) -> str:
    lines = [f"📅 <b>Weekly review</b> · {esc(n.week)} (the last 7 days)"]
    for t in n.theaters:
        lines.append("")
        share = f"{num(t.minute_share)}% of your time" if n.total_minutes else "no time logged"
        lines.append(
            f"<b>{esc(t.arm)}</b>: {_hours(t.minutes)} h · {share} vs {t.energy_share}% planned"
        )
        done = "; ".join(esc(short(title, _TITLE)) for title in t.done_titles)
        lines.append(
            f"✅ {t.done} NBA{'s' if t.done != 1 else ''} done" + (f": {done}" if done else "")
        )
        evidence = "; ".join(esc(short(e, _EVIDENCE)) for e in t.evidence)
        lines.append(
            f"💡 {t.reflections} reflection{'s' if t.reflections != 1 else ''}"
            + (f": {evidence}" if evidence else "")
        )
    lines.append("")
    if n.total_minutes == 0:
        lines.append("Nothing logged this week: /log records what you do.")
    elif n.drifted is None:
        lines.append("Your time matched your energy plan.")
    else:
        lines.append(
            f"Furthest from plan: <b>{esc(n.drifted)}</b>, {num(n.drift_points)} points over"
            " its energy share."
        )
    lines.append(f"Overload risk {num(n.overload.risk)}%.")
    return "\n".join(lines)


def review_keyboard(n: ReviewNudge) -> InlineKeyboardMarkup | None:
    if not n.can_shift or n.drifted is None:
        return None
    data = encode("nudge", "shift-energy", n.drifted, n.energy_ibm)
    return keyboard([[(f"⚖ Shift energy {SHIFT_POINTS} points to {n.drifted}", data)]])


def render_nudge(n: Nudge) -> tuple[str, InlineKeyboardMarkup | None]:
    """The message and buttons of any nudge."""
    if isinstance(n, IdleNudge):
        return render_idle(n), idle_keyboard(n)
    if isinstance(n, OverloadNudge):
        return render_overload(n), overload_keyboard()
    if isinstance(n, BriefNudge):
        return render_brief(n), brief_keyboard()
    return render_review(n), review_keyboard(n)


def capacity_keyboard(current: int) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [
                (f"•{h}•" if h == current else f"{h} h", encode("nudge", "set-capacity", h))
                for h in CAPACITY_CHOICES
            ]
        ]
    )


# --- buttons --------------------------------------------------------------------------------

Action = Callable[[Update, Callback, Database, TelegramUser, Any], Awaitable[None]]


async def _item_gone(
    update: Update, db: Database, who: TelegramUser, arm: Arm, item_id: UUID, t: Any
) -> None:
    """The button's item is no longer open: say what became of it, show the theater."""
    fate = await nba.fate(db, who, arm, item_id, t)
    await answer_and_edit(
        update,
        render.gone_toast(fate),
        render.render_theater_nba(fate.theater),
        render.theater_nba_keyboard(fate.theater),
    )


async def log_minutes(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """Log 25 minutes on the theater's current NBA (once, however often it is tapped)."""
    arm = cb.arm(0)
    key = message_key(update)
    if len(cb.args) < 2:
        action = f"{LOG_MINUTES} min on {arm}"
        try:
            logged = await tracking.log_time(db, who, arm, LOG_MINUTES, action, t, dedupe_key=key)
        except Implausible as exc:
            draft = WorkDraft("log", arm, LOG_MINUTES, key=key, action=action)
            raise Unconfirmed(draft, exc) from exc
        await answer_and_edit(
            update,
            "Already recorded." if logged.duplicate else "Logged.",
            render.render_log(logged),
            brief_keyboard(),
        )
        return
    item_id = cb.uuid(1)
    try:
        result = await nba.progress(db, who, item_id, LOG_MINUTES, t, dedupe_key=key)
    except nba.ItemGone:
        await _item_gone(update, db, who, arm, item_id, t)
        return
    except Implausible as exc:
        raise Unconfirmed(WorkDraft("progress", arm, LOG_MINUTES, item_id, key), exc) from exc
    await answer_and_edit(
        update,
        "Already recorded." if result.duplicate else f"Logged {LOG_MINUTES} min.",
        render.render_theater_nba(result.theater, progress_note(result, LOG_MINUTES)),
        render.theater_nba_keyboard(result.theater),
    )


async def snooze_theater(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """No idle nudges for this theater for a day."""
    arm = cb.arm(0)
    until = t + SNOOZE
    await tracking.snooze(db, who, arm, until, t)
    settings = await nudge_settings.get_settings(db, who)
    await answer_and_edit(
        update,
        "Snoozed for a day.",
        f"💤 No idle reminders for <b>{esc(arm)}</b> until"
        f" {esc(render.when(until, settings.timezone))}.",
        keyboard([[(f"View {arm}", render.view_data(arm))]]),
    )


async def block_theater(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """Block the theater: no idle nudges until /unblock."""
    arm = cb.arm(0)
    await tracking.block(db, who, arm, None, t)
    await answer_and_edit(
        update,
        f"{arm} blocked.",
        f"⛔ <b>{esc(arm)}</b> is blocked: no idle reminders until you send"
        f" <code>/unblock {esc(arm)}</code>.",
    )


async def snooze_overload(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """No overload nudges for a day."""
    until = await nudge_settings.snooze_overload(db, who, t + SNOOZE, t)
    settings = await nudge_settings.get_settings(db, who)
    await answer_and_edit(
        update,
        "Snoozed for a day.",
        f"💤 No overload reminders until {esc(render.when(until, settings.timezone))}.",
        keyboard([[("⏱ Adjust capacity", encode("nudge", "capacity"))]]),
    )


async def capacity_menu(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """Offer weekly capacities as buttons."""
    settings = await nudge_settings.get_settings(db, who)
    await answer_and_edit(
        update,
        None,
        f"Your weekly capacity is {settings.weekly_capacity_hours} h. How many hours can you"
        " really give in a week? (Any value from 1 to 168: /settings.)",
        capacity_keyboard(settings.weekly_capacity_hours),
    )


async def set_capacity(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """Store the chosen weekly capacity and show the new risk."""
    hours = cb.number(0, 1, 168)
    overload = await nudge_settings.set_capacity(db, who, hours, t)
    await answer_and_edit(
        update,
        f"Capacity set to {hours} h.",
        f"⏱ Weekly capacity set to {hours} h.\n"
        f"Overload risk now {num(overload.risk)}%: {esc(overload.describe())}.",
    )


async def shift_energy(
    update: Update, cb: Callback, db: Database, who: TelegramUser, t: Any
) -> None:
    """Shift 10 points of energy to the theater the week drifted to (once)."""
    arm = cb.arm(0)
    expected = cb.number(1, 0, 100)
    try:
        ibm, cs = await nudge_settings.shift_energy_toward(db, who, arm, SHIFT_POINTS, expected, t)
    except nudge_settings.EnergyChanged as exc:
        await answer_and_edit(update, "That changed.", esc(exc.user_message))
        return
    await answer_and_edit(update, "Energy shifted.", f"⚖ Energy now ibm {ibm}% · cs {cs}%.")


ACTIONS: dict[str, Action] = {
    "log": log_minutes,
    "snooze": snooze_theater,
    "block": block_theater,
    "snooze-overload": snooze_overload,
    "capacity": capacity_menu,
    "set-capacity": set_capacity,
    "shift-energy": shift_energy,
}


async def nudge_button(update: Update, context: Context) -> None:
    """Every nudge:… button under a nudge, acting for the user who pressed it."""
    query = update.callback_query
    assert query is not None
    cb = decode(query.data)  # BadCallback: answered by the error handler
    action = ACTIONS.get(cb.verb)
    if action is None:
        raise BadCallback(f"unknown verb {cb.verb!r}")
    try:
        await action(update, cb, deps(context).db, me(update), now(context))
    except Unconfirmed as asked:  # a day over 16 h: ask first
        await confirm_first(update, context, asked)
    except DomainError as exc:
        await query.answer(exc.user_message[:200], show_alert=True)


async def chat_member_changed(update: Update, context: Context) -> None:
    """The user blocked the bot (stop nudging that chat) or unblocked it (start again)."""
    change = update.my_chat_member
    if change is None or change.chat.type != ChatType.PRIVATE:
        return
    db = deps(context).db
    status = change.new_chat_member.status
    if status in (ChatMember.BANNED, ChatMember.LEFT):
        await accounts.deactivate_chat(db, change.chat.id)
    elif status in (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER):
        await accounts.reactivate(db, change.from_user.id, change.chat.id)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CallbackQueryHandler(nudge_button, pattern=pattern("nudge")))
    app.add_handler(ChatMemberHandler(chat_member_changed, ChatMemberHandler.MY_CHAT_MEMBER))
