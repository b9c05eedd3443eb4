"""Mutation testing of the paths where a silent bug costs money or trust (run by tools/mutation.sh).

Each target of ``[tool.engagebot.mutation]`` in pyproject.toml is run by mutmut in its own copy of
the tree (``.mutation/<target>/``), mutating only the target's files and running only the target's
tests, then summarized: mutants killed, survived, timed out, not reached by any test; the kill rate;
the surviving mutants' diffs in ``.mutation/<target>/survivors.txt``.

    tools/mutation.sh                       every target, one after the other
    tools/mutation.sh claims batch          these targets
    tools/mutation.sh --list                the targets and what they cover
    tools/mutation.sh --time-limit 900 ...  stop a target after 15 minutes (what ran is counted)
    tools/mutation.sh --survivors claims    run again only the last run's survivors (after new tests)
    tools/mutation.sh --resume claims       go on with the mutants a time-limited run did not reach
    tools/mutation.sh outbox --only 'OutboxJournal.*' --only write_outcomes
                                            only these functions of the target (same syntax as `functions`)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
COPIED = ("bot", "handlers", "locales", "examples", "tests")  # examples: tests load examples/offers.yaml
SEPARATOR = "ǁ"  # mutmut's separator in the names of methods' mutants: xǁClassǁmethod__mutmut_3

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "caught by type check", None: "not checked"}


def load_config() -> tuple[dict[str, Any], dict[str, Any]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return data["tool"]["engagebot"]["mutation"], data["tool"]["mutmut"]


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def patterns(target: dict[str, Any]) -> list[str]:
    """The mutant names (fnmatch patterns) a target counts."""
    functions = target.get("functions")
    if not functions:
        return [f"{module_of(f)}.*" for f in target["files"]]
    out = []
    for entry in functions:
        files, _, name = entry.rpartition("::")
        owner, _, method = name.rpartition(".")
        mangled = f"x{SEPARATOR}{owner}{SEPARATOR}{method}" if owner else f"x_{name}"
        for path in [files] if files else target["files"]:
            out.append(f"{module_of(path)}.{mangled}__mutmut_*")
    return out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def prepare(name: str, target: dict[str, Any], common: dict[str, Any], *, fresh: bool) -> Path:
    """Copy the tree to .mutation/<name>/ with the target's mutmut settings in its pyproject.toml."""
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.db-*", "*.mo")
    for folder in COPIED:  # copied with their times: mutmut redoes only the files that changed
        shutil.rmtree(work / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, work / folder, symlinks=True, ignore=ignore)
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", text)  # the shared table, replaced below
    settings = {**common, "only_mutate": target["files"], "pytest_add_cli_args_test_selection": target["tests"]}
    text += "\n[tool.mutmut]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    (work / "pyproject.toml").write_text(text, "utf-8")
    return work


def results(work: Path, wanted: list[str]) -> dict[str, str]:
    """Status of every mutant of the target, from mutmut's .meta files."""
    found: dict[str, str] = {}
    for meta in (work / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text("utf-8"))
        for key, code in data.get("exit_code_by_key", {}).items():
            if any(fnmatch(key, p) for p in wanted):
                found[key] = STATUS.get(code, "suspicious")
    return found


def run_mutmut(work: Path, names: list[str], *, max_children: int, time_limit: float | None, log: Path) -> int:
    """Run ``mutmut run``; past the time limit interrupt it (its results so far are kept)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(["mutmut", "run", "--max-children", str(max_children), *names], cwd=work,
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            print(f"  time limit ({time_limit:g} s) reached: stopping mutmut", flush=True)
            os.killpg(proc.pid, signal.SIGTERM)  # mutmut saves each verdict as it comes: nothing is lost
            try:
                return proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                return proc.wait()


def show(work: Path, name: str) -> str:
    done = subprocess.run(["mutmut", "show", name], cwd=work, capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def summarize(name: str, work: Path, found: dict[str, str], seconds: float) -> dict[str, Any]:
    counts = Counter(found.values())
    caught = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    judged = caught + counts["survived"] + counts["no tests"] + counts["suspicious"]
    rate = caught / judged if judged else 0.0
    alive = sorted(k for k, s in found.items() if s in ("survived", "no tests", "suspicious"))
    with (work / "survivors.txt").open("w") as out:
        for key in alive:
            out.write(f"{show(work, key)}\n\n")
    line = (f"{name}: {len(found)} mutants, killed {counts['killed']}, timeout {counts['timeout']}, "
            f"survived {counts['survived']}, no tests {counts['no tests']}, suspicious {counts['suspicious']}, "
            f"not checked {counts['not checked']}; kill rate {rate:.1%} ({seconds:.0f} s)")
    print(line, flush=True)
    for key in alive:
        print(f"    {found[key]:>10}  {key}")
    return {"target": name, "mutants": len(found), "rate": rate, "seconds": round(seconds),
            **{status.replace(" ", "_"): n for status, n in counts.items()}, "alive": alive, "statuses": found}


def main(argv: list[str]) -> int:
    targets, common = load_config()
    parser = argparse.ArgumentParser(prog="tools/mutation.sh", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"targets to run (default: all): {', '.join(targets)}")
    parser.add_argument("--list", action="store_true", help="list the targets and stop")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="mutants tested at once (default: half the cores)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per target before stopping it")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the last run's surviving mutants (keeps .mutation/<target>)")
    parser.add_argument("--resume", action="store_true",
                        help="run only the mutants the last (time-limited) run did not check (keeps .mutation/<target>)")
    parser.add_argument("--only", action="append", metavar="FUNCTION",
                        help="count and run only this function of the target (repeatable; as in `functions`)")
    args = parser.parse_args(argv)
    if args.list:
        for name, target in targets.items():
            print(f"{name}: {', '.join(target['files'])}\n    functions: {', '.join(target.get('functions', ['all']))}"
                  f"\n    tests: {' '.join(target['tests'])}")
        return 0
    unknown = [t for t in args.targets if t not in targets]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets)}")
    if shutil.which("mutmut") is None:
        print('mutmut is not installed: pip install -e ".[test,mutation]"', file=sys.stderr)
        return 2
    summaries = []
    for name in args.targets or list(targets):
        target = targets[name]
        if args.only:
            target = {**target, "functions": args.only}
        wanted = patterns(target)
        names = wanted
        if args.survivors or args.resume:
            previous = WORK / name / "summary.json"
            if not previous.exists():
                parser.error(f"no previous run of {name} to go on from")
            if args.survivors:
                names = json.loads(previous.read_text())["alive"]
            else:
                # What no run reached: not what mutmut has no verdict for, since it forgets its verdicts
                # when the target's tests change (after a --survivors run with new tests, that is everything).
                settled = json.loads(previous.read_text()).get("statuses") or {}
                names = [k for k, s in results(WORK / name, wanted).items()
                         if s == "not checked" and settled.get(k, "not checked") == "not checked"]
            if not names:
                print(f"{name}: nothing left to run")
                continue
        print(f"== {name}: mutating {', '.join(target['files'])}", flush=True)
        work = prepare(name, target, common, fresh=not (args.survivors or args.resume))
        started = time.monotonic()
        code = run_mutmut(work, names, max_children=args.max_children, time_limit=args.time_limit,
                          log=work / "mutmut.log")
        if code not in (0, -signal.SIGTERM, 1):
            print(f"  mutmut exited with {code}: see {work / 'mutmut.log'}", flush=True)
        found = results(work, wanted)
        if args.survivors or args.resume:
            # mutmut forgets its verdicts when the target's tests change; what the last run
            # settled (and was not run again) stands: more tests never revive a killed mutant.
            before = json.loads((WORK / name / "summary.json").read_text())
            settled = before.get("statuses") or {k: "killed" for k in found if k not in before["alive"]}
            for key, status in found.items():
                if status == "not checked" and key not in names and settled.get(key, "not checked") != "not checked":
                    found[key] = settled[key]
        summary = summarize(name, work, found, time.monotonic() - started)
        (work / "summary.json").write_text(json.dumps(summary, indent=1))
        summaries.append(summary)
    if len(summaries) > 1:
        print("\n| target | mutants | killed | timeout | survived | no tests | kill rate |")
        print("|---|---|---|---|---|---|---|")
        for s in summaries:
            print(f"| {s['target']} | {s['mutants']} | {s.get('killed', 0)} | {s.get('timeout', 0)} | "
                  f"{s.get('survived', 0)} | {s.get('no_tests', 0)} | {s['rate']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
