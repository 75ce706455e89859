"""/settings: time zone, quiet hours, daily brief, weekly review, the three thresholds and the
focus sessions' default length.

One question of the engine (handlers/conversation.py, flow "settings"): the menu is its first
step and each sub-menu another, drawn in place of the pressed message. A sub-menu offers
common choices as buttons and also takes a typed value; a value that does not parse gets the
specific problem and the question stays, so the person simply tries again. The menu itself
takes a setting and its value typed on one line (``brief 7:30 pm``). Back returns to the menu,
Done closes the question; any command abandons it, and its buttons then answer "This question
is closed". The one-line form does it all at once: ``/settings brief 08:00``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from handlers.callbacks import BadCallback, Callback, pattern
from handlers.common import Context, Usage, args_of, deps, me, now
from handlers.conversation import CLOSED, Button, Buttons, Flow, Turn, flow, start
from handlers.render import CAPACITY_CHOICES, esc
from handlers.usage import SETTINGS_USAGE
from services import focus, preferences
from services.durations import parse_minutes
from services.errors import DomainError
from services.models import UserSettings
from services.nudges.settings import get_settings, update_settings
from services.validation import (
    DAY_NAMES,
    check_minutes,
    is_off,
    parse_clock,
    parse_hours,
    parse_int,
    parse_quiet,
    parse_review,
)

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
FOCUS_CHOICES = (25, 45, 50, 90)
#: what people type for a setting (one-line form, or on the menu) → the setting (a step)
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
    "focus": "focus",
}
#: the verb of a menu button → the setting whose sub-menu it opens (a step)
_FIELD_OF_MENU = {
    "timezone": "tz",
    "quiet": "quiet",
    "brief": "brief",
    "review": "review",
    "idle": "idle",
    "overload": "overload",
    "capacity": "capacity",
    "focus": "focus",
}
#: the verb of a value button → the setting (step) whose sub-menu shows it
_FIELD_OF_VALUE = {
    "set-timezone": "tz",
    "set-quiet": "quiet",
    "set-brief": "brief",
    "set-review": "review",
    "set-idle": "idle",
    "set-overload": "overload",
    "set-capacity": "capacity",
    "set-focus": "focus",
}
MENU = "menu"


@dataclass(frozen=True, slots=True)
class SettingsDraft:
    """The sub-menu's context: the weekday picked for the weekly review (None: none yet)."""

    day: int | None = None


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


def describe_focus(s: UserSettings) -> str:
    return f"{s.focus_minutes} min" if s.focus_minutes is not None else "none"


def describe_review(s: UserSettings) -> str:
    if s.review_day is None or s.review_time is None:
        return "off"
    return f"{DAY_NAMES[s.review_day]} {clock(s.review_time)}"


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
        f"🎯 Focus length: <b>{describe_focus(s)}</b>",
        "",
        "Tap what to change, or type it like <code>brief 07:30</code>.",
    ]
    return "\n".join(lines)


MENU_BUTTONS: Buttons = [
    [("🌍 Time zone", ("timezone",)), ("🌙 Quiet hours", ("quiet",))],
    [("☀️ Daily brief", ("brief",)), ("📅 Weekly review", ("review",))],
    [("💤 Idle after", ("idle",)), ("⚠️ Overload at", ("overload",))],
    [("⏱ Capacity", ("capacity",)), ("🎯 Focus length", ("focus",))],
    [("✔ Done", ("done",))],
]

_BACK: Button = ("↩ Back", ("menu",))


def _choice_rows(choices: list[Button], per_row: int = 4) -> list[list[Button]]:
    return [choices[i : i + per_row] for i in range(0, len(choices), per_row)]


def submenu(field: str, s: UserSettings, day: int | None = None) -> tuple[str, Buttons]:
    """The text and buttons of one setting's sub-menu (a typed value is also accepted)."""
    rows: list[list[Button]]
    if field == "tz":
        text = (
            f"🌍 Your time zone is <b>{esc(s.timezone)}</b>.\n"
            "Type its IANA name (e.g. <code>Europe/Berlin</code>, <code>America/New_York</code>)"
            " or pick one:"
        )
        rows = _choice_rows([(z, ("set-timezone", i)) for i, z in enumerate(ZONES)], 2)
    elif field == "quiet":
        text = (
            f"🌙 Quiet hours: <b>{describe_quiet(s)}</b>. Idle and overload reminders due then"
            " wait until they end (the brief and review come at the time you chose).\n"
            "Pick, or type a range like <code>22:00-08:00</code> (or <code>off</code>):"
        )
        rows = [
            [
                (f"{clock(a)}–{clock(b)}", ("set-quiet", _hhmm(a), _hhmm(b)))
                for a, b in QUIET_CHOICES
            ],
            [("Off", ("set-quiet", "off"))],
        ]
    elif field == "brief":
        text = (
            f"☀️ Daily brief: <b>{describe_brief(s)}</b>. Both theaters, their next actions and"
            " your overload risk, every day at this time.\n"
            "Pick a time, or type one like <code>07:30</code> or <code>7am</code>"
            " (or <code>off</code>):"
        )
        rows = [
            [(clock(t), ("set-brief", _hhmm(t))) for t in BRIEF_CHOICES],
            [("Off", ("set-brief", "off"))],
        ]
    elif field == "review" and day is None:
        text = (
            f"📅 Weekly review: <b>{describe_review(s)}</b>. Time per theater against its energy"
            " share, NBAs done and reflections of the last 7 days.\n"
            "Pick a day, or type a day and a time like <code>sun 18:00</code>"
            " (or <code>off</code>):"
        )
        days: list[Button] = [(name[:3], ("review-day", n)) for n, name in enumerate(DAY_NAMES)]
        rows = [*_choice_rows(days, 4), [("Off", ("set-review", "off"))]]
    elif field == "review":
        assert day is not None
        text = (
            f"📅 Weekly review on <b>{DAY_NAMES[day]}</b>: pick a time, or type one like"
            " <code>18:30</code>:"
        )
        rows = [[(clock(t), ("set-review", day, _hhmm(t))) for t in REVIEW_TIMES]]
    elif field == "idle":
        text = (
            f"💤 An idle reminder comes after <b>{s.idle_after_hours} h</b> without activity in a"
            " theater (then at most daily, 3 times).\nPick, or type 1-720 hours:"
        )
        rows = [[(f"{h} h", ("set-idle", h)) for h in IDLE_CHOICES]]
    elif field == "overload":
        text = (
            f"⚠️ An overload reminder comes when your risk reaches <b>{s.overload_threshold}%</b>."
            "\nPick, or type 1-100:"
        )
        rows = [[(f"{n}%", ("set-overload", n)) for n in THRESHOLD_CHOICES]]
    elif field == "focus":
        text = (
            f"🎯 Focus length: <b>{describe_focus(s)}</b>. A focus session started without a"
            " length (▶ Start, <code>/focus cs</code>) gets “Time's up” after this long of work.\n"
            "Pick, or type a length like <code>40m</code> or <code>1h</code>"
            " (or <code>off</code>):"
        )
        rows = [
            [(f"{m} min", ("set-focus", m)) for m in FOCUS_CHOICES],
            [("Off", ("set-focus", "off"))],
        ]
    else:
        text = (
            f"⏱ Weekly capacity: <b>{s.weekly_capacity_hours} h</b> (the overload risk compares"
            " the last 7 days against it).\nPick, or type 1-168 hours:"
        )
        rows = _choice_rows([(f"{n} h", ("set-capacity", n)) for n in CAPACITY_CHOICES], 3)
    rows.append([_BACK])
    return text, rows


# --- turning input into changes -------------------------------------------------------------


def changes_from_text(field: str, text: str, day: int | None = None) -> tuple[dict[str, Any], str]:
    """Parse what the user typed for ``field``: (changes for update_settings, a note).
    ``day``: the weekday already picked in the review's sub-menu (then a time is enough)."""
    if field == "tz":
        zone = preferences.timezone_or_hint(text)
        return {"timezone": zone}, f"✅ Time zone set to {esc(zone)}."
    if field == "quiet":
        quiet = parse_quiet(text)
        if quiet is None:
            return {"quiet_start": None, "quiet_end": None}, "✅ Quiet hours off."
        start, end = quiet
        return (
            {"quiet_start": start, "quiet_end": end},
            f"✅ Quiet hours {clock(start)}–{clock(end)}.",
        )
    if field == "brief":
        if is_off(text):
            return {"brief_time": None}, "✅ Daily brief off."
        at = parse_clock(text)
        return {"brief_time": at}, f"✅ Daily brief at {clock(at)}."
    if field == "review":
        if is_off(text):
            return {"review_day": None, "review_time": None}, "✅ Weekly review off."
        review: tuple[int, time] | None
        if day is None:
            review = parse_review(text)
        else:
            try:  # "sun 18:00" still picks another day
                review = parse_review(text)
            except DomainError:
                review = (day, parse_clock(text))
        assert review is not None
        d, at = review
        return (
            {"review_day": d, "review_time": at},
            f"✅ Weekly review on {DAY_NAMES[d]} at {clock(at)}.",
        )
    if field == "idle":
        hours = parse_hours(text, "idle threshold")
        return {"idle_after_hours": hours}, f"✅ Idle reminder after {hours} h."
    if field == "overload":
        value = parse_int(text, "overload threshold", percent=True)
        return {"overload_threshold": value}, f"✅ Overload reminder at {value}%."
    if field == "capacity":
        hours = parse_hours(text, "weekly capacity")
        return {"weekly_capacity_hours": hours}, f"✅ Weekly capacity {hours} h."
    if field == "focus":
        if is_off(text) or text.strip().lower() in focus.NO_LENGTH:
            return {"focus_minutes": None}, "✅ Focus sessions have no default length."
        minutes = check_minutes(parse_minutes(text, "focus length"))
        return {"focus_minutes": minutes}, f"✅ Focus sessions last {minutes} min by default."
    raise ValueError(f"unknown settings field {field!r}")


def _clock_arg(cb: Callback, index: int) -> time:
    raw = cb.text(index)
    if len(raw) != 4 or not raw.isdigit() or int(raw[:2]) > 23 or int(raw[2:]) > 59:
        raise BadCallback("expected HHMM")
    return time(int(raw[:2]), int(raw[2:]))


def changes_from_button(cb: Callback) -> tuple[dict[str, Any], str]:
    """The change a value button asks for."""
    if cb.verb == "set-timezone":
        index = cb.number(0, 0, len(ZONES) - 1)
        return changes_from_text("tz", ZONES[index])
    if cb.verb == "set-quiet":
        if cb.text(0) == "off":
            return changes_from_text("quiet", "off")
        start, end = _clock_arg(cb, 0), _clock_arg(cb, 1)
        return changes_from_text("quiet", f"{clock(start)}-{clock(end)}")
    if cb.verb == "set-brief":
        if cb.text(0) == "off":
            return changes_from_text("brief", "off")
        return changes_from_text("brief", clock(_clock_arg(cb, 0)))
    if cb.verb == "set-review":
        if cb.text(0) == "off":
            return changes_from_text("review", "off")
        day = cb.number(0, 0, 6)
        return changes_from_text("review", clock(_clock_arg(cb, 1)), day)
    if cb.verb == "set-idle":
        return changes_from_text("idle", str(cb.number(0, 1, 720)))
    if cb.verb == "set-overload":
        return changes_from_text("overload", str(cb.number(0, 1, 100)))
    if cb.verb == "set-capacity":
        return changes_from_text("capacity", str(cb.number(0, 1, 168)))
    if cb.verb == "set-focus":
        if cb.text(0) == "off":
            return changes_from_text("focus", "off")
        return changes_from_text("focus", str(cb.number(0, 1, 1440)))
    raise BadCallback("unknown settings verb")


# --- the question ---------------------------------------------------------------------------


async def _saved(turn: Turn[SettingsDraft], changes: dict[str, Any], note: str) -> None:
    """Store the changes, then show the menu again with a note of what changed (for a typed
    value in a new message, under the person's own)."""
    saved = await update_settings(turn.db, turn.who, now=turn.now, **changes)
    if turn.update.callback_query is not None:
        turn.toast = "Saved."
    turn.ask(MENU, SettingsDraft(), render_settings(saved, note), MENU_BUTTONS)


async def _button(turn: Turn[SettingsDraft], press: Callback) -> None:
    """A menu button opens its sub-menu (a step), Back returns, Done closes, a value button
    stores its value."""
    verb = press.verb
    if verb in _FIELD_OF_MENU or verb == "review-day":
        day = press.number(0, 0, 6) if verb == "review-day" else None
        field = _FIELD_OF_MENU.get(verb, "review")
        text, buttons = submenu(field, await get_settings(turn.db, turn.who), day)
        turn.ask(field, SettingsDraft(day), text, buttons)
    elif verb == "menu":
        s = await get_settings(turn.db, turn.who)
        turn.ask(MENU, SettingsDraft(), render_settings(s), MENU_BUTTONS)
    elif verb == "done":
        turn.finish("⚙️ Settings saved. /settings changes them again.", toast="Saved.")
    elif _FIELD_OF_VALUE.get(verb) == turn.step:
        await _saved(turn, *changes_from_button(press))
    else:
        raise BadCallback("not a button of this step")


async def _text(turn: Turn[SettingsDraft], text: str) -> None:
    """A typed value for the open sub-menu; on the menu, a setting and its value."""
    if turn.step == MENU:
        words = text.split(maxsplit=1)
        field = _ALIASES.get(words[0].lower()) if words else None
        if field is None:
            if text.strip().lower() in ("done", "✔ done", "close", "ok"):
                turn.finish("⚙️ Settings saved. /settings changes them again.")
            else:  # not meant for the menu: offered for quick capture instead
                turn.not_an_answer()
            return
        if len(words) < 2:  # "brief": its sub-menu, as the button opens it
            menu, buttons = submenu(field, await get_settings(turn.db, turn.who), None)
            turn.ask(field, SettingsDraft(None), menu, buttons)
            return
        await _saved(turn, *changes_from_text(field, words[1]))
        return
    await _saved(turn, *changes_from_text(turn.step, text, turn.draft.day))


SETTINGS = flow(
    Flow(
        "settings",
        SettingsDraft,
        on_text=_text,
        on_button=_button,
        cancel_reply="Settings closed; what you saved stays saved.",
        timeout_reply=None,  # a menu left open: nothing was pending, nothing to say
    )
)


async def settings_command(update: Update, context: Context) -> None:
    """Show the settings menu, or change one setting first: /settings brief 08:00."""
    args = args_of(context)
    db, who = deps(context).db, me(update)
    if not args:
        s = await get_settings(db, who)
        await start(
            update, context, SETTINGS, MENU, SettingsDraft(), render_settings(s), MENU_BUTTONS
        )
        return
    field = _ALIASES.get(args[0].lower())
    if field is None or len(args) < 2:
        raise Usage(SETTINGS_USAGE)
    changes, note = changes_from_text(field, " ".join(args[1:]))
    saved = await update_settings(db, who, now=now(context), **changes)
    text = render_settings(saved, note)
    await start(update, context, SETTINGS, MENU, SettingsDraft(), text, MENU_BUTTONS)


async def _legacy_button(update: Update, context: Context) -> None:
    """A button of a settings message sent before the menu became a question."""
    assert update.callback_query is not None
    await update.callback_query.answer(CLOSED)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("settings", settings_command))
    app.add_handler(CallbackQueryHandler(_legacy_button, pattern=pattern("set")))
