"""A stop that hangs is cut: ``engagebot run`` ends with status 1 once its stop budget is spent.

The hang is the real kind met under load: a thread of the default executor (where aiosqlite and
other drivers wait) that never returns, which ``asyncio.run`` waits for when it closes the loop.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HANGING_STOP = """
import asyncio, threading
from bot.cli.run import exit_if_stop_hangs

async def main():
    never = threading.Event()
    asyncio.get_running_loop().run_in_executor(None, never.wait)  # a driver thread that never answers
    await asyncio.sleep(0.1)
    exit_if_stop_hangs({bound})

asyncio.run(main())  # closing the loop waits for the executor's thread: for ever, without the timer
print("unreachable")
"""


def run_script(script: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.monotonic() - started


def test_a_stop_stuck_on_a_driver_thread_exits_1_after_the_bound_with_the_threads_stacks() -> None:
    done, took = run_script(HANGING_STOP.format(bound=1.0), timeout=30)
    assert done.returncode == 1
    assert "unreachable" not in done.stdout
    assert "the stop did not finish within 1 s" in done.stderr
    assert "in wait" in done.stderr  # faulthandler's dump shows the thread stuck in Event.wait
    assert 1.0 <= took < 15


def test_a_clean_stop_is_not_cut() -> None:
    script = ("from bot.cli.run import exit_if_stop_hangs\n"
              "exit_if_stop_hangs(20.0)\n"
              "print('done')\n")
    done, took = run_script(script, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    # A timer that held the process would have ended it with status 1 at 20 s.
    assert took < 20.0
