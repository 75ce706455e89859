"""Headless Chromium for the dashboard's browser tests: Debian's ``chromium`` driven through
its ``chromium-driver`` by Selenium (the two packages come from one source, so their versions
always match, and Selenium given a driver path downloads nothing).

Telegram opens a Mini App with its launch parameters in the URL's fragment
(``#tgWebAppData=…&tgWebAppVersion=…&tgWebAppThemeParams=…``); telegram-web-app.js reads
them there, so a plain browser opening such a URL runs the page as Telegram would, minus the
native buttons.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from bot.webapp.initdata import sign

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
#: A phone's viewport.
WIDTH, HEIGHT = 360, 740
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

#: Telegram's own light and dark themes (Telegram Web), as the client passes them.
LIGHT = {
    "bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#707579",
    "link_color": "#3390ec", "button_color": "#3390ec", "button_text_color": "#ffffff",
    "secondary_bg_color": "#f4f4f5", "section_bg_color": "#ffffff",
    "destructive_text_color": "#df3f40",
}  # fmt: skip
DARK = {
    "bg_color": "#212121", "text_color": "#ffffff", "hint_color": "#aaaaaa",
    "link_color": "#8774e1", "button_color": "#8774e1", "button_text_color": "#ffffff",
    "secondary_bg_color": "#0f0f0f", "section_bg_color": "#212121",
    "destructive_text_color": "#ff595a",
}  # fmt: skip

T = TypeVar("T")


def missing() -> str | None:
    """Why the browser tests can't run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[test]')"
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(binary) is None:
            return f"no browser: {binary} not found (apt-get install {package})"
    return None


def start_browser() -> Any:
    """A headless Chromium with a phone's viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The flag alone leaves a headless window 500 wide, and the window's frame takes some of
    # its height: size it so that the page's viewport is the phone's.
    driver.set_window_size(WIDTH, HEIGHT)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * WIDTH - inner[0], 2 * HEIGHT - inner[1])
    driver.set_script_timeout(30)
    return driver


def launch_url(
    base: str,
    token: str,
    user_id: int,
    *,
    first_name: str = "Ada",
    theme: dict[str, str] | None = None,
    init_data: str | None = None,
) -> str:
    """The dashboard's URL as Telegram opens it, with launch data signed by ``token``."""
    params = {
        "tgWebAppData": init_data or sign(token, user_id, first_name, int(time.time())),
        "tgWebAppVersion": "8.0",
        "tgWebAppPlatform": "web",
    }
    if theme is not None:
        params["tgWebAppThemeParams"] = json.dumps(theme)
    return f"{base}#{urlencode(params)}"


async def call(fn: Callable[..., T], *args: Any) -> T:
    """A blocking browser call, off the event loop (the bot answers the page on it)."""
    return await asyncio.to_thread(fn, *args)


async def wait_for(driver: Any, script: str, timeout: float = 15.0) -> Any:
    """Poll ``script`` (a JavaScript expression) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await call(driver.execute_script, f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {script}")
        await asyncio.sleep(0.05)


async def open_page(driver: Any, url: str) -> str:
    """Open the dashboard and wait until it shows its content or its error screen."""
    await call(driver.get, "about:blank")  # a fresh page: the fragment alone changes nothing
    await call(driver.get, url)
    state: str = await wait_for(driver, "document.body.getAttribute('data-state')")
    return state


async def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations in the page as it is now."""
    await call(driver.execute_script, AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = await call(
        driver.execute_async_script,
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]}).then(r => done(r.violations.map(v => (
          {id: v.id, impact: v.impact, help: v.help,
           nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}))));
        """,
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]
