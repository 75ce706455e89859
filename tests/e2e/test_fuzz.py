"""Random input into the running bot: always an answer, never a crash, never another's rows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.local_api import BotApiEmulator
from services.db import Database
from tests.harness import Chat, Clock, bot_running, make_settings

COMMANDS = [
    "start", "help", "nba", "add", "log", "reflect", "status", "progress", "energy", "block",
    "unblock", "history", "undo", "cancel", "settings", "stats", "export", "delete", "link",
    "unlink", "nope",
]  # fmt: skip
WORDS = st.one_of(
    st.sampled_from(["ibm", "cs", "IBM", "Cs", "0", "5", "100", "-1", "1441", "x", "&", "<b>"]),
    st.integers(-(10**7), 10**7).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
COMMAND_LINES = st.builds(
    lambda c, args: " ".join([f"/{c}", *args]),
    st.sampled_from(COMMANDS),
    st.lists(WORDS, max_size=4),
)
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)
CALLBACKS = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:_-", min_size=1, max_size=64),
    st.builds(
        lambda v: f"nba:{v}:cs:VICTIM",
        st.sampled_from(["lock", "unlock", "done", "select", "confirm-delete"]),
    ),
    st.builds(lambda v: f"nba:{v}:cs:VICTIM:25", st.sampled_from(["log", "gap"])),
    st.sampled_from(
        ["log:minutes:VICTIM:30", "nudge:snooze:cs", "del:yes", "add:gap:3", "log:min:45"]
    ),
    # the same buttons in the format of earlier versions (still in old chats)
    st.builds(lambda v: f"n:{v}:cs:VICTIM", st.sampled_from(["lk", "ul", "dn", "sel", "dy"])),
    st.sampled_from(["d:m:VICTIM:30", "g:snz:cs"]),
)
INPUTS = st.lists(
    st.one_of(
        COMMAND_LINES.map(lambda t: ("text", t)),
        TEXTS.map(lambda t: ("text", t)),
        CALLBACKS.map(lambda d: ("press", d)),
    ),
    min_size=5,
    max_size=25,
)

ATTACKER, VICTIM = 31001, 31002
ANSWERS = {
    "sendMessage", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery",
    "sendPhoto", "sendDocument",
}  # fmt: skip


def answers(emu: BotApiEmulator) -> int:
    """How many calls the bot made that a user would see (polling does not count)."""
    return sum(1 for call in emu.calls() if call.method in ANSWERS)


async def snapshot(db: Database, user: int) -> list[Any]:
    async with db.privileged() as uow:
        link = await uow.fetchone(
            "select user_id from telegram_links where telegram_user_id = %s", (user,)
        )
        assert link is not None
        found = []
        for table in ("theaters", "nba_items", "execution_logs", "reflections",
                      "global_metrics", "user_settings", "telegram_links"):  # fmt: skip
            rows = await uow.fetchall(
                f"select * from {table} where user_id = %s order by 1", (link["user_id"],)
            )
            found.append([dict(r) for r in rows])
        return found


async def scenario(dsn: str, inputs: list[tuple[str, str]], caplog: Any) -> None:
    async with Database(dsn, max_size=2) as db:
        async with db.privileged() as uow:
            await uow.execute("truncate auth.users, bot_persistence cascade")
            await uow.commit()
        with BotApiEmulator() as emu:
            async with bot_running(emu, dsn, clock=Clock(), settings=make_settings()):
                victim, attacker = Chat(emu, VICTIM), Chat(emu, ATTACKER)
                await victim.send("/start")
                (item,) = await victim.send("/add cs 4 Victim's item")
                victim_item = item.callback_data("✅ Done").rsplit(":", 1)[1]
                await attacker.send("/start")
                before = await snapshot(db, VICTIM)
                for kind, value in inputs:
                    calls = answers(emu)
                    if kind == "text":
                        emu.send_text(ATTACKER, value)
                    else:
                        mine = [m for m in emu.sent(ATTACKER) if m.kind == "text"]
                        emu.press(
                            ATTACKER, mine[-1].message_id,
                            value.replace("VICTIM", victim_item), strict=False,
                        )  # fmt: skip
                    await emu.wait_idle(quiet=0.1, timeout=15)
                    assert answers(emu) > calls, f"no answer to {kind} {value!r}"
                assert await snapshot(db, VICTIM) == before
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inputs=INPUTS)
def test_random_input_is_always_answered_and_isolated(
    database_dsn: str, caplog: pytest.LogCaptureFixture, inputs: list[tuple[str, str]]
) -> None:
    caplog.clear()
    asyncio.run(scenario(database_dsn, inputs, caplog))
