"""The dashboard's API through the real stack: the running bot serving ``/app/`` (long polling:
on ``WEBAPP_PORT``; webhook mode: next to the webhook on ``PORT``), launch data signed with the
emulator's bot token, the test database. The page in a browser:
``tests/e2e/test_webapp_browser.py``; the launch-data check alone: ``tests/unit/test_webapp.py``.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.embedded_db import EmbeddedPostgres
from bot.lifecycle import running
from bot.local_api import BotApiEmulator
from bot.webapp.initdata import sign
from bot.webhook import Webhook
from handlers.dashboard import DASHBOARD_LABEL
from services.db import Database
from tests.e2e.test_reliability import bot_process
from tests.harness import Chat, Clock, as_url, dashboard_running, free_port, make_settings

ME, STRANGER = 8101, 8102
SECRET = "s0123456789abcdefghijklmnopqrst_"


def tma(emu: BotApiEmulator, user_id: int, *, age: float = 0, token: str | None = None) -> str:
    """An Authorization header with launch data for ``user_id``, ``age`` seconds old."""
    return "tma " + sign(token or emu.token, user_id, "Ada", int(time.time() - age))


@asynccontextmanager
async def dashboard(
    emu: BotApiEmulator, dsn: str, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Application[Any, Any, Any, Any, Any, Any]]]:
    """The bot with its dashboard on a port of its own (long polling), and a client for it."""
    async with (
        dashboard_running(emu, dsn, **settings) as (url, app),
        httpx.AsyncClient(base_url=url) as client,
    ):
        yield client, app


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.privileged(read_only=True) as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


def write(emu: BotApiEmulator, user_id: int = ME) -> dict[str, str]:
    return {"Authorization": tma(emu, user_id), "X-Request-Id": uuid.uuid4().hex}


async def linked_with_item(client: Any, emulator: BotApiEmulator) -> str:
    """The dashboard's user, linked with /start, with one NBA in cs: the item's id as the
    dashboard's state names it."""
    chat = Chat(emulator, ME)
    await chat.send("/start")
    await chat.send("/add cs 4 Read SICP chapter 3")
    state = (await client.get("api/state", headers={"Authorization": tma(emulator, ME)})).json()
    return str(state["theaters"][1]["items"][0]["id"])


async def test_state_answers_a_linked_user_and_refuses_everyone_else(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn) as (client, _):
        page = await client.get("")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "<title>Aelpher dashboard</title>" in page.text
        assert (await client.get("telegram-web-app.js")).status_code == 200
        bare = await client.get(str(client.base_url).rstrip("/"))  # "/app" without its slash
        assert bare.status_code == 302 and bare.headers["location"] == "app/"

        chat = Chat(emulator, ME)
        await chat.send("/start")
        await chat.send("/add cs 4 Read SICP chapter 3")
        await chat.send("/add cs 2 Exercises 3.1")
        ok = await client.get("api/state", headers={"Authorization": tma(emulator, ME)})
        assert ok.status_code == 200, ok.text
        state = ok.json()
        cs = next(t for t in state["theaters"] if t["arm"] == "cs")
        assert [i["title"] for i in cs["items"]] == ["Read SICP chapter 3", "Exercises 3.1"]
        first = cs["items"][0]
        assert first["current"] and not first["locked"] and first["gap"] == 4
        assert first["score"] == 40 and "gap 4" in first["explanation"]
        assert [t["arm"] for t in state["theaters"]] == ["ibm", "cs"]
        assert len(state["chart"]["days"]) == 14

        refusals = {
            "missing": {},
            "malformed": {"Authorization": "Bearer " + tma(emulator, ME)[4:]},
            "empty": {"Authorization": "tma"},
            "forged": {
                "Authorization": tma(emulator, ME, token="123:forged-token-of-another-bot")
            },
            "tampered": {"Authorization": tma(emulator, ME).replace("%3A8101%2C", "%3A8109%2C")},
            "expired": {"Authorization": tma(emulator, ME, age=24 * 3600 + 120)},
            "future": {"Authorization": tma(emulator, ME, age=-3600)},
        }
        for name, headers in refusals.items():
            refused = await client.get("api/state", headers=headers)
            assert refused.status_code == 401, name
            assert refused.json()["code"] == "unauthorized", name
            assert refused.headers["content-type"].startswith("application/json")

        unlinked = await client.get("api/state", headers={"Authorization": tma(emulator, 8199)})
        assert unlinked.status_code == 403
        assert "/start" in unlinked.json()["error"]
        # an unknown route answers after the same check
        assert (await client.get("api/nothing")).status_code == 401


async def test_a_user_not_on_the_allow_list_is_refused(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn, allowed_telegram_user_ids=str(ME)) as (
        client,
        _,
    ):
        await Chat(emulator, ME).send("/start")
        assert (
            await client.get("api/state", headers={"Authorization": tma(emulator, ME)})
        ).status_code == 200
        refused = await client.get("api/state", headers={"Authorization": tma(emulator, STRANGER)})
        assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
        posted = await client.post(
            "api/logs",
            json={"arm": "cs", "minutes": 30, "action": "sneaky"},
            headers=write(emulator, STRANGER),
        )
        assert posted.status_code == 403
    assert await rows(db, "select 1 from execution_logs where action = 'sneaky'") == []


async def test_changes_through_the_api_are_the_chats_changes(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn) as (client, _):
        chat = Chat(emulator, ME)
        await chat.send("/start")
        await chat.send("/add cs 4 Read SICP chapter 3")
        await chat.send("/add cs 2 Exercises 3.1")
        state = (
            await client.get("api/state", headers={"Authorization": tma(emulator, ME)})
        ).json()
        first = state["theaters"][1]["items"][0]

        done = await client.post(f"api/items/{first['id']}/done", json={}, headers=write(emulator))
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["message"] == "Done: “Read SICP chapter 3”."
        cs = body["state"]["theaters"][1]
        assert [i["title"] for i in cs["items"]] == ["Exercises 3.1"] and cs["items"][0]["current"]
        (row,) = await rows(db, "select completed_at from nba_items where title like 'Read%'")
        assert row["completed_at"] is not None
        (view,) = await chat.send("/nba cs")
        assert "➤ Exercises 3.1" in view.plain_text

        headers = write(emulator)
        log = {"arm": "ibm", "minutes": 25, "action": "reviewed the roadmap"}
        logged = await client.post("api/logs", json=log, headers=headers)
        assert logged.status_code == 200 and logged.json()["message"] == "Logged 25 min in ibm."
        again = await client.post("api/logs", json=log, headers=headers)  # the same request id
        assert again.status_code == 200
        found = await rows(db, "select duration from execution_logs where action like 'reviewed%'")
        assert found == [{"duration": 25}]
        (history,) = await chat.send("/history ibm")
        assert "reviewed the roadmap" in history.plain_text

        added = await client.post(
            "api/items", json={"arm": "ibm", "gap": 5, "title": "Ship it"}, headers=write(emulator)
        )
        assert added.status_code == 200
        item = added.json()["state"]["theaters"][0]["items"][0]
        assert item["title"] == "Ship it" and item["current"]
        locked = await client.post(
            f"api/items/{item['id']}/lock", json={}, headers=write(emulator)
        )
        assert locked.json()["state"]["theaters"][0]["items"][0]["locked"]
        (view,) = await chat.send("/nba ibm")
        assert "🔒 locked" in view.plain_text

        regap = await client.patch(
            f"api/items/{item['id']}", json={"gap": 9}, headers=write(emulator)
        )
        assert regap.status_code == 422 and "between 0 and 5" in regap.json()["error"]
        regap = await client.patch(
            f"api/items/{item['id']}", json={"gap": 1}, headers=write(emulator)
        )
        assert regap.status_code == 200
        assert await rows(db, "select gap from nba_items where title = 'Ship it'") == [{"gap": 1}]

        reflected = await client.post(
            "api/reflections",
            json={"arm": "cs", "evidence": "Mock exam 78%"},
            headers=write(emulator),
        )
        assert reflected.status_code == 200
        assert reflected.json()["state"]["history"][0]["text"] == "Mock exam 78%"

        no_id = await client.post(
            "api/logs", json=log, headers={"Authorization": tma(emulator, ME)}
        )
        assert no_id.status_code == 400 and no_id.json()["code"] == "request_id"
        gone = await client.post(
            f"api/items/{uuid.uuid4()}/done", json={}, headers=write(emulator)
        )
        assert gone.status_code == 404
        long_day = await client.post(
            "api/logs",
            json={"arm": "cs", "minutes": 1000, "action": "a lot"},
            headers=write(emulator),
        )
        assert long_day.status_code == 409 and long_day.json()["code"] == "confirm"
        confirmed = await client.post(
            "api/logs",
            json={"arm": "cs", "minutes": 1000, "action": "a lot", "confirmed": True},
            headers=write(emulator),
        )
        assert confirmed.status_code == 200


async def test_menu_button_and_dashboard_buttons_with_webapp_url(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn) as (client, _):
        chat = Chat(emulator, ME)
        await chat.send("/start")
        button = emulator.menu_button(ME)
        assert button["type"] == "web_app"
        assert button["web_app"]["url"] == str(client.base_url)
        (status,) = await chat.send("/status")
        assert status.buttons[-1] == [(DASHBOARD_LABEL, None)]
        assert status.reply_markup is not None
        (button,) = status.reply_markup["inline_keyboard"][-1]
        assert button["web_app"] == {"url": str(client.base_url)}
        (nba,) = await chat.send("/nba")
        assert nba.buttons[-1] == [(DASHBOARD_LABEL, None)]


async def test_without_webapp_url_no_dashboard_and_no_buttons(bot: Any) -> None:
    chat = bot.chat(ME)
    await chat.send("/start")
    assert bot.emu.menu_button(ME)["type"] == "commands"
    (status,) = await chat.send("/status")
    assert not status.buttons


async def test_webhook_mode_serves_the_dashboard_on_the_webhook_port(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    port = free_port()
    settings = make_settings(
        webhook_url=f"http://127.0.0.1:{port}/telegram",
        webhook_secret=SECRET,
        webapp_url=f"http://127.0.0.1:{port}/app/",
        webapp_port=free_port(),  # not used in webhook mode
    )
    app = build_application(
        settings, database_dsn, token=emulator.token, base_url=emulator.base_url,
        base_file_url=emulator.file_base_url, run_migrations=False,
        deps_overrides={"clock": Clock()},
    )  # fmt: skip
    hook = Webhook(f"http://127.0.0.1:{port}/telegram", SECRET, port, listen="127.0.0.1")
    async with (
        running(app, webhook=hook),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        chat = Chat(emulator, ME)
        await chat.send("/start")
        assert (await client.get("/app/")).status_code == 200
        state = await client.get("/app/api/state", headers={"Authorization": tma(emulator, ME)})
        assert state.status_code == 200 and state.json()["theaters"][0]["arm"] == "ibm"
        assert (await client.get("/app/api/state")).status_code == 401
        with pytest.raises(httpx.ConnectError):  # no second server
            await client.get(f"http://127.0.0.1:{settings.webapp_port}/app/")


@pytest.mark.slow
async def test_python_m_bot_with_long_polling_serves_the_dashboard_on_webapp_port(
    db: Database, database_dsn: str, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    port = free_port()
    proc = bot_process(
        emulator, as_url(database_dsn), tmp_path,
        WEBAPP_URL=f"http://127.0.0.1:{port}/app/", WEBAPP_PORT=str(port),
    )  # fmt: skip
    try:
        await emulator.wait_calls("setMyCommands", 1, timeout=30)
        emulator.send_text(ME, "/start")
        await emulator.wait_messages(ME, 1, timeout=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/app/") as client:
            assert (await client.get("")).status_code == 200
            auth = {"Authorization": tma(emulator, ME)}
            state = await client.get("api/state", headers=auth)
            assert state.status_code == 200, state.text
            assert state.json()["theaters"][1]["arm"] == "cs"
            assert emulator.menu_button(ME)["type"] == "web_app"
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
        assert proc.returncode == 0, (tmp_path / "bot.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
async def test_a_log_sent_during_an_outage_is_kept_and_synced_like_the_chats(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    async with dashboard_running(
        emulator, dsn, data_dir=tmp_path / "data", db_connect_timeout_seconds=2
    ) as (url, _):
        chat = Chat(emulator, ME)
        await chat.send("/start")
        await asyncio.to_thread(pg.halt)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            log = {"arm": "cs", "minutes": 40, "action": "read offline"}
            kept = await client.post("api/logs", json=log, headers=write(emulator))
            assert kept.status_code == 202, kept.text
            assert kept.json()["queued"] is True
            assert "will sync" in kept.json()["message"]
            down = await client.get("api/state", headers={"Authorization": tma(emulator, ME)})
            assert down.status_code == 503 and down.json()["code"] == "unavailable"
        await asyncio.to_thread(pg.resume)
        (synced,) = await chat._wait(1, 30)
        assert "Synced: your log “read offline” in cs is saved" in synced.plain_text
    async with Database(dsn, max_size=1) as db, db.privileged() as uow:
        logs = [dict(r) for r in await uow.fetchall("select action, duration from execution_logs")]
    assert logs == [{"action": "read offline", "duration": 40}]


async def test_hostile_bodies_get_clear_json_refusals_and_change_nothing(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn) as (client, _):
        item = await linked_with_item(client, emulator)

        async def send(method: str, path: str, body: bytes) -> httpx.Response:
            answer = await client.request(method, path, content=body, headers=write(emulator))
            assert answer.headers["content-type"].startswith("application/json"), answer.text
            return answer

        # Nested deeper than Python's JSON parser recurses: a bad body, not a crash.
        for deep in (b"[" * 10_000, b'{"a":' * 2_000 + b"1" + b"}" * 2_000):
            answer = await send("POST", "api/logs", deep)
            assert answer.status_code == 400 and answer.json()["code"] == "bad_body"

        # A lone surrogate ("\ud800" in JSON) decodes to text no UTF-8 can hold.
        for method, path, body in (
            ("POST", "api/items", b'{"arm": "cs", "gap": 3, "title": "x\\ud800"}'),
            ("POST", "api/logs", b'{"arm": "cs", "minutes": 5, "action": "\\udfff"}'),
            ("POST", "api/reflections", b'{"arm": "cs", "evidence": "\\ud83d!"}'),
            ("PATCH", f"api/items/{item}", b'{"title": "\\ud800"}'),
        ):
            answer = await send(method, path, body)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["code"] == "invalid"
            assert "broken character" in answer.json()["error"]
        # An escaped pair is one whole character: kept.
        pair = b'{"arm": "cs", "gap": 3, "title": "\\ud83d\\ude00"}'
        added = await send("POST", "api/items", pair)
        assert added.status_code == 200, added.text

        # Over 16 KiB: 413 in JSON, on the dashboard's own server as next to the webhook.
        big = b'{"arm": "cs", "minutes": 5, "action": "' + b"x" * 20_000 + b'"}'
        answer = await send("POST", "api/logs", big)
        assert answer.status_code == 413 and answer.json()["code"] == "too_large"

        # The theater in a route, in any case (as in a body).
        await client.post(f"api/items/{item}/choose", json={}, headers=write(emulator))
        auto = await send("POST", "api/theaters/CS/auto", b"{}")
        assert auto.status_code == 200 and auto.json()["message"].startswith("cs:")

    assert await rows(db, "select action from execution_logs") == []
    assert await rows(db, "select 1 from reflections") == []
    titles = await rows(db, "select title from nba_items order by title")
    assert titles == [{"title": "Read SICP chapter 3"}, {"title": "😀"}]


async def test_a_request_id_used_again_for_another_change_is_refused_not_reported_done(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with dashboard(emulator, database_dsn) as (client, _):
        item = await linked_with_item(client, emulator)
        headers = write(emulator)
        progress = await client.post(
            f"api/items/{item}/progress", json={"minutes": 10}, headers=headers
        )
        assert progress.status_code == 200
        again = await client.post(
            f"api/items/{item}/progress", json={"minutes": 10}, headers=headers
        )  # a retry: the same answer, nothing more written
        assert again.status_code == 200 and again.json()["message"].startswith("Logged 10 min")

        for path, body in (
            (f"api/items/{item}/done", {}),
            (f"api/items/{item}/progress", {"minutes": 25}),
            ("api/logs", {"arm": "ibm", "minutes": 30, "action": "something else"}),
        ):
            reused = await client.post(path, json=body, headers=headers)
            assert reused.status_code == 409, (path, reused.text)
            assert reused.json()["code"] == "request_id_reused"

        done_headers = write(emulator)
        done = await client.post(f"api/items/{item}/done", json={}, headers=done_headers)
        assert done.status_code == 200
        retried = await client.post(f"api/items/{item}/done", json={}, headers=done_headers)
        assert retried.status_code == 200 and retried.json()["message"].startswith("Done:")

    logs = await rows(db, "select action, duration from execution_logs order by timestamp")
    assert logs == [
        {"action": "Read SICP chapter 3", "duration": 10},
        {"action": "Done: Read SICP chapter 3", "duration": None},
    ]
