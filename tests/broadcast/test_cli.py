"""The operator's commands: start, status (a progress bar), cancel."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast.models import Broadcast
from bot.cli import build_parser
from bot.storage.models import Message
from tests.support.broadcast import add_followers, rows_by_external_id, statuses

Sessions = async_sessionmaker[AsyncSession]


async def engagebot(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return await args.func(args)


async def test_start_writes_one_row_per_matching_follower(
    sessions: Sessions, cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    await add_followers(sessions, 3, tags=["vip"], locale="en")
    await add_followers(sessions, 2, start=3)
    code = await engagebot("broadcast", "start", "--name", "spring", "--text-en", "Spring sale",
                           "--text-zh", "春季促销", "--tag", "vip", "--channel", "fake")
    assert code == 0
    out = capsys.readouterr().out
    assert "broadcast #1 'spring' to channel=fake; tag=vip" in out
    assert "broadcast #1: 3 follower(s) queued" in out
    rows = await rows_by_external_id(sessions, 1)
    assert {k: r.text for k, r in rows.items()} == {"f0": "Spring sale", "f1": "Spring sale", "f2": "Spring sale"}


async def test_start_refuses_a_broadcast_without_text(cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert await engagebot("broadcast", "start", "--name", "empty") == 2
    assert "needs a text" in capsys.readouterr().err


async def test_status_shows_a_progress_bar_counts_and_reasons(
    sessions: Sessions, cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    await add_followers(sessions, 4)
    assert await engagebot("broadcast", "start", "--name", "launch", "--text-en", "New!", "--text-zh", "新品！") == 0
    async with sessions() as session:  # as a worker would leave it midway
        await session.execute(update(Message).where(Message.follower_id.in_([1, 2])).values(status="sent"))
        await session.execute(update(Message).where(Message.follower_id == 3).values(
            status="undeliverable", reason="outside the reply window"))
        await session.commit()
    capsys.readouterr()

    assert await engagebot("broadcast", "status", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"#1 launch\s+\[█{15}▒{8}░{7}\]  75\.0%  sent 2 · failed 0 · undeliverable 1 · "
                        r"pending 1 of 4  \(sending\)", out[0]), out[0]
    assert out[1] == "  audience: every follower"
    assert out[-1] == "        1 undeliverable: outside the reply window"

    assert await engagebot("broadcast", "status") == 0
    assert capsys.readouterr().out.splitlines() == [out[0]]


async def test_status_counts_the_rows_possibly_sent_twice(
    sessions: Sessions, cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    await add_followers(sessions, 3)
    assert await engagebot("broadcast", "start", "--name", "launch", "--text-en", "New!", "--text-zh", "新品！") == 0
    async with sessions() as session:  # two were in flight when a worker was killed, and were sent again
        await session.execute(update(Message).values(status="sent"))
        await session.execute(update(Message).where(Message.follower_id.in_([1, 3])).values(resent_in_doubt=True))
        await session.commit()
    capsys.readouterr()
    assert await engagebot("broadcast", "status", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("sent 3 · failed 0 · undeliverable 0 · pending 0 of 3; possibly sent twice 2  (sending)")
    assert out[-1].startswith("  possibly sent twice: 2 (sent again after a crash cut their first try short")


async def test_cancel_marks_unsent_rows_cancelled(
    sessions: Sessions, cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    await add_followers(sessions, 3)
    assert await engagebot("broadcast", "start", "--name", "oops", "--text-en", "Wrong text") == 0
    assert await engagebot("broadcast", "cancel", "1") == 0
    assert "broadcast #1 cancelled: 3 unsent message(s) will not be sent" in capsys.readouterr().out
    assert await statuses(sessions, 1) == {"cancelled": 3}
    async with sessions() as session:
        broadcast = await session.get(Broadcast, 1)
        assert broadcast is not None and broadcast.status == "cancelled"
    assert await engagebot("broadcast", "cancel", "1") == 1


async def test_status_watch_ends_when_the_broadcast_is_over(
    sessions: Sessions, cli_env: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    await add_followers(sessions, 2)
    assert await engagebot("broadcast", "start", "--name", "w", "--text-en", "Hi") == 0
    assert await engagebot("broadcast", "cancel", "1") == 0
    capsys.readouterr()
    assert await engagebot("broadcast", "status", "1", "--watch") == 0
    assert "cancelled 2 of 2  (cancelled)" in capsys.readouterr().out
