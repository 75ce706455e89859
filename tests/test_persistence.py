"""PostgresPersistence against the real PostgreSQL, up to a PTB Application that restarts."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PersistenceInput,
    filters,
)
from telegram.request import BaseRequest, RequestData

from bot.persistence import PostgresPersistence
from services.db import Database
from services.repos import bot_persistence as repo

USER_ID = 4242  # a private chat: chat id == user id
ASK = 1


async def stored(db: Database, kind: str) -> dict[str, Any]:
    async with db.privileged() as uow:
        return await repo.load_kind(uow, kind)


# Conversations


async def test_conversation_states_round_trip_with_their_types(db: Database) -> None:
    writer = PostgresPersistence(db)
    await writer.update_conversation("flow", (1, 2), "ASK_TITLE")
    await writer.update_conversation("flow", (3, 4), 7)
    await writer.update_conversation("flow", (5, "inline-id"), 0)
    await writer.update_conversation("other", (1, 2), 9)

    loaded = await PostgresPersistence(db).get_conversations("flow")

    assert loaded == {(1, 2): "ASK_TITLE", (3, 4): 7, (5, "inline-id"): 0}
    assert all(type(key) is tuple for key in loaded)
    assert type(loaded[(3, 4)]) is int
    assert await PostgresPersistence(db).get_conversations("other") == {(1, 2): 9}
    assert await stored(db, "conv:flow") == {
        "[1,2]": "ASK_TITLE",
        "[3,4]": 7,
        '[5,"inline-id"]': 0,
    }


async def test_a_none_state_deletes_the_row(db: Database) -> None:
    persistence = PostgresPersistence(db)
    await persistence.update_conversation("flow", (1, 2), "ASK")
    await persistence.update_conversation("flow", (3, 4), "ASK")

    await persistence.update_conversation("flow", (1, 2), None)

    assert await stored(db, "conv:flow") == {"[3,4]": "ASK"}
    assert await PostgresPersistence(db).get_conversations("flow") == {(3, 4): "ASK"}


async def test_a_state_that_is_not_json_drops_the_stale_one_with_a_warning(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.persistence")
    persistence = PostgresPersistence(db)
    await persistence.update_conversation("flow", (1, 2), "ASK")

    await persistence.update_conversation("flow", (1, 2), object())

    assert await stored(db, "conv:flow") == {}
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "'flow'" in caplog.text


# user_data, chat_data, bot_data


async def test_user_data_round_trips_and_is_replaced_by_a_later_write(db: Database) -> None:
    first = PostgresPersistence(db)
    await first.update_user_data(7, {"draft": "old"})
    data = {
        "theater": "cs",
        "minutes": 45,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "items": [1, "two", None],
        "nested": {"a": [True]},
    }
    await PostgresPersistence(db).update_user_data(7, data)  # a second instance upserts
    await first.update_user_data(8, {"theater": "ibm"})

    assert await PostgresPersistence(db).get_user_data() == {7: data, 8: {"theater": "ibm"}}


async def test_dropped_or_emptied_user_data_leaves_no_row(db: Database) -> None:
    persistence = PostgresPersistence(db)
    await persistence.update_user_data(7, {"a": 1})
    await persistence.update_user_data(8, {"b": 2})
    await persistence.update_user_data(9, {"c": 3})

    await persistence.drop_user_data(7)
    await persistence.update_user_data(8, {})

    assert await stored(db, "user") == {"9": {"c": 3}}


async def test_values_that_are_not_json_are_skipped_with_a_warning_naming_only_the_key(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.persistence")
    persistence = PostgresPersistence(db)
    data: dict[Any, Any] = {
        "kept": "yes",
        "secret_set": {"hunter2"},
        "as_tuple": ("hunter2",),
        "nan": float("nan"),
        5: "int key",
    }

    await persistence.update_user_data(7, data)
    await persistence.update_user_data(7, data)  # warned once per key, not on every flush

    assert await stored(db, "user") == {"7": {"kept": "yes"}}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    for named in ("key 'secret_set':", "key 'as_tuple':", "key 'nan':", "key 5:"):
        assert sum(named in m for m in messages) == 1, named
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert "hunter2" not in caplog.text


async def test_chat_and_bot_data_round_trip_when_enabled(db: Database) -> None:
    every = PersistenceInput(bot_data=True, chat_data=True, user_data=True, callback_data=False)
    persistence = PostgresPersistence(db, store_data=every)
    await persistence.update_chat_data(-100, {"pinned": 3})
    await persistence.update_bot_data({"version": 2})

    fresh = PostgresPersistence(db, store_data=every)
    assert await fresh.get_chat_data() == {-100: {"pinned": 3}}
    assert await fresh.get_bot_data() == {"version": 2}
    await fresh.drop_chat_data(-100)
    assert await fresh.get_chat_data() == {}


async def test_defaults_store_only_user_data_and_refuse_callback_data(db: Database) -> None:
    persistence = PostgresPersistence(db)
    assert persistence.store_data == PersistenceInput(
        bot_data=False, chat_data=False, user_data=True, callback_data=False
    )
    assert persistence.update_interval == 5
    assert await persistence.get_bot_data() == {}
    with pytest.raises(ValueError, match="callback_data"):
        PostgresPersistence(db, store_data=PersistenceInput(callback_data=True))


async def test_a_closed_pool_is_prepared_and_opened_once_on_first_use(
    db: Database, database_dsn: str
) -> None:
    fresh = Database(database_dsn, max_size=2)
    pool_closed_during_prepare: list[bool] = []

    async def prepare() -> None:
        await asyncio.sleep(0.01)
        pool_closed_during_prepare.append(fresh.pool.closed)

    persistence = PostgresPersistence(fresh, prepare=prepare)
    try:
        users, conversations = await asyncio.gather(
            persistence.get_user_data(), persistence.get_conversations("flow")
        )
        assert (users, conversations) == ({}, {})
        assert pool_closed_during_prepare == [True]
        assert not fresh.pool.closed
        await persistence.flush()
    finally:
        await fresh.close()


# A real Application that restarts


class LocalBotApi(BaseRequest):
    """Answers getMe locally and refuses any other Bot API call, so no test touches the network."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = None,
        write_timeout: object = None,
        connect_timeout: object = None,
        pool_timeout: object = None,
    ) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[-1]
        self.calls.append(endpoint)
        if endpoint == "getMe":
            me = {"id": 123456, "is_bot": True, "first_name": "Test", "username": "test_bot"}
            return 200, json.dumps({"ok": True, "result": me}).encode()
        refusal = {"ok": False, "error_code": 400, "description": "not served in tests"}
        return 400, json.dumps(refusal).encode()


def demo_app(
    persistence: PostgresPersistence, seen: list[str], api: LocalBotApi
) -> Application[Any, Any, Any, Any, Any, Any]:
    """A persistent two-step conversation whose callbacks record instead of replying."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        seen.append("start")
        assert context.user_data is not None
        context.user_data["topic"] = "demo"
        return ASK

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        assert context.user_data is not None
        seen.append(f"answer:{context.user_data.get('topic')}")
        return ConversationHandler.END

    async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        seen.append("cancel")
        return ConversationHandler.END

    app = (
        ApplicationBuilder()
        .token("123456:TEST")
        .request(api)
        .get_updates_request(LocalBotApi())
        .updater(None)
        .persistence(persistence)
        .build()
    )
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("start", start)],
            states={ASK: [MessageHandler(filters.TEXT & ~filters.COMMAND, answer)]},
            fallbacks=[CommandHandler("cancel", cancel)],
            name="demo",
            persistent=True,
        )
    )
    return app


def message(app: Application[Any, Any, Any, Any, Any, Any], update_id: int, text: str) -> Update:
    payload: dict[str, Any] = {
        "message_id": update_id,
        "date": 1_764_000_000,
        "chat": {"id": USER_ID, "type": "private", "first_name": "Ada"},
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ada"},
        "text": text,
    }
    if text.startswith("/"):
        payload["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return Update.de_json({"update_id": update_id, "message": payload}, app.bot)


async def test_a_conversation_resumes_after_the_application_restarts(db: Database) -> None:
    seen: list[str] = []
    api = LocalBotApi()

    first = demo_app(PostgresPersistence(db), seen, api)
    await first.initialize()
    await first.process_update(message(first, 1, "/start"))
    await first.shutdown()  # writes the persistence one last time, then flushes

    assert seen == ["start"]
    assert await stored(db, "conv:demo") == {f"[{USER_ID},{USER_ID}]": ASK}
    assert await stored(db, "user") == {str(USER_ID): {"topic": "demo"}}

    second = demo_app(PostgresPersistence(db), seen, api)
    await second.initialize()
    await second.process_update(message(second, 2, "my answer"))
    await second.process_update(message(second, 3, "after the end"))
    await second.shutdown()

    assert seen == ["start", "answer:demo"]  # state ASK and user_data survived; then it ended
    assert await stored(db, "conv:demo") == {}
    assert api.calls == ["getMe", "getMe"]  # nothing but the two logins reached the Bot API
