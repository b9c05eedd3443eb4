"""``engagebot run --workers 2``: two real worker processes on one port, the duties held by lease.

The platforms run in a process of their own (``tests/support/platforms.py``) and count what reached
each Telegram user. The worker holding the Telegram outbox's lease is killed with SIGKILL mid-broadcast:
the other worker takes the sweep over within seconds, every user gets the broadcast, and nobody gets it
twice but for a send that was in flight at the kill (which the outbox reports as possibly sent twice).
Then the worker holding the poll is killed: messages sent meanwhile are answered once each.
On SQLite, and on PostgreSQL with ENGAGEBOT_TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast
from bot.broadcast.models import DONE, Broadcast
from bot.broadcast.worker import SUPERVISOR_DUTY
from bot.cli.workers import METRICS_DIR_PREFIX, WorkersError, remove_dead_runs_metrics_dirs, worker_count
from bot.settings import Settings
from bot.storage.leases import holders
from bot.storage.models import Follower, Message
from tests.support.cli import engagebot, one_error_line, running
from tests.support.crash import DUTY_LEASE_SECONDS, CrashRig, eventually_in
from tests.support.platforms import TELEGRAM_TOKEN
from tests.support.process import cli_env
from tests.support.servers import free_port
from tests.test_metrics import scraped

Sessions = async_sessionmaker[AsyncSession]
BOT = TELEGRAM_TOKEN.split(":", 1)[0]
BROADCAST = "Spring sale!"
FALLBACK = "Sorry, I did not understand that. Send /help to see what I can do."
# A dead holder's lease runs out after its time to live; a standby asks every third of it.
TAKEOVER_BOUND = DUTY_LEASE_SECONDS * 4 / 3 + 3


def test_one_worker_per_core_but_one_beside_the_simulators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGEBOT_WORKERS")  # the tests' own default (conftest)
    real = {"telegram": {"token": TELEGRAM_TOKEN}, "port": 8080}
    assert worker_count(Settings(**real), cpu_count=4) == 4
    assert worker_count(Settings(**real, workers=3), cpu_count=4) == 3
    assert worker_count(Settings(port=8080), cpu_count=4) == 1  # the simulators live in one process
    with pytest.raises(WorkersError, match="simulators"):
        worker_count(Settings(port=8080, workers=2), cpu_count=4)
    with pytest.raises(WorkersError, match="--port"):
        worker_count(Settings(**{**real, "port": 0}, workers=2), cpu_count=4)


def test_several_workers_beside_the_simulators_are_refused_in_one_line(tmp_path: Path) -> None:
    done = engagebot("run", "--workers", "2", cwd=tmp_path)  # the flag wins over the tests' ENGAGEBOT_WORKERS=1
    assert done.returncode == 2
    assert one_error_line(done).startswith("engagebot: --workers 2: the simulators (wechat, telegram, weibo) run in "
                                           "one process")
    assert not list(tmp_path.iterdir())  # refused before anything was created


def test_workers_that_cannot_listen_stop_the_command_with_their_reason(tmp_path: Path) -> None:
    """A port taken by another program: each worker says so, and the parent exits rather than restarting them."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = engagebot("run", "--workers", "2", "--port", str(port), timeout=120, env={
            "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "ENGAGEBOT_LOG_LEVEL": "ERROR",
            "ENGAGEBOT_TELEGRAM__TOKEN": TELEGRAM_TOKEN, "ENGAGEBOT_TELEGRAM__API_BASE": "http://127.0.0.1:9/bot"})
    assert done.returncode == 2
    assert "address already in use" in done.stderr and "starting it again" not in done.stderr


def test_a_port_another_engagebot_run_serves_with_its_workers_is_refused(tmp_path: Path, database_url: str) -> None:
    """Workers listen with SO_REUSEPORT, so the kernel would let a second `run --workers` (a forgotten
    one, another deployment's, on another database) join the first on its port and take half its
    callbacks; the second is refused in one line instead."""
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false", "ENGAGEBOT_LOG_LEVEL": "ERROR"}
    with running(tmp_path, env, args=("--workers", "2")) as (url, _proc):
        port = url.rsplit(":", 1)[1]
        second = tmp_path / "second"
        second.mkdir()
        done = engagebot("run", "--workers", "2", "--port", port, cwd=second, timeout=90, env={
            **env, "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{second / 'other.db'}"})
    line = one_error_line(done)
    assert f"127.0.0.1:{port}" in line and "address already in use" in line
    assert not list(second.iterdir())  # refused before anything was created


def test_ctrl_c_while_the_workers_start_stops_them_without_a_traceback(tmp_path: Path, database_url: str) -> None:
    """Ctrl-C reaches the whole process group: workers still importing used to die of KeyboardInterrupt,
    each printing its traceback. The parent's orderly stop is the one answer to it."""
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--workers", "2", "--port", str(free_port())],
                            cwd=tmp_path, env=cli_env(ENGAGEBOT_DATABASE_URL=database_url, ENGAGEBOT_SIMULATORS="false"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    lines = []
    while "worker processes sharing" not in (line := proc.stderr.readline()):  # the workers start now
        assert line, "".join(lines)
        lines.append(line)
    time.sleep(0.3)  # the workers are importing
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
    rest = proc.communicate(timeout=60)[1]
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    assert proc.returncode == 0, rest


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="tells an engagebot by /proc (Linux)")
def test_a_sigkilled_runs_metrics_directory_is_removed_by_the_next_start_and_a_live_ones_kept(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent of `--workers N` removes its metrics directory when it stops, but SIGKILL (the OOM
    killer, a service manager's last resort) leaves it behind: the next start removes it, and only
    what is provably a dead run's."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false", "ENGAGEBOT_LOG_LEVEL": "ERROR",
           "TMPDIR": str(temporary)}
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with running(first, env, args=("--workers", "2")) as (_url, proc):
        [left] = list(temporary.iterdir())  # the workers' shared directory
        proc.kill()
        proc.wait()
    assert left.is_dir()  # what a SIGKILLed run leaves
    # Another user's program reusing a dead run's pid (here: this test's) does not make its directory live.
    reused = temporary / f"{METRICS_DIR_PREFIX}{os.getpid()}-reused"
    reused.mkdir()
    not_ours = [temporary / f"{METRICS_DIR_PREFIX}old-style", temporary / "engagebot-template-x"]
    for path in not_ours:
        path.mkdir()
    before = set(temporary.iterdir())
    with running(second, env, args=("--workers", "2")) as (_url, proc):
        assert not left.exists() and not reused.exists()
        [own] = set(temporary.iterdir()) - before
        assert all(path.is_dir() for path in not_ours)  # not named as ours: never touched
        # A start meanwhile (another run on this machine, or a test's call) keeps the live run's.
        assert remove_dead_runs_metrics_dirs(str(temporary)) == []
        assert own.is_dir()
    assert not own.exists()  # its own run removed it on SIGTERM


def test_every_scrape_of_several_workers_counts_the_messages_of_all_of_them(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`engagebot run --workers 2` as deployed (no PROMETHEUS_MULTIPROC_DIR set by the operator): the kernel
    spreads both the messages and the scrapes over the workers, and each scrape counts every worker's."""
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false",
           "ENGAGEBOT_MOCK_SINK": f"sqlite+aiosqlite:///{tmp_path / 'sink.db'}"}
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    sent = 20
    with running(tmp_path, env, args=("--workers", "2")) as (url, proc):
        deadline = time.monotonic() + 60
        while (tmp_path / "stderr.log").read_text().count("database ready") < 2:  # both workers started
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "stderr.log").read_text()
            time.sleep(0.2)
        time.sleep(1)
        for n in range(sent):  # a connection each: the kernel picks a worker for each
            body = json.dumps({"from": f"f{n}", "text": "hi", "message_id": f"m{n}"}).encode()
            request = urllib.request.Request(f"{url}/mock", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as resp:
                assert resp.status == 200
        counts = []
        for _ in range(8):
            with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
                samples = scraped(resp.read().decode())
            counts.append(samples.get(("engagebot_messages_total", (
                ("channel", "mock"), ("direction", "in"), ("kind", "text")))))
    assert counts == [sent] * 8


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc (Linux)")
async def test_a_killed_workers_duties_resume_in_the_other_and_nothing_doubles(
        sessions: Sessions, database_url: str, tmp_path: Path) -> None:
    rig = CrashRig(tmp_path, database_url, workers=2, telegram_mode="polling")
    async with rig:
        parent = rig.bots[0].proc
        assert parent is not None
        users = (await rig.control("POST", "telegram/users", {"count": 150}))["followers"]

        async def all_followed() -> bool:  # their /start came through the poll: a worker polls
            async with sessions() as session:
                return len((await session.execute(select(Follower.id).where(
                    Follower.channel == "telegram"))).all()) == len(users)

        await eventually_in(all_followed, 60, "followers stored", rig)
        duties = await eventually_in(lambda: _held(sessions, f"outbox:telegram:{BOT}", f"telegram-poll:{BOT}",
                                                 SUPERVISOR_DUTY), 30, "every duty held", rig)
        workers = _children(parent.pid)
        assert len(workers) == 2
        assert {_pid(h) for h in duties.values()} <= workers  # held by the workers, never the parent

        async with sessions() as session:
            broadcast = await create_broadcast(session, name="workers", texts={"en": BROADCAST},
                                               audience=Audience(channels=("telegram",)), default_locale="en")
            await session.commit()
            broadcast_id = broadcast.id

        async def some_delivered() -> bool:
            return _copies(await rig.control("GET", "received")).total() >= 20

        await eventually_in(some_delivered, 60, "the broadcast under way", rig)
        sweeper = (await holders(sessions))[f"outbox:telegram:{BOT}"]
        os.kill(_pid(sweeper), signal.SIGKILL)
        killed_at = time.monotonic()

        async def taken_over() -> str | None:
            holder = (await holders(sessions)).get(f"outbox:telegram:{BOT}")
            return holder if holder not in (None, sweeper) else None

        successor = await eventually_in(taken_over, 30, "the sweep taken over", rig)
        assert time.monotonic() - killed_at < TAKEOVER_BOUND + 5  # the parent needs no restart for it

        async def finished() -> bool:
            async with sessions() as session:
                return (await session.execute(select(Broadcast.status).where(
                    Broadcast.id == broadcast_id))).scalar_one() == DONE

        await eventually_in(finished, 90, "the broadcast done", rig)
        assert _pid(successor) in _children(parent.pid)
        await eventually_in(lambda: _two_workers(parent.pid), 30, "the killed worker started again", rig)

        # The poll: kill its holder, then talk; each message is answered once, by whoever polls now.
        poller = (await holders(sessions))[f"telegram-poll:{BOT}"]
        os.kill(_pid(poller), signal.SIGKILL)
        await rig.control("POST", "stream", {"channel": "telegram", "senders": users[:10], "count": 20, "rate": 10})

        async def all_answered() -> bool:
            got = await rig.control("GET", "received")
            return (await rig.control("GET", "stream"))["done"] and sum(
                texts.count(FALLBACK) for texts in got["telegram"].values()) >= 20

        await eventually_in(all_answered, 60, "the stream answered", rig)
        await asyncio.sleep(DUTY_LEASE_SECONDS)  # a second answer would show now
        received = await rig.control("GET", "received")
        rig.stop(0)
        assert parent.returncode == 0  # SIGTERM: the workers stopped cleanly, so did the parent

    copies = _copies(received)
    async with sessions() as session:
        flagged = set((await session.execute(select(Follower.external_id).join(
            Message, Message.follower_id == Follower.id).where(
            Message.broadcast_id == broadcast_id, Message.resent_in_doubt.is_(True)))).scalars())
        stored = Counter((await session.execute(select(Message.text).where(
            Message.channel == "telegram", Message.direction == "in", Message.text.like("m%")))).scalars())
    assert sorted(u for u in map(str, users) if copies[u] == 0) == []
    doubled = {u for u, n in copies.items() if n > 1}
    assert doubled <= flagged  # only a send in flight at the kill may have gone twice (and it says so)
    assert stored == Counter({f"m{i}": 1 for i in range(20)})
    answers = sum(texts.count(FALLBACK) for texts in received["telegram"].values())
    assert answers == 20


def _copies(received: dict[str, Any]) -> Counter[str]:
    return Counter({user: texts.count(BROADCAST) for user, texts in received["telegram"].items()})


async def _held(sessions: Sessions, *names: str) -> dict[str, str] | None:
    now = await holders(sessions)
    return {n: now[n] for n in names} if all(n in now for n in names) else None


def _pid(holder: str) -> int:
    return int(holder.split(":")[-2])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


async def _two_workers(pid: int) -> bool:
    return len(_children(pid)) == 2
