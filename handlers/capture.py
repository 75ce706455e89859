"""Quick capture: plain text sent while no question is open is offered as an NBA, a log or a
reflection, saved with one or two taps and its text kept exactly as typed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from telegram import Update

from handlers import render
from handlers.callbacks import BadCallback, Callback
from handlers.common import Context, arm_and_rest
from handlers.conversation import NO_QUESTION, Button, Buttons, Flow, Turn, flow
from handlers.nba import GAP_BUTTONS, ask_gap_text, item_added, typed_gap
from handlers.tracking import ARM_BUTTONS, log_from, reflection_saved
from services.durations import parse_minutes
from services.models import ARMS, Arm
from services.validation import (
    ACTION_MAX,
    EVIDENCE_MAX,
    TITLE_MAX,
    check_minutes,
    clean_action,
    clean_evidence,
    clean_title,
)

#: What the text can become, by button verb.
KINDS = {"nba": "➕ NBA", "log": "📝 Log", "reflection": "💡 Reflection"}


@dataclass(frozen=True, slots=True)
class CaptureDraft:
    """The text as typed, and once tapped what it becomes and in which theater."""

    text: str
    kind: str | None = None
    arm: Arm | None = None


def _choices(text: str) -> Buttons:
    """What ``text`` can become: only what its length allows (a title and an action hold
    200 characters, evidence 2000)."""
    size = len(text.strip())
    rows: list[list[Button]] = []
    if size <= TITLE_MAX:
        rows.append([(f"➕ NBA {arm}", ("nba", arm)) for arm in ARMS])
    if size <= ACTION_MAX:
        rows.append([(f"📝 Log {arm}", ("log", arm)) for arm in ARMS])
    if size <= EVIDENCE_MAX:
        rows.append([("💡 Reflection", ("reflection",))])
    return rows


def _offer(draft: CaptureDraft) -> str:
    quoted = f"“{render.esc(render.short(draft.text, 300))}”\n"
    if len(draft.text.strip()) > ACTION_MAX:
        return (
            quoted + f"Save this as a reflection? (At {len(draft.text.strip())} characters it is"
            f" too long for an NBA title or a log, which hold {TITLE_MAX}.) Tap, or /cancel."
        )
    return quoted + "Save this as a Next Best Action, a log or a reflection? Tap one, or /cancel."


TOO_LONG = (
    "That is {size} characters: too long to keep as an NBA, a log ({limit}) or a reflection"
    " ({evidence}). Send a shorter text, or use /reflect with the gist."
)


def capture(update: Update, context: Context, text: str, now: datetime) -> Turn[Any]:
    """The question that offers ``text`` (nothing is saved until a tap); a text too long
    for anything is told so (and nothing is asked)."""
    turn = Turn(update, context, CAPTURE, None, now)
    draft = CaptureDraft(text)
    choices = _choices(text)
    if not choices:
        size = len(text.strip())
        turn.finish(TOO_LONG.format(size=size, limit=TITLE_MAX, evidence=EVIDENCE_MAX))
        return turn
    turn.ask("choose", draft, _offer(draft), choices)
    return turn


_MINUTES: Buttons = [[(f"{m}", ("minutes", m)) for m in render.MINUTE_CHOICES]]


async def _chosen(turn: Turn[CaptureDraft], press: Callback) -> None:
    """The first tap: what the text becomes (and in which theater)."""
    draft = turn.draft
    if press.verb not in KINDS:
        raise BadCallback("not a choice")
    draft = replace(draft, kind=press.verb, arm=press.arm(0) if press.args else None)
    if draft.kind == "nba":
        assert draft.arm is not None
        clean_title(draft.text)  # too long for a title: said now, not after the gap
        turn.ask("gap", draft, ask_gap_text(draft.arm), GAP_BUTTONS)
    elif draft.kind == "log":
        assert draft.arm is not None
        clean_action(draft.text)
        turn.ask(
            "minutes",
            draft,
            f"<b>{draft.arm}</b>: how long did it take? Tap, or type it: 45, 1h30, 1.5h or 1:30"
            " (up to 24 h).",
            _MINUTES,
        )
    else:
        clean_evidence(draft.text)
        turn.ask("arm", draft, "A reflection for which theater?", ARM_BUTTONS)


async def _saved(turn: Turn[CaptureDraft], value: int | Arm) -> None:
    """The second tap (or typed value): save the text."""
    draft = turn.draft
    update, context = turn.update, turn.context
    if draft.kind == "nba":
        assert draft.arm is not None and isinstance(value, int)
        done = await item_added(update, context, draft.arm, value, draft.text)
    elif draft.kind == "log":
        assert draft.arm is not None and isinstance(value, int)
        await log_from(turn, draft.arm, value, draft.text)
        return
    else:
        assert isinstance(value, str)
        done = await reflection_saved(update, context, value, draft.text)
    turn.finish(*(done or (None, None)), in_place=True)


async def _button(turn: Turn[CaptureDraft], press: Callback) -> None:
    if turn.step == "choose":
        await _chosen(turn, press)
    elif turn.step == "gap" and press.verb == "gap":
        await _saved(turn, press.number(0, 0, 5))
    elif turn.step == "minutes" and press.verb == "minutes":
        await _saved(turn, press.number(0, 1, 1440))
    elif turn.step == "arm" and press.verb == "arm":
        await _saved(turn, press.arm(0))
    else:
        raise BadCallback("not a button of this step")


async def _text(turn: Turn[CaptureDraft], text: str) -> None:
    """Typed while the offer is open: a new text to capture; typed at a second step: its
    value (a gap, a duration, a theater)."""
    if turn.step == "choose":
        offer = capture(turn.update, turn.context, text, turn.now)
        turn.next, turn.closed, turn.replies = offer.next, offer.closed, offer.replies
    elif turn.step == "gap":
        await _saved(turn, typed_gap(text))
    elif turn.step == "minutes":
        await _saved(turn, check_minutes(parse_minutes(text)))
    else:
        await _saved(turn, arm_and_rest(text)[0])


CAPTURE = flow(
    Flow(
        "capture",
        CaptureDraft,
        on_text=_text,
        on_button=_button,
        cancel_reply="OK, not saved.",
        timeout_reply=None,  # an offer nobody took: nothing to say
    )
)
NO_QUESTION.append(capture)
