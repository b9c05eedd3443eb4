"""``engagebot inbox list|show|take|reply|release`` on the same database as a running bot."""

from __future__ import annotations

import asyncio

import pytest

from bot.cli import main
from bot.storage.status import DeliveryStatus
from tests.handoff.conftest import Desk


async def inbox(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["inbox", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_inbox_from_the_terminal(desk: Desk, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", desk.harness.database_url)
    await desk.harness.follower("amy", language="en").say("hello")
    ben = desk.harness.follower("ben", language="zh-CN")
    await ben.say("人工")
    ben_id = (await desk.follower_row("ben")).id

    code, out, _ = await inbox(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[:4] == [str(ben_id), "mock/mock", "ben", "zh_Hans"] and "queued since" in lines[0]
    assert "amy" in lines[1] and " en " in lines[1] and " bot " in lines[1] and "window open" in lines[1]
    code, out, _ = await inbox(capsys, "list", "--state", "queued")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == [str(ben_id)]

    code, out, _ = await inbox(capsys, "take", str(ben_id), "--agent", "alice")
    assert (code, out.strip()) == (0, f"conversation {ben_id} taken by alice")
    code, out, _ = await inbox(capsys, "reply", str(ben_id), "您好，我是 Alice。", "--agent", "alice")
    assert code == 0 and out.startswith("reply ") and "queued" in out
    reply = (await desk.messages("ben", "out"))[-1]
    assert (reply.text, reply.sent_by, reply.status) == ("您好，我是 Alice。", "alice", DeliveryStatus.PENDING)

    code, _, err = await inbox(capsys, "reply", str(ben_id), "hi", "--agent", "bob")
    assert code == 2 and err.strip() == (f"engagebot: conversation {ben_id} is not agent 'bob''s: "
                                         "it is taken by agent 'alice'")

    code, out, _ = await inbox(capsys, "show", str(ben_id))
    assert code == 0
    assert out.splitlines()[0].startswith(f"conversation {ben_id}: mock/mock ben, locale zh_Hans, taken by alice")
    assert out.splitlines()[-1].endswith("agent alice: 您好，我是 Alice。  [pending]")
    assert any(line.endswith("follower: 人工") for line in out.splitlines())

    code, out, _ = await inbox(capsys, "release", str(ben_id), "--agent", "alice")
    assert (code, out.strip()) == (0, f"conversation {ben_id} handed back to the bot")
    assert (await desk.follower_row("ben")).paused_by is None

    code, _, err = await inbox(capsys, "take", "999999", "--agent", "alice")
    assert (code, err.strip()) == (2, "engagebot: no conversation 999999")
