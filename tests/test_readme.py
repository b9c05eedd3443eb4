"""The README's and docs/handlers.md's handler examples and their tests run as written; docs/adapters.md
quotes the example channel as it is."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HANDLERS_DOC = ROOT / "docs" / "handlers.md"
ADAPTERS_DOC = ROOT / "docs" / "adapters.md"


def code_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text("utf-8"), flags=re.S)


def code_block(first_line: str, doc: Path = README) -> str:
    for block in code_blocks(doc):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"{doc.name} has no python block starting with {first_line!r}")


async def test_readme_handler_example_passes_its_own_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "readme_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.py").write_text(code_block("# handlers/hello.py"), "utf-8")
    test_code = code_block("# tests/test_hello.py").replace("from handlers.hello import", "from readme_example.hello import")
    (package / "test_hello.py").write_text(test_code, "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("readme_example.test_hello")
    try:
        await module.test_drinks_then_order()
    finally:
        for name in [n for n in sys.modules if n.startswith("readme_example")]:
            del sys.modules[name]


async def test_the_handlers_chapter_example_passes_its_own_tests(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "handlers_doc_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "coffee.py").write_text(code_block("# handlers/coffee.py", HANDLERS_DOC), "utf-8")
    test_code = code_block("# tests/test_coffee.py", HANDLERS_DOC).replace(
        "from handlers.coffee import", "from handlers_doc_example.coffee import")
    (package / "test_coffee.py").write_text(test_code, "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("handlers_doc_example.test_coffee")
    tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
    try:
        assert len(tests) == 2
        for test in tests:
            await test()
    finally:
        for name in [n for n in sys.modules if n.startswith("handlers_doc_example")]:
            del sys.modules[name]


def test_the_adapters_guide_quotes_the_example_channel_as_it_is() -> None:
    quoted = [block for block in code_blocks(ADAPTERS_DOC) if block.startswith("# examples/")]
    assert len(quoted) >= 4
    for block in quoted:
        first, _, body = block.partition("\n")
        source = (ROOT / first.removeprefix("# ").split()[0]).read_text("utf-8")
        assert body.strip() and body.strip() in source, f"docs/adapters.md quotes {first} as it no longer is"
