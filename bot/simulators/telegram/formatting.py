"""Telegram's text formatting: parse_mode HTML / MarkdownV2 / Markdown into plain text + entities.

Real Telegram strips the markup and answers with ``text`` and ``entities`` whose offsets and lengths are
counted in UTF-16 code units. It rejects markup it cannot parse with ``400 Bad Request: can't parse
entities: ...``. This module mirrors the documented rules closely enough to catch an adapter that forgets
to escape ``<`` or ``.``; it is not a byte-exact copy of Telegram's parser.
"""

from __future__ import annotations

import html
import re
from typing import Any


class EntityParseError(ValueError):
    """Markup Telegram would refuse; the message is the part after ``Bad Request: ``."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_HTML_SIMPLE = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "a": "text_link", "span": "spoiler",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*)?)\s*/?>")
_ATTR_RE = re.compile(r"""([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    pos16 = 0
    stack: list[tuple[str, int, dict[str, Any]]] = []
    entities: list[dict[str, Any]] = []
    index = 0

    def add_text(chunk: str, at: int) -> None:
        nonlocal pos16
        if "<" in chunk:
            raise EntityParseError(
                f"can't parse entities: Unsupported start tag at byte offset {_byte_offset(source, at + chunk.index('<'))}"
            )
        plain = html.unescape(chunk)
        out.append(plain)
        pos16 += utf16_len(plain)

    for match in _TAG_RE.finditer(source):
        add_text(source[index:match.start()], index)
        index = match.end()
        closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3) or ""
        offset = _byte_offset(source, match.start())
        if name not in _HTML_SIMPLE:
            kind = "end" if closing else "start"
            raise EntityParseError(f'can\'t parse entities: Unsupported {kind} tag "{name}" at byte offset {offset}')
        if closing:
            if not stack or stack[-1][0] != name:
                raise EntityParseError(
                    f'can\'t parse entities: Unmatched end tag at byte offset {offset}, expected "</{stack[-1][0]}>", '
                    f'found "</{name}>"' if stack else f"can't parse entities: Unexpected end tag at byte offset {offset}"
                )
            tag, start, extra = stack.pop()
            if pos16 > start:
                entity = {"type": _HTML_SIMPLE[tag], "offset": start, "length": pos16 - start, **extra}
                if entity["type"] == "code" and stack and stack[-1][0] == "pre" and "language" in entity:
                    stack[-1][2]["language"] = entity.pop("language")
                    continue
                entities.append(entity)
            continue
        attributes = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR_RE.finditer(attrs)}
        extra: dict[str, Any] = {}
        if name == "a":
            href = attributes.get("href", "")
            if not href:
                raise EntityParseError(f"can't parse entities: Can't find href attribute at byte offset {offset}")
            extra["url"] = html.unescape(href)
        elif name == "span" and attributes.get("class") != "tg-spoiler":
            raise EntityParseError(f'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte offset {offset}')
        elif name == "code" and attributes.get("class", "").startswith("language-"):
            extra["language"] = attributes["class"][len("language-"):]
        elif name == "blockquote" and "expandable" in attrs:
            extra["type"] = "expandable_blockquote"
        elif name == "tg-emoji":
            extra["custom_emoji_id"] = attributes.get("emoji-id", "")
        stack.append((name, pos16, extra))
    add_text(source[index:], index)
    if stack:
        raise EntityParseError(f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD2_MARKS = [("```", "pre"), ("__", "underline"), ("||", "spoiler"), ("*", "bold"), ("_", "italic"),
              ("~", "strikethrough"), ("`", "code")]
_MD1_MARKS = [("```", "pre"), ("*", "bold"), ("_", "italic"), ("`", "code")]


def parse_markdown(source: str, *, v2: bool) -> tuple[str, list[dict[str, Any]]]:
    """MarkdownV2 (``v2=True``) or legacy Markdown."""
    out: list[str] = []
    pos16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, int]] = []  # (mark, utf16 start, source index)
    marks = _MD2_MARKS if v2 else _MD1_MARKS
    i = 0
    line_start = True

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    def err(msg: str, at: int) -> EntityParseError:
        return EntityParseError(f"can't parse entities: {msg} at byte offset {_byte_offset(source, at)}")

    in_code = lambda: bool(stack) and stack[-1][0] in ("`", "```")  # noqa: E731
    while i < len(source):
        ch = source[i]
        if ch == "\\" and v2 and i + 1 < len(source) and 0 < ord(source[i + 1]) < 127:
            emit(source[i + 1])
            i += 2
            line_start = False
            continue
        mark = next((m for m, _ in marks if source.startswith(m, i)), None)
        if in_code() and mark != stack[-1][0]:
            mark = None
        if mark:
            if stack and stack[-1][0] == mark:
                _, start, _ = stack.pop()
                kind = dict(marks)[mark]
                if pos16 > start:
                    entities.append({"type": kind, "offset": start, "length": pos16 - start})
            elif not v2 and stack:
                emit(mark)  # legacy Markdown does not nest
            else:
                stack.append((mark, pos16, i))
            i += len(mark)
            line_start = False
            continue
        if ch == "[" and not in_code():
            close = source.find("](", i)
            end = source.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                if v2:
                    raise err("Character '[' is reserved and must be escaped with the preceding '\\'", i)
                emit(ch)
                i += 1
                continue
            inner_text, inner_entities = parse_markdown(source[i + 1:close], v2=v2)
            for entity in inner_entities:
                entity["offset"] += pos16
                entities.append(entity)
            entities.append({"type": "text_link", "offset": pos16, "length": utf16_len(inner_text),
                             "url": source[close + 2:end].replace("\\)", ")").replace("\\\\", "\\")})
            emit(inner_text)
            i = end + 1
            continue
        if v2 and ch == ">" and line_start and not in_code():
            i += 1  # blockquote marker; the entity itself is not modelled
            continue
        if v2 and ch in _MD2_RESERVED and not in_code():
            raise err(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'", i)
        emit(ch)
        line_start = ch == "\n"
        i += 1
    if stack:
        raise err("Can't find end of the entity starting", stack[-1][2])
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """Plain text plus entities for ``parse_mode`` (None, HTML, MarkdownV2, Markdown)."""
    mode = (parse_mode or "").strip().lower()
    if not mode:
        return text, []
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown(text, v2=True)
    if mode == "markdown":
        return parse_markdown(text, v2=False)
    raise EntityParseError("unsupported parse_mode")
