"""The dashboard in a real browser: headless Chromium (``tests/browser.py``) opening the page
the running bot serves, with launch data signed by the bot's token, against the test
database. Skipped, naming what is missing, where there is no browser (.ci/run installs
Debian's chromium and chromium-driver). The API alone: ``tests/e2e/test_webapp_api.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from bot.webapp.initdata import sign
from services.db import Database
from tests import browser
from tests.harness import Chat, dashboard_running

_missing = browser.missing()
pytestmark = [
    pytest.mark.slow,  # a browser of its own, and pages rendered
    pytest.mark.skipif(_missing is not None, reason=f"browser tests skipped: {_missing}"),
]

ME = 8201


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chromium = browser.start_browser()
    try:
        yield chromium
    finally:
        chromium.quit()


async def _with_nbas(emu: BotApiEmulator) -> Chat:
    chat = Chat(emu, ME)
    await chat.send("/start")
    await chat.send("/add cs 4 Read SICP chapter 3")
    await chat.send("/add cs 2 Exercises 3.1")
    await chat.send("/add ibm 5 Ship the quarterly report")
    await chat.send("/log cs 45 read chapter 2")
    await chat.send("/reflect cs Passed the mock exam, 78%")
    return chat


async def _titles(driver: Any, arm: str) -> list[str]:
    found: list[str] = await browser.call(
        driver.execute_script,
        f"return [...document.querySelectorAll('[data-arm={arm}] .item-title')]"
        ".map(e => e.textContent)",
    )
    return found


async def test_the_page_shows_the_nbas_and_done_changes_page_and_database(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT)
        assert await browser.open_page(driver, page) == "ready"
        assert await _titles(driver, "cs") == ["➤ Read SICP chapter 3", "Exercises 3.1"]
        assert await _titles(driver, "ibm") == ["➤ Ship the quarterly report"]
        text = await browser.call(driver.execute_script, "return document.body.innerText")
        assert "gap 4 (+40)" in text and "Passed the mock exam, 78%" in text
        assert await browser.call(
            driver.execute_script, "return document.querySelectorAll('svg.chart rect').length"
        )

        await browser.call(
            driver.execute_script,
            "document.querySelector('[aria-label=\"Done: Read SICP chapter 3\"]').click()",
        )
        notice = await browser.wait_for(
            driver, "document.getElementById('notice').textContent.startsWith('Done') &&"
            " document.getElementById('notice').textContent",
        )  # fmt: skip
        assert notice == "Done: “Read SICP chapter 3”."
        assert await _titles(driver, "cs") == ["➤ Exercises 3.1"]
    async with db.privileged(read_only=True) as uow:
        row = await uow.fetchone("select completed_at from nba_items where title like 'Read%'")
    assert row is not None and row["completed_at"] is not None


async def test_a_bad_signature_gets_the_error_screen(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        await _with_nbas(emulator)
        forged = sign("123456:a-token-that-is-not-this-bots", ME, "Ada", int(time.time()))
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT, init_data=forged)
        assert await browser.open_page(driver, page) == "error"
        shown = await browser.call(
            driver.execute_script,
            "return [document.getElementById('error').hidden,"
            " document.getElementById('content').hidden,"
            " document.getElementById('error-text').textContent]",
        )
        assert shown[:2] == [False, True]
        assert "wrong signature" in shown[2]


def _shot(driver: Any, name: str) -> None:
    browser.ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(browser.ARTIFACTS / name))


@pytest.mark.parametrize(
    ("theme", "background", "scheme"),
    [
        pytest.param(browser.LIGHT, "rgb(244, 244, 245)", "light", id="light"),
        pytest.param(browser.DARK, "rgb(15, 15, 15)", "dark", id="dark"),
    ],
)
async def test_theme_applies_fits_a_phone_and_passes_axe(
    db: Database,
    database_dsn: str,
    emulator: BotApiEmulator,
    driver: Any,
    theme: dict[str, str],
    background: str,
    scheme: str,
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=theme)
        assert await browser.open_page(driver, page) == "ready"
        seen = await browser.call(
            driver.execute_script,
            "return [getComputedStyle(document.documentElement).backgroundColor,"
            " getComputedStyle(document.querySelector('.card')).backgroundColor,"
            " Telegram.WebApp.colorScheme, document.documentElement.scrollWidth,"
            " window.innerWidth]",
        )
        assert seen[0] == background
        assert seen[2] == scheme
        assert seen[3] <= seen[4] == browser.WIDTH  # nothing wider than the phone
        await browser.call(_shot, driver, f"dashboard-{scheme}.png")
        assert await browser.axe_violations(driver) == []


async def test_logging_time_with_the_form_shows_in_the_history_and_the_chat(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    async with dashboard_running(emulator, database_dsn) as (url, _):
        chat = await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT)
        assert await browser.open_page(driver, page) == "ready"

        def fill() -> None:
            form = driver.find_element(By.ID, "log-form")
            Select(form.find_element(By.NAME, "arm")).select_by_value("ibm")
            form.find_element(By.NAME, "minutes").send_keys("35")
            form.find_element(By.NAME, "action").send_keys("wrote the release notes")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        await browser.call(fill)
        await browser.wait_for(
            driver, "document.getElementById('notice').textContent === 'Logged 35 min in ibm.'"
        )
        first = await browser.call(
            driver.execute_script,
            "return document.querySelector('#history li').textContent",
        )
        assert "ibm" in first and "wrote the release notes · 35 min" in first
        assert (
            await browser.call(
                driver.execute_script,
                "return document.querySelector('#log-form [name=action]').value",
            )
            == ""
        )  # the form is cleared for the next one
        (history,) = await chat.send("/history ibm")
        assert "wrote the release notes" in history.plain_text


async def test_the_main_button_pressed_twice_fast_logs_once(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    async with dashboard_running(emulator, database_dsn) as (url, _):
        await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT)
        assert await browser.open_page(driver, page) == "ready"

        def fill() -> None:
            form = driver.find_element(By.ID, "log-form")
            form.find_element(By.NAME, "minutes").send_keys("20")
            form.find_element(By.NAME, "action").send_keys("pressed twice")

        await browser.call(fill)
        # Telegram's main button ("Log time") tapped twice before the first answer came.
        await browser.call(
            driver.execute_script,
            "Telegram.WebView.receiveEvent('main_button_pressed');"
            " Telegram.WebView.receiveEvent('main_button_pressed');",
        )
        await browser.wait_for(
            driver, "document.getElementById('notice').textContent.startsWith('Logged 20 min')"
        )
        await Chat(emulator, ME).settle(quiet=0.5)
    async with db.privileged(read_only=True) as uow:
        logs = await uow.fetchall(
            "select duration from execution_logs where action = 'pressed twice'"
        )
    assert [r["duration"] for r in logs] == [20]


async def test_a_change_made_in_the_chat_meanwhile_redraws_the_page(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        chat = await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT)
        assert await browser.open_page(driver, page) == "ready"

        # The page is open; the same item is finished in the chat.
        (view,) = await chat.send("/nba cs")
        await chat.press(view, "✅ Done")
        # Done on the page, which still shows it: refused, and the page shows what is true now.
        await browser.call(
            driver.execute_script,
            "document.querySelector('[aria-label=\"Done: Read SICP chapter 3\"]').click()",
        )
        await browser.wait_for(
            driver, "document.getElementById('notice').textContent.includes('no longer exists')"
        )
        await browser.wait_for(
            driver,
            "[...document.querySelectorAll('[data-arm=cs] .item-title')]"
            ".map(e => e.textContent).join('|') === '➤ Exercises 3.1'",
        )


async def test_long_unbroken_names_and_titles_stay_within_a_phones_width(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        chat = Chat(emulator, ME)
        await chat.send("/start")
        await chat.send("/add cs 4 " + "W" * 200)  # the longest title, no space to wrap at
        name = "Z" * 64  # the longest first name Telegram allows
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT, first_name=name)
        assert await browser.open_page(driver, page) == "ready"
        wide = (
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        assert await browser.call(driver.execute_script, f"return {wide}") == []
        await browser.call(
            driver.execute_script,
            "document.querySelector('[aria-label^=\"Done: WWW\"]').click()",
        )
        await browser.wait_for(
            driver, "document.getElementById('notice').textContent.startsWith('Done')"
        )
        assert await browser.call(driver.execute_script, f"return {wide}") == []


async def test_a_redraw_closes_the_minutes_editor_and_hides_the_back_button(
    db: Database, database_dsn: str, emulator: BotApiEmulator, driver: Any
) -> None:
    async with dashboard_running(emulator, database_dsn) as (url, _):
        await _with_nbas(emulator)
        page = browser.launch_url(url, emulator.token, ME, theme=browser.LIGHT)
        assert await browser.open_page(driver, page) == "ready"
        shown = (
            "[Telegram.WebApp.BackButton.isVisible,"
            " !!document.querySelector('[aria-label=\"Minutes of progress\"]')]"
        )
        await browser.call(
            driver.execute_script,
            "document.querySelector('[aria-label=\"Progress on Read SICP chapter 3\"]').click()",
        )
        assert await browser.call(driver.execute_script, f"return {shown}") == [True, True]
        # Another change redraws the page (the editor is gone): Back has nothing to close.
        await browser.call(
            driver.execute_script,
            "var s = document.querySelector('[aria-label=\"Gap of Exercises 3.1\"]');"
            " s.value = '5'; s.dispatchEvent(new Event('change'));",
        )
        await browser.wait_for(
            driver, "document.getElementById('notice').textContent.includes('gap 5')"
        )
        assert await browser.call(driver.execute_script, f"return {shown}") == [False, False]
