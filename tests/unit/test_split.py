"""Long replies are cut into parts that are each valid Telegram HTML."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.render import esc, split_message

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


@pytest.mark.slow
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
