"""Updates of one user stay in order; different users' updates overlap; one user's flood
holds no one else's place and is bounded with one "slow down" reply."""

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
    assert processor._waiting == {} and processor._running == set()  # nothing left behind


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


async def test_a_flood_does_not_delay_another_user() -> None:
    """1 100 updates of one user (more than any shared cap of waiting updates) are queued
    before another user's update; that one runs after at most one of the flood's."""
    processor = PerUserUpdateProcessor(4, slow_down=lambda update: asyncio.sleep(0))
    done: list[int] = []
    other_ran_after: list[int] = []

    async def flood(n: int) -> None:
        for _ in range(3):  # a little real work, yielding to the loop
            await asyncio.sleep(0)
        done.append(n)

    async def other() -> None:
        other_ran_after.append(len(done))

    tasks = [
        asyncio.create_task(processor.process_update(update_from(1, n), flood(n)))
        for n in range(1100)
    ]
    tasks.append(asyncio.create_task(processor.process_update(update_from(2, 5000), other())))
    await asyncio.gather(*tasks)
    assert other_ran_after[0] <= 1, other_ran_after
    assert done == sorted(done)  # the flood ran in its order


async def test_one_slow_down_reply_per_burst_and_the_rest_in_order() -> None:
    told: list[int] = []

    async def slow_down(update: Update) -> None:
        told.append(update.update_id)

    clock = FakeClock()
    processor = PerUserUpdateProcessor(2, queue_limit=5, slow_down=slow_down, clock=clock)
    release = asyncio.Event()
    ran: list[tuple[int, int]] = []

    async def work(user: int, n: int) -> None:
        if n == 0:
            await release.wait()
        ran.append((user, n))

    first = [
        asyncio.create_task(processor.process_update(update_from(1, n), work(1, n)))
        for n in range(20)
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    # While user 1 is over its limit, user 2's updates (more than the limit) all run.
    await asyncio.gather(
        *(processor.process_update(update_from(2, 100 + n), work(2, n)) for n in range(1, 8))
    )
    assert ran == [(2, n) for n in range(1, 8)]
    assert told == [6]  # one reply: the first update over the limit (1 running + 5 waiting)
    release.set()
    await asyncio.gather(*first)
    assert [n for user, n in ran if user == 1] == list(range(6))  # the kept ones, in order
    assert told == [6]
    assert processor._waiting == {} and processor._dropped == {}

    # The queue drained: a new burst is served and bounded afresh; told again only once the
    # reply interval has passed since the last reply.
    for burst, elapsed, replies in ((1, 10.0, [6]), (2, 60.0, [6, 406])):
        clock.now += elapsed
        release.clear()
        ran.clear()
        tasks = [
            asyncio.create_task(
                processor.process_update(update_from(1, 200 * burst + n), work(1, n))
            )
            for n in range(8)
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        assert told == replies
        release.set()
        await asyncio.gather(*tasks)
        assert ran == [(1, n) for n in range(6)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_users_take_turns_for_the_slots() -> None:
    processor = PerUserUpdateProcessor(1)
    order: list[str] = []

    async def work(name: str) -> None:
        await asyncio.sleep(0)
        order.append(name)

    tasks = [
        asyncio.create_task(processor.process_update(update_from(1, n), work(f"a{n}")))
        for n in range(4)
    ]
    tasks += [
        asyncio.create_task(processor.process_update(update_from(2, 10 + n), work(f"b{n}")))
        for n in range(2)
    ]
    await asyncio.gather(*tasks)
    assert order == ["a0", "b0", "a1", "b1", "a2", "a3"]


async def test_a_cancelled_waiting_update_frees_its_place() -> None:
    processor = PerUserUpdateProcessor(1)
    release = asyncio.Event()
    ran: list[int] = []

    async def work(n: int) -> None:
        if n == 0:
            await release.wait()
        ran.append(n)

    tasks = [
        asyncio.create_task(processor.process_update(update_from(1, n), work(n))) for n in range(3)
    ]
    await asyncio.sleep(0)
    tasks[1].cancel()
    release.set()
    await asyncio.gather(tasks[0], tasks[2])
    assert ran == [0, 2]
    assert processor._waiting == {} and processor._running == set() and processor._free == 1
