"""The usage line of every command that takes arguments, in one place.

Handlers raise ``Usage(...)`` with these; the error handler adds the command's line to a
reply about a malformed or out-of-range argument of a one-line command.
"""

from __future__ import annotations

from services.status import HISTORY_MAX

LOG_USAGE = (
    "<code>/log ibm|cs minutes action</code>, e.g. <code>/log cs 45 read chapter 3</code>"
    " or <code>/log cs 1h30 read the paper</code>"
)
REFLECT_USAGE = (
    "<code>/reflect ibm|cs evidence</code>,"
    " e.g. <code>/reflect cs Passed the mock exam, 78%</code>"
)
PROGRESS_USAGE = "<code>/progress ibm|cs 0-100</code>, e.g. <code>/progress cs 40</code>"
ENERGY_USAGE = (
    "<code>/energy 0-100</code> (your ibm share; cs gets the rest), e.g. <code>/energy 60</code>"
)
BLOCK_USAGE = "<code>/block ibm|cs [reason]</code>, e.g. <code>/block ibm travelling</code>"
UNBLOCK_USAGE = "<code>/unblock ibm|cs</code>"
HISTORY_USAGE = (
    f"<code>/history [ibm|cs] [1-{HISTORY_MAX}]</code>, e.g. <code>/history cs 10</code>"
)
ADD_USAGE = (
    "<code>/add ibm|cs gap(0-5) title</code>, e.g. <code>/add cs 4 Read SICP chapter 3</code>"
)
NBA_USAGE = "<code>/nba</code> or <code>/nba ibm|cs</code>"
SETTINGS_USAGE = (
    "<code>/settings</code> for the menu, or one setting at once:\n"
    "<code>/settings tz Europe/Berlin</code> · <code>/settings quiet 22:00-08:00</code> ·"
    " <code>/settings brief 08:00</code> · <code>/settings review sun 18:00</code> ·"
    " <code>/settings idle 48</code> · <code>/settings overload 85</code> ·"
    " <code>/settings capacity 45</code> · <code>/settings focus 25m</code>"
    " (<code>off</code> turns quiet hours, the brief, the review or the focus length off)"
)

USAGES: dict[str, str] = {
    "log": LOG_USAGE,
    "reflect": REFLECT_USAGE,
    "progress": PROGRESS_USAGE,
    "energy": ENERGY_USAGE,
    "block": BLOCK_USAGE,
    "unblock": UNBLOCK_USAGE,
    "history": HISTORY_USAGE,
    "add": ADD_USAGE,
    "nba": NBA_USAGE,
    "settings": SETTINGS_USAGE,
}

FOCUS_USAGE = (
    "<code>/focus [ibm|cs] [length]</code>, e.g. <code>/focus cs 50m</code> (without a length:"
    " your default from /settings; <code>/focus cs no limit</code>: none); without a theater"
    " it asks"
)
