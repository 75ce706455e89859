"""Long replies are cut into parts that are each valid Telegram HTML."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.local_api import SentMessage
from handlers.render import esc, split_message
from services.db import Database, TelegramUser
from tests.conftest import BotEnv

_TAGS = ("b", "i", "code", "u")


class _Balance(HTMLParser):
    """Fails on a closing tag that does not close the innermost open one."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible(part: str) -> str:
    checker = _Balance()
    checker.feed(part)
    checker.close()
    assert checker.stack == [], f"left open: {checker.stack}"
    return "".join(checker.text)


def _chunks(draw: st.DrawFn) -> str:
    pieces = []
    for _ in range(draw(st.integers(1, 40))):
        words = esc(draw(st.text(st.sampled_from("ab <&>\n\u00e9"), max_size=300)))
        tag = draw(st.sampled_from((*_TAGS, None)))
        pieces.append(f"<{tag}>{words}</{tag}>" if tag else words)
        pieces.append(draw(st.sampled_from(("\n", " ", ""))))
    return "".join(pieces)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.composite(_chunks)(), st.integers(20, 400))
def test_every_part_is_balanced_within_the_limit_and_nothing_is_lost(
    text: str, limit: int
) -> None:
    parts = split_message(text, limit)
    assert all(len(p) <= limit for p in parts)
    pieces = [visible(p) for p in parts]
    squeeze = lambda s: re.sub(r"\s+", "", s)  # noqa: E731 - cuts may drop a newline
    if squeeze(visible(text)):
        assert squeeze("".join(pieces)) == squeeze(visible(text))
    else:  # nothing to show: one placeholder, not an empty message Telegram would refuse
        assert parts == ["…"] or (len(text) <= limit and parts == [text])


def test_a_multiline_italic_detail_cut_in_the_middle_is_closed_and_reopened() -> None:
    text = "<b>Recent</b>\n    <i>" + "\n".join(f"line {n}" for n in range(30)) + "</i>"
    first, *rest = split_message(text, 60)
    assert first.endswith("</i>") and rest and rest[0].startswith("<i>")
    for part in (first, *rest):
        visible(part)


def test_entities_are_never_cut() -> None:
    text = "x" * 7 + html.escape("<&>" * 20)
    for part in split_message(text, 10):
        assert not re.search(r"&[a-z]*$", part), part
        visible(part)


async def history_after(
    bot: BotEnv, database: Database, tg: int, insert: str, command: str
) -> list[SentMessage]:
    """/start, rows inserted as the user (``insert``, SQL as the Data API could run it), then
    ``command``: every message the bot sent for it."""
    chat = bot.chat(tg)
    await chat.send("/start")
    async with database.user_uow(TelegramUser(tg)) as uow:
        await uow.execute(insert)
        await uow.commit()
    before = len(bot.emu.sent(tg))
    await chat.send(command, replies=1)
    await chat.settle(quiet=0.5)
    return bot.emu.sent(tg)[before:]


async def test_history_with_multiline_details_at_the_cut_reaches_telegram(
    bot: BotEnv, database: Database
) -> None:
    """/history over 4096 characters with multi-line details: every part is accepted."""
    details = "\n".join(f"step {n}: {'ü & <ok> ' * 6}" for n in range(8))
    parts = await history_after(
        bot,
        database,
        4242,
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp)"
        f" select auth.uid(), 'cs', 'session ' || n, '{details}', 30,"
        " timestamptz '2026-12-01 09:00Z' + n * interval '1 minute'"
        " from generate_series(0, 11) n",
        "/history cs 12",
    )
    texts = [p.plain_text for p in parts]
    assert not any("went wrong" in t for t in texts)
    joined = "".join(texts)
    assert all(f"session {n}" in joined for n in range(12))
    assert joined.count("step 7:") == 12  # every line of every detail arrived
    refused = [c.description for c in bot.emu.calls("sendMessage") if not c.ok]
    assert refused == []


async def test_history_shows_at_most_the_bots_own_limit_of_text_per_entry(
    bot: BotEnv, database: Database
) -> None:
    """Rows written through the Data API may hold megabytes; /history shows each entry up to
    the 2 000 characters the bot itself accepts."""
    parts = await history_after(
        bot,
        database,
        4243,
        "insert into reflections (user_id, arm_type, evidence, context) values"
        " (auth.uid(), 'cs', repeat('e', 100000), repeat('c', 100000))",
        "/history cs 1",
    )
    texts = [p.plain_text for p in parts]
    joined = "".join(texts)
    assert len(joined) < 4200  # 2 000 + 2 000 characters and a header, not 200 000
    assert joined.count("e") >= 1999 and "e" * 2000 not in joined and "…" in joined


async def test_a_huge_history_is_a_few_messages_and_says_what_it_left_out(
    bot: BotEnv, database: Database
) -> None:
    parts = await history_after(
        bot,
        database,
        4244,
        "insert into execution_logs (user_id, arm_type, action, details, duration, timestamp)"
        " select auth.uid(), 'cs', 'entry ' || n, repeat('<&> ', 1000), 5,"
        " now() - n * interval '1 minute' from generate_series(1, 30) n",
        "/history cs 30",
    )
    assert 1 < len(parts) <= 5
    assert "more. Ask for fewer" in parts[-1].plain_text and "/export" in parts[-1].plain_text
    assert "entry 1 " in parts[0].plain_text  # the newest first
