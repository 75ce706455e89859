"""Rendering: pure functions from service results to HTML text and inline keyboards.

Rules every renderer keeps: user-supplied strings go through :func:`esc`, and every reply
goes out through :func:`split_message`, which cuts replies over Telegram's limit into parts
that are each valid HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import encode
from services import focus, rules, sanity
from services.models import Arm, FocusSession
from services.nba import Fate, ItemResult, TheaterNba
from services.status import HistoryEntry, StatusView
from services.tracking import LogResult, UndoResult
from services.validation import MINUTES_RANGE

MESSAGE_LIMIT = 4096
MINUTE_CHOICES = (15, 25, 45, 60, 90)
#: Weekly capacities (hours) offered as buttons: onboarding, /settings, the overload nudge.
CAPACITY_CHOICES = (30, 35, 40, 45, 50, 60)
STATUS_ICON = {"active": "🟢", "warm": "🟡", "idle": "🔴", "blocked": "⛔"}
ARM_NAME = {"ibm": "ibm · job", "cs": "cs · study"}


def num(value: object) -> str:
    """A number as people write it: 40, 12.5, 78.75 (no trailing zeros)."""
    from decimal import Decimal

    if isinstance(value, Decimal | int):
        return rules.format_number(value)
    return str(value)


def esc(text: object) -> str:
    """Escape user text for Telegram's HTML parse mode."""
    return html.escape(str(text), quote=False)


#: The longest text /history shows of one entry: what the bot itself accepts (rows written
#: through the Data API may hold far more; /export has it all).
HISTORY_TEXT_MAX = 2000
#: The most /history sends at once (about four messages); the rest is named, not sent.
HISTORY_REPLY_MAX = 4 * MESSAGE_LIMIT


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut (line breaks kept)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with an ellipsis (for button labels)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# One token of Telegram HTML: a tag, an entity, a run of plain text, or a stray "<"/"&".
_TOKEN = re.compile(r"<[^<>]*>|&#?\w+;|[^<&]+|[<&]")
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)")


def _tag_change(token: str) -> tuple[bool, str] | None:
    """For a tag token: (is it a closing tag, its name); None for text and entities."""
    m = _TAG.match(token) if token.startswith("<") else None
    return (m.group(1) == "/", m.group(2).lower()) if m else None


def _closing(stack: Sequence[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split HTML into messages of at most ``limit`` characters, each valid on its own.

    Cuts fall at line boundaries where a line fits, else between tokens, and never inside a
    tag or an escaped entity. Tags open at a cut are closed at the end of one part and opened
    again at the start of the next (``<i>`` spanning the lines of a multi-line detail, say),
    so Telegram accepts every part. Parts with no visible text are dropped.
    """
    if len(text) <= limit:
        return [text or "…"]
    chunks: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags: (name, the opening tag as written)
    prefix = ""  # the tags re-opened at the start of the current part
    body = ""

    def flush() -> None:
        nonlocal prefix, body
        if body:
            chunks.append(prefix + body + _closing(stack))
        prefix, body = "".join(tag for _, tag in stack), ""

    def after(tokens: Iterable[str], start: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The open tags once ``tokens`` are added to a part whose open tags are ``start``."""
        opened = list(start)
        for token in tokens:
            change = _tag_change(token)
            if change and not change[0]:
                opened.append((change[1], token))
            elif change and opened and opened[-1][0] == change[1]:
                opened.pop()
        return opened

    def fits(extra: str, opened: Sequence[tuple[str, str]]) -> bool:
        return len(prefix) + len(body) + len(extra) + len(_closing(opened)) <= limit

    for n, line in enumerate(text.split("\n")):
        tokens = _TOKEN.findall(line)
        opened = after(tokens, stack)
        joined = ("\n" if n and body else "") + line
        if fits(joined, opened):
            body += joined
            stack[:] = opened
            continue
        flush()
        if fits(line, opened):
            body = line
            stack[:] = opened
            continue
        for token in tokens:  # the line alone is too long: cut it between tokens
            if _tag_change(token) is not None or token.startswith("&"):
                opened = after([token], stack)
                if not fits(token, opened) and body:
                    flush()
                body += token
                stack[:] = opened
                continue
            while token:  # plain text: cut anywhere
                room = limit - len(prefix) - len(body) - len(_closing(stack))
                if room <= 0 and body:
                    flush()
                    continue
                room = max(room, 1)  # tags alone fill a part: cut anyway, never loop
                body, token = body + token[:room], token[room:]
    flush()
    visible = [c for c in chunks if re.sub(r"<[^<>]*>", "", c).strip()]
    return visible or ["…"]


def keyboard(rows: Iterable[Sequence[tuple[str, str]]]) -> InlineKeyboardMarkup:
    """Build an inline keyboard from rows of (label, callback data)."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )


def view_data(arm: Arm) -> str:
    """The data of a button that shows a theater's current NBA (``nba:view:<arm>``)."""
    return encode("nba", "view", arm)


# --- NBA screens ------------------------------------------------------------------------


def _flags(entry: rules.RankedItem) -> str:
    if entry.item.is_locked:
        return " 🔒 locked"
    if entry.item.is_manually_selected:
        return " ✋ chosen by you"
    return ""


def render_theater_nba(view: TheaterNba, note: str | None = None) -> str:
    lines = []
    if note:
        lines += [note, ""]
    icon = STATUS_ICON.get(view.status, "")
    lines.append(f"<b>{esc(view.arm)}</b> {icon} {esc(view.status)}")
    current = view.current
    if current is None:
        lines.append("No open Next Best Action.")
        lines.append(f"Add one: <code>/add {view.arm} 3 What to do next</code>")
    else:
        lines.append(f"➤ <b>{esc(current.item.title)}</b>{_flags(current)}")
        lines.append(f"<i>{esc(current.explanation)}</i>")
        if view.others:
            lines.append(f"{len(view.others)} more waiting.")
    return "\n".join(lines)


def _theater_rows(view: TheaterNba, suffix: str = "") -> list[list[tuple[str, str]]]:
    """The buttons of one theater's current item; ``suffix`` (" ibm") names the theater on
    each label when several theaters share a keyboard."""
    current = view.current
    arm = view.arm
    if current is None:
        return [[(f"➕ Add one{' to ' + arm if suffix else ''}", encode("nba", "add", arm))]]
    item = current.item
    lock = (
        (f"🔓 Unlock{suffix}", encode("nba", "unlock", arm, item.id))
        if item.is_locked
        else (f"🔒 Lock{suffix}", encode("nba", "lock", arm, item.id))
    )
    rows: list[list[tuple[str, str]]] = [
        [
            lock,
            (f"▶ Start{suffix}", encode("nba", "start", arm, item.id)),
            (f"▶ Progress{suffix}", encode("nba", "progress", arm, item.id)),
            (f"✅ Done{suffix}", encode("nba", "done", arm, item.id)),
        ]
    ]
    second = []
    if view.others and not item.is_locked:  # a locked item stays until it is unlocked
        second.append((f"🔀 Choose another{suffix}", encode("nba", "choose", arm)))
    if item.is_manually_selected and not item.is_locked:
        second.append((f"🤖 Auto{suffix}", encode("nba", "auto", arm)))
    second.append((f"⚙ Manage{suffix}", encode("nba", "manage", arm, item.id)))
    rows.append(second)
    return rows


def theater_nba_keyboard(view: TheaterNba) -> InlineKeyboardMarkup | None:
    return keyboard(_theater_rows(view))


def render_nba(views: Sequence[TheaterNba]) -> str:
    """/nba: every asked theater in one message, a blank line apart."""
    return "\n\n".join(render_theater_nba(view) for view in views)


def nba_keyboard(views: Sequence[TheaterNba]) -> InlineKeyboardMarkup | None:
    """/nba's buttons: one theater's as they are; for several, each theater's rows with its
    name on every label. A press redraws the message as that theater's own view."""
    if len(views) == 1:
        return theater_nba_keyboard(views[0])
    return keyboard([row for view in views for row in _theater_rows(view, f" {view.arm}")])


def render_candidates(view: TheaterNba) -> str:
    lines = [f"<b>{esc(view.arm)}</b>: choose the item to work on"]
    for n, entry in enumerate(view.ranked, 1):
        mark = "➤ " if entry.is_current else ""
        score = rules.format_number(entry.score)
        lines.append(f"{n}. {mark}{esc(entry.item.title)}{_flags(entry)} · score {score}")
    return "\n".join(lines)


def candidates_keyboard(view: TheaterNba) -> InlineKeyboardMarkup:
    rows = [
        [(f"{n}. {short(e.item.title, 40)}", encode("nba", "select", view.arm, e.item.id))]
        for n, e in enumerate(view.ranked[:20], 1)
        if not e.is_current
    ]
    rows.append([("↩ Back", view_data(view.arm))])
    return keyboard(rows)


def progress_keyboard(arm: Arm, item_id: UUID) -> InlineKeyboardMarkup:
    """Minutes to log on an item, and Back to its theater."""
    row = [(f"{m} min", encode("nba", "log", arm, item_id, m)) for m in MINUTE_CHOICES]
    return keyboard([row, [("↩ Back", view_data(arm))]])


def render_progress_prompt(title: str) -> str:
    return (
        f"How long did you work on <b>{esc(title)}</b>?\n"
        "<i>Other amounts: /log with the minutes.</i>"
    )


def render_manage(title: str, gap: int) -> str:
    return f"<b>{esc(title)}</b>\nGap now {gap}. Set a new gap, or delete the item."


def manage_keyboard(arm: Arm, item_id: UUID, gap: int) -> InlineKeyboardMarkup:
    gaps = [
        (f"•{g}•" if g == gap else str(g), encode("nba", "gap", arm, item_id, g)) for g in range(6)
    ]
    return keyboard(
        [
            gaps,
            [
                ("🗑 Delete", encode("nba", "delete", arm, item_id)),
                ("↩ Back", view_data(arm)),
            ],
        ]
    )


#: The longest title a toast quotes (a callback answer holds at most 200 characters).
_TOAST_TITLE = 160


def gone_toast(fate: Fate) -> str:
    """The notice for a button whose item is no longer open (plain text: a toast)."""
    if fate.state == "done":
        return f"✅ “{short(fate.title or '', _TOAST_TITLE)}” is already done."
    if fate.state == "deleted":
        return "That item was deleted."
    return "That changed — here is the fresh view."


def render_done(result: ItemResult) -> str:
    lines = [f"✅ Done: <b>{esc(result.item.title)}</b>"]
    nxt = result.theater.current
    if nxt is not None:
        lines.append(f"Next up in {esc(result.theater.arm)}: <b>{esc(nxt.item.title)}</b>")
    else:
        lines.append(f"No open items left in {esc(result.theater.arm)}.")
    if result.log is not None and result.log.duration is None:
        lines.append("How long did it take? Tap to add the minutes.")
    elif result.log is not None:
        lines.append(f"Logged {result.log.duration} min.")
    return "\n".join(lines)


def done_keyboard(result: ItemResult) -> InlineKeyboardMarkup:
    rows: list[list[tuple[str, str]]] = []
    if result.log is not None and result.log.duration is None:
        rows.append(
            [(f"{m} min", encode("log", "minutes", result.log.id, m)) for m in MINUTE_CHOICES]
        )
    rows.append([(f"View {result.theater.arm}", view_data(result.theater.arm))])
    return keyboard(rows)


# --- logs, status, history --------------------------------------------------------------


def render_log(result: LogResult) -> str:
    log = result.log
    minutes = f"{log.duration} min" if log.duration else "no time"
    head = "Already logged" if result.duplicate else "Logged"
    lines = [f"📝 {head} in <b>{esc(log.arm_type)}</b>: {esc(log.action)} ({minutes})"]
    if log.details:
        lines.append(f"<i>{esc(log.details)}</i>")
    lines.append(
        f"Overload risk {rules.format_number(result.overload.risk)}%: "
        f"{esc(result.overload.describe())}."
    )
    lines.append("Wrong? /undo removes it.")
    return "\n".join(lines)


def log_keyboard(result: LogResult) -> InlineKeyboardMarkup | None:
    """An "Add details" button under a new log without details."""
    if result.duplicate or result.log.details:
        return None
    return keyboard([[("➕ Add details", encode("log", "details", result.log.id))]])


def render_undo(result: UndoResult) -> str:
    log = result.log
    return (
        f"↩ Removed the log “{esc(log.action)}” from <b>{esc(log.arm_type)}</b>.\n"
        f"Last activity there is back to {esc(when(result.last_activity, result.timezone))}"
        f" ({esc(result.status)})."
    )


def when(moment: datetime, tz: str) -> str:
    """A moment in the user's zone (UTC, marked, if the stored zone is unknown: it may have
    been written outside the bot, and what was done must still be shown)."""
    if not sanity.known_zone(tz):
        return moment.astimezone(UTC).strftime("%a %d %b %H:%M UTC")
    return moment.astimezone(ZoneInfo(tz)).strftime("%a %d %b %H:%M")


def render_status(view: StatusView) -> str:
    tz = view.settings.timezone
    lines = ["<b>Status</b>"]
    for t in view.theaters:
        icon = STATUS_ICON.get(t.status, "")
        lines.append("")
        head = f"<b>{esc(t.theater.arm_type)}</b> {icon} {esc(t.status)}"
        if t.status == "blocked" and t.theater.blocked_reason:
            head += f" ({esc(t.theater.blocked_reason)})"
        lines.append(head)
        lines.append(f"Progress {esc(rules.progress_bar(t.theater.total_progress))}")
        if any(x.minutes_7d for x in view.theaters):
            logged = f"logged {num(t.minute_share)}% ({t.minutes_7d} min) in 7 days"
        else:
            logged = "nothing logged in 7 days"
        lines.append(f"Energy: planned {t.energy_share}% · {logged}")
        lines.append(f"Last activity: {esc(when(t.theater.last_activity, tz))}")
        if t.current is not None:
            lines.append(
                f"NBA: {esc(t.current.item.title)} · score {rules.format_number(t.current.score)}"
            )
        else:
            lines.append("NBA: none open")
    lines.append("")
    lines.append(f"Combined progress: {rules.format_number(view.combined_progress)}%")
    lines.append(
        f"Overload risk: <b>{rules.format_number(view.overload.risk)}%</b> ({esc(view.trend)})"
    )
    lines.append(f"{esc(view.overload.describe())}.")
    if view.focus is not None:
        lines += ["", focus_status_line(view.focus, view.now)]
    return "\n".join(lines)


def render_history(entries: Sequence[HistoryEntry], tz: str, arm: Arm | None) -> str:
    where = f" in {arm}" if arm else ""
    if not entries:
        return f"Nothing recorded{where} yet. Try <code>/log cs 25 what you did</code>."
    lines = [f"<b>Recent{esc(where)}</b>"]
    size = len(lines[0])
    for shown, e in enumerate(entries):
        stamp = esc(when(e.timestamp, tz))
        text = esc(clip(e.text, HISTORY_TEXT_MAX))
        if e.kind == "log":
            minutes = f" · {e.minutes} min" if e.minutes else ""
            entry = [f"📝 {stamp} <b>{esc(e.arm)}</b> {text}{minutes}"]
        else:
            entry = [f"💡 {stamp} <b>{esc(e.arm)}</b> {text}"]
        if e.detail:
            entry.append(f"    <i>{esc(clip(e.detail, HISTORY_TEXT_MAX))}</i>")
        size += sum(len(line) + 1 for line in entry)
        if size > HISTORY_REPLY_MAX and shown > 0:  # a few messages at most, not dozens
            lines.append(
                f"… and {len(entries) - shown} more. Ask for fewer (<code>/history cs 5</code>),"
                " or /export has everything."
            )
            break
        lines += entry
    return "\n".join(lines)


# --- focus sessions ----------------------------------------------------------------------


def hours_minutes(minutes: int) -> str:
    """``25 min``, ``1 h 05 min``; past what a log holds, ``over 24 h``."""
    longest = MINUTES_RANGE[1]  # a log holds a day at most: so does what is shown
    if minutes > longest:
        return f"over {longest // 60} h"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def render_session(session: FocusSession, at: datetime) -> str:
    """The session message as of ``at``: the item, the time worked, the time left."""
    worked = focus.working_seconds(session, at) // 60
    lines = [f"⏱ Focus in <b>{esc(session.arm_type)}</b>: "
             f"<b>{esc(focus.title_of(session))}</b>"]  # fmt: skip
    state = f"{hours_minutes(worked)} worked"
    if session.planned_minutes is not None and session.stopped_at is None:
        left = session.planned_minutes - worked
        state += f" · {hours_minutes(left)} left" if left > 0 else " · time's up"
    lines.append(state)
    if session.stopped_at is not None:
        lines.append("⏹ Ended.")
    elif focus.is_paused(session):
        lines.append("⏸ Paused.")
    return "\n".join(lines)


def focus_status_line(session: FocusSession, at: datetime) -> str:
    """/status's line for a running session."""
    return render_session(session, at).replace("\n", " · ")
