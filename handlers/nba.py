"""/nba, /add and the NBA buttons (lock, unlock, progress, done, choose, auto, manage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from handlers import focus, render
from handlers.callbacks import BadCallback, Callback, decode, encode, pattern
from handlers.common import (
    Context,
    Usage,
    answer_and_edit,
    args_of,
    arm_and_rest,
    deps,
    me,
    message_key,
    now,
    perform,
    reply,
    reply_with,
)
from handlers.conversation import Buttons, Turn, answered_by, start
from handlers.dashboard import with_dashboard
from handlers.tracking import CONFIRM_BUTTONS, CONFIRM_HINT, confirm_answer, confirm_text
from handlers.usage import NBA_USAGE
from services import nba, rules, tracking
from services.db import Database, TelegramUser
from services.errors import DomainError, Implausible
from services.focus import StartFocus
from services.models import ARMS, Arm, parse_arm
from services.nba import AddItem
from services.sync import Queued
from services.validation import check_gap, clean_title, parse_int


async def nba_command(update: Update, context: Context) -> None:
    """Show the current NBA of both theaters (or one) with its buttons, in one message."""
    args = args_of(context)
    if len(args) > 1:
        raise Usage(NBA_USAGE)
    arms = [parse_arm(args[0])] if args else list(ARMS)
    views = await nba.view(deps(context).db, me(update), arms, now(context))
    markup = with_dashboard(context, render.nba_keyboard(views))
    await reply(update, render.render_nba(views), markup)


# --- /add -------------------------------------------------------------------------------


async def item_added(
    update: Update, context: Context, arm: Arm, gap: int, title: str
) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """Add the item; the reply (None: it was kept for later and the user told so)."""
    result = await perform(update, context, AddItem(arm=arm, gap=gap, title=title))
    if isinstance(result, Queued):
        return None
    note = f"➕ Added to <b>{result.item.arm_type}</b>: {render.esc(result.item.title)}"
    return render.render_theater_nba(result.theater, note), render.theater_nba_keyboard(
        result.theater
    )


@dataclass(frozen=True, slots=True)
class AddDraft:
    """An NBA being asked for: what is known so far."""

    arm: Arm | None = None
    gap: int | None = None


GAP_BUTTONS: Buttons = [[(str(g), ("gap", g)) for g in range(6)]]


def ask_gap_text(arm: Arm) -> str:
    return f"<b>{arm}</b>: how big is the gap it closes? 0 = small … 5 = large. Tap or type it."


def _add_question(draft: AddDraft) -> tuple[str, str, Buttons]:
    if draft.arm is None:
        arms: Buttons = [[(render.ARM_NAME[a], ("arm", a)) for a in ARMS]]
        return "arm", "Add a Next Best Action to which theater?", arms
    if draft.gap is None:
        return "gap", ask_gap_text(draft.arm), GAP_BUTTONS
    return "title", f"<b>{draft.arm}</b>, gap {draft.gap}: what's the action? Send its title.", ()


def typed_gap(text: str) -> int:
    return check_gap(parse_int(text.strip(), "gap"))


def _fill(draft: AddDraft, text: str) -> tuple[AddDraft, str | None]:
    """Fill the draft from typed text in the one-line form's order, from its first missing
    field ("cs 3 Read SICP" at the theater step, "3 Read SICP" at the gap step); the title,
    if the text went that far."""
    rest = text
    if draft.arm is None:
        arm, rest = arm_and_rest(text)
        draft = replace(draft, arm=arm)
    if draft.gap is None and rest.strip():
        first, _, rest = rest.strip().partition(" ")
        draft = replace(draft, gap=typed_gap(first))
    return draft, rest.strip() or None


async def _add_answer(turn: Turn[AddDraft], press: Callback | None, text: str) -> None:
    draft, title = turn.draft, None
    if press is not None:
        if turn.step == "arm" and press.verb == "arm":
            draft = replace(draft, arm=press.arm(0))
        elif turn.step == "gap" and press.verb == "gap":
            draft = replace(draft, gap=press.number(0, 0, 5))
        else:
            raise BadCallback("not a button of this step")
    elif turn.step == "title":
        title = text
    else:
        draft, title = _fill(draft, text)
    if title is None:
        step, question, buttons = _add_question(draft)
        turn.ask(step, draft, question, buttons)
        return
    assert draft.arm is not None and draft.gap is not None
    turn.closes_with_write()
    added = await item_added(turn.update, turn.context, draft.arm, draft.gap, clean_title(title))
    turn.finish(*(added or (None, None)), in_place=False)


ADD = answered_by("add", AddDraft, _add_answer)


async def add_start(update: Update, context: Context) -> None:
    """Add at once with all arguments; otherwise ask for what is missing."""
    args = args_of(context)
    draft = AddDraft()
    if args:
        draft = replace(draft, arm=parse_arm(args[0]))
    if len(args) >= 2:
        draft = replace(draft, gap=typed_gap(args[1]))
    if len(args) >= 3:
        assert draft.arm is not None and draft.gap is not None
        added = await item_added(update, context, draft.arm, draft.gap, " ".join(args[2:]))
        await reply_with(update, added)
        return
    step, question, buttons = _add_question(draft)
    await start(update, context, ADD, step, draft, question, buttons)


# --- buttons ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Press:
    """One nba:… button press: who pressed, which theater, the decoded data, and the time."""

    update: Update
    db: Database
    who: TelegramUser
    arm: Arm
    cb: Callback
    at: datetime
    context: Context

    @property
    def query(self) -> CallbackQuery:
        assert self.update.callback_query is not None
        return self.update.callback_query

    async def redraw(self, view: nba.TheaterNba, toast: str | None = None, note: str = "") -> None:
        await answer_and_edit(
            self.update, toast, render.render_theater_nba(view, note or None),
            render.theater_nba_keyboard(view),
        )  # fmt: skip

    async def fresh(self) -> nba.TheaterNba:
        return (await nba.view(self.db, self.who, [self.arm], self.at))[0]

    async def gone(self) -> None:
        """The pressed item is no longer open: say what became of it, show the theater."""
        fate = await nba.fate(self.db, self.who, self.arm, self.cb.uuid(1), self.at)
        await self.redraw(fate.theater, render.gone_toast(fate))

    async def entry(self) -> rules.RankedItem:
        """The pressed item as ranked now; ItemGone if it is no longer open."""
        view = await self.fresh()
        found = next((e for e in view.ranked if e.item.id == self.cb.uuid(1)), None)
        if found is None:
            raise nba.ItemGone()
        return found


async def _show(p: Press) -> None:
    await p.redraw(await p.fresh())


async def _choose(p: Press) -> None:
    view = await p.fresh()
    await answer_and_edit(
        p.update, None, render.render_candidates(view), render.candidates_keyboard(view)
    )


async def _auto(p: Press) -> None:
    await p.redraw(await nba.auto(p.db, p.who, p.arm, p.at), "Back to automatic ranking.")


async def _lock(p: Press) -> None:
    await p.redraw((await nba.lock(p.db, p.who, p.cb.uuid(1), p.at)).theater, "Locked.")


async def _unlock(p: Press) -> None:
    await p.redraw((await nba.unlock(p.db, p.who, p.cb.uuid(1), p.at)).theater, "Unlocked.")


async def _select(p: Press) -> None:
    await p.redraw((await nba.select(p.db, p.who, p.cb.uuid(1), p.at)).theater, "Selected.")


async def _ask_minutes(p: Press) -> None:
    entry = await p.entry()
    keys = render.progress_keyboard(p.arm, entry.item.id)
    await answer_and_edit(p.update, None, render.render_progress_prompt(entry.item.title), keys)


def progress_note(result: nba.ItemResult, minutes: int) -> str:
    return f"▶ Logged {minutes} min on “{render.esc(result.item.title)}”."


async def _progress(p: Press) -> None:
    minutes, item_id, key = p.cb.number(2, 1, 1440), p.cb.uuid(1), message_key(p.update)
    try:
        result = await nba.progress(p.db, p.who, item_id, minutes, p.at, dedupe_key=key)
    except Implausible as exc:
        raise Unconfirmed(WorkDraft("progress", p.arm, minutes, item_id, key), exc) from exc
    await p.redraw(
        result.theater,
        "Already recorded." if result.duplicate else "Progress logged.",
        progress_note(result, minutes),
    )


async def _done(p: Press) -> None:
    result = await nba.done(p.db, p.who, p.cb.uuid(1), p.at, dedupe_key=message_key(p.update))
    await answer_and_edit(
        p.update, "Done!", render.render_done(result), render.done_keyboard(result)
    )


async def _start_focus(p: Press) -> None:
    """⏱ Start: a focus session on the pressed item (its message is a new one)."""
    await focus.begin(p.update, p.context, StartFocus(arm=p.arm, item_id=p.cb.uuid(1)))


async def _manage(p: Press) -> None:
    entry = await p.entry()
    await answer_and_edit(
        p.update, None, render.render_manage(entry.item.title, entry.item.gap),
        render.manage_keyboard(p.arm, entry.item.id, entry.item.gap),
    )  # fmt: skip


async def _set_gap(p: Press) -> None:
    result = await nba.edit_item(p.db, p.who, p.cb.uuid(1), p.at, gap=p.cb.number(2, 0, 5))
    await p.redraw(result.theater, f"Gap set to {result.item.gap}.")


async def _ask_delete(p: Press) -> None:
    entry = await p.entry()
    buttons = [[("🗑 Yes, delete", encode("nba", "confirm-delete", p.arm, entry.item.id)),
                ("Keep it", render.view_data(p.arm))]]  # fmt: skip
    await answer_and_edit(
        p.update, None, f"Delete “{render.esc(entry.item.title)}”? This can't be undone.",
        render.keyboard(buttons),
    )  # fmt: skip


async def _delete(p: Press) -> None:
    view = await nba.delete_item(p.db, p.who, p.cb.uuid(1), p.at)
    await p.redraw(view, "Deleted.", "🗑 Deleted.")


#: The NBA card's buttons, ``nba:<verb>:<arm>[:<item>[:<value>]]``, by verb (``nba:add`` starts
#: /add: :func:`add_start_button`).
VERBS: dict[str, Callable[[Press], Awaitable[None]]] = {
    "view": _show,
    "choose": _choose,
    "auto": _auto,
    "lock": _lock,
    "unlock": _unlock,
    "select": _select,
    "progress": _ask_minutes,
    "log": _progress,
    "done": _done,
    "manage": _manage,
    "gap": _set_gap,
    "delete": _ask_delete,
    "confirm-delete": _delete,
    "start": _start_focus,
}


async def nba_button(update: Update, context: Context) -> None:
    """Every nba:… button: act on the item, then redraw this theater in place. Data that
    does not decode (BadCallback) is answered by the error handler."""
    query = update.callback_query
    assert query is not None
    cb = decode(query.data)
    action = VERBS.get(cb.verb)
    if action is None:
        raise BadCallback(f"unknown verb {cb.verb!r}")
    press = Press(update, deps(context).db, me(update), cb.arm(0), cb, now(context), context)
    try:
        await action(press)
    except Unconfirmed as asked:
        await confirm_first(update, context, asked)
    except nba.ItemGone:
        await press.gone()
    except DomainError as exc:
        await query.answer(exc.user_message[:200], show_alert=True)


async def done_minutes(update: Update, context: Context) -> None:
    """Attach minutes to the log a Done just wrote (log:minutes:<log>:<minutes>)."""
    query = update.callback_query
    assert query is not None
    cb = decode(query.data)
    log_id, minutes = cb.uuid(0), cb.number(1, 1, 1440)
    try:
        result = await tracking.set_log_minutes(
            deps(context).db, me(update), log_id, minutes, now(context)
        )
    except Implausible as exc:
        draft = WorkDraft("minutes", parse_arm(exc.arm), minutes, log_id)
        await confirm_first(update, context, Unconfirmed(draft, exc))
        return
    except DomainError:
        await query.answer("That log is gone.")
        return
    await answer_and_edit(update, f"Added {result.log.duration} min.", *_minutes_added(result))


def _minutes_added(result: tracking.LogResult) -> tuple[str, InlineKeyboardMarkup | None]:
    arm = result.log.arm_type
    text = (
        f"✅ {render.esc(result.log.action)} · {result.log.duration} min logged.\n"
        f"Overload risk {render.num(result.overload.risk)}%."
    )
    return text, render.keyboard([[(f"View {arm}", render.view_data(arm))]])


# --- work that would make a day over 16 h: asked first --------------------------------------


@dataclass(frozen=True, slots=True)
class WorkDraft:
    """Work a button asked for that would take a theater's day over 16 h, saved only after
    a yes: progress on an item, minutes for a log, or a plain log in ``arm`` (a nudge's),
    and the dedupe key of the press that asked (so a retry of either never logs twice)."""

    kind: Literal["progress", "minutes", "log"]
    arm: Arm
    minutes: int
    #: the item (progress) or the log (minutes); None for a plain log
    target: UUID | None = None
    key: str | None = None
    #: what a plain log says was done
    action: str | None = None


class Unconfirmed(Exception):
    """A button's work was refused as an implausibly long day: the question to ask."""

    def __init__(self, draft: WorkDraft, error: Implausible) -> None:
        super().__init__(error.user_message)
        self.draft = draft
        self.error = error


async def confirm_first(update: Update, context: Context, asked: Unconfirmed) -> None:
    """Ask whether to save the work anyway (in a new message: the pressed one stays)."""
    text = confirm_text(asked.error)
    await start(update, context, WORK, "confirm", asked.draft, text, CONFIRM_BUTTONS)


async def _work_answer(turn: Turn[WorkDraft], press: Callback | None, text: str) -> None:
    yes = confirm_answer(press, text)
    if yes is None:
        turn.say(CONFIRM_HINT)
        return
    if not yes:
        turn.finish("OK, not saved.", toast="Not saved.")
        return
    draft = turn.draft
    if draft.kind == "progress":
        assert draft.target is not None
        result = await nba.progress(
            turn.db, turn.who, draft.target, draft.minutes, turn.now, dedupe_key=draft.key,
            confirmed=True,
        )  # fmt: skip
        note = progress_note(result, draft.minutes)
        turn.finish(
            render.render_theater_nba(result.theater, note),
            render.theater_nba_keyboard(result.theater),
            toast="Already recorded." if result.duplicate else "Progress logged.",
        )
    elif draft.kind == "minutes":
        assert draft.target is not None
        added = await tracking.set_log_minutes(
            turn.db, turn.who, draft.target, draft.minutes, turn.now, confirmed=True
        )
        turn.finish(*_minutes_added(added), toast=f"Added {draft.minutes} min.")
    else:
        assert draft.action is not None
        logged = await tracking.log_time(
            turn.db, turn.who, draft.arm, draft.minutes, draft.action, turn.now,
            dedupe_key=draft.key, confirmed=True,
        )  # fmt: skip
        turn.finish(
            render.render_log(logged),
            render.log_keyboard(logged),
            toast="Already recorded." if logged.duplicate else "Logged.",
        )


WORK = answered_by("work-confirm", WorkDraft, _work_answer)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handler(CommandHandler("nba", nba_command))
    app.add_handler(CommandHandler("add", add_start))
    app.add_handler(CallbackQueryHandler(add_start_button, pattern=pattern("nba", "add")))
    app.add_handler(CallbackQueryHandler(nba_button, pattern=pattern("nba")))
    app.add_handler(CallbackQueryHandler(done_minutes, pattern=pattern("log", "minutes")))


async def add_start_button(update: Update, context: Context) -> None:
    """The "Add one" button under an empty theater: start /add with that theater, asking in a
    new message (the /nba view it sits on stays)."""
    query = update.callback_query
    assert query is not None
    draft = AddDraft(arm=decode(query.data).arm())
    step, question, buttons = _add_question(draft)
    await start(update, context, ADD, step, draft, question, buttons)
