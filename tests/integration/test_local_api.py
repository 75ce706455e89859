"""Tests for the local Bot API emulator, driven through PTB's real ``Bot`` and ``Application``."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonWebApp,
    Message,
    MessageEntity,
    ReplyKeyboardMarkup,
    Update,
    WebAppInfo,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.local_api import (
    BotApiEmulator,
    FloodLimits,
    utf16_len,
)
from bot.local_api.images import _tiny_png

USER = 42


@pytest.fixture
def emu() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emulator:
        emulator.register_user(USER, first_name="Alice", username="alice")
        yield emulator
    assert not emulator.running


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.file_base_url) as tg_bot:
        yield tg_bot


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


# ------------------------------------------------------------------------------------------
# Basic API
# ------------------------------------------------------------------------------------------


async def test_get_me_bad_token_and_unknown_method(emu: BotApiEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == "aelpher_test_bot"
    assert me.is_bot
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=emu.base_url):
            pass
    assert emu.calls("getMe")[-1].status == 401
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendNothing", api_kwargs={"chat_id": USER})
    assert emu.calls("sendNothing")[0].status == 404


async def test_text_length_limits(emu: BotApiEmulator, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "a" * 4097)
    await bot.send_message(USER, "a" * 4096)
    # Markup does not count; entities count as one character each.
    await bot.send_message(USER, "<b>" + "a" * 4090 + "</b>&lt;&gt;&amp;&quot;<i>xy</i>", "HTML")
    # Telegram counts UTF-16 code units: an emoji outside the BMP counts twice.
    await bot.send_message(USER, "😀" * 2048)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2048 + "a")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, " \n ")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "<b></b>", parse_mode="HTML")
    sent = emu.sent(USER)
    assert [utf16_len(m.plain_text) for m in sent] == [4096, 4096, 4096]
    assert sent[1].text is not None and sent[1].text.startswith("<b>")
    assert sent[1].entities[0] == {"type": "bold", "offset": 0, "length": 4090}


async def test_html_validation_over_http(emu: BotApiEmulator, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: .* at byte offset 2"):
        await bot.send_message(USER, "a < b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, "<b>x</i>", parse_mode="HTML")
    raw = "Tom & Jerry <3 > 2"
    message = await bot.send_message(USER, f"<b>{html.escape(raw)}</b>", parse_mode="HTML")
    assert message.text == raw
    assert message.entities == (MessageEntity("bold", 0, len(raw)),)
    with pytest.raises(BadRequest, match=r"(?i)unsupported parse_mode"):
        await bot.send_message(USER, "x", parse_mode="BBCode")
    with pytest.raises(BadRequest, match=r"(?i)Character '!' is reserved"):
        await bot.send_message(USER, "Hi!", parse_mode="MarkdownV2")


async def test_unknown_chat_and_blocked_user(emu: BotApiEmulator, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(777, "hello")
    emu.block_user(USER)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(USER, "hello")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(USER, "typing")
    emu.unblock_user(USER)
    await bot.send_message(USER, "welcome back")
    updates = await bot.get_updates(allowed_updates=["my_chat_member"])
    statuses = [u.my_chat_member.new_chat_member.status for u in updates if u.my_chat_member]
    assert statuses == ["kicked", "member"]


# ------------------------------------------------------------------------------------------
# Keyboards, edits and callback queries
# ------------------------------------------------------------------------------------------


async def test_callback_data_is_limited_to_64_utf8_bytes(emu: BotApiEmulator, bot: Bot) -> None:
    for data in ("x" * 64, "я" * 32, "😀" * 16):
        await bot.send_message(USER, "ok", reply_markup=keyboard([("b", data)]))
    for data in ("x" * 65, "я" * 32 + "x", "😀" * 16 + "x"):
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(USER, "bad", reply_markup=keyboard([("b", data)]))
    assert [m.buttons[0][0][1] for m in emu.sent(USER)] == ["x" * 64, "я" * 32, "😀" * 16]


async def test_keyboard_shape_limits(emu: BotApiEmulator, bot: Bot) -> None:
    row_of_8 = [(str(i), str(i)) for i in range(8)]
    await bot.send_message(USER, "8 per row", reply_markup=keyboard(row_of_8))
    with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
        await bot.send_message(USER, "9", reply_markup=keyboard([*row_of_8, ("8", "8")]))
    with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
        await bot.send_message(
            USER, "101", reply_markup=keyboard(*([row_of_8] * 12), [("x", "x")] * 5)
        )
    with pytest.raises(BadRequest, match=r"(?i)Text buttons are unallowed"):
        await bot.send_message(
            USER, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("no action")]])
        )
    await bot.send_message(USER, "reply kb", reply_markup=ReplyKeyboardMarkup([["Yes", "No"]]))
    last = emu.sent(USER)[-1]
    assert last.buttons == [[("Yes", None), ("No", None)]]
    assert "reply_markup" not in last.message  # Telegram only echoes inline keyboards


async def test_web_app_buttons_and_menu_button_need_an_https_url(
    emu: BotApiEmulator, bot: Bot
) -> None:
    for url in ("https://bot.example.com/app/", "http://127.0.0.1:8080/app/"):
        button = InlineKeyboardButton("Open", web_app=WebAppInfo(url))
        await bot.send_message(USER, "ok", reply_markup=InlineKeyboardMarkup([[button]]))
        await bot.set_chat_menu_button(USER, MenuButtonWebApp("Dashboard", WebAppInfo(url)))
        assert emu.menu_button(USER) == {
            "type": "web_app", "text": "Dashboard", "web_app": {"url": url}
        }  # fmt: skip
    for url in ("http://bot.example.com/app/", "javascript:alert(1)", "https:///app/"):
        button = InlineKeyboardButton("Open", web_app=WebAppInfo(url))
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_URL_INVALID"):
            await bot.send_message(USER, "bad", reply_markup=InlineKeyboardMarkup([[button]]))
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_URL_INVALID"):
            await bot.set_chat_menu_button(USER, MenuButtonWebApp("Dashboard", WebAppInfo(url)))
    assert emu.menu_button(USER)["web_app"] == {"url": "http://127.0.0.1:8080/app/"}


async def test_edit_message_text_rules(emu: BotApiEmulator, bot: Bot) -> None:
    markup = keyboard([("Yes", "y"), ("No", "n")])
    message = await bot.send_message(USER, "<b>Question?</b>", "HTML", reply_markup=markup)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<b>Question?</b>", USER, message.message_id, parse_mode="HTML", reply_markup=markup
        )
    # Same visible text but different formatting is a modification.
    await bot.edit_message_text("Question?", USER, message.message_id, reply_markup=markup)
    # Editing without reply_markup removes the inline keyboard, as Telegram does.
    edited = await bot.edit_message_text("Answered", USER, message.message_id)
    assert isinstance(edited, Message)
    assert edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", USER, 999)
    stored = emu.message(USER, message.message_id)
    assert stored.plain_text == "Answered"
    assert stored.edits == 2
    assert [v.plain_text for v in stored.history] == ["Question?", "Question?"]
    assert stored.history[0].entities == [{"type": "bold", "offset": 0, "length": 9}]


async def test_callback_query_answers(emu: BotApiEmulator, bot: Bot) -> None:
    message = await bot.send_message(USER, "Pick", reply_markup=keyboard([("A", "pick:a")]))
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("12345")
    with pytest.raises(LookupError):
        emu.press(USER, message.message_id, "pick:zzz")
    update = emu.press(USER, message.message_id, button_text="A")
    query_id = update["callback_query"]["id"]
    [received] = await bot.get_updates()
    assert received.callback_query is not None
    assert received.callback_query.data == "pick:a"
    assert received.callback_query.message is not None
    assert received.callback_query.message.message_id == message.message_id
    with pytest.raises(BadRequest, match=r"(?i)MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query_id, text="x" * 201)
    await bot.answer_callback_query(query_id, text="x" * 200, show_alert=True)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    [answer] = emu.callback_answers
    assert (answer.query_id, answer.show_alert) == (query_id, True)


# ------------------------------------------------------------------------------------------
# Fault injection, files, updates
# ------------------------------------------------------------------------------------------


async def test_fail_next(emu: BotApiEmulator, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # opt in to PTB's non-deprecated RetryAfter
    emu.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "x")
    assert info.value.retry_after == dt.timedelta(seconds=3)
    emu.fail_next("sendmessage", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
            await bot.send_message(USER, "x")
    await bot.send_message(USER, "finally")
    assert [m.plain_text for m in emu.sent(USER)] == ["finally"]
    assert [c.status for c in emu.calls("sendMessage")] == [429, 500, 500, 200]


async def test_flood_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    with BotApiEmulator(flood_limits=FloodLimits(private_per_second=2)) as emu:
        emu.register_user(USER)
        async with Bot(emu.token, base_url=emu.base_url) as tg_bot:
            await tg_bot.send_message(USER, "1")
            await tg_bot.send_message(USER, "2")
            with pytest.raises(RetryAfter):
                await tg_bot.send_message(USER, "3")


async def test_documents_and_photos_store_bytes(emu: BotApiEmulator, bot: Bot) -> None:
    doc = await bot.send_document(
        USER,
        io.BytesIO(b"a,b\n1,2\n"),
        filename="report.csv",
        caption="<i>csv</i>",
        parse_mode="HTML",
    )
    assert doc.document is not None and doc.document.file_name == "report.csv"
    assert doc.caption == "csv"
    png = _tiny_png(6, 3)
    photo = await bot.send_photo(USER, png, caption="chart")
    assert (photo.photo[-1].width, photo.photo[-1].height) == (6, 3)
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, b"not an image")
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await bot.send_photo(USER, png, caption="c" * 1025)
    sent_doc, sent_photo = emu.sent(USER)
    assert (sent_doc.kind, sent_doc.document, sent_doc.filename) == (
        "document",
        b"a,b\n1,2\n",
        "report.csv",
    )
    assert (sent_photo.kind, sent_photo.photo, sent_photo.caption) == ("photo", png, "chart")
    # The bot can resend by file_id and download the bytes.
    await bot.send_photo(USER, photo.photo[-1].file_id)
    tg_file = await bot.get_file(photo.photo[-1].file_id)
    assert bytes(await tg_file.download_as_bytearray()) == png
    assert emu.calls("sendDocument")[0].transport == "multipart"


async def test_get_updates_semantics(emu: BotApiEmulator, bot: Bot) -> None:
    first = emu.send_text(USER, "/start@aelpher_test_bot now")
    emu.send_text(USER, "hello")
    emu.send_sticker(USER)
    updates = await bot.get_updates()
    assert all(isinstance(u, Update) for u in updates)
    assert [u.update_id for u in updates] == [
        first["update_id"],
        first["update_id"] + 1,
        first["update_id"] + 2,
    ]
    command = updates[0].message
    assert command is not None and command.text == "/start@aelpher_test_bot now"
    assert command.entities == (MessageEntity("bot_command", 0, 23),)
    assert updates[2].message is not None and updates[2].message.sticker is not None
    # Not confirmed yet: delivered again; confirming with offset removes them.
    assert len(await bot.get_updates()) == 3
    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
    assert emu.pending_updates == 0
    # Replaying an update id that was already confirmed delivers it once more.
    emu.send_raw_update(first)
    [replayed] = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert replayed.update_id == first["update_id"]


async def test_long_polling_wakes_up_and_conflicts(emu: BotApiEmulator, bot: Bot) -> None:
    threading.Timer(0.2, emu.send_text, args=(USER, "late")).start()
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    assert 0.1 < time.monotonic() - started < 2
    assert [u.message.text for u in updates if u.message] == ["late"]
    # A second bot instance polling terminates the first one's request, like Telegram.
    offset = updates[-1].update_id + 1
    older = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await asyncio.sleep(0.2)
    async with Bot(emu.token, base_url=emu.base_url) as second:
        started = time.monotonic()
        assert await second.get_updates(offset=offset, timeout=dt.timedelta(seconds=0.2)) == ()
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await older
        assert time.monotonic() - started < 1


async def test_webhook_delivery_with_secret_and_retries(emu: BotApiEmulator, bot: Bot) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []
    statuses = iter([500, 200, 200])

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = next(statuses, 200)
            if status == 200:
                received.append(
                    (json.loads(body), self.headers.get("X-Telegram-Bot-Api-Secret-Token"))
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert await bot.set_webhook(url, secret_token="s3cret-token")
        info = await bot.get_webhook_info()
        assert info.url == url
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        emu.send_text(USER, "one")
        emu.send_text(USER, "two")
        await asyncio.to_thread(emu.wait_for_updates_consumed, 5)
        assert [(u["message"]["text"], secret) for u, secret in received] == [
            ("one", "s3cret-token"),
            ("two", "s3cret-token"),
        ]
        attempts = [(d.attempt, d.status) for d in emu.webhook_deliveries]
        assert attempts == [(1, 500), (2, 200), (1, 200)]
        assert await bot.delete_webhook()
        emu.send_text(USER, "three")
        [update] = await bot.get_updates()
        assert update.message is not None and update.message.text == "three"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_commands_and_get_chat(emu: BotApiEmulator, bot: Bot) -> None:
    await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Command", "x")])
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    chat = await bot.get_chat(USER)
    assert (chat.id, chat.username) == (USER, "alice")
    assert await bot.send_chat_action(USER, "typing")
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(USER, "dancing")


async def test_listeners_clear_and_restart(emu: BotApiEmulator, bot: Bot) -> None:
    events: list[tuple[str, str]] = []
    unsubscribe = emu.subscribe(lambda event, msg: events.append((event, msg.plain_text)))
    old = await bot.send_message(USER, "before clear")
    emu.clear()
    assert emu.sent() == [] and emu.calls() == []
    # The server still knows the message: the bot can edit and delete it.
    await bot.edit_message_text("edited", USER, old.message_id)
    assert await bot.delete_message(USER, old.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(USER, old.message_id)
    assert emu.message(USER, old.message_id).deleted
    unsubscribe()
    await bot.send_message(USER, "unobserved")
    assert events == [("sent", "before clear"), ("edited", "edited"), ("deleted", "edited")]
    assert [m.plain_text for m in emu.sent(USER)] == ["unobserved"]
    emu.stop()
    emu.start()  # restartable; state is kept, the port changes
    async with Bot(emu.token, base_url=emu.base_url) as again:
        await again.send_message(USER, "after restart")
    assert len(emu.sent(USER)) == 2


def test_stop_ends_pending_long_poll_and_thread() -> None:
    emu = BotApiEmulator()
    emu.start()
    result: dict[str, float] = {}

    async def poll() -> None:
        async with Bot(emu.token, base_url=emu.base_url) as tg_bot:
            started = time.monotonic()
            await tg_bot.get_updates(timeout=30)
            result["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=asyncio.run, args=(poll(),))
    poller.start()
    emu.wait_for_calls("getMe", 1, timeout=5)
    time.sleep(0.2)
    emu.stop()
    poller.join(5)
    assert not poller.is_alive()
    assert result["elapsed"] < 3
    assert not emu.running
    assert not any(t.name == "bot-api-emulator" and t.is_alive() for t in threading.enumerate())


# ------------------------------------------------------------------------------------------
# End to end with a real Application
# ------------------------------------------------------------------------------------------


async def start_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_html(
        "<b>Hi!</b> Pick one:",
        reply_markup=keyboard([("Red", "color:red"), ("Blue", "color:blue")]),
    )


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


async def on_color(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer(f"You picked {query.data.split(':')[1]}")
    await query.edit_message_text(f"Picked <b>{query.data.split(':')[1]}</b>", parse_mode="HTML")


async def test_application_end_to_end(emu: BotApiEmulator) -> None:
    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(emu.token)
        .base_url(emu.base_url)
        .base_file_url(emu.file_base_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start_cmd))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_handler(CallbackQueryHandler(on_color, pattern=r"^color:"))
    await app.initialize()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    await app.start()
    try:
        emu.send_text(USER, "/start")
        [welcome] = await emu.wait_messages(USER, 1, timeout=5)
        assert welcome.plain_text == "Hi! Pick one:"
        assert welcome.buttons == [[("Red", "color:red"), ("Blue", "color:blue")]]
        emu.send_text(USER, "ping")
        messages = await emu.wait_messages(USER, 2, timeout=5)
        assert messages[1].plain_text == "echo: ping"
        emu.press(USER, welcome.message_id, "color:blue")
        await emu.wait_calls("editMessageText", 1, timeout=5)
        [answer] = emu.callback_answers
        assert answer.text == "You picked blue"
        emu.send_text(USER, "/start")
        await emu.wait_idle(quiet=0.05, timeout=5)
        assert len(emu.sent(USER)) == 3
        edited = emu.message(USER, welcome.message_id)
        assert edited.plain_text == "Picked blue"
        assert edited.buttons == []
        assert edited.edits == 1
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert all(c.ok for c in emu.calls() if c.method != "getUpdates")
    assert emu.pending_updates == 0
