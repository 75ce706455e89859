"""The Bot API emulator's entity parsers (bot/local_api): HTML and MarkdownV2 as Telegram
parses them, offsets in UTF-16 code units, and its error texts (the emulator over HTTP:
tests/integration/test_local_api.py)."""

from __future__ import annotations

import pytest

from bot.local_api import EntityParseError, parse_html, parse_markdown_v2


def test_parse_html_entities_use_utf16_offsets() -> None:
    parsed = parse_html('<b>😀x</b> <i>y</i> <a href="https://e.x/?a=1&amp;b=2">l</a>')
    assert parsed.text == "😀x y l"
    assert parsed.entities == [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "italic", "offset": 4, "length": 1},
        {"type": "text_link", "offset": 6, "length": 1, "url": "https://e.x/?a=1&b=2"},
    ]


def test_parse_html_pre_language_blockquote_and_trim() -> None:
    parsed = parse_html(
        '  <pre><code class="language-py">x = 1</code></pre>\n'
        "<blockquote expandable>q &lt;&#60;&#x3C;&quot;</blockquote>\n"
    )
    assert parsed.text == 'x = 1\nq <<<"'
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "py"},
        {"type": "expandable_blockquote", "offset": 6, "length": 6},
    ]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unescaped "<"'),
        ("a > b", 'Unescaped ">"'),
        ("Q&A", 'Unescaped "&"'),
        ("&nbsp;", 'Unescaped "&"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("<foo>x</foo>", 'Unsupported start tag "foo"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<blockquote>a<blockquote>b</blockquote></blockquote>", "can't be nested"),
        ("x</b>", "Unexpected end tag"),
        ("<br/>", 'Unsupported start tag "br/"'),
    ],
)
def test_parse_html_rejects_invalid_markup(source: str, reason: str) -> None:
    with pytest.raises(EntityParseError, match=r"(?i)byte offset|can't find end") as info:
        parse_html(source)
    assert reason in str(info.value)


def test_parse_html_lenient_mode_matches_real_telegram() -> None:
    assert parse_html("Q&A > x", strict=False).text == "Q&A > x"
    with pytest.raises(EntityParseError):
        parse_html("a < b", strict=False)


def test_parse_markdown_v2() -> None:
    parsed = parse_markdown_v2(r"*bold* _it_ __u__ ||s|| `c\`` [l](https://e\.x) 1\.5\!")
    assert parsed.text == "bold it u s c` l 1.5!"
    assert [e["type"] for e in parsed.entities] == [
        "bold",
        "italic",
        "underline",
        "spoiler",
        "code",
        "text_link",
    ]
    assert parsed.entities[-1]["url"] == "https://e.x"
    with pytest.raises(EntityParseError, match=r"(?i)Character '\.' is reserved"):
        parse_markdown_v2("Hello.")
    with pytest.raises(
        EntityParseError, match=r"(?i)Can't find end of Bold entity at byte offset 0"
    ):
        parse_markdown_v2("*bold")


@pytest.mark.parametrize(
    ("parse", "source"),
    [
        ("parse_html", '<a href="tg://user?id=42">Ann</a> hi'),
        ("parse_markdown_v2", "[Ann](tg://user?id=42) hi"),
        ("parse_markdown", "[Ann](tg://user?id=42) hi"),
    ],
)
def test_user_links_become_text_mentions(parse: str, source: str) -> None:
    import bot.local_api as api

    (entity,) = getattr(api, parse)(source).entities
    assert entity["type"] == "text_mention"
    assert entity["user"]["id"] == 42 and (entity["offset"], entity["length"]) == (0, 3)
