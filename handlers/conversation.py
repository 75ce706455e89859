"""Guided forms: one question open per chat, kept in PostgreSQL, answered by any instance.

A *flow* (``/log`` without its arguments, onboarding, /settings' typed values, quick
capture …) asks one question at a time. The open question (flow, step, typed draft, the token
its buttons carry, expiry) is a row of ``open_questions`` (services/questions.py):

* **Answering.** A typed text (not a command) or a press of a question's button (callback
  data ``q:<token>:<verb>[:<arg>…]``) opens the update's unit of work with the question read
  in its opening (no extra round trip) and locked; the flow's step runs inside that same
  transaction (the services it calls join it), then the question moves on (replaced, new
  token) or closes (deleted), and the transaction commits. A step whose write saves the
  form (:meth:`Turn.closes_with_write`) sends the close and the COMMIT with that write, in
  its round trip; the close checks the question is still the one answered, and a write
  that then asks for more stores the next question after the commit. Only then are the
  replies sent.
  A step that fails on bad input changes nothing and says what was wrong (the one-line
  form's message, then "Try again, or /cancel."); the question stays.
* **One at a time.** Asking replaces the chat's question. Any command abandons it: the first
  unit of work of the command deletes it in its opening (services/db.py ``UpdateScope``), or
  the bot does when the command is done. /cancel deletes it and says what it closed.
  A button of a question that is no longer open answers "This question is closed" and
  changes nothing.
* **Expiry.** Ten minutes without an answer close a question; the instance that asked arms a
  job, every instance re-arms the open ones at start-up, and the one whose delete claims the
  row tells the person (once, whichever instance).
* **Outages.** With the database unreachable, an instance answers from the copy of the
  questions it asked itself (``_Memory``); the write goes to the outbox like any other and
  the question's new state is written once the database is back.

One module of some 750 lines on purpose: asking, answering, abandoning and expiring share the
flows' registry and the outage copy, and are read together when one of them changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from handlers import render
from handlers.callbacks import (
    QUESTION,
    STALE,
    BadCallback,
    Callback,
    decode_question,
    pattern,
    question,
)
from handlers.common import Context, answer_and_edit, deps, reply
from handlers.deps import Deps, get_deps
from services import questions
from services.db import (
    UPDATE_SCOPE,
    Database,
    DatabaseBusy,
    DatabaseUnavailable,
    QuestionChanged,
    QuestionKey,
    TelegramUser,
    UnitOfWork,
    UpdateScope,
)
from services.errors import DomainError, NotFound, NotLinked
from services.questions import Question, Stored
from services.repos.open_questions import from_opening
from services.sanity import UnreadableData

logger = logging.getLogger(__name__)

D = TypeVar("D")

CANCELLED = "Cancelled. Nothing was saved. /help lists what I can do."
NOTHING_TO_CANCEL = "Nothing to cancel: I'm not waiting for an answer. /help lists what I do."
TIMED_OUT = "⌛ That question timed out after 10 minutes; nothing was saved."
CLOSED = "This question is closed."
TRY_AGAIN = "Try again, or /cancel."

#: One button of a question: its label, and its verb (a whole word) and arguments (the token
#: is added: handlers/callbacks.py, ``question``).
Button = tuple[str, tuple[str, *tuple[str | int | UUID, ...]]]
Buttons = Sequence[Sequence[Button]]


@dataclass(frozen=True, slots=True)
class Flow(Generic[D]):
    """A guided form: its draft type and how it takes typed answers and button presses.

    ``on_text(turn, text)`` / ``on_button(turn, press)`` run inside the answer's transaction;
    they call :meth:`Turn.ask` (next step), :meth:`Turn.finish` (done) or only
    :meth:`Turn.say` (the question stays as it was)."""

    name: str
    draft: type[D]
    on_text: Callable[[Turn[D], str], Awaitable[None]] | None = None
    on_button: Callable[[Turn[D], Callback], Awaitable[None]] | None = None
    #: what /cancel says when it closes this flow's question
    cancel_reply: str = CANCELLED
    #: what the person is told when the question expires (None: nothing)
    timeout_reply: str | None = TIMED_OUT
    #: answered for a person who is not linked (/link): in a privileged transaction
    unlinked: bool = False
    #: what a typed text is when the question can't take text (None: "use the buttons")
    typed_hint: str | None = None


FLOWS: dict[str, Flow[Any]] = {}

#: What starts a question from plain text while none is open (quick capture): the turn that
#: asks it (stored in the same transaction as the read that found nothing open).
NO_QUESTION: list[Callable[[Update, Context, str, datetime], Turn[Any] | None]] = []


def flow(spec: Flow[D]) -> Flow[D]:
    """Register a flow (once, by name)."""
    if spec.name in FLOWS:
        raise ValueError(f"flow {spec.name!r} is registered twice")
    FLOWS[spec.name] = spec
    return spec


def answered_by(
    name: str,
    draft: type[D],
    answer: Callable[[Turn[D], Callback | None, str], Awaitable[None]],
    **options: Any,
) -> Flow[D]:
    """Register a flow whose steps take a tap or typed text in one function:
    ``answer(turn, press, "")`` for a tap, ``answer(turn, None, text)`` for text."""

    async def on_text(turn: Turn[D], text: str) -> None:
        await answer(turn, None, text)

    async def on_button(turn: Turn[D], press: Callback) -> None:
        await answer(turn, press, "")

    return flow(Flow(name, draft, on_text=on_text, on_button=on_button, **options))


#: Told where a reply went once it is sent: (chat id, message id).
Sent = Callable[[int, int], Awaitable[None]]


@dataclass(slots=True)
class _Reply:
    text: str
    markup: InlineKeyboardMarkup | None
    in_place: bool
    then: Sent | None = None


class Turn(Generic[D]):
    """One answer to a question (or the first question of a flow), and what it leads to."""

    def __init__(
        self,
        update: Update,
        context: Context,
        spec: Flow[D],
        question: Question[D] | None,
        now: datetime,
    ) -> None:
        self.update = update
        self.context = context
        self.flow = spec
        self.question = question
        self.now = now
        #: the question after this turn (None with ``closed``: none)
        self.next: Question[D] | None = None
        self.closed = False
        self.toast: str | None = None
        #: the toast is an alert the person must dismiss (a problem with what they tapped)
        self.alert = False
        #: the typed text is not an answer to this question (see :meth:`not_an_answer`)
        self.passed = False
        self.replies: list[_Reply] = []
        #: the answer's unit of work while the step runs in it, if the question can close
        #: with the step's write (None: no unit of work, an outage; or a copy newer than the
        #: stored question)
        self.uow: UnitOfWork | None = None
        #: the question to store again once the transaction is done (it was closed with the
        #: step's write, and the step then asked for more or kept the question)
        self.restore: Question[Any] | None = None

    @property
    def step(self) -> str:
        assert self.question is not None
        return self.question.step

    @property
    def draft(self) -> D:
        assert self.question is not None
        return self.question.draft

    @property
    def db(self) -> Database:
        return deps(self.context).db

    @property
    def who(self) -> TelegramUser:
        assert self.update.effective_user is not None
        return TelegramUser(self.update.effective_user.id)

    def ask(
        self,
        step: str,
        draft: Any,
        text: str,
        buttons: Buttons = (),
        *,
        in_place: bool = True,
        flow: Flow[Any] | None = None,
    ) -> None:
        """Ask the next question: ``text`` with ``buttons`` (for a pressed button, in place of
        its message unless ``in_place=False``); ``flow``: another flow takes over from here
        (its ``draft``)."""
        asked = questions.ask((flow or self.flow).name, step, draft, self.now)
        self.next, self.closed = asked, False
        rows = [
            [(label, question(asked.token, data[0], *data[1:])) for label, data in row]
            for row in buttons
        ]
        self.replies.append(_Reply(text, render.keyboard(rows) if rows else None, in_place))

    def finish(
        self,
        text: str | None = None,
        markup: InlineKeyboardMarkup | None = None,
        *,
        in_place: bool = True,
        toast: str | None = None,
        then: Sent | None = None,
    ) -> None:
        """Close the question, with a last message (for a pressed button, in place of its
        message unless ``in_place=False``); ``then`` is told where that message went."""
        self.next, self.closed = None, True
        if toast is not None:
            self.toast = toast
        if text is not None:
            self.replies.append(_Reply(text, markup, in_place, then))

    def closes_with_write(self) -> None:
        """The step's next write (the last statement of the service it calls) saves what the
        question gathered: the question's close and the COMMIT go with that statement, in the
        same round trip, before its result is known. If the service then writes nothing
        (it needs a confirmation, say) and the step asks again or keeps the question, the
        question is stored again after the commit (one more round trip, that time only); if
        the stored question is not this one (another instance moved it on), everything rolls
        back and the answer runs again on the stored question."""
        if self.uow is not None and self.question is not None:
            questions.close_with_write(self.uow, key_of(self.update), self.question)

    def say(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """A message in a new bubble; the question stays as it is unless ask/finish say so."""
        self.replies.append(_Reply(text, markup, False))

    def not_an_answer(self) -> None:
        """The typed text is plainly not meant for this question (a menu that takes only
        "setting value" lines got a sentence): the question closes and the text is offered
        for quick capture instead."""
        self.next, self.closed, self.passed = None, True, True

    def problem(self, error: DomainError) -> None:
        """Bad input: say what was wrong; the question stays open for another try."""
        message = render.esc(error.user_message)
        if self.update.callback_query is not None:
            self.toast = error.user_message[:200]
            self.alert = True
        else:
            self.say(f"{message}\n{TRY_AGAIN}")


# --- what the database holds, and this instance's copy for outages ---------------------------


@dataclass(slots=True)
class _Memory:
    """The questions this instance asked or moved on, for answering during an outage; an
    entry written while the database was unreachable is ``dirty`` and wins over the stored
    question once the database answers again (it is newer)."""

    entries: dict[QuestionKey, tuple[Question[Any] | None, bool]] = field(default_factory=dict)

    def remember(self, key: QuestionKey, question: Question[Any] | None, dirty: bool) -> None:
        if question is None and not dirty:
            self.entries.pop(key, None)
        else:
            self.entries[key] = (question, dirty)

    def dirty(self, key: QuestionKey) -> tuple[Question[Any] | None, bool]:
        question, dirty = self.entries.get(key, (None, False))
        return question, dirty

    def found(self, key: QuestionKey) -> tuple[Flow[Any], Question[Any]] | None:
        """The remembered question with its flow (None: none open)."""
        question = self.entries.get(key, (None, False))[0]
        return (FLOWS[question.flow], question) if question is not None else None


_MEMORY_KEY = "aelpher.questions"


def _memory_of(bot_data: dict[Any, Any]) -> _Memory:
    memory = bot_data.get(_MEMORY_KEY)
    if memory is None:
        memory = bot_data[_MEMORY_KEY] = _Memory()
    assert isinstance(memory, _Memory)
    return memory


def _memory(context: Context) -> _Memory:
    return _memory_of(context.bot_data)


def key_of(update: Update) -> QuestionKey:
    assert update.effective_chat is not None and update.effective_user is not None
    return QuestionKey(update.effective_chat.id, update.effective_user.id)


def _typed(stored: Stored | None) -> tuple[Flow[Any], Question[Any]] | None:
    if stored is None:
        return None
    spec = FLOWS.get(stored.flow)
    if spec is None:
        logger.warning("open question of unknown flow %s", stored.flow)
        return None
    question = questions.typed(stored, spec.draft)
    return None if question is None else (spec, question)


# --- running a turn -----------------------------------------------------------------------


async def _store(uow: UnitOfWork, key: QuestionKey, turn: Turn[Any]) -> None:
    """Move the question on or close it, and commit (in one round trip where allowed). If
    the step's write closed it and committed already, what the turn leads to other than the
    close is stored after the transaction (``turn.restore``)."""
    if uow.closed_with_write:
        if turn.next is not None:
            turn.restore = turn.next
        elif not turn.closed:
            turn.restore = turn.question  # the question stays as it was
        return
    if turn.next is not None:
        await questions.save(uow, key, turn.next, turn.now, commit=True)
    elif turn.closed:
        await questions.close(uow, key, commit=True)
    await uow.commit()


async def _send(turn: Turn[Any]) -> None:
    """Send what the turn says (after its transaction committed)."""
    update = turn.update
    scope = UPDATE_SCOPE.get()
    if scope is not None and turn.next is not None:
        scope.close_pending = False  # the new question replaced the one before
        scope.asked = True
    query = update.callback_query
    replies = list(turn.replies)
    if query is not None:
        first = replies[0] if replies and replies[0].in_place else None
        if first is not None:
            replies.pop(0)
            await answer_and_edit(update, turn.toast, first.text, first.markup)
            message = query.message
            if first.then is not None and message is not None:
                await first.then(message.chat.id, message.message_id)
        else:
            await query.answer(turn.toast, show_alert=turn.alert)
    for r in replies:
        sent = await reply(update, r.text, r.markup)
        if r.then is not None and sent is not None:
            await r.then(sent.chat_id, sent.message_id)
    if turn.next is not None:
        _arm_expiry(turn.context, key_of(update), turn.next)


async def _run(
    turn: Turn[Any],
    answer: Callable[[Turn[Any]], Awaitable[None]],
    uow: UnitOfWork | None,
    *,
    stored: bool = True,
) -> None:
    """Run the step; with ``uow``, inside it (the services join it). ``stored``: the turn's
    question is the stored one, or this instance's copy checked against it (not a copy
    newer than what is stored, which its close could not find)."""
    try:
        if uow is None:
            await answer(turn)
        else:
            turn.uow = uow if stored else None
            try:
                with turn.db.joined(uow):
                    await answer(turn)
            finally:
                turn.uow = None
    except DomainError as exc:
        if isinstance(exc, NotLinked):
            raise
        turn.next, turn.closed, turn.replies = None, False, []
        if isinstance(exc, NotFound | UnreadableData):  # another try can't help: close it
            turn.finish(render.esc(exc.user_message), in_place=False, toast="Not saved.")
            raise _Refused(close=True) from exc
        turn.problem(exc)
        raise _Refused() from exc


def _refused(uow: UnitOfWork, turn: Turn[Any], refused: _Refused) -> bool:
    """Roll back what a refused step wrote; whether the question is to be closed after."""
    uow.discard()  # nothing the step wrote stays
    if not uow.closed_with_write:
        return refused.close
    # its close committed with a write that wrote nothing (the step refused after it)
    if not refused.close:
        turn.restore = turn.question
    return False


class _Refused(Exception):
    """The step refused its input: roll back what it wrote, say why, and keep the question
    (``close``: close it, in a statement of its own after the rollback)."""

    def __init__(self, *, close: bool = False) -> None:
        super().__init__()
        self.close = close


async def _answer(
    update: Update,
    context: Context,
    answer: Callable[[Turn[Any]], Awaitable[None]],
    *,
    fresh: Callable[[datetime], Turn[Any] | None],
    token: str | None = None,
) -> None:
    """Read the open question with the update's unit of work, run ``answer`` on it, store the
    outcome and commit, then reply. With no question open, ``fresh`` may start one (in the
    same transaction); if it doesn't, a button is told its question is closed.
    ``token``: the pressed button's (it must match the open question's)."""
    d = deps(context)
    key = key_of(update)
    memory = _memory(context)
    now = d.clock()
    turn: Turn[Any] | None = None
    dirty = closing = False
    # This instance's clean copy of the question (it asked it, or moved it on) lets the step
    # run before the question is read: the opening that reads it then rides with the step's
    # first statement, and the copy is checked against it before anything commits.
    copy = None if memory.dirty(key)[1] else memory.found(key)
    if copy is not None and (copy[0].unlinked or copy[1].expired(now)):
        copy = None
    try:
        while True:
            try:
                async with d.db.user_uow(TelegramUser(key.telegram_user_id), question=key) as uow:
                    turn = _turn_for(update, context, copy, now, token)
                    if turn is not None:
                        turn, closing = await _run_on_copy(uow, turn, answer, copy, fresh, now)
                        break
                    await uow.begin()
                    dirty = memory.dirty(key)[1]
                    stored = from_opening(uow.question)
                    found = memory.found(key) if dirty else _typed(stored)
                    turn = _turn_for(update, context, found, now, token)
                    gone = (dirty or stored is not None) and (
                        found is None or found[1].expired(now)
                    )
                    if turn is None and token is None:
                        turn = fresh(now)  # nothing open (or it just expired): quick capture
                    if turn is None:
                        if gone:  # expired or unreadable, or the dirty copy closed it
                            await questions.close(uow, key, commit=True)
                    elif turn.question is None:
                        await _store(uow, key, turn)
                    else:
                        try:
                            await _run(turn, answer, uow, stored=not dirty)
                        except _Refused as refused:
                            closing = _refused(uow, turn, refused)
                        else:
                            if turn.passed:  # not an answer: quick capture, same transaction
                                turn = fresh(now) or turn
                            await _store(uow, key, turn)
                break
            except _StaleCopy:  # rolled back: the stored question decides
                copy, turn, closing = None, None, False
        if dirty:
            memory.remember(key, None, False)
        if closing:
            await _abandon(context, key)
        if turn is not None and turn.restore is not None:
            await _restore(context, key, turn)
    except NotLinked:
        if turn is None and await _answer_unlinked(update, context, answer, token, now):
            return
        if turn is not None and turn.question is not None:
            await _abandon(context, key)  # the person is told to /start; no answer pends
        raise
    except DatabaseBusy:
        raise
    except DatabaseUnavailable:
        turn = _turn_for(update, context, memory.found(key), now, token)
        if turn is None:
            raise
        try:
            await _run(turn, answer, None)
        except _Refused as refused:
            if refused.close:
                memory.remember(key, None, dirty=True)
            await _send(turn)
            return
        memory.remember(key, turn.next, dirty=True)
        await _send(turn)
        return
    except Exception:
        # A fault in a step (a bug): the question must not take some later text instead.
        if turn is not None and turn.question is not None:
            await _abandon(context, key)
        raise
    if turn is None:
        assert update.callback_query is not None
        await update.callback_query.answer(CLOSED)
        return
    if turn.next is not None or turn.closed:
        memory.remember(key, turn.next, dirty=False)
    await _send(turn)


class _StaleCopy(Exception):
    """The stored question is not this instance's copy (another instance moved it on, or
    it was closed): what the step did on the copy rolls back."""


async def _run_on_copy(
    uow: UnitOfWork,
    turn: Turn[Any],
    answer: Callable[[Turn[Any]], Awaitable[None]],
    copy: tuple[Flow[Any], Question[Any]] | None,
    fresh: Callable[[datetime], Turn[Any] | None],
    now: datetime,
) -> tuple[Turn[Any], bool]:
    """Run the step on this instance's copy of the question inside ``uow``, whose opening
    (reading the stored question) goes with the step's first statement; then check the
    copy against the stored question (_StaleCopy, rolled back, if they differ) and store the
    outcome. The turn, and whether the question is to be closed after a refusal."""
    refused: _Refused | None = None
    try:
        await _run(turn, answer, uow)
    except _Refused as exc:
        refused = exc
    except QuestionChanged as exc:  # checked with the write: nothing committed
        raise _StaleCopy() from exc
    if refused is not None and uow.closed_with_write:
        return turn, _refused(uow, turn, refused)  # the close checked the copy, and committed
    if not uow.closed_with_write:
        await uow.begin()  # sent with the step's first statement already, if it had one
        if uow.question is None or _typed(from_opening(uow.question)) != copy:
            uow.discard()
            raise _StaleCopy()
    if refused is not None:
        return turn, _refused(uow, turn, refused)
    if turn.passed:  # not an answer: quick capture, in the same transaction
        turn = fresh(now) or turn
    await _store(uow, key_of(turn.update), turn)
    return turn, False


async def _restore(context: Context, key: QuestionKey, turn: Turn[Any]) -> None:
    """Store the question the turn leads to again, after its close committed with the
    step's write (with the database gone meanwhile: this instance's copy, written later)."""
    assert turn.restore is not None
    try:
        await questions.restore(deps(context).db, key, turn.restore, turn.now)
    except DatabaseUnavailable:  # busy too: the outcome is committed, the copy goes later
        _memory(context).remember(key, turn.restore, dirty=True)


async def _abandon(context: Context, key: QuestionKey) -> None:
    """Close the question after its answer failed (best effort: the failure is reported)."""
    try:
        await _close(context.bot_data, deps(context).db, key)
    except Exception:
        logger.exception("could not close the question after its answer failed")


def _turn_for(
    update: Update,
    context: Context,
    found: tuple[Flow[Any], Question[Any]] | None,
    now: datetime,
    token: str | None,
) -> Turn[Any] | None:
    """The turn answering the open question, or None if none is open (or it expired, or
    the pressed button is of another question)."""
    if found is None:
        return None
    spec, question = found
    if question.expired(now) or (token is not None and token != question.token):
        return None
    return Turn(update, context, spec, question, now)


async def _answer_unlinked(
    update: Update,
    context: Context,
    answer: Callable[[Turn[Any]], Awaitable[None]],
    token: str | None,
    now: datetime,
) -> bool:
    """For a person who is not linked: answer a question of a flow that serves them (/link).
    False if there is none (they are told to /start or /link).

    Such a step talks to Supabase Auth (seconds, at worst), so no transaction is held while
    it runs: the question is read on its own, and its next state written after the step."""
    d = deps(context)
    key = key_of(update)
    found = _typed(await questions.peek(d.db, key))
    if found is None or not found[0].unlinked:
        return False
    if found[1].expired(now):
        await questions.close_now(d.db, key)
        return False
    turn = _turn_for(update, context, found, now, token)
    if turn is None:
        if update.callback_query is None:
            return False
        await update.callback_query.answer(CLOSED)
        return True
    try:
        await _run(turn, answer, None)
    except _Refused as refused:
        if refused.close:
            await questions.close_now(d.db, key)
        await _send(turn)
        return True
    if turn.next is not None:
        await questions.store_now(d.db, key, turn.next, now)
    elif turn.closed:
        await questions.close_now(d.db, key)
    await _send(turn)
    return True


async def start(
    update: Update,
    context: Context,
    spec: Flow[D],
    step: str,
    draft: D,
    text: str,
    buttons: Buttons = (),
    *,
    in_place: bool = False,
) -> None:
    """Ask a flow's first question (from a command or a button that starts the flow); it
    replaces the chat's open question."""
    turn = Turn(update, context, spec, None, deps(context).clock())
    turn.ask(step, draft, text, buttons, in_place=in_place)
    await _open(turn)


async def _open(turn: Turn[Any]) -> None:
    d = deps(turn.context)
    key = key_of(turn.update)
    assert turn.next is not None
    try:
        await questions.store_now(d.db, key, turn.next, turn.now)
        _memory(turn.context).remember(key, turn.next, dirty=False)
    except DatabaseBusy:
        raise
    except DatabaseUnavailable:
        _memory(turn.context).remember(key, turn.next, dirty=True)
    await _send(turn)


# --- the handlers ---------------------------------------------------------------------------


async def on_text(update: Update, context: Context) -> None:
    """A typed text that is not a command: the open question's answer, or quick capture."""
    message = update.effective_message
    assert message is not None
    text = message.text or ""

    async def answer(turn: Turn[Any]) -> None:
        if turn.flow.on_text is None:
            turn.say(turn.flow.typed_hint or "Please use the buttons above, or /cancel.")
            return
        await turn.flow.on_text(turn, text)

    def capture(now: datetime) -> Turn[Any] | None:
        for fresh in NO_QUESTION:
            return fresh(update, context, text, now)
        return None

    await _answer(update, context, answer, fresh=capture)


async def on_button(update: Update, context: Context) -> None:
    """A press of a question's button: answered if the question is still open."""
    query = update.callback_query
    assert query is not None
    try:
        token, press = decode_question(query.data)
    except BadCallback:
        await query.answer(STALE)
        return

    async def answer(turn: Turn[Any]) -> None:
        if turn.flow.on_button is None:
            raise BadCallback("no buttons")
        try:
            await turn.flow.on_button(turn, press)
        except BadCallback:
            turn.toast = STALE

    await _answer(update, context, answer, fresh=lambda now: None, token=token)


async def one_question_at_a_time(update: Update, context: Context) -> None:
    """Before any command is handled (group -1, after the gate): the open question is
    abandoned (with the command's first unit of work, see ``update_scope``). /cancel ends
    here, saying what it closed, or that nothing was open."""
    message = update.effective_message
    if message is None or update.effective_user is None or update.effective_chat is None:
        return
    scope = UPDATE_SCOPE.get()
    command = (message.text or "").split(maxsplit=1)[0].split("@")[0].lower()
    if command != "/cancel":
        if scope is not None:
            scope.close_pending = scope.command = True
        return
    if scope is not None:
        scope.close_pending = False
    key = key_of(update)
    remembered = _memory(context).found(key)
    try:
        closed = await _close(context.bot_data, deps(context).db, key)
    except DatabaseBusy:
        raise
    except DatabaseUnavailable:
        closed = remembered[0].name if remembered else None
    if closed is None:
        await reply(update, NOTHING_TO_CANCEL)
    else:
        spec = FLOWS.get(closed)
        await reply(update, spec.cancel_reply if spec else CANCELLED)
    raise ApplicationHandlerStop


@asynccontextmanager
async def update_scope(
    app: Application[Any, Any, Any, Any, Any, Any], update: object
) -> AsyncIterator[None]:
    """Around each update: what the database needs to know of it (a command closes the open
    question), and the close done here if no unit of work of the command did it."""
    if not (
        isinstance(update, Update)
        and update.effective_user is not None
        and update.effective_chat is not None
    ):
        yield
        return
    scope = UpdateScope(key_of(update))
    scope.close_now = lambda: _close_after(app, scope.key)
    token = UPDATE_SCOPE.set(scope)
    try:
        yield
    finally:
        UPDATE_SCOPE.reset(token)
        if scope.close_pending:
            await _close_after(app, scope.key)
        elif scope.command and not scope.asked:  # closed by the command's unit of work
            _memory_of(app.bot_data).remember(scope.key, None, dirty=False)


async def _close(bot_data: dict[Any, Any], db: Database, key: QuestionKey) -> str | None:
    """Close the chat's open question in a statement of its own, and this instance's copy;
    the flow it was of (a question moved on here during an outage names its own). With the
    database unreachable the copy is marked closed, to be written once it is back."""
    memory = _memory_of(bot_data)
    remembered, dirty = memory.dirty(key)
    try:
        closed = await questions.close_now(db, key)
    except DatabaseBusy:
        raise
    except DatabaseUnavailable:
        memory.remember(key, None, dirty=True)
        raise
    memory.remember(key, None, dirty=False)
    return remembered.flow if dirty and remembered is not None else closed


async def _close_after(app: Application[Any, Any, Any, Any, Any, Any], key: QuestionKey) -> None:
    try:
        await _close(app.bot_data, deps_of(app).db, key)
    except DatabaseUnavailable:  # busy too: close it once the next answer gets through
        _memory_of(app.bot_data).remember(key, None, dirty=True)
    except Exception:  # never let the bookkeeping hide the update's own outcome
        logger.exception("could not close the open question after a command")


def deps_of(app: Application[Any, Any, Any, Any, Any, Any]) -> Deps:
    return get_deps(app.bot_data)


# --- expiry ---------------------------------------------------------------------------------


def _job_name(key: QuestionKey) -> str:
    return f"question:{key.chat_id}:{key.telegram_user_id}"


def _arm_expiry(context: Context, key: QuestionKey, question: Question[Any]) -> None:
    job_queue = context.job_queue
    if job_queue is None:
        return
    delay = (question.expires_at - deps(context).clock()).total_seconds()
    arm_expiry(job_queue, key, question.token, delay)


def arm_expiry(job_queue: Any, key: QuestionKey, token: str, delay: float) -> None:
    """Run :func:`expire_job` in ``delay`` seconds (the bot's clock decides whether the
    question has expired then), replacing the chat's earlier job."""
    for job in job_queue.get_jobs_by_name(_job_name(key)):
        job.schedule_removal()
    job_queue.run_once(expire_job, when=max(0.0, delay), data=(key, token), name=_job_name(key))


async def expire_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Close the question if it is still open and expired, and tell the person (once)."""
    assert context.job is not None
    data = context.job.data
    assert isinstance(data, tuple)
    key: QuestionKey = data[0]
    token: str = data[1]
    d = deps(context)
    memory = _memory(context)
    remembered, dirty = memory.dirty(key)
    if dirty and remembered is None:  # answered or closed here during an outage: not expired
        try:
            await questions.close_now(d.db, key)
            memory.remember(key, None, dirty=False)
        except DatabaseUnavailable:
            pass
        return
    try:
        found = await questions.expire(d.db, key, token, d.clock())
    except DatabaseUnavailable:
        logger.info("question expiry postponed: database unreachable")
        assert context.job_queue is not None
        context.job_queue.run_once(expire_job, when=60, data=(key, token), name=_job_name(key))
        return
    if found is None:
        return
    _memory(context).remember(key, None, dirty=False)
    spec = FLOWS.get(found.flow)
    text = spec.timeout_reply if spec is not None else TIMED_OUT
    if text:
        await context.bot.send_message(key.chat_id, text)


async def arm_pending(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """At start-up: arm the expiry of every open question (a restart loses none; with
    several instances, the one whose delete claims the question tells the person)."""
    assert app.job_queue is not None
    d = deps_of(app)
    now = d.clock()
    for pending in await questions.pending(d.db):
        delay = (pending.expires_at - now).total_seconds()
        arm_expiry(app.job_queue, pending.key, pending.token, delay)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The engine's own handlers: question buttons, and typed text (after every command)."""
    app.add_handler(CallbackQueryHandler(on_button, pattern=pattern(QUESTION)))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
