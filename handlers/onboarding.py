"""First-run onboarding: three quick questions right after /start creates the account.

Time zone, weekly capacity and daily brief time, each with buttons, each skippable, each
stored as soon as it is answered (so /cancel, a timeout or a restart keeps what was answered),
then one suggested first step.

How it is wired: this conversation ("onboard") owns /start. Its entry point is
:func:`handlers.basic.start`, which returns :func:`begin_onboarding`'s state for a just-created
account and nothing otherwise. It must be registered *after* every other conversation, so that
while one of those is open its own steps get the user's text first, and *before*
``basic.register`` (whose plain /start it shadows) and the fallbacks.

Onboarding never traps the user: while a question is open, what is typed is its answer
(saved, or a specific error: "forty" is not a number of hours, "7am" is not a time zone), and
any command closes the question (``handlers/conversation.py: one_question_at_a_time``). Its
buttons are entry points too, so a button pressed after a timeout or a restart still works.
"""

from __future__ import annotations

import re
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers import render
from handlers.callbacks import BadCallback, decode, encode
from handlers.common import Context, deps, edit, me, now, reply
from handlers.conversation import CANCEL_REPLIES, conversation
from handlers.render import esc
from services import preferences
from services.errors import DomainError
from services.models import UserSettings
from services.validation import CAPACITY_HOURS_RANGE, parse_int

OB_TZ, OB_CAPACITY, OB_BRIEF = "OB_TZ", "OB_CAPACITY", "OB_BRIEF"

COMMON_ZONES = (
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "UTC",
)
CAPACITY_CHOICES = (20, 30, 40, 50, 60)
BRIEF_CHOICES = ("07:30", "08:00", "09:00")
#: callback data can't hold ":", so a brief button carries "0730"
BRIEF_BY_CODE = {t.replace(":", ""): t for t in BRIEF_CHOICES}

FIRST_STEP = (
    "Your first step: add your first Next Best Action, e.g.\n"
    "<code>/add cs 4 Read SICP chapter 3</code>"
)
ASK_TZ = (
    "<b>1/3 · Time zone</b>\n"
    "Which time zone are you in? Your days, the daily brief and quiet hours follow it.\n"
    "Tap one, or type its IANA name, e.g. <code>Europe/Paris</code>."
)
ASK_CAPACITY = (
    "<b>2/3 · Weekly capacity</b>\n"
    "How many hours a week can you give both theaters together? Your overload risk compares "
    "the last 7 days with it. Tap one, or type a number of hours "
    f"({CAPACITY_HOURS_RANGE[0]}–{CAPACITY_HOURS_RANGE[1]})."
)
ASK_BRIEF = (
    "<b>3/3 · Daily brief</b>\n"
    "Want a short morning brief (both theaters, current NBAs, overload risk) every day? "
    "Pick a time in your time zone, type one like <code>07:15</code>, or choose Off."
)

# Typed text is only taken as an answer when it looks like one; the rest goes on.
#: A typed weekly capacity: "35", "35h", "35 hours".
HOURS = re.compile(r"(?i)\s*(\d{1,4})\s*(?:h|hrs?|hours?)?\s*")


# --- questions --------------------------------------------------------------------------


def tz_keyboard() -> InlineKeyboardMarkup:
    buttons = [(zone, encode("ob", "tz", n)) for n, zone in enumerate(COMMON_ZONES)]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append([("Skip (keep UTC)", encode("ob", "tz", "skip"))])
    return render.keyboard(rows)


def capacity_keyboard() -> InlineKeyboardMarkup:
    return render.keyboard(
        [
            [(f"{h} h", encode("ob", "cap", h)) for h in CAPACITY_CHOICES],
            [("Skip (keep 40 h)", encode("ob", "cap", "skip"))],
        ]
    )


def brief_keyboard() -> InlineKeyboardMarkup:
    return render.keyboard(
        [
            [(t, encode("ob", "brief", code)) for code, t in BRIEF_BY_CODE.items()]
            + [("Off", encode("ob", "brief", "off"))],
            [("Skip", encode("ob", "brief", "skip"))],
        ]
    )


def _summary(settings: UserSettings) -> str:
    brief = f"{settings.brief_time:%H:%M}" if settings.brief_time else "off"
    return (
        f"Time zone <b>{esc(settings.timezone)}</b> · capacity "
        f"<b>{settings.weekly_capacity_hours} h</b>/week · daily brief <b>{brief}</b>"
    )


def render_done(settings: UserSettings | None, note: str = "") -> str:
    lines = [note] if note else []
    lines.append("🎉 All set!")
    if settings is not None:
        lines.append(_summary(settings) + ".")
    lines += ["Change any of it later with /settings.", "", FIRST_STEP]
    return "\n".join(lines)


async def _ask(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Redraw the pressed message for a button, or send a new one for a typed answer."""
    if update.callback_query is not None:
        await edit(update, text, markup)
    else:
        await reply(update, text, markup)


async def _next_after(
    update: Update, step: str, note: str, settings: UserSettings | None
) -> str | int:
    """Ask the question that follows ``step`` (after a note on what was stored)."""
    head = f"{note}\n\n" if note else ""
    if step == OB_TZ:
        await _ask(update, head + ASK_CAPACITY, capacity_keyboard())
        return OB_CAPACITY
    if step == OB_CAPACITY:
        await _ask(update, head + ASK_BRIEF, brief_keyboard())
        return OB_BRIEF
    await _ask(update, render_done(settings, note), None)
    return ConversationHandler.END


async def begin_onboarding(update: Update, context: Context, intro: str = "") -> str:
    """Ask the first question (after ``intro``, e.g. the welcome, in the same message)."""
    head = f"{intro}\n\n" if intro else ""
    await reply(
        update, head + "Three quick questions to set you up; skip any.\n\n" + ASK_TZ, tz_keyboard()
    )
    return OB_TZ


async def _store(update: Update, context: Context, **changes: Any) -> UserSettings:
    return await preferences.update_preferences(
        deps(context).db, me(update), now=now(context), **changes
    )


# --- answers ----------------------------------------------------------------------------


async def onboard_button(update: Update, context: Context) -> str | int | None:
    """Any ob:… button: store the choice (or skip) and ask the next question in place."""
    query = update.callback_query
    assert query is not None
    try:
        cb = decode(query.data)
        choice = cb.text(0)
        step = {"tz": OB_TZ, "cap": OB_CAPACITY, "brief": OB_BRIEF}[cb.verb]
        changes: dict[str, Any] = {}
        if choice != "skip":
            if step == OB_TZ:
                changes["timezone"] = COMMON_ZONES[cb.number(0, 0, len(COMMON_ZONES) - 1)]
            elif step == OB_CAPACITY:
                changes["weekly_capacity_hours"] = cb.number(0, *CAPACITY_HOURS_RANGE)
            else:
                changes["brief_time"] = None if choice == "off" else BRIEF_BY_CODE[choice]
    except (BadCallback, KeyError):
        await query.answer("That button is no longer valid.")
        return None
    settings = await _store(update, context, **changes)
    await query.answer("Skipped." if choice == "skip" else "Saved.")
    return await _next_after(
        update, step, _noted(step, settings, skipped=choice == "skip"), settings
    )


def _noted(step: str, settings: UserSettings, *, skipped: bool) -> str:
    if step == OB_TZ:
        what = f"time zone {esc(settings.timezone)}"
    elif step == OB_CAPACITY:
        what = f"weekly capacity {settings.weekly_capacity_hours} h"
    else:
        brief = settings.brief_time
        what = f"daily brief at {brief:%H:%M}" if brief else "no daily brief"
    return f"↷ Skipped: keeping {what}." if skipped else f"✅ Saved: {what}."


async def typed_zone(update: Update, context: Context) -> str | int:
    """A typed IANA zone name."""
    assert update.effective_message is not None
    text = update.effective_message.text or ""
    try:
        settings = await _store(update, context, timezone=text)
    except DomainError as exc:
        close = preferences.suggest_timezones(text)
        hint = f"Did you mean {' or '.join(close)}? " if close else ""
        await reply(
            update, f"{esc(exc.user_message)}\n{esc(hint)}Try again, or tap a button above."
        )
        return OB_TZ
    return await _next_after(update, OB_TZ, _noted(OB_TZ, settings, skipped=False), settings)


async def typed_capacity(update: Update, context: Context) -> str | int:
    """A typed number of hours per week ("35" or "35 h")."""
    assert update.effective_message is not None
    typed = update.effective_message.text or ""
    match = HOURS.fullmatch(typed)
    try:
        hours = parse_int(match[1] if match else typed, "weekly capacity")
        settings = await _store(update, context, weekly_capacity_hours=hours)
    except DomainError as exc:
        await reply(update, f"{esc(exc.user_message)}\nTry again, or tap a button above.")
        return OB_CAPACITY
    note = _noted(OB_CAPACITY, settings, skipped=False)
    return await _next_after(update, OB_CAPACITY, note, settings)


async def typed_brief(update: Update, context: Context) -> str | int:
    """A typed time of day ("07:15") or "off"."""
    assert update.effective_message is not None
    text = (update.effective_message.text or "").strip()
    value = None if text.lower() in ("off", "none", "no") else text
    try:
        settings = await _store(update, context, brief_time=value)
    except DomainError as exc:
        await reply(update, f"{esc(exc.user_message)}\nTry again, or tap a button above.")
        return OB_BRIEF
    return await _next_after(update, OB_BRIEF, _noted(OB_BRIEF, settings, skipped=False), settings)


async def onboarding_timed_out(update: Update, context: Context) -> None:
    """Ten quiet minutes end the onboarding silently: the user has moved on."""


# /cancel during onboarding stops the questions; what was answered stays saved.
CANCEL_REPLIES["onboard"] = (
    "OK, no more questions. What you already answered is saved; the rest keeps its"
    f" defaults (see /settings).\n\n{FIRST_STEP}"
)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add the "onboard" conversation: after every other conversation, before basic.register."""
    from handlers import basic  # basic.start hands new accounts over to begin_onboarding

    text = filters.TEXT & ~filters.COMMAND
    handler = conversation(
        "onboard",
        entry_points=[
            CommandHandler("start", basic.start),
            CallbackQueryHandler(onboard_button, pattern=r"^ob:"),
        ],
        states={
            # While a question is open, what is typed is an answer: it is saved, or gets the
            # specific error ("forty" → weekly capacity must be a number). A command closes
            # the question (one_question_at_a_time), so nobody is trapped.
            OB_TZ: [MessageHandler(text, typed_zone)],
            OB_CAPACITY: [MessageHandler(text, typed_capacity)],
            OB_BRIEF: [MessageHandler(text, typed_brief)],
        },
    )
    # The shared timeout message says "nothing was saved" and drops every draft; here the
    # answers are saved as they come and a user who ignored the questions has moved on.
    handler.states[ConversationHandler.TIMEOUT] = [TypeHandler(Update, onboarding_timed_out)]
    app.add_handler(handler)
