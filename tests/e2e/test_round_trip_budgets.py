"""Round trips to the database per command: a budget for each, direct and behind a
transaction pooler (DB_TRANSACTION_POOLER=on: no pipelines, no prepared statements).

A database across regions costs 20-80 ms a round trip, so a command's latency there is its
round trips times that. Each command below has its exact number, counted where psycopg waits
for the server's answer: one more fails, and so does one less (work that silently stopped
happening). bench/latency.py --db-delay-ms measures the same through a real delay."""

from __future__ import annotations

import pytest

from bot.local_api import BotApiEmulator, SentMessage
from services.db import Database
from tests.harness import Chat, Clock, bot_running, counting_server_round_trips, make_settings

#: per command: (direct, behind the pooler)
BUDGETS = {
    "/nba": (1, 1),  # the opening and the read (behind the pooler: with BEGIN, COMMIT)
    "/status": (1, 1),
    "/log": (1, 1),  # the opening, the lock, the statement that checks and writes, COMMIT
    "/add": (1, 1),  # the opening, the lock, the insert that re-ranks, COMMIT
    "done": (1, 1),  # the opening, the lock, the statement that logs and re-ranks, COMMIT
    "/reflect": (1, 1),  # the opening, the lock, the insert, COMMIT
    "lock": (1, 1),  # the opening, the lock, the statement that re-ranks, COMMIT
    # the opening reads the question with the lock, the write, the close of the question
    # (which checks it is still this instance's copy) and COMMIT
    "step": (1, 1),
}


def button(message: SentMessage, prefix: str | tuple[str, ...]) -> str:
    """The callback data of ``message``'s first button whose data starts with ``prefix``."""
    for row in message.buttons:
        for _text, data in row:
            if data and data.startswith(prefix):
                return data
    raise LookupError(f"no {prefix!r} button on message {message.message_id}")


async def press(chat: Chat, message: SentMessage, prefix: str | tuple[str, ...]) -> None:
    now = chat.message(message.message_id)  # as it stands after its redraws
    await chat.press_data(message.message_id, button(now, prefix))


async def commands(chat: Chat, round_no: int, measure: dict[str, int] | None) -> None:
    """Each command once, from a user with two items in each theater; ``measure``: the
    round trips of each (None: not counted, a warm-up)."""
    with counting_server_round_trips() as trips:

        async def one(kind: str) -> None:
            await chat.settle()
            if measure is not None:
                measure[kind] = trips.count

        trips.reset()
        nba = (await chat.send("/nba"))[0]
        await one("/nba")
        trips.reset()
        await chat.send("/status")
        await one("/status")
        trips.reset()
        await chat.send(f"/log cs 20 round {round_no}")
        await one("/log")
        trips.reset()
        added = (await chat.send(f"/add cs 3 item {round_no}"))[0]
        await one("/add")
        trips.reset()
        await press(chat, added, "nba:done:cs:")
        await one("done")
        assert chat.message(added.message_id).plain_text.startswith(f"✅ Done: item {round_no}")
        trips.reset()
        await chat.send(f"/reflect cs evidence {round_no}")
        await one("/reflect")
        trips.reset()
        await press(chat, nba, ("nba:lock:ibm:", "nba:unlock:ibm:"))
        await one("lock")  # Unlock after the warm-up's Lock: the same work
        await chat.send("/log cs 25")  # asks what was done
        trips.reset()
        await chat.send(f"guided {round_no}")
        await one("step")


@pytest.mark.slow
@pytest.mark.parametrize("pooler", [False, True], ids=["direct", "pooler"])
async def test_round_trips_per_command(
    pooler: bool, db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    settings = make_settings(db_transaction_pooler="on" if pooler else "off")
    async with bot_running(emulator, database_dsn, clock=Clock(), settings=settings):
        chat = Chat(emulator, 6401)
        for text in ("/start", "/cancel", "/add ibm 2 a", "/add ibm 1 b", "/add cs 2 c"):
            await chat.send(text)
        await commands(chat, 0, None)  # connections opened, statements prepared
        measured: dict[str, int] = {}
        await commands(chat, 1, measured)
        said = [m.plain_text for m in emulator.sent(chat.user_id)]
        said += [a.text or "" for a in emulator.callback_answers]
        assert not [text for text in said if "nothing was changed" in text]
        last = emulator.sent(chat.user_id)[-1].plain_text  # the guided /log's answer
        assert "Logged" in last, last
    print(measured)
    expected = {kind: budget[1 if pooler else 0] for kind, budget in BUDGETS.items()}
    assert measured == expected
