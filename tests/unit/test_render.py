"""handlers/render.py: the text and the buttons built from service results, checked on views
built here (no database): escaping, the buttons each state offers, their callback data, and
the cuts of long replies."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from telegram import InlineKeyboardMarkup

from handlers import render
from handlers.callbacks import MAX_BYTES, decode
from services import rules
from services.models import ExecutionLog, GlobalMetrics, NbaItem, Theater, UserSettings
from services.nba import Fate, ItemResult, TheaterNba
from services.status import HistoryEntry, StatusView, TheaterStatusView
from services.tracking import LogResult, UndoResult
from tests.unit.test_rules import NOW, USER, make_item

TOP = UUID("11111111-1111-4111-8111-111111111111")
LOW = UUID("22222222-2222-4222-8222-222222222222")
LOG = UUID("33333333-3333-4333-8333-333333333333")
WORD = re.compile(r"^[a-z]+(?:-[a-z]+)*$")


def item(item_id: UUID, title: str, gap: int, **changes: Any) -> NbaItem:
    """An open cs item of USER, last updated at NOW (Monday 2025-03-10 12:00 UTC)."""
    return make_item(id=item_id, title=title, gap=gap, **changes)


def theater_view(*items: NbaItem, arm: str = "cs", status: str = "active") -> TheaterNba:
    return TheaterNba(arm, status, tuple(rules.rank(items, NOW)))  # type: ignore[arg-type]


def buttons(markup: InlineKeyboardMarkup | None) -> list[list[tuple[str, str]]]:
    """The keyboard as rows of (label, callback data); every data decodes within 64 bytes, with
    a whole-word area and verb."""
    assert markup is not None
    rows = []
    for row in markup.inline_keyboard:
        rows.append([(b.text, str(b.callback_data)) for b in row])
        for b in row:
            assert len(str(b.callback_data).encode()) <= MAX_BYTES
            press = decode(str(b.callback_data))
            assert WORD.match(press.area) and WORD.match(press.verb), b.callback_data
    return rows


def log_row(duration: int | None = 25, details: str | None = None) -> ExecutionLog:
    return ExecutionLog(LOG, USER, "cs", "Read <SICP> & notes", details, duration, NOW)


# --- small helpers ---------------------------------------------------------------------------


def test_esc_escapes_markup_but_not_quotes() -> None:
    assert render.esc('<b>R&D</b> "it\'s"') == '&lt;b&gt;R&amp;D&lt;/b&gt; "it\'s"'
    assert render.esc(42) == "42"


def test_num_drops_trailing_zeros() -> None:
    assert [render.num(v) for v in (40, Decimal("12.50"), Decimal("78.75"), Decimal("3.0"))] == [
        "40",
        "12.5",
        "78.75",
        "3",
    ]


def test_clip_keeps_line_breaks_and_short_flattens_them() -> None:
    assert render.clip("ab\ncd", 5) == "ab\ncd"
    assert render.clip("ab\ncdef", 5) == "ab\nc…"
    assert render.short("ab\n  cd   ef", 40) == "ab cd ef"
    assert render.short("abcdefgh", 5) == "abcd…"
    assert len(render.short("x" * 100, 40)) == 40


def test_when_shows_the_users_zone_or_utc_marked_for_an_unknown_one() -> None:
    assert render.when(NOW, "Europe/Berlin") == "Mon 10 Mar 13:00"
    assert render.when(NOW, "Asia/Kolkata") == "Mon 10 Mar 17:30"
    assert render.when(NOW, "Mars/Olympus") == "Mon 10 Mar 12:00 UTC"


# --- split_message ---------------------------------------------------------------------------


def test_a_reply_within_the_limit_is_one_part_as_it_is() -> None:
    assert render.split_message("<b>hi</b>\nthere") == ["<b>hi</b>\nthere"]
    text = "x" * render.MESSAGE_LIMIT
    assert render.split_message(text) == [text]
    assert render.split_message("") == ["…"]  # Telegram refuses an empty message


def test_cuts_fall_at_line_breaks_where_the_lines_fit() -> None:
    text = "\n".join(["a" * 6, "b" * 6, "c" * 6])
    assert render.split_message(text, 14) == ["aaaaaa\nbbbbbb", "cccccc"]


def test_a_line_longer_than_the_limit_is_cut_inside() -> None:
    assert render.split_message("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_a_tag_open_at_a_cut_is_closed_and_opened_again() -> None:
    parts = render.split_message("<b>" + "word " * 6 + "</b>", 20)
    assert parts == ["<b>word word wor</b>", "<b>d word word w</b>", "<b>ord </b>"]


def test_an_entity_is_never_cut() -> None:
    parts = render.split_message("abc&amp;def", 5)
    assert parts == ["abc", "&amp;", "def"]


def test_parts_with_only_tags_are_dropped() -> None:
    assert render.split_message("<b></b>" * 10, 10) == ["…"]


# --- keyboards -------------------------------------------------------------------------------


def test_keyboard_keeps_rows_labels_and_data() -> None:
    markup = render.keyboard([[("One", "a:one"), ("Two", "a:two")], [("Back", "a:back")]])
    assert buttons(markup) == [[("One", "a:one"), ("Two", "a:two")], [("Back", "a:back")]]
    assert render.view_data("ibm") == "nba:view:ibm"


def test_progress_keyboard_offers_the_minute_choices_and_back() -> None:
    assert buttons(render.progress_keyboard("cs", TOP)) == [
        [(f"{m} min", f"nba:log:cs:{TOP.hex}:{m}") for m in (15, 25, 45, 60, 90)],
        [("↩ Back", "nba:view:cs")],
    ]


def test_manage_keyboard_marks_the_current_gap() -> None:
    rows = buttons(render.manage_keyboard("ibm", TOP, 2))
    assert [label for label, _ in rows[0]] == ["0", "1", "•2•", "3", "4", "5"]
    assert rows[0][5][1] == f"nba:gap:ibm:{TOP.hex}:5"
    assert rows[1] == [("🗑 Delete", f"nba:delete:ibm:{TOP.hex}"), ("↩ Back", "nba:view:ibm")]
    assert render.render_manage("<Tea>", 2) == (
        "<b>&lt;Tea&gt;</b>\nGap now 2. Set a new gap, or delete the item."
    )


# --- the NBA card ----------------------------------------------------------------------------


def test_an_empty_theater_says_how_to_add_and_offers_add() -> None:
    view = theater_view(status="idle")
    assert render.render_theater_nba(view) == (
        "<b>cs</b> 🔴 idle\n"
        "No open Next Best Action.\n"
        "Add one: <code>/add cs 3 What to do next</code>"
    )
    assert buttons(render.theater_nba_keyboard(view)) == [[("➕ Add one", "nba:add:cs")]]


def test_the_current_item_with_others_waiting() -> None:
    view = theater_view(item(TOP, "Read <SICP> & co", 4), item(LOW, "Low", 1))
    assert render.render_theater_nba(view, note="Added.") == (
        "Added.\n\n"
        "<b>cs</b> 🟢 active\n"
        "➤ <b>Read &lt;SICP&gt; &amp; co</b>\n"
        "<i>gap 4 (+40) · stale 0.0 d (+0) = 40</i>\n"
        "1 more waiting."
    )
    assert buttons(render.theater_nba_keyboard(view)) == [
        [
            ("🔒 Lock", f"nba:lock:cs:{TOP.hex}"),
            ("▶ Start", f"nba:start:cs:{TOP.hex}"),
            ("▶ Progress", f"nba:progress:cs:{TOP.hex}"),
            ("✅ Done", f"nba:done:cs:{TOP.hex}"),
        ],
        [("🔀 Choose another", "nba:choose:cs"), ("⚙ Manage", f"nba:manage:cs:{TOP.hex}")],
    ]


def test_a_locked_item_offers_unlock_and_no_other_choice() -> None:
    view = theater_view(item(LOW, "Low", 1, is_locked=True, is_current=True), item(TOP, "Top", 4))
    assert render.render_theater_nba(view).splitlines()[1] == "➤ <b>Low</b> 🔒 locked"
    assert buttons(render.theater_nba_keyboard(view)) == [
        [
            ("🔓 Unlock", f"nba:unlock:cs:{LOW.hex}"),
            ("▶ Start", f"nba:start:cs:{LOW.hex}"),
            ("▶ Progress", f"nba:progress:cs:{LOW.hex}"),
            ("✅ Done", f"nba:done:cs:{LOW.hex}"),
        ],
        [("⚙ Manage", f"nba:manage:cs:{LOW.hex}")],
    ]


def test_a_chosen_item_offers_auto() -> None:
    view = theater_view(
        item(LOW, "Low", 1, is_manually_selected=True, is_current=True), item(TOP, "Top", 4)
    )
    assert render.render_theater_nba(view).splitlines()[1] == "➤ <b>Low</b> ✋ chosen by you"
    assert buttons(render.theater_nba_keyboard(view))[1] == [
        ("🔀 Choose another", "nba:choose:cs"),
        ("🤖 Auto", "nba:auto:cs"),
        ("⚙ Manage", f"nba:manage:cs:{LOW.hex}"),
    ]


def test_nba_of_both_theaters_names_the_theater_on_every_button() -> None:
    ibm = theater_view(arm="ibm", status="warm")
    cs = theater_view(item(TOP, "Top", 4))
    text = render.render_nba([ibm, cs])
    assert text.startswith("<b>ibm</b> 🟡 warm\nNo open Next Best Action.\n")
    assert "\n\n<b>cs</b> 🟢 active\n➤ <b>Top</b>" in text
    assert buttons(render.nba_keyboard([ibm, cs])) == [
        [("➕ Add one to ibm", "nba:add:ibm")],
        [
            ("🔒 Lock cs", f"nba:lock:cs:{TOP.hex}"),
            ("▶ Start cs", f"nba:start:cs:{TOP.hex}"),
            ("▶ Progress cs", f"nba:progress:cs:{TOP.hex}"),
            ("✅ Done cs", f"nba:done:cs:{TOP.hex}"),
        ],
        [("⚙ Manage cs", f"nba:manage:cs:{TOP.hex}")],
    ]
    assert render.nba_keyboard([cs]) == render.theater_nba_keyboard(cs)


def test_candidates_list_every_item_and_offer_all_but_the_current() -> None:
    long_title = "A very long title " * 5
    view = theater_view(item(TOP, "Top", 4), item(LOW, long_title, 1))
    assert render.render_candidates(view) == (
        f"<b>cs</b>: choose the item to work on\n1. ➤ Top · score 40\n2. {long_title} · score 10"
    )
    rows = buttons(render.candidates_keyboard(view))
    assert rows == [
        [(f"2. {render.short(long_title, 40)}", f"nba:select:cs:{LOW.hex}")],
        [("↩ Back", "nba:view:cs")],
    ]
    assert len(rows[0][0][0]) == 43


# --- done, gone, logs, undo -------------------------------------------------------------------


def test_done_without_minutes_asks_for_them_with_buttons() -> None:
    done = item(TOP, "Top", 4, completed_at=NOW)
    result = ItemResult(done, theater_view(item(LOW, "Low & slow", 1)), log_row(None))
    assert render.render_done(result) == (
        "✅ Done: <b>Top</b>\n"
        "Next up in cs: <b>Low &amp; slow</b>\n"
        "How long did it take? Tap to add the minutes."
    )
    assert buttons(render.done_keyboard(result)) == [
        [(f"{m} min", f"log:minutes:{LOG.hex}:{m}") for m in (15, 25, 45, 60, 90)],
        [("View cs", "nba:view:cs")],
    ]


def test_done_with_minutes_and_nothing_left() -> None:
    result = ItemResult(item(TOP, "Top", 4, completed_at=NOW), theater_view(), log_row(20))
    assert render.render_done(result) == (
        "✅ Done: <b>Top</b>\nNo open items left in cs.\nLogged 20 min."
    )
    assert buttons(render.done_keyboard(result)) == [[("View cs", "nba:view:cs")]]


def test_gone_toasts() -> None:
    theater = theater_view()
    assert render.gone_toast(Fate("done", "Top", theater)) == "✅ “Top” is already done."
    assert render.gone_toast(Fate("deleted", None, theater)) == "That item was deleted."
    assert render.gone_toast(Fate("open", "Top", theater)) == (
        "That changed — here is the fresh view."
    )
    toast = render.gone_toast(Fate("done", "t" * 500, theater))
    assert len(toast) < 200  # a callback answer holds at most 200 characters
    assert toast == f"✅ “{'t' * 159}…” is already done."


def test_a_new_log_offers_details_and_a_repeated_one_does_not() -> None:
    overload = rules.overload(150, 40)
    fresh = LogResult(log_row(25), "active", overload)
    assert render.render_log(fresh) == (
        "📝 Logged in <b>cs</b>: Read &lt;SICP&gt; &amp; notes (25 min)\n"
        "Overload risk 6.25%: 2.5 h of your 40 h weekly capacity in the last 7 days.\n"
        "Wrong? /undo removes it."
    )
    assert buttons(render.log_keyboard(fresh)) == [[("➕ Add details", f"log:details:{LOG.hex}")]]
    again = replace(fresh, duplicate=True, log=log_row(None, details="p. <12>"))
    assert render.render_log(again).splitlines()[:2] == [
        "📝 Already logged in <b>cs</b>: Read &lt;SICP&gt; &amp; notes (no time)",
        "<i>p. &lt;12&gt;</i>",
    ]
    assert render.log_keyboard(again) is None
    assert render.log_keyboard(replace(fresh, log=log_row(25, details="d"))) is None


def test_undo_says_what_was_removed_and_where_activity_is_back_to() -> None:
    undone = UndoResult(
        log_row(), NOW - timedelta(days=2), "warm", rules.overload(0, 40), "Europe/Berlin"
    )
    assert render.render_undo(undone) == (
        "↩ Removed the log “Read &lt;SICP&gt; &amp; notes” from <b>cs</b>.\n"
        "Last activity there is back to Sat 08 Mar 13:00 (warm)."
    )


# --- /status ---------------------------------------------------------------------------------


def status_view(minutes: dict[str, int], blocked_reason: str | None = None) -> StatusView:
    settings = UserSettings(
        USER, "Europe/Berlin", None, None, time(8), None, None, 72, 80, 40, None
    )
    metrics = GlobalMetrics(USER, Decimal("32.5"), 60, 40, Decimal("6.25"), NOW, NOW)
    ibm = Theater(
        USER, "ibm", "blocked" if blocked_reason else "active", Decimal("40"), 60,
        NOW - timedelta(hours=3), None, blocked_reason,
    )  # fmt: skip
    cs = Theater(USER, "cs", "idle", Decimal("25"), 40, NOW - timedelta(days=4), None, None)
    (current,) = rules.rank([item(TOP, "Top <1>", 4, arm_type="ibm")], NOW)
    shares = rules.minute_shares(minutes)  # type: ignore[arg-type]
    theaters = (
        TheaterStatusView(ibm, ibm.status, current, 1, 60, minutes.get("ibm", 0), shares["ibm"]),
        TheaterStatusView(cs, "idle", None, 0, 40, minutes.get("cs", 0), shares["cs"]),
    )
    overload = rules.overload(sum(minutes.values()), 40)
    return StatusView(
        theaters,
        metrics,
        settings,
        rules.combined_progress(ibm.total_progress, cs.total_progress),
        overload,
        rules.risk_trend(overload.risk, Decimal("0")),
        NOW,
    )


def test_render_status_of_a_built_view() -> None:
    assert render.render_status(status_view({"ibm": 90, "cs": 60})) == (
        "<b>Status</b>\n"
        "\n"
        "<b>ibm</b> 🟢 active\n"
        "Progress ▓▓▓▓░░░░░░ 40%\n"
        "Energy: planned 60% · logged 60% (90 min) in 7 days\n"
        "Last activity: Mon 10 Mar 10:00\n"
        "NBA: Top &lt;1&gt; · score 40\n"
        "\n"
        "<b>cs</b> 🔴 idle\n"
        "Progress ▓▓▓░░░░░░░ 25%\n"
        "Energy: planned 40% · logged 40% (60 min) in 7 days\n"
        "Last activity: Thu 06 Mar 13:00\n"
        "NBA: none open\n"
        "\n"
        "Combined progress: 32.5%\n"
        "Overload risk: <b>6.25%</b> (↑ 6.25 points in 24 h)\n"
        "2.5 h of your 40 h weekly capacity in the last 7 days."
    )


def test_render_status_with_nothing_logged_and_a_blocked_theater() -> None:
    lines = render.render_status(status_view({}, blocked_reason="on <leave>")).splitlines()
    assert lines[2] == "<b>ibm</b> ⛔ blocked (on &lt;leave&gt;)"
    assert lines[4] == "Energy: planned 60% · nothing logged in 7 days"
    assert lines[10] == "Energy: planned 40% · nothing logged in 7 days"
    assert lines[-2:] == [
        "Overload risk: <b>0%</b> (unchanged in 24 h)",
        "0.0 h of your 40 h weekly capacity in the last 7 days.",
    ]


# --- /history --------------------------------------------------------------------------------


def entry(n: int, text: str = "work", detail: str | None = None) -> HistoryEntry:
    kind = "reflection" if n % 2 else "log"
    return HistoryEntry(kind, "cs", NOW - timedelta(hours=n), text, detail, 25 if n == 0 else None)


def test_history_is_newest_first_with_logs_and_reflections() -> None:
    text = render.render_history([entry(0, "a <b>", "d & e"), entry(1, "idea")], "UTC", "cs")
    assert text == (
        "<b>Recent in cs</b>\n"
        "📝 Mon 10 Mar 12:00 <b>cs</b> a &lt;b&gt; · 25 min\n"
        "    <i>d &amp; e</i>\n"
        "💡 Mon 10 Mar 11:00 <b>cs</b> idea"
    )


def test_empty_history_suggests_a_log() -> None:
    assert render.render_history([], "UTC", None) == (
        "Nothing recorded yet. Try <code>/log cs 25 what you did</code>."
    )
    assert render.render_history([], "UTC", "ibm").startswith("Nothing recorded in ibm yet.")


def test_history_clips_each_text_and_stops_at_a_few_messages() -> None:
    entries = [entry(n, "x" * 5000, "y" * 5000) for n in range(10)]
    text = render.render_history(entries, "UTC", None)
    assert "x" * render.HISTORY_TEXT_MAX not in text
    assert "x" * (render.HISTORY_TEXT_MAX - 1) + "…" in text
    assert len(text) <= render.HISTORY_REPLY_MAX + 200
    assert text.endswith(
        "… and 6 more. Ask for fewer (<code>/history cs 5</code>), or /export has everything."
    )
    parts = render.split_message(text)
    assert 1 < len(parts) <= 5 and all(len(p) <= render.MESSAGE_LIMIT for p in parts)


def test_a_session_started_long_ago_shows_no_more_than_a_log_can_hold() -> None:
    from services.models import FocusSession

    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def session(started: datetime) -> FocusSession:
        return FocusSession(
            id=UUID(int=7), arm_type="cs", item_id=None, started_at=started,
            paused_at=None, paused_seconds=0, planned_minutes=None, stopped_at=None,
            log_id=None, title="Read",
        )  # fmt: skip

    recent = render.render_session(session(at - timedelta(minutes=90)), at)
    assert "over 24 h" not in recent and "worked" in recent
    for started in (at - timedelta(days=30), datetime(1970, 1, 2, tzinfo=UTC)):
        shown = render.render_session(session(started), at)
        assert "over 24 h worked" in shown, shown
