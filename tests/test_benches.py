"""The benches' own logic: rounds (each engagebot run against its own round's bare run, the median over
rounds), and bench/writer.py, which drives the group writer's private function and must keep running."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.driver import Result, Rounds

ROOT = Path(__file__).resolve().parent.parent


def run(rps: float, *, p99: float = 40.0, cpu: float | None = None, errors: int = 0) -> Result:
    return Result(requests=int(rps * 10), seconds=10.0, p50_ms=p99 / 2, p99_ms=p99, non2xx=errors,
                  socket_errors=0, unexpected=0, cpu_ms=cpu)


def test_each_run_is_compared_with_its_own_rounds_bare_run_and_the_median_is_reported() -> None:
    rounds = Rounds()
    # The machine is twice as fast in the second round: the bare run and engagebot's move together.
    rounds.record("engagebot, 2 workers", run(2_000, p99=60, cpu=0.8), run(10_000, cpu=0.08))
    rounds.record("engagebot, 2 workers", run(4_000, p99=30, cpu=0.8), run(20_000, cpu=0.08))
    rounds.record("engagebot, 2 workers", run(2_500, p99=45, cpu=1.0, errors=2), run(10_000, cpu=0.08))
    (line,) = rounds.summary()
    # Ratios 20%, 20%, 25%: the median is 20%, whatever the rounds' absolute speeds.
    assert "median  20.0% of bare" in line
    assert "(by CPU per request:  10.0%)" in line
    assert "over 3 rounds (range 20.0% to 25.0%)" in line
    assert "req/s 2,500" in line  # the median of the engagebot runs' own rates
    assert "p99 45.0 ms" in line
    assert line.endswith("errors 2")  # every round's errors count


def test_configurations_are_summarized_apart_in_the_order_first_measured() -> None:
    rounds = Rounds()
    for _ in range(2):
        rounds.record("plain: engagebot, 1 worker", run(1_000), run(10_000))
        rounds.record("plain: engagebot, 2 workers", run(1_500), run(10_000))
    first, second = rounds.summary()
    assert first.strip().startswith("plain: engagebot, 1 worker") and "median  10.0%" in first
    assert second.strip().startswith("plain: engagebot, 2 workers") and "median  15.0%" in second
    assert "by CPU" not in first  # no CPU measured: no CPU ratio made up


def test_a_single_round_reads_as_one_round() -> None:
    rounds = Rounds()
    rounds.record("engagebot, 1 worker", run(1_000), run(8_000))
    (line,) = rounds.summary()
    assert "over 1 round (range 12.5% to 12.5%)" in line


def test_the_writer_bench_writes_real_batches_and_prints_a_figure_per_size() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "writer.py"), "--sizes", "1,4", "--messages", "40"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    figures = re.findall(r"batches of +(\d+): CPU +([\d.]+) ms per message", done.stdout)
    assert [size for size, _ in figures] == ["1", "4"]
    assert all(float(cpu) > 0 for _, cpu in figures)


def test_the_writer_bench_refuses_sizes_that_make_no_batch() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "writer.py"), "--sizes", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0 and "--sizes and --messages must be positive" in done.stderr


def test_the_writer_bench_times_a_batch_with_its_bounded_prune_and_an_unbounded_one() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "writer.py"), "--replay-backlog", "20000"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    deleted: dict[str, list[int]] = {}
    for label, count in re.findall(r"^  (no prune|bounded|unbounded) +[\d.]+ ms +\(([\d,]+) expired", done.stdout, re.M):
        deleted.setdefault(label, []).append(int(count.replace(",", "")))
    assert deleted["no prune"] == [0, 0]
    assert deleted["bounded"] == [200, 200, 200]  # PRUNE_ROWS each: 2,000 of the 20,000 had expired
    (unbounded,) = deleted["unbounded"]
    assert unbounded >= 2_000 - 3 * 200  # what the bounded prunes left, all at once


def test_rounds_are_announced_and_summarized_only_when_there_are_several(capsys: pytest.CaptureFixture[str]) -> None:
    several = Rounds(2)
    for number in several.each():
        several.record("engagebot, 1 worker", run(1_000 * number), run(10_000))
    several.print_summary()
    out = capsys.readouterr().out
    assert "round 1 of 2:" in out and "round 2 of 2:" in out
    assert "over 2 rounds, each run against its round's bare handler:" in out and "median  15.0% of bare" in out
    one = Rounds()
    assert list(one.each()) == [1]
    one.record("engagebot, 1 worker", run(1_000), run(10_000))
    one.print_summary()
    assert capsys.readouterr().out == ""  # one round: its run's line says it all
