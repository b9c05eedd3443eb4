"""The README's handler example and its test run as written."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def code_block(first_line: str) -> str:
    for block in re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README has no python block starting with {first_line!r}")


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
