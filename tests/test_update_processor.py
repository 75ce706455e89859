"""Updates of one user stay in order; different users' updates overlap."""

from __future__ import annotations

import asyncio

from telegram import Chat, Message, Update, User

from bot.telegram_io import PerUserUpdateProcessor


def update_from(user_id: int, update_id: int) -> Update:
    user = User(user_id, "U", is_bot=False)
    chat = Chat(user_id, Chat.PRIVATE)
    return Update(update_id, message=Message(update_id, None, chat, from_user=user, text="x"))  # type: ignore[arg-type]


async def test_one_user_in_order_many_users_at_once() -> None:
    processor = PerUserUpdateProcessor(8)
    events: list[str] = []
    release = asyncio.Event()

    async def slow(name: str) -> None:
        events.append(f"start {name}")
        await release.wait()
        events.append(f"end {name}")

    async def quick(name: str) -> None:
        events.append(f"run {name}")

    first = asyncio.create_task(processor.process_update(update_from(1, 1), slow("a1")))
    await asyncio.sleep(0)
    second = asyncio.create_task(processor.process_update(update_from(1, 2), quick("a2")))
    other = asyncio.create_task(processor.process_update(update_from(2, 3), quick("b1")))
    await asyncio.wait_for(other, 1)  # user 2 is not held up by user 1's slow update
    assert events == ["start a1", "run b1"]
    release.set()
    await asyncio.gather(first, second)
    assert events == ["start a1", "run b1", "end a1", "run a2"]  # user 1 kept its order
    assert processor._locks == {}  # no lock left behind


async def test_a_busy_user_does_not_take_every_slot() -> None:
    processor = PerUserUpdateProcessor(2)
    release = asyncio.Event()
    done: list[int] = []

    async def work(n: int, wait: bool) -> None:
        if wait:
            await release.wait()
        done.append(n)

    # Ten updates of user 1 queue up behind a slow one; user 2 still gets a slot.
    queued = [
        asyncio.create_task(processor.process_update(update_from(1, n), work(n, n == 0)))
        for n in range(10)
    ]
    await asyncio.sleep(0)
    await asyncio.wait_for(processor.process_update(update_from(2, 99), work(99, False)), 1)
    assert done == [99]
    release.set()
    await asyncio.gather(*queued)
    assert done == [99, *range(10)]
