"""Run the real ``engagebot`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def engagebot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT,
                          timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``engagebot: ...`` line a refused command prints (exit 2, no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("engagebot: "), done.stderr
    return lines[0]
