"""First-run onboarding: three quick questions right after /start creates the account.

Time zone, weekly capacity and daily brief time, each with buttons and typed answers, each
skippable ("Skip", or typed ``skip``), each stored as soon as it is answered (so /cancel, a
timeout or a restart keeps what was answered), then one suggested first step.

It is the "onboard" flow of the question engine (handlers/conversation.py): /start
(:func:`handlers.basic.start`) calls :func:`begin_onboarding` for a just-created account,
which asks the first question in the welcome's own message. While a question is open, what
is typed is its answer (saved, or a specific error: "forty" is not a number of hours, "7am"
is not a time zone); any command abandons it, and its buttons then answer "This question is
closed". Ten quiet minutes end it silently: the person has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler

from handlers.callbacks import BadCallback, Callback, pattern
from handlers.common import Context
from handlers.conversation import CLOSED, Buttons, Flow, Turn, flow, start
from handlers.render import CAPACITY_CHOICES, esc
from services import preferences
from services.models import UserSettings
from services.validation import CAPACITY_HOURS_RANGE, parse_hours

COMMON_ZONES = (
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "UTC",
)
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
    "Pick a time in your time zone, type one like <code>07:15</code> or <code>7am</code>,"
    " or choose Off."
)
CANCEL_REPLY = (
    "OK, no more questions. What you already answered is saved; the rest keeps its"
    f" defaults (see /settings).\n\n{FIRST_STEP}"
)

#: A typed weekly capacity: "35", "35h", "35 hours".
#: Typed instead of tapping Skip.
SKIP_WORDS = frozenset({"skip", "pass", "later"})
#: Typed for no daily brief.
OFF_WORDS = frozenset({"off", "none", "no"})

TZ_BUTTONS: Buttons = [
    *[
        [(zone, ("timezone", n)) for n, zone in list(enumerate(COMMON_ZONES))[i : i + 2]]
        for i in range(0, len(COMMON_ZONES), 2)
    ],
    [("Skip (keep UTC)", ("timezone", "skip"))],
]
CAPACITY_BUTTONS: Buttons = [
    [(f"{h} h", ("capacity", h)) for h in CAPACITY_CHOICES],
    [("Skip (keep 40 h)", ("capacity", "skip"))],
]
BRIEF_BUTTONS: Buttons = [
    [(t, ("brief", code)) for code, t in BRIEF_BY_CODE.items()] + [("Off", ("brief", "off"))],
    [("Skip", ("brief", "skip"))],
]

#: step → the verb of its buttons
_VERB = {"tz": "timezone", "capacity": "capacity", "brief": "brief"}


@dataclass(frozen=True, slots=True)
class OnboardDraft:
    """Nothing to carry between the steps: each answer is stored as it comes."""


# --- questions --------------------------------------------------------------------------


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


def _noted(step: str, settings: UserSettings, *, skipped: bool) -> str:
    if step == "tz":
        what = f"time zone {esc(settings.timezone)}"
    elif step == "capacity":
        what = f"weekly capacity {settings.weekly_capacity_hours} h"
    else:
        brief = settings.brief_time
        what = f"daily brief at {brief:%H:%M}" if brief else "no daily brief"
    return f"↷ Skipped: keeping {what}." if skipped else f"✅ Saved: {what}."


async def begin_onboarding(update: Update, context: Context, intro: str = "") -> None:
    """Ask the first question (after ``intro``, e.g. the welcome, in the same message)."""
    head = f"{intro}\n\n" if intro else ""
    text = head + "Three quick questions to set you up; skip any.\n\n" + ASK_TZ
    await start(update, context, ONBOARD, "tz", OnboardDraft(), text, TZ_BUTTONS)


async def _answered(turn: Turn[OnboardDraft], changes: dict[str, Any]) -> None:
    """Store ``changes`` (none: skipped) and ask the question after this step."""
    step = turn.step
    settings = await preferences.update_preferences(turn.db, turn.who, now=turn.now, **changes)
    skipped = not changes
    note = _noted(step, settings, skipped=skipped)
    if turn.update.callback_query is not None:
        turn.toast = "Skipped." if skipped else "Saved."
    if step == "tz":
        turn.ask("capacity", turn.draft, f"{note}\n\n{ASK_CAPACITY}", CAPACITY_BUTTONS)
    elif step == "capacity":
        turn.ask("brief", turn.draft, f"{note}\n\n{ASK_BRIEF}", BRIEF_BUTTONS)
    else:
        turn.finish(render_done(settings, note))


# --- answers ----------------------------------------------------------------------------


async def _button(turn: Turn[OnboardDraft], press: Callback) -> None:
    """A tap: the step's choice, or Skip."""
    if press.verb != _VERB.get(turn.step):
        raise BadCallback("not a button of this step")
    choice = press.text(0)
    changes: dict[str, Any] = {}
    if choice != "skip":
        if turn.step == "tz":
            changes["timezone"] = COMMON_ZONES[press.number(0, 0, len(COMMON_ZONES) - 1)]
        elif turn.step == "capacity":
            changes["weekly_capacity_hours"] = press.number(0, *CAPACITY_HOURS_RANGE)
        elif choice == "off":
            changes["brief_time"] = None
        elif choice in BRIEF_BY_CODE:
            changes["brief_time"] = BRIEF_BY_CODE[choice]
        else:
            raise BadCallback("not a brief time")
    await _answered(turn, changes)


async def _text(turn: Turn[OnboardDraft], text: str) -> None:
    """A typed answer: an IANA zone, a number of hours ("35", "35 h"), a time of day ("7am",
    "19:30", "7:30 pm") or off; ``skip`` at any step keeps the default."""
    typed = text.strip()
    changes: dict[str, Any] = {}
    if typed.lower() in SKIP_WORDS:
        pass
    elif turn.step == "tz":
        changes["timezone"] = preferences.timezone_or_hint(typed)
    elif turn.step == "capacity":
        changes["weekly_capacity_hours"] = parse_hours(typed, "weekly capacity")
    else:
        changes["brief_time"] = None if typed.lower() in OFF_WORDS else typed
    await _answered(turn, changes)


ONBOARD = flow(
    Flow(
        "onboard",
        OnboardDraft,
        on_text=_text,
        on_button=_button,
        cancel_reply=CANCEL_REPLY,  # what was answered stays saved
        timeout_reply=None,  # ten quiet minutes: the person has moved on
    )
)


async def _legacy_button(update: Update, context: Context) -> None:
    """A button of an onboarding message sent before the questions moved to the engine."""
    assert update.callback_query is not None
    await update.callback_query.answer(CLOSED)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The flow registers itself on import; here only the buttons of older messages."""
    app.add_handler(CallbackQueryHandler(_legacy_button, pattern=pattern("ob")))
