"""CPU per Bot API call: PTB's HTTPXRequest vs ``bot.http.AiohttpRequest``, asyncio vs uvloop.

    python bench/http_client.py [--n 2000] [--concurrency 16] [--runs 3] [--warmup 200]
                                [--clients httpx,aiohttp] [--loops asyncio,uvloop]

A bare PTB ``Bot`` (no Application, no handlers, no database) sends ``--n`` messages
(``send_message`` with HTML text) to the local Bot API emulator over HTTP, one after the
other ("seq") and from ``--concurrency`` tasks at once ("c16"); the same Bot class, only its
``request`` differs. The emulator runs in a process of its own (``benchlib.RemoteEmulator``),
so its serving does not take this process's GIL. Every configuration runs in a fresh event
loop (``asyncio.Runner``, with ``uvloop.new_event_loop`` as the loop factory for uvloop), on
a fresh Bot and request, after ``--warmup`` calls; the configurations are interleaved run by
run so that a change in the machine's load spreads over all of them.

The "null" client makes no HTTP request at all (a canned reply): the cost of PTB's ``Bot``
per call, so that "client - null" is what the HTTP stack and the event loop's I/O cost.

Reported per configuration, medians of ``--runs``: CPU ms per call of this process
(``time.process_time``), wall time of the ``--n`` calls, calls per second, and the
emulator process's CPU per call (the other side of the socket, for context).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchlib import RemoteEmulator, cpu_seconds, print_machine
from telegram import Bot
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.http import AiohttpRequest

CHAT_ID = 4242


class NullRequest(BaseRequest):
    """No HTTP at all: every call answers a canned message at once. What PTB's ``Bot`` itself
    costs per call (building the request, parsing the reply), the floor under both clients."""

    def __init__(self) -> None:
        self._bodies: dict[str, bytes] = {}

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if url.endswith("/getMe"):
            result: dict[str, Any] = {"id": 1, "is_bot": True, "first_name": "B", "username": "b"}
        else:
            text = request_data.parameters.get("text", "") if request_data else ""
            result = {
                "message_id": 1,
                "date": 0,
                "chat": {"id": CHAT_ID, "type": "private", "first_name": "U"},
                "from": {"id": 1, "is_bot": True, "first_name": "B", "username": "b"},
                "text": str(text).replace("<b>", "").replace("</b>", ""),
                "entities": [{"type": "bold", "offset": 0, "length": 4}],
            }
        return 200, json.dumps({"ok": True, "result": result}).encode()


def make_request(client: str, pool_size: int) -> BaseRequest:
    if client == "null":
        return NullRequest()
    if client == "httpx":
        return HTTPXRequest(connection_pool_size=pool_size, read_timeout=15, pool_timeout=5)
    if client == "aiohttp":
        return AiohttpRequest(connection_pool_size=pool_size, read_timeout=15, pool_timeout=5)
    raise ValueError(client)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(name)


async def measure(
    emu: RemoteEmulator, client: str, concurrency: int, n: int, warmup: int
) -> dict[str, float]:
    bot = Bot(
        emu.token,
        base_url=emu.base_url,
        base_file_url=emu.file_base_url,
        request=make_request(client, 256),
        get_updates_request=make_request(client, 1),
    )
    async with bot:
        counter = 0

        async def worker(calls: int) -> None:
            nonlocal counter
            for _ in range(calls):
                counter += 1
                await bot.send_message(CHAT_ID, f"<b>ping</b> {counter}", parse_mode="HTML")

        async def burst(calls: int) -> None:
            share, extra = divmod(calls, concurrency)
            await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))

        await burst(warmup)
        emu_before = cpu_seconds(emu.pid)
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        await burst(n)
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        emu_cpu = cpu_seconds(emu.pid) - emu_before
    return {
        "cpu_ms": 1000 * cpu / n,
        "wall_s": wall,
        "calls_s": n / wall,
        "emu_cpu_ms": 1000 * emu_cpu / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per measurement (2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks at once (16)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (3)")
    parser.add_argument("--warmup", type=int, default=200, help="calls before each (200)")
    parser.add_argument(
        "--clients", default="httpx,aiohttp,null", help="httpx, aiohttp, null (no HTTP)"
    )
    parser.add_argument("--loops", default="asyncio,uvloop")
    args = parser.parse_args(argv)
    print_machine("python bench/http_client.py", sys.argv[1:] if argv is None else argv)

    modes = {"seq": 1, f"c{args.concurrency}": args.concurrency}
    configs = [
        (loop, client, mode)
        for loop in args.loops.split(",")
        for client in args.clients.split(",")
        for mode in modes
    ]
    results: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
    emu = RemoteEmulator()
    try:
        emu.call("enqueue", [("text", CHAT_ID, "/start")])  # the chat exists from now on
        for run in range(1, args.runs + 1):
            for loop, client, mode in configs:
                with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
                    res = runner.run(measure(emu, client, modes[mode], args.n, args.warmup))
                results[(loop, client, mode)].append(res)
                print(
                    f"run {run} {loop:7} {client:7} {mode:4}: {res['cpu_ms']:.3f} ms CPU/call,"
                    f" {res['wall_s']:.2f} s wall, {res['calls_s']:.0f} calls/s,"
                    f" emulator {res['emu_cpu_ms']:.3f} ms CPU/call",
                    flush=True,
                )
    finally:
        emu.close()

    print(f"\nmedians of {args.runs} runs, {args.n} send_message calls each:")
    print(
        f"{'loop':8}{'client':9}{'mode':6}{'CPU ms/call':>12}{'wall s':>9}{'calls/s':>9}"
        f"{'emu ms/call':>13}{'CPU vs httpx/asyncio':>22}"
    )
    medians: dict[tuple[str, str, str], dict[str, float]] = {
        key: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for key, runs in results.items()
    }
    for (loop, client, mode), med in medians.items():
        base = medians.get(("asyncio", "httpx", mode))
        rel = f"{100 * (med['cpu_ms'] / base['cpu_ms'] - 1):+.0f} %" if base else "n/a"
        print(
            f"{loop:8}{client:9}{mode:6}{med['cpu_ms']:12.3f}{med['wall_s']:9.2f}"
            f"{med['calls_s']:9.0f}{med['emu_cpu_ms']:13.3f}{rel:>22}"
        )
    for (loop, client, mode), med in medians.items():
        key = f"{loop}_{client}_{mode}"
        print(f"cpu_ms_per_call_{key}={med['cpu_ms']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
