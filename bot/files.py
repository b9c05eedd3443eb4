"""Operator files (prompt rules, promotions, settings): read them safely, report a mistake in one line.

Every YAML or TOML file engagebot reads goes through :func:`read_data_file`. It bounds the size and
the nesting (a deeply nested file would otherwise exhaust Python's stack), builds plain values only
(safe tags), refuses a key given twice in one mapping (YAML keeps the last one silently), and names
the file, line and column of a syntax error. An impossible date (``2026-02-30``) is kept as
:class:`NotADate` instead of crashing the parser, so the schema that reads the file reports it naming
the entry and the field, like any other wrong value.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2
import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from bot.errors import EngagebotError, RulesFileError

MAX_FILE_BYTES = 1024 * 1024
# An image a reply carries (a promotion's poster): WeChat's temporary image and Telegram's photo stop at 10 MB.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png", "image/png"), (b"\xff\xd8\xff", "jpg", "image/jpeg"),
                (b"GIF87a", "gif", "image/gif"), (b"GIF89a", "gif", "image/gif"), (b"BM", "bmp", "image/bmp"))
# Operator files need four or five levels; 50 leaves room and stays far from Python's stack limit.
MAX_DEPTH = 50
# A TOML key of more than MAX_DEPTH dotted parts (bare or quoted), anywhere in the text.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
# RE2 (linear time): Python's re backtracks into each part and took 15 s on a 1 MB file.
_LONG_DOTTED_KEY = re2.compile(rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART}){{{MAX_DEPTH},}}")


@dataclass(frozen=True, slots=True)
class NotADate:
    """A value written like a date that is not one, e.g. ``2026-02-30``; the schema refuses it."""

    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.text} is not a date ({self.reason})"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded in depth, strict about duplicate keys, lenient about dates."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # A constructor that fails on a value (!!int "x", !!float "y") raises a bare ValueError in
        # PyYAML; give it the node's place in the file instead.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read this value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class explains it
                break
            if duplicate:
                raise ConstructorError(None, None, f"the key {key!r} appears twice in this mapping",
                                       key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_lenient_timestamp(self, node: Node) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            return NotADate(str(node.value), str(exc))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_lenient_timestamp)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with the project's loader; raise ``yaml.YAMLError`` (with a mark) when malformed."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """``at line L, column C: problem (context)``, without PyYAML's ``<unicode string>`` and snippet."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        if mark is not None:
            return f"at line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"
        return f"{problem}{context}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_text_file(path: Path, *, error: type[EngagebotError], where: str, max_bytes: int) -> str:
    """Read a UTF-8 text file of at most ``max_bytes`` (a BOM is dropped), or raise ``error`` saying why.

    ``where`` starts the message: ``<where>: cannot read (No such file or directory)``.
    """
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{where}: larger than {max_bytes} bytes")
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text (byte {exc.start + 1})") from None


def image_format(data: bytes) -> tuple[str, str] | None:
    """(extension, MIME type) of a PNG, JPEG, GIF or BMP image, by its first bytes; else None."""
    return next(((ext, mime) for magic, ext, mime in _IMAGE_MAGIC if data.startswith(magic)), None)


def image_problem(data: bytes) -> str | None:
    """Why every platform would refuse ``data`` as an image, or None when it is fine."""
    if not data:
        return "empty image"
    if len(data) > MAX_IMAGE_BYTES:
        return f"image larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB"
    if image_format(data) is None:
        return "not a PNG, JPEG, GIF or BMP image"
    return None


def read_image_bytes(path: Path) -> bytes:
    """Read an image file of at most :data:`MAX_IMAGE_BYTES` (OSError when it cannot be read, ValueError when too large)."""
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ValueError(f"image larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    return path.read_bytes()


def read_data_file(path: str | Path, *, error: type[EngagebotError] = RulesFileError, label: str = "",
                   max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Read a YAML file (TOML when it ends in ``.toml``), or raise ``error`` with one line saying why.

    The line starts with ``label`` (e.g. ``config file``) and the path, then the line and column of
    a syntax error when there is one.
    """
    p = Path(path)
    where = f"{label} {p}" if label else str(p)
    text = read_text_file(p, error=error, where=where, max_bytes=max_bytes)
    try:
        if p.suffix.lower() == ".toml":
            # Dotted keys (a.b.c... = 1) and table headers nest without recursing in the parser, and
            # tomllib takes time quadratic in a dotted key's parts (10,000 parts: 4 s; 1 MB: hours).
            if _LONG_DOTTED_KEY.search(text):
                raise error(f"{where}: nested deeper than {MAX_DEPTH} levels (a dotted key)")
            data = tomllib.loads(text)
            if _deeper_than(data, MAX_DEPTH):
                raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
            return data
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML {describe_yaml_error(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: {exc}") from None
    except RecursionError:  # TOML's parser recurses into nested arrays and tables
        raise error(f"{where}: nested too deeply") from None


def _deeper_than(data: Any, limit: int) -> bool:
    """Is any value in ``data`` more than ``limit`` levels deep, counting ``data`` as 1 (as YAML's
    loader counts)? Iterative: no recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if depth + 1 > limit:
                return True
            stack.append((child, depth + 1))
    return False


def describe_validation_error(exc: ValidationError, data: Any, list_key: str, *, limit: int = 5) -> str:
    """Name the entry (by its name or slug when it has one) and the field of the first few errors.

    ``rules[1] ('hours') field reply.en: Input should be a valid string``. The errors pydantic gives
    once per member of a union (``starts_at`` may be a date or a datetime) are told once.
    """
    items = data.get(list_key) if isinstance(data, dict) else None
    lines: list[str] = []
    last: tuple[tuple[Any, ...], str] | None = None
    for err in exc.errors():
        loc = tuple(err["loc"])
        if last is not None and loc[:-1] == last[0] and repr(err.get("input")) == last[1]:
            continue  # the same value refused by the next member of a union
        last = (loc[:-1], repr(err.get("input")))
        loc = _without_union_member(loc, err)
        where = ".".join(str(p) for p in loc) or "(top)"
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int) and isinstance(items, list):
            item = items[loc[1]] if loc[1] < len(items) else None
            label = (item.get("name") or item.get("slug") or item.get("id")) if isinstance(item, dict) else None
            label = label if isinstance(label, str) else None
            field = ".".join(str(p) for p in loc[2:])
            where = f"{list_key}[{loc[1]}]" + (f" ({label!r})" if label else "") + (f" field {field}" if field else "")
        lines.append(f"{where}: {describe_error_message(err)}")
        if len(lines) == limit:
            break
    return "; ".join(lines)


def describe_error_message(err: Any) -> str:
    """Pydantic's message for one error, or why a date is not one."""
    value = err.get("input")
    if isinstance(value, NotADate):
        return str(value)
    return str(err["msg"]).removeprefix("Value error, ")


def _without_union_member(loc: tuple[Any, ...], err: Any) -> tuple[Any, ...]:
    # Pydantic appends the union member's type to the location: starts_at.datetime, starts_at.date.
    if len(loc) >= 2 and isinstance(loc[-1], str) and err.get("type", "").endswith(("_parsing", "_type")) and (
            loc[-1] in _UNION_MEMBER_NAMES or "[" in loc[-1]):
        return loc[:-1]
    return loc


_UNION_MEMBER_NAMES = frozenset({"datetime", "date", "time", "str", "int", "float", "bool", "decimal", "none",
                                 "list", "dict"})
