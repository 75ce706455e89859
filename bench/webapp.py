"""The dashboard's first render and page weight, in a real browser, on real PostgreSQL.

    python bench/webapp.py [--n 9] [--database-url DSN]

The product's Application runs against the local Bot API emulator on a fresh database (the
embedded PostgreSQL in a temporary folder unless ``--database-url`` names a server whose
maintenance connection string it is), long polling, with the dashboard on a free port. One
user has /start'ed and holds six open NBAs, twenty logs over the last two weeks and five
reflections. Headless Chromium (Debian's ``chromium`` through ``chromium-driver``, a 360×740
viewport) then opens the dashboard ``--n`` times, each time from a blank page with the
browser's cache switched off (every file fetched again, as on a first visit).

First render is the time from the start of the navigation to the moment the page has drawn
the user's data (the ``dashboard-ready`` performance mark app.js sets after its first draw):
the page, its CSS and scripts, the vendored Telegram script, ``GET /app/api/state`` answered
from the database, and the DOM built. The median, min and max of the loads after the first
are printed, and the median time the page waited for ``GET /app/api/state``.

Page weight is the bytes the server sends for the page itself (index.html, app.css, app.js),
without the vendored telegram-web-app.js (reported apart), uncompressed and gzipped, and the
size of the state JSON for this user.

The last line is ``first_render_ms_median=<ms>``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from benchlib import BenchDatabase, add_database_url, bot_running, on_fresh_database, print_machine

from bot.local_api import BotApiEmulator
from bot.webapp.initdata import sign

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
USER = 4242
PAGE = ("", "app.css", "app.js")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(360, 740)
    # every load fetches every file again, as a first visit does
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return driver


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        body: bytes = answer.read()
        return body


async def seed(emu: BotApiEmulator) -> None:
    """One user with six open NBAs, twenty logs and five reflections."""
    lines = ["/start"]
    lines += [f"/add {arm} {gap} Next step {n} in {arm}" for n, (arm, gap) in enumerate(
        [("cs", 4), ("cs", 2), ("cs", 1), ("ibm", 5), ("ibm", 3), ("ibm", 0)]
    )]  # fmt: skip
    lines += [f"/log {'cs' if n % 2 else 'ibm'} {20 + n} worked on part {n}" for n in range(20)]
    lines += [f"/reflect cs Evidence number {n}" for n in range(5)]
    for line in lines:
        before = len(emu.sent(USER))
        emu.send_text(USER, line)
        await emu.wait_messages(USER, before + 1, timeout=20)


async def measure(db: BenchDatabase, n: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/app/"
    with BotApiEmulator() as emu:
        async with bot_running(emu, db.dsn, webapp_url=base, webapp_port=port):
            await seed(emu)
            weights = {name or "index.html": await asyncio.to_thread(fetch, base + name)
                       for name in PAGE}  # fmt: skip
            telegram = await asyncio.to_thread(fetch, base + "telegram-web-app.js")
            launch = sign(emu.token, USER, "Bench", int(time.time()))
            request = urllib.request.Request(
                base + "api/state", headers={"Authorization": f"tma {launch}"}
            )
            state = await asyncio.to_thread(lambda: urllib.request.urlopen(request).read())
            page = sum(len(body) for body in weights.values())
            page_gz = sum(len(gzip.compress(body)) for body in weights.values())
            for name, body in weights.items():
                print(f"file {name}: {len(body)} bytes ({len(gzip.compress(body))} gzipped)")
            print(
                f"page_bytes={page} page_gzip_bytes={page_gz}"
                f" telegram_script_bytes={len(telegram)}"
                f" state_json_bytes={len(state)} (items={_items(state)})"
            )
            url = f"{base}#tgWebAppData={urllib.parse.quote(launch)}&tgWebAppVersion=8.0"
            driver = await asyncio.to_thread(browser)
            try:
                loads = [await _load(driver, url) for _ in range(n)]
            finally:
                await asyncio.to_thread(driver.quit)
    times = [render for render, _ in loads]
    api = [fetch for _, fetch in loads[1:]]
    first, rest = times[0], times[1:] or times
    print(f"first_render_ms: first load {first:.0f} (cold browser)")
    print(
        f"first_render_ms over the next {len(rest)} loads: median {statistics.median(rest):.0f}"
        f" min {min(rest):.0f} max {max(rest):.0f}"
    )
    fetch_ms = statistics.median(api)
    print(f"state_fetch_ms (GET /app/api/state, as the page saw it): median {fetch_ms:.0f}")
    print(f"first_render_ms_median={statistics.median(rest):.1f}")


def _items(state: bytes) -> int:
    return sum(len(t["items"]) for t in json.loads(state)["theaters"])


async def _load(driver: Any, url: str) -> tuple[float, float]:
    await asyncio.to_thread(driver.get, "about:blank")
    await asyncio.to_thread(driver.get, url)
    deadline = time.monotonic() + 30
    while True:
        found = await asyncio.to_thread(
            driver.execute_script,
            "const m = performance.getEntriesByName('dashboard-ready');"
            " const api = performance.getEntriesByType('resource')"
            ".filter(e => e.name.endsWith('/api/state'));"
            " return m.length && api.length ? [m[0].startTime, api[0].duration] : null;",
        )
        if found is not None:
            return float(found[0]), float(found[1])
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not render in 30 s")
        await asyncio.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=9, help="page loads (the first is cold)")
    add_database_url(parser)
    args = parser.parse_args()
    print_machine(f"python {sys.argv[0]}", sys.argv[1:])
    on_fresh_database(args.database_url, lambda db: measure(db, max(2, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
