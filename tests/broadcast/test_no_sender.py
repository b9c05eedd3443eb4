"""Nobody pending forever: rows of an account no process sends for are reported undeliverable, with the reason."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import BroadcastWorker
from bot.broadcast.models import DONE, Broadcast
from bot.core.clock import utcnow
from bot.delivery.presence import Presence, give_up_unserved
from bot.storage.models import Message, SenderPresence
from tests.support.broadcast import RecordingChannel, add_followers, rows_by_external_id, start_broadcast
from tests.support.servers import free_port

Sessions = async_sessionmaker[AsyncSession]
ROOT = Path(__file__).resolve().parents[2]
CONSOLE_REASON = "no sender running for mock account 'console'"


async def age(sessions: Sessions, seconds: float) -> None:
    async with sessions() as session:
        await session.execute(update(Message).values(created_at=utcnow() - timedelta(seconds=seconds)))
        await session.commit()


async def test_rows_of_an_account_nobody_serves_are_given_up_after_the_wait(sessions: Sessions) -> None:
    await add_followers(sessions, 2, channel="mock", account="console")
    await add_followers(sessions, 2, start=2, channel="fake", account="acct")
    broadcast_id = await start_broadcast(sessions)
    served = Presence(sessions, [("fake", "acct")], wait=timedelta(seconds=30))
    await served.start()
    try:
        assert [u.given_up for u in await give_up_unserved(sessions, wait=timedelta(seconds=30))] == [0]  # too young
        await age(sessions, 31)
        [unserved] = await give_up_unserved(sessions, wait=timedelta(seconds=30))
    finally:
        await served.stop()
    assert (unserved.channel, unserved.account, unserved.rows, unserved.given_up) == ("mock", "console", 2, 2)
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "f0": ("undeliverable", CONSOLE_REASON), "f1": ("undeliverable", CONSOLE_REASON),
        "f2": ("pending", None), "f3": ("pending", None)}
    async with sessions() as session:
        assert (await session.execute(select(SenderPresence))).all() == []  # gone with its process


async def test_a_sender_back_within_the_wait_finds_its_rows_untouched(sessions: Sessions) -> None:
    await add_followers(sessions, 1, channel="fake", account="acct")
    await start_broadcast(sessions)
    await age(sessions, 60)
    async with sessions() as session:  # the last sender was seen 10 s ago (a restart under way)
        session.add(SenderPresence(channel="fake", account="acct", instance="gone", host="h", pid=1,
                                   started_at=utcnow(), seen_at=utcnow() - timedelta(seconds=10)))
        await session.commit()
    assert [u.given_up for u in await give_up_unserved(sessions, wait=timedelta(seconds=30))] == []
    [unserved] = await give_up_unserved(sessions, wait=timedelta(seconds=5))
    assert unserved.given_up == 1


async def test_a_row_left_in_flight_by_a_vanished_sender_says_it_may_have_arrived(sessions: Sessions) -> None:
    await add_followers(sessions, 1, channel="fake", account="acct")
    broadcast_id = await start_broadcast(sessions)
    async with sessions() as session:
        await session.execute(update(Message).values(status="sending", created_at=utcnow() - timedelta(minutes=5)))
        await session.commit()
    await give_up_unserved(sessions, wait=timedelta(seconds=30))
    [row] = (await rows_by_external_id(sessions, broadcast_id)).values()
    assert row.status == "undeliverable"
    assert row.reason == "no sender running for fake account 'acct'; an earlier try may have reached the platform"


async def test_the_worker_sends_what_it_can_and_closes_the_broadcast_with_the_rest_reported(sessions: Sessions) -> None:
    await add_followers(sessions, 3, channel="fake", account="acct")
    await add_followers(sessions, 2, start=3, channel="mock", account="console")
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel()
    worker = BroadcastWorker(sessions, [channel], poll_every=0.05, no_sender_wait=timedelta(seconds=0.5))
    await worker.start()
    try:
        async with asyncio.timeout(15):
            while True:
                async with sessions() as session:
                    if (await session.get(Broadcast, broadcast_id, populate_existing=True)).status == DONE:
                        break
                await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert sorted(channel.recipients()) == ["f0", "f1", "f2"]
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert {k: r.status for k, r in rows.items()} == {"f0": "sent", "f1": "sent", "f2": "sent",
                                                      "f3": "undeliverable", "f4": "undeliverable"}
    assert rows["f3"].reason == CONSOLE_REASON


# --- the newcomer's steps, with the real command ---------------------------------------------------------------


def _env(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEBOT_")}
    env.update(ENGAGEBOT_DATABASE_URL=database_url, ENGAGEBOT_PORT=str(port), ENGAGEBOT_LOG_LEVEL="WARNING",
               ENGAGEBOT_OUTBOX__NO_SENDER_WAIT_SECONDS="4", PYTHONPATH=str(ROOT))
    return env


def engagebot(*args: str, env: dict[str, str], cwd: Path, stdin: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


async def _healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "engagebot run did not come up"
            await asyncio.sleep(0.2)


async def test_after_plain_chat_broadcast_start_wait_ends_with_the_console_follower_undeliverable(
    database_url: str, tmp_path: Path,
) -> None:
    port = free_port()
    env = _env(database_url, port)
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await _healthy(f"http://127.0.0.1:{port}", server)
        console = engagebot("chat", env=env, cwd=tmp_path, stdin="hello\n:quit\n")  # the mock console
        assert console.returncode == 0 and "bot> " in console.stdout, console.stderr
        phone = engagebot("chat", "--channel", "wechat", "--lang", "en", "--url", f"http://127.0.0.1:{port}",
                          env=env, cwd=tmp_path, stdin="hello\n:quit\n")  # a follower the server can reach
        assert phone.returncode == 0, phone.stderr
        started = time.monotonic()
        done = engagebot("broadcast", "start", "--name", "spring", "--text-en", "Spring sale!", "--text-zh",
                         "春季促销！", "--wait", env=env, cwd=tmp_path, timeout=60)
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30
        last = done.stdout.strip().splitlines()[-1]
        assert "sent 1 · failed 0 · undeliverable 1 · pending 0 of 2  (done)" in last, done.stdout
        assert "no sender is running for mock account 'console'" in done.stdout
        status = engagebot("broadcast", "status", "1", env=env, cwd=tmp_path)
        assert f"1 undeliverable: {CONSOLE_REASON}" in status.stdout, status.stdout
        watch = engagebot("broadcast", "status", "1", "--watch", env=env, cwd=tmp_path, timeout=15)
        assert watch.returncode == 0 and "(done)" in watch.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


async def test_with_no_server_at_all_the_wait_still_ends(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url, free_port())
    assert engagebot("chat", env=env, cwd=tmp_path, stdin="hello\n:quit\n").returncode == 0
    done = engagebot("broadcast", "start", "--name", "n", "--text-en", "Hi", "--text-zh", "嗨", "--wait",
                     env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "undeliverable 1 · pending 0 of 1  (done)" in done.stdout.strip().splitlines()[-1], done.stdout


async def test_start_names_the_accounts_nobody_sends_for(sessions: Sessions, cli_env: dict[str, str], capsys) -> None:
    from bot.cli import build_parser

    await add_followers(sessions, 2, channel="mock", account="console")
    served = Presence(sessions, [("fake", "acct")])
    await add_followers(sessions, 1, start=2, channel="fake", account="acct")
    await served.start()
    try:
        args = build_parser().parse_args(["broadcast", "start", "--name", "n", "--text-en", "Hi", "--text-zh", "嗨"])
        assert await args.func(args) == 0
    finally:
        await served.stop()
    out = capsys.readouterr().out
    assert ("no sender is running for mock account 'console': its 2 message(s) become undeliverable after 30 s "
            "unless `engagebot run` or `engagebot broadcast work` sends for it") in out
    assert "account 'acct'" not in out
