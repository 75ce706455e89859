"""/settings: time zone, quiet hours, daily brief, weekly review and the three thresholds.

One inline menu whose buttons edit the message in place. Each sub-menu offers common choices
as buttons and also waits for a typed value (a persistent conversation, 10-minute timeout,
/cancel anywhere); a typed value that does not parse gets the specific problem and the user
can simply try again. One-line forms do it all at once: ``/settings brief 08:00``.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from handlers.callbacks import BadCallback, Callback, decode, encode, pattern
from handlers.common import Context, Usage, args_of, deps, edit, me, now, reply, user_data
from handlers.conversation import conversation
from handlers.render import esc, keyboard
from handlers.usage import SETTINGS_USAGE
from services import nudges
from services.errors import DomainError
from services.models import UserSettings
from services.validation import check_timezone, parse_int

TYPING = "SETTINGS_TYPING"
DRAFT = "settings"


ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
)
QUIET_CHOICES = ((time(22), time(8)), (time(23), time(7)), (time(21), time(9)))
BRIEF_CHOICES = (time(6), time(7), time(8), time(9))
REVIEW_TIMES = (time(9), time(12), time(18), time(20))
IDLE_CHOICES = (24, 48, 72, 96, 168)
THRESHOLD_CHOICES = (60, 70, 80, 90, 100)
CAPACITY_CHOICES = (30, 35, 40, 45, 50, 60)
_ALIASES = {
    "tz": "tz",
    "timezone": "tz",
    "zone": "tz",
    "quiet": "quiet",
    "brief": "brief",
    "review": "review",
    "idle": "idle",
    "overload": "overload",
    "threshold": "overload",
    "capacity": "capacity",
}


# --- rendering ------------------------------------------------------------------------------


def clock(value: time) -> str:
    return f"{value:%H:%M}"


def _hhmm(value: time) -> str:
    return f"{value:%H%M}"


def describe_quiet(s: UserSettings) -> str:
    if s.quiet_start is None or s.quiet_end is None:
        return "off"
    return f"{clock(s.quiet_start)}–{clock(s.quiet_end)}"


def describe_brief(s: UserSettings) -> str:
    return clock(s.brief_time) if s.brief_time is not None else "off"


def describe_review(s: UserSettings) -> str:
    if s.review_day is None or s.review_time is None:
        return "off"
    return f"{nudges.DAY_NAMES[s.review_day]} {clock(s.review_time)}"


def render_settings(s: UserSettings, note: str | None = None) -> str:
    lines = [note, ""] if note else []
    lines += [
        "⚙️ <b>Settings</b>",
        f"🌍 Time zone: <b>{esc(s.timezone)}</b>",
        f"🌙 Quiet hours: <b>{describe_quiet(s)}</b>",
        f"☀️ Daily brief: <b>{describe_brief(s)}</b>",
        f"📅 Weekly review: <b>{describe_review(s)}</b>",
        f"💤 Idle reminder after <b>{s.idle_after_hours} h</b> without activity",
        f"⚠️ Overload reminder at <b>{s.overload_threshold}%</b> risk",
        f"⏱ Weekly capacity: <b>{s.weekly_capacity_hours} h</b>",
        "",
        "Tap what to change.",
    ]
    return "\n".join(lines)


def settings_keyboard() -> InlineKeyboardMarkup:
    return keyboard(
        [
            [("🌍 Time zone", encode("set", "tz")), ("🌙 Quiet hours", encode("set", "q"))],
            [("☀️ Daily brief", encode("set", "b")), ("📅 Weekly review", encode("set", "r"))],
            [("💤 Idle after", encode("set", "i")), ("⚠️ Overload at", encode("set", "o"))],
            [("⏱ Capacity", encode("set", "c")), ("✔ Done", encode("set", "x"))],
        ]
    )


_BACK = ("↩ Back", encode("set", "m"))


def _choice_rows(choices: list[tuple[str, str]], per_row: int = 4) -> list[list[tuple[str, str]]]:
    return [choices[i : i + per_row] for i in range(0, len(choices), per_row)]


def submenu(
    verb: str, s: UserSettings, day: int | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """The text and buttons of one setting's sub-menu (a typed value is also accepted)."""
    rows: list[list[tuple[str, str]]]
    if verb == "tz":
        text = (
            f"🌍 Your time zone is <b>{esc(s.timezone)}</b>.\n"
            "Type its IANA name (e.g. <code>Europe/Berlin</code>, <code>America/New_York</code>)"
            " or pick one:"
        )
        rows = _choice_rows([(z, encode("set", "tzv", i)) for i, z in enumerate(ZONES)], 2)
    elif verb == "q":
        text = (
            f"🌙 Quiet hours: <b>{describe_quiet(s)}</b>. Idle and overload reminders due then"
            " wait until they end (the brief and review come at the time you chose).\n"
            "Pick, or type a range like <code>22:00-08:00</code> (or <code>off</code>):"
        )
        rows = [
            [
                (f"{clock(a)}–{clock(b)}", encode("set", "qv", _hhmm(a), _hhmm(b)))
                for a, b in QUIET_CHOICES
            ],
            [("Off", encode("set", "qv", "off"))],
        ]
    elif verb == "b":
        text = (
            f"☀️ Daily brief: <b>{describe_brief(s)}</b>. Both theaters, their next actions and"
            " your overload risk, every day at this time.\n"
            "Pick a time, or type one like <code>07:30</code> (or <code>off</code>):"
        )
        rows = [
            [(clock(t), encode("set", "bv", _hhmm(t))) for t in BRIEF_CHOICES],
            [("Off", encode("set", "bv", "off"))],
        ]
    elif verb == "r" and day is None:
        text = (
            f"📅 Weekly review: <b>{describe_review(s)}</b>. Time per theater against its energy"
            " share, NBAs done and reflections of the last 7 days.\n"
            "Pick a day, or type a day and a time like <code>sun 18:00</code>"
            " (or <code>off</code>):"
        )
        days = [(name[:3], encode("set", "rd", n)) for n, name in enumerate(nudges.DAY_NAMES)]
        rows = [*_choice_rows(days, 4), [("Off", encode("set", "rv", "off"))]]
    elif verb == "r":
        assert day is not None
        text = (
            f"📅 Weekly review on <b>{nudges.DAY_NAMES[day]}</b>: pick a time, or type one like"
            " <code>18:30</code>:"
        )
        rows = [[(clock(t), encode("set", "rv", day, _hhmm(t))) for t in REVIEW_TIMES]]
    elif verb == "i":
        text = (
            f"💤 An idle reminder comes after <b>{s.idle_after_hours} h</b> without activity in a"
            " theater (then at most daily, 3 times).\nPick, or type 1-720 hours:"
        )
        rows = [[(f"{h} h", encode("set", "iv", h)) for h in IDLE_CHOICES]]
    elif verb == "o":
        text = (
            f"⚠️ An overload reminder comes when your risk reaches <b>{s.overload_threshold}%</b>."
            "\nPick, or type 1-100:"
        )
        rows = [[(f"{n}%", encode("set", "ov", n)) for n in THRESHOLD_CHOICES]]
    else:
        text = (
            f"⏱ Weekly capacity: <b>{s.weekly_capacity_hours} h</b> (the overload risk compares"
            " the last 7 days against it).\nPick, or type 1-168 hours:"
        )
        rows = _choice_rows([(f"{n} h", encode("set", "cv", n)) for n in CAPACITY_CHOICES], 3)
    rows.append([_BACK])
    return text, keyboard(rows)


_FIELD_OF_MENU = {
    "tz": "tz",
    "q": "quiet",
    "b": "brief",
    "r": "review",
    "i": "idle",
    "o": "overload",
    "c": "capacity",
}


# --- turning input into changes -------------------------------------------------------------


def changes_from_text(field: str, text: str, day: int | None = None) -> tuple[dict[str, Any], str]:
    """Parse what the user typed for ``field``: (changes for update_settings, a note)."""
    if field == "tz":
        zone = check_timezone(text)
        return {"timezone": zone}, f"✅ Time zone set to {esc(zone)}."
    if field == "quiet":
        quiet = nudges.parse_quiet(text)
        if quiet is None:
            return {"quiet_start": None, "quiet_end": None}, "✅ Quiet hours off."
        start, end = quiet
        return (
            {"quiet_start": start, "quiet_end": end},
            f"✅ Quiet hours {clock(start)}–{clock(end)}.",
        )
    if field == "brief":
        if nudges.is_off(text):
            return {"brief_time": None}, "✅ Daily brief off."
        at = nudges.parse_clock(text)
        return {"brief_time": at}, f"✅ Daily brief at {clock(at)}."
    if field == "review":
        if nudges.is_off(text):
            return {"review_day": None, "review_time": None}, "✅ Weekly review off."
        if day is not None and len(text.split()) == 1:
            review: tuple[int, time] | None = (day, nudges.parse_clock(text))
        else:
            review = nudges.parse_review(text)
        assert review is not None
        d, at = review
        return (
            {"review_day": d, "review_time": at},
            f"✅ Weekly review on {nudges.DAY_NAMES[d]} at {clock(at)}.",
        )
    if field == "idle":
        hours = parse_int(text, "idle threshold")
        return {"idle_after_hours": hours}, f"✅ Idle reminder after {hours} h."
    if field == "overload":
        value = parse_int(text, "overload threshold", percent=True)
        return {"overload_threshold": value}, f"✅ Overload reminder at {value}%."
    if field == "capacity":
        hours = parse_int(text, "weekly capacity")
        return {"weekly_capacity_hours": hours}, f"✅ Weekly capacity {hours} h."
    raise ValueError(f"unknown settings field {field!r}")


def _clock_arg(cb: Callback, index: int) -> time:
    raw = cb.text(index)
    if len(raw) != 4 or not raw.isdigit() or int(raw[:2]) > 23 or int(raw[2:]) > 59:
        raise BadCallback("expected HHMM")
    return time(int(raw[:2]), int(raw[2:]))


def changes_from_button(cb: Callback) -> tuple[dict[str, Any], str]:
    """The change a value button asks for."""
    if cb.verb == "tzv":
        index = cb.number(0, 0, len(ZONES) - 1)
        return changes_from_text("tz", ZONES[index])
    if cb.verb == "qv":
        if cb.text(0) == "off":
            return changes_from_text("quiet", "off")
        start, end = _clock_arg(cb, 0), _clock_arg(cb, 1)
        return changes_from_text("quiet", f"{clock(start)}-{clock(end)}")
    if cb.verb == "bv":
        if cb.text(0) == "off":
            return changes_from_text("brief", "off")
        return changes_from_text("brief", clock(_clock_arg(cb, 0)))
    if cb.verb == "rv":
        if cb.text(0) == "off":
            return changes_from_text("review", "off")
        day = cb.number(0, 0, 6)
        return changes_from_text("review", clock(_clock_arg(cb, 1)), day)
    if cb.verb == "iv":
        return changes_from_text("idle", str(cb.number(0, 1, 720)))
    if cb.verb == "ov":
        return changes_from_text("overload", str(cb.number(0, 1, 100)))
    if cb.verb == "cv":
        return changes_from_text("capacity", str(cb.number(0, 1, 168)))
    raise BadCallback("unknown settings verb")


# --- handlers -------------------------------------------------------------------------------


async def settings_command(update: Update, context: Context) -> str | int:
    """Show the settings menu, or change one setting: /settings brief 08:00."""
    args = args_of(context)
    user_data(context).pop(DRAFT, None)
    db, who = deps(context).db, me(update)
    if not args:
        await reply(
            update, render_settings(await nudges.get_settings(db, who)), settings_keyboard()
        )
        return ConversationHandler.END
    field = _ALIASES.get(args[0].lower())
    if field is None or len(args) < 2:
        raise Usage(SETTINGS_USAGE)
    changes, note = changes_from_text(field, " ".join(args[1:]))
    saved = await nudges.update_settings(db, who, now=now(context), **changes)
    await reply(update, render_settings(saved, note), settings_keyboard())
    return ConversationHandler.END


async def settings_button(update: Update, context: Context) -> str | int:
    """Every set:… button: open a sub-menu (and wait for typing) or store a value."""
    query = update.callback_query
    assert query is not None
    draft = user_data(context)
    db, who = deps(context).db, me(update)
    try:
        cb = decode(query.data)
        if cb.verb in _FIELD_OF_MENU or cb.verb == "rd":
            day = cb.number(0, 0, 6) if cb.verb == "rd" else None
            text, markup = submenu(
                "r" if day is not None else cb.verb, await nudges.get_settings(db, who), day
            )
            await query.answer()
            await edit(update, text, markup)
            draft[DRAFT] = {"field": _FIELD_OF_MENU.get(cb.verb, "review"), "day": day}
            return TYPING
        draft.pop(DRAFT, None)
        if cb.verb == "m":
            await query.answer()
            await edit(
                update, render_settings(await nudges.get_settings(db, who)), settings_keyboard()
            )
        elif cb.verb == "x":
            await query.answer("Saved.")
            await edit(update, "⚙️ Settings saved. /settings changes them again.")
        else:
            changes, note = changes_from_button(cb)
            saved = await nudges.update_settings(db, who, now=now(context), **changes)
            await query.answer("Saved.")
            await edit(update, render_settings(saved, note), settings_keyboard())
    except BadCallback:
        await query.answer("That button is no longer valid.")
    except DomainError as exc:
        await query.answer(exc.user_message[:200], show_alert=True)
    return ConversationHandler.END


async def settings_typed(update: Update, context: Context) -> str | int:
    """Take a typed value for the setting being changed; on a mistake, say what and wait."""
    assert update.effective_message is not None
    draft: dict[str, Any] = user_data(context).get(DRAFT) or {}
    field = draft.get("field")
    if field is None:
        return ConversationHandler.END
    try:
        changes, note = changes_from_text(
            field, update.effective_message.text or "", draft.get("day")
        )
        saved = await nudges.update_settings(
            deps(context).db, me(update), now=now(context), **changes
        )
    except DomainError as exc:
        await reply(update, f"⚠️ {esc(exc.user_message)}\nTry again, or /cancel.")
        return TYPING
    user_data(context).pop(DRAFT, None)
    await reply(update, render_settings(saved, note), settings_keyboard())
    return ConversationHandler.END


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    buttons = CallbackQueryHandler(settings_button, pattern=pattern("set"))
    app.add_handler(
        conversation(
            DRAFT,
            entry_points=[CommandHandler("settings", settings_command), buttons],
            states={
                TYPING: [
                    MessageHandler(filters.TEXT & ~filters.COMMAND, settings_typed),
                    buttons,
                ],
            },
        )
    )
