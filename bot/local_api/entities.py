"""Formatted text: Telegram's HTML, MarkdownV2 and Markdown parsed into the visible text
and its message entities (offsets and lengths in UTF-16 code units, as Telegram counts).

Over 600 lines on purpose: it is one job, three parsers of Telegram's markup that share
their helpers (UTF-16 counting, user mentions, byte offsets in errors, the final trim and
sort in ``_finish_parsed``) and one dispatcher, :func:`parse_text`. Split by language,
each part would import the others' private helpers and none would read more easily.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bot.local_api.limits import MAX_ENTITIES
from bot.local_api.records import JSONDict


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le")) // 2


def _char16(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


class EntityParseError(ValueError):
    """The formatted text could not be parsed; ``str(exc)`` is Telegram's reason text."""

    def __init__(self, reason: str, byte_offset: int | None = None) -> None:
        self.reason = reason
        self.byte_offset = byte_offset
        text = reason if byte_offset is None else f"{reason} at byte offset {byte_offset}"
        super().__init__(text)


@dataclass(frozen=True)
class ParsedText:
    """Visible text plus message entities (offsets and lengths in UTF-16 code units)."""

    text: str
    entities: list[JSONDict]


UserLookup = Callable[[int], JSONDict | None]


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8", "surrogatepass"))


def _decode_html_entity(source: str, index: int) -> tuple[str, int] | None:
    """Decode an HTML entity starting at ``source[index] == "&"``.

    Returns the decoded character and the index just past the ``;``, or ``None``.
    """
    end = source.find(";", index + 1, index + 12)
    if end == -1:
        return None
    body = source[index + 1 : end]
    named = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
    if body in named:
        return named[body], end + 1
    code: int | None = None
    if body[:2] in ("#x", "#X") and len(body) > 2:
        with contextlib.suppress(ValueError):
            code = int(body[2:], 16)
    elif body[:1] == "#" and body[1:].isdigit():
        code = int(body[1:])
    if code is None or code <= 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end + 1


_HTML_TAG_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}


@dataclass
class _OpenTag:
    name: str
    entity_type: str
    offset: int
    byte_offset: int
    attrs: dict[str, str]
    language: str | None = None


def _is_space(char: str) -> bool:
    return char in " \t\n\r\x0b\x0c"


def _mentioned_user(url: str, user_lookup: UserLookup | None) -> JSONDict | None:
    """The user a ``tg://user?id=N`` link mentions (as Telegram shows them), or None."""
    mention = re.fullmatch(r"tg://user\?id=(\d+)", url)
    if mention is None:
        return None
    user_id = int(mention.group(1))
    return (user_lookup(user_id) if user_lookup else None) or {
        "id": user_id,
        "is_bot": False,
        "first_name": "User",
    }


def parse_html(
    source: str, *, strict: bool = True, user_lookup: UserLookup | None = None
) -> ParsedText:
    """Parse Telegram-flavoured HTML into visible text and entities.

    Follows Telegram's (tdlib's) parser: only the documented tags, properly nested and closed,
    the named entities ``&lt; &gt; &amp; &quot;`` and numeric entities. With ``strict`` (the
    default) a bare ``&`` or ``>`` in text is an error, as the Bot API documentation demands;
    real Telegram tolerates those two, which ``strict=False`` mirrors. A bare ``<`` is always an
    error. Inside attribute values a bare ``&`` is accepted (URLs commonly contain one).
    """
    out: list[str] = []
    pos = 0
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    i = 0
    n = len(source)
    while i < n:
        char = source[i]
        if char == "&":
            decoded = _decode_html_entity(source, i)
            if decoded is not None:
                out.append(decoded[0])
                pos += _char16(decoded[0])
                i = decoded[1]
                continue
            if strict:
                raise EntityParseError(
                    'Unescaped "&" (use "&amp;" or a valid entity)', _byte_offset(source, i)
                )
        elif char == ">" and strict:
            raise EntityParseError('Unescaped ">" (use "&gt;")', _byte_offset(source, i))
        if char != "<":
            out.append(char)
            pos += _char16(char)
            i += 1
            continue
        tag_start = i
        if i + 1 < n and source[i + 1] == "/":
            end = source.find(">", i + 2)
            if end == -1:
                raise EntityParseError("Unclosed end tag", _byte_offset(source, tag_start))
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError("Unexpected end tag", _byte_offset(source, tag_start))
            top = stack[-1]
            if name != top.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, tag_start)}, "
                    f'expected "</{top.name}>", found "</{name}>"'
                )
            stack.pop()
            _close_html_tag(top, pos, stack, entities, user_lookup)
            i = end + 1
            continue
        i, tag = _parse_html_start_tag(source, i, pos)
        if tag.entity_type == "blockquote" and any(t.entity_type == "blockquote" for t in stack):
            raise EntityParseError("Blockquotes can't be nested", _byte_offset(source, tag_start))
        stack.append(tag)
    if stack:
        top = stack[-1]
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{top.name}"', top.byte_offset
        )
    return _finish_parsed("".join(out), entities)


def _parse_html_start_tag(source: str, i: int, pos: int) -> tuple[int, _OpenTag]:
    n = len(source)
    tag_start = i
    byte_offset = _byte_offset(source, tag_start)
    j = i + 1
    while j < n and not _is_space(source[j]) and source[j] != ">":
        j += 1
    if j >= n:
        raise EntityParseError("Unclosed start tag", byte_offset)
    name = source[i + 1 : j].lower()
    if name not in _HTML_TAG_TYPES:
        if not name:
            raise EntityParseError('Unescaped "<" (use "&lt;")', byte_offset)
        raise EntityParseError(f'Unsupported start tag "{name}"', byte_offset)
    attrs: dict[str, str] = {}
    while True:
        while j < n and _is_space(source[j]):
            j += 1
        if j >= n:
            raise EntityParseError("Unclosed start tag", byte_offset)
        if source[j] == ">":
            j += 1
            break
        attr_start = j
        while j < n and not _is_space(source[j]) and source[j] not in "=>":
            j += 1
        attr_name = source[attr_start:j].lower()
        if not attr_name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{name}"', _byte_offset(source, attr_start)
            )
        while j < n and _is_space(source[j]):
            j += 1
        if j >= n:
            raise EntityParseError("Unclosed start tag", byte_offset)
        if source[j] != "=":
            if name == "blockquote" and attr_name == "expandable":
                attrs[attr_name] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{name}"',
                _byte_offset(source, j),
            )
        j += 1
        while j < n and _is_space(source[j]):
            j += 1
        if j >= n:
            raise EntityParseError("Unclosed start tag", byte_offset)
        if source[j] in "\"'":
            quote = source[j]
            close = source.find(quote, j + 1)
            if close == -1:
                raise EntityParseError("Unclosed start tag", byte_offset)
            raw_value = source[j + 1 : close]
            j = close + 1
        else:
            value_start = j
            while j < n and not _is_space(source[j]) and source[j] != ">":
                j += 1
            raw_value = source[value_start:j]
        attrs[attr_name] = _decode_attribute(raw_value)
    entity_type = _HTML_TAG_TYPES[name]
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError('Tag "span" must have class "tg-spoiler"', byte_offset)
    if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise EntityParseError("Invalid custom emoji identifier specified", byte_offset)
    if name == "tg-time" and not attrs.get("unix", "").lstrip("-").isdigit():
        raise EntityParseError("Invalid unix time specified", byte_offset)
    if name == "blockquote" and "expandable" in attrs:
        entity_type = "expandable_blockquote"
    tag = _OpenTag(name, entity_type, pos, byte_offset, attrs)
    return j, tag


def _decode_attribute(raw: str) -> str:
    parts: list[str] = []
    k = 0
    while k < len(raw):
        if raw[k] == "&":
            decoded = _decode_html_entity(raw, k)
            if decoded is not None:
                parts.append(decoded[0])
                k = decoded[1]
                continue
        parts.append(raw[k])
        k += 1
    return "".join(parts)


def _close_html_tag(
    tag: _OpenTag,
    pos: int,
    stack: list[_OpenTag],
    entities: list[JSONDict],
    user_lookup: UserLookup | None,
) -> None:
    length = pos - tag.offset
    etype = tag.entity_type
    entity: JSONDict = {"type": etype, "offset": tag.offset, "length": length}
    if etype == "code" and stack and stack[-1].entity_type == "pre":
        cls = tag.attrs.get("class", "")
        if cls.startswith("language-") and len(cls) > len("language-"):
            stack[-1].language = cls[len("language-") :]
        return
    if etype == "text_link":
        href = tag.attrs.get("href", "")
        if not href:
            return
        user = _mentioned_user(href, user_lookup)
        if user is not None:
            entity = {"type": "text_mention", "offset": tag.offset, "length": length}
            entity["user"] = user
        else:
            entity["url"] = href
    elif etype == "pre" and tag.language:
        entity["language"] = tag.language
    elif etype == "custom_emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    elif etype == "date_time":
        entity["unix_time"] = int(tag.attrs["unix"])
        if tag.attrs.get("format"):
            entity["date_time_format"] = tag.attrs["format"]
    if length > 0:
        entities.append(entity)


def _finish_parsed(text: str, entities: list[JSONDict]) -> ParsedText:
    """Drop entities nested in code/pre, trim surrounding whitespace like Telegram, sort."""
    code_ranges = [
        (e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in ("code", "pre")
    ]
    kept: list[JSONDict] = []
    for entity in entities:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        inside = any(
            lo <= start and end <= hi and (lo, hi) != (start, end) for lo, hi in code_ranges
        )
        if not inside:
            kept.append(entity)
    # Telegram strips leading and trailing whitespace (code points <= U+0020).
    stripped_left = text.lstrip("".join(chr(c) for c in range(33)))
    left16 = utf16_len(text) - utf16_len(stripped_left)
    stripped = stripped_left.rstrip("".join(chr(c) for c in range(33)))
    total16 = utf16_len(stripped)
    result: list[JSONDict] = []
    for entity in kept:
        start = max(entity["offset"] - left16, 0)
        end = min(entity["offset"] + entity["length"] - left16, total16)
        if end > start:
            moved = dict(entity)
            moved["offset"], moved["length"] = start, end - start
            result.append(moved)
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedText(stripped, result[:MAX_ENTITIES])


_MDV2_RESERVED: Final = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES: Final = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


@dataclass
class _MdOpen:
    entity_type: str
    offset: int
    byte_offset: int
    language: str | None = None


def _reserved_error(char: str) -> EntityParseError:
    return EntityParseError(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def parse_markdown_v2(source: str, *, user_lookup: UserLookup | None = None) -> ParsedText:
    """Parse Telegram MarkdownV2 into visible text and entities.

    Every character of ``_*[]()~`>#+-=|{}.!`` outside an entity's syntax must be escaped with a
    backslash; inside ``code``/``pre`` only ``\\`` and `````` need escaping. Blockquotes start
    with ``>`` at the beginning of a line (``**>`` for expandable ones, closed by ``||``).
    """
    out: list[str] = []
    pos = 0
    stack: list[_MdOpen] = []
    entities: list[JSONDict] = []
    quote: _MdOpen | None = None
    quote_end = 0
    i = 0
    n = len(source)
    line_start = True

    def close_quote(end: int) -> None:
        nonlocal quote
        if quote is not None and end > quote.offset:
            entities.append(
                {"type": quote.entity_type, "offset": quote.offset, "length": end - quote.offset}
            )
        quote = None

    while i < n:
        char = source[i]
        in_code = bool(stack) and stack[-1].entity_type in ("code", "pre")
        if line_start and not in_code:
            line_start = False
            if char == ">":
                if quote is None:
                    quote = _MdOpen("blockquote", pos, _byte_offset(source, i))
                i += 1
                continue
            if source.startswith("**>", i):
                if quote is None:
                    quote = _MdOpen("expandable_blockquote", pos, _byte_offset(source, i))
                i += 3
                continue
            if quote is not None:
                close_quote(quote_end)
        if char == "\\" and i + 1 < n and 0 < ord(source[i + 1]) <= 126:
            out.append(source[i + 1])
            pos += 1
            i += 2
            continue
        if char == "\n":
            quote_end = pos
            out.append(char)
            pos += 1
            i += 1
            line_start = True
            continue
        if in_code:
            top = stack[-1]
            is_end = char == "`" and (top.entity_type == "code" or source.startswith("```", i))
            if not is_end:
                out.append(char)
                pos += _char16(char)
                i += 1
                continue
        if char not in _MDV2_RESERVED:
            out.append(char)
            pos += _char16(char)
            i += 1
            continue
        if (
            char == "|"
            and quote is not None
            and quote.entity_type == "expandable_blockquote"
            and source.startswith("||", i)
            and (i + 2 == n or source[i + 2] == "\n")
            and not any(o.entity_type == "spoiler" for o in stack)
        ):
            close_quote(pos)
            i += 2
            continue
        top_type = stack[-1].entity_type if stack else None
        nxt = source[i + 1] if i + 1 < n else ""
        is_end = (
            (top_type == "bold" and char == "*")
            or (top_type == "italic" and char == "_" and nxt != "_")
            or (top_type == "underline" and char == "_" and nxt == "_")
            or (top_type == "strikethrough" and char == "~")
            or (top_type == "spoiler" and char == "|" and nxt == "|")
            or (top_type == "code" and char == "`")
            or (top_type == "pre" and source.startswith("```", i))
            or (top_type in ("text_link", "custom_emoji") and char == "]")
        )
        if not is_end:
            byte_offset = _byte_offset(source, i)
            if char == "_" and nxt == "_":
                stack.append(_MdOpen("underline", pos, byte_offset))
                i += 2
            elif char == "_":
                stack.append(_MdOpen("italic", pos, byte_offset))
                i += 1
            elif char == "*":
                stack.append(_MdOpen("bold", pos, byte_offset))
                i += 1
            elif char == "~":
                stack.append(_MdOpen("strikethrough", pos, byte_offset))
                i += 1
            elif char == "|" and nxt == "|":
                stack.append(_MdOpen("spoiler", pos, byte_offset))
                i += 2
            elif char == "[":
                stack.append(_MdOpen("text_link", pos, byte_offset))
                i += 1
            elif char == "!" and nxt == "[":
                stack.append(_MdOpen("custom_emoji", pos, byte_offset))
                i += 2
            elif source.startswith("```", i):
                i += 3
                language: str | None = None
                newline = source.find("\n", i)
                if newline != -1:
                    candidate = source[i:newline]
                    if candidate and "`" not in candidate and " " not in candidate:
                        language = candidate
                        i = newline + 1
                    elif not candidate:
                        i = newline + 1
                stack.append(_MdOpen("pre", pos, byte_offset, language))
            elif char == "`":
                stack.append(_MdOpen("code", pos, byte_offset))
                i += 1
            else:
                raise _reserved_error(char)
            continue
        opened = stack.pop()
        entity: JSONDict = {
            "type": opened.entity_type,
            "offset": opened.offset,
            "length": pos - opened.offset,
        }
        if opened.entity_type in ("underline", "spoiler"):
            i += 2
        elif opened.entity_type == "pre":
            i += 3
            if opened.language:
                entity["language"] = opened.language
        elif opened.entity_type in ("text_link", "custom_emoji"):
            i += 1
            url: str
            if i < n and source[i] == "(":
                url_chars: list[str] = []
                k = i + 1
                while k < n and source[k] != ")":
                    if source[k] == "\\" and k + 1 < n and 0 < ord(source[k + 1]) <= 126:
                        k += 1
                    url_chars.append(source[k])
                    k += 1
                if k >= n:
                    raise EntityParseError("Can't find end of a URL", _byte_offset(source, i))
                url = "".join(url_chars)
                i = k + 1
            else:
                url = _tail16(out, entity)
            if opened.entity_type == "custom_emoji":
                match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                if not match:
                    raise EntityParseError(
                        "Custom emoji entity must contain a tg://emoji URL", opened.byte_offset
                    )
                entity["custom_emoji_id"] = match.group(1)
            else:
                user = _mentioned_user(url, user_lookup)
                if user is not None:
                    entity["type"] = "text_mention"
                    entity["user"] = user
                elif url:
                    entity["url"] = url
                else:
                    entity["length"] = 0
        else:
            i += 1
        if entity["length"] > 0:
            entities.append(entity)
    if stack:
        top = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MDV2_NAMES[top.entity_type]} entity", top.byte_offset
        )
    if quote is not None:
        close_quote(pos)
    return _finish_parsed("".join(out), entities)


def _tail16(out: list[str], entity: JSONDict) -> str:
    """Return the visible text covered by ``entity`` (used as URL for ``[url]`` links)."""
    text = "".join(out)
    encoded = text.encode("utf-16-le")
    start = entity["offset"] * 2
    return encoded[start:].decode("utf-16-le", "replace")


def parse_markdown(source: str, *, user_lookup: UserLookup | None = None) -> ParsedText:
    """Parse legacy Telegram Markdown (``*bold*``, ``_italic_``, ```code```, ``[t](url)``)."""
    out: list[str] = []
    pos = 0
    entities: list[JSONDict] = []
    i = 0
    n = len(source)
    while i < n:
        char = source[i]
        if char == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.append(source[i + 1])
            pos += 1
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            pos += _char16(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        i += 1
        is_pre = False
        language: str | None = None
        if char == "`" and source.startswith("``", i):
            i += 2
            is_pre = True
            lang_end = i
            while lang_end < n and not _is_space(source[lang_end]) and source[lang_end] != "`":
                lang_end += 1
            if lang_end < n and source[lang_end] == "\n" and lang_end > i:
                language = source[i:lang_end]
                i = lang_end + 1
        offset = pos
        while i < n and (source[i] != end_char or (is_pre and not source.startswith("```", i))):
            out.append(source[i])
            pos += _char16(source[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                "Can't find end of the entity starting", _byte_offset(source, begin)
            )
        length = pos - offset
        entity: JSONDict = {"type": "", "offset": offset, "length": length}
        if char == "_":
            entity["type"] = "italic"
        elif char == "*":
            entity["type"] = "bold"
        elif char == "`":
            entity["type"] = "pre" if is_pre else "code"
            if language:
                entity["language"] = language
        i += 3 if is_pre else 1
        if char == "[":
            url = ""
            if i < n and source[i] == "(":
                close = source.find(")", i + 1)
                if close != -1:
                    url = source[i + 1 : close]
                    i = close + 1
            user = _mentioned_user(url, user_lookup)
            if user is not None:
                entity["type"] = "text_mention"
                entity["user"] = user
            elif url:
                entity["type"] = "text_link"
                entity["url"] = url
            else:
                continue
        if length > 0:
            entities.append(entity)
    return _finish_parsed("".join(out), entities)


def parse_text(
    text: str,
    parse_mode: str | None,
    *,
    strict_html: bool = True,
    user_lookup: UserLookup | None = None,
) -> ParsedText:
    """Parse ``text`` according to ``parse_mode`` (``None``/empty: plain text, only trimmed).

    Raises:
        EntityParseError: on a syntax error.
        ValueError: on an unknown parse mode.
    """
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text, strict=strict_html, user_lookup=user_lookup)
    if mode == "markdownv2":
        return parse_markdown_v2(text, user_lookup=user_lookup)
    if mode == "markdown":
        return parse_markdown(text, user_lookup=user_lookup)
    if mode:
        raise ValueError(f"unsupported parse_mode {parse_mode!r}")
    return _finish_parsed(text, [])
