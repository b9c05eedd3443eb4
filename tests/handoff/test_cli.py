"""``engagebot inbox list|show|take|reply|release|dismiss`` on the same database as a running bot."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.admin import operators
from bot.admin.audit import CLI_ACTOR, list_entries
from bot.admin.roles import Role
from bot.admin.schemas import OperatorCreate
from bot.cli import main
from bot.core.clock import utcnow
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


async def test_an_operator_account_acts_from_the_terminal_and_is_audited(
        desk: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", desk.harness.database_url)
    async with desk.harness.sessions() as session:
        for name, role in (("alice", Role.AGENT), ("mia", Role.MARKETER), ("gone", Role.AGENT)):
            op = await operators.add_operator(session, CLI_ACTOR, OperatorCreate(name=name, role=role,
                                                                                 password="p" * 12))
            if name == "gone":
                op.disabled_at = utcnow()
        await session.commit()
        alice_id = (await operators.get_operator(session, "alice")).id
    await desk.harness.follower("ben", language="en").say("hello")
    ben_id = (await desk.follower_row("ben")).id

    for who, reason in (("mia", "operator 'mia': the marketer role may not inbox.write"),
                        ("gone", "operator 'gone' is disabled"), ("nobody", "no operator 'nobody'")):
        code, _, err = await inbox(capsys, "take", str(ben_id), "--operator", who)
        assert (code, err.strip()) == (2, f"engagebot: {reason}")
    code, _, err = await inbox(capsys, "take", str(ben_id))
    assert code == 2 and "--operator NAME" in err
    code, _, err = await inbox(capsys, "take", str(ben_id), "--operator", "alice", "--agent", "bob")
    assert code == 2 and "leave --agent out" in err

    code, out, _ = await inbox(capsys, "take", str(ben_id), "--operator", "alice")
    assert code == 0 and out.startswith(f"conversation {ben_id} taken by alice;")
    code, _, _ = await inbox(capsys, "reply", str(ben_id), "Alice here.", "--operator", "alice")
    assert code == 0 and (await desk.messages("ben", "out"))[-1].sent_by == "alice"
    code, _, _ = await inbox(capsys, "release", str(ben_id), "--operator", "alice")
    assert code == 0
    code, _, _ = await inbox(capsys, "take", str(ben_id), "--agent", "carol")  # no account: the audit says cli
    assert code == 0
    async with desk.harness.sessions() as session:
        rows = await list_entries(session, limit=10)
    assert [(r.action, r.actor, r.operator_id, (r.after or {}).get("agent")) for r in reversed(rows)
            if r.action.startswith("conversation.")] == [
        ("conversation.take", "alice", alice_id, "alice"),
        ("conversation.reply", "alice", alice_id, "alice"),
        ("conversation.release", "alice", alice_id, "alice"),
        ("conversation.take", "cli", None, "carol"),
    ]


async def test_followers_owed_an_answer_are_listed_and_dismissed_from_the_terminal(
        desk: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", desk.harness.database_url)
    await desk.harness.follower("amy", language="en").say("hello")
    await desk.harness.follower("ben", language="en").say("human")
    ben_id = (await desk.follower_row("ben")).id
    assert await desk.inbox.sweep_timeouts(now=utcnow() + desk.inbox.timeout + timedelta(seconds=1)) == 1
    code, out, _ = await inbox(capsys, "list", "--owed")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == [str(ben_id)]
    assert "bot, owed an answer since" in out
    code, out, _ = await inbox(capsys, "dismiss", str(ben_id), "--agent", "alice")
    assert (code, out.strip()) == (0, f"conversation {ben_id} no longer owed an answer")
    code, out, _ = await inbox(capsys, "list", "--owed")
    assert (code, out.strip()) == (0, "no conversations")
    code, out, _ = await inbox(capsys, "dismiss", str(ben_id), "--agent", "alice")
    assert (code, out.strip()) == (0, f"conversation {ben_id} was not owed an answer")
    async with desk.harness.sessions() as session:
        entries = await list_entries(session, limit=10, action="conversation.dismiss")
    assert [(e.actor, e.after) for e in entries] == [("cli", {"agent": "alice"})]
