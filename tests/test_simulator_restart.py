"""Issue 9.1: restarting ``engagebot run`` is invisible to the simulators' users.

The simulators keep their users, chats, ids, timelines and WeChat followers in the database: after
a restart a Telegram user's new messages are not dropped as duplicates and map to the same
follower, and a broadcast still reaches the old users on both simulators.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower, Message
from tests.support.process import engagebot, http_json, running, stop
from tests.support.servers import free_port

TELEGRAM = "/simulator/telegram/api"
WECHAT = "/simulator/wechat/api"


def _bot_messages(base: str, user_id: int) -> list[dict[str, Any]]:
    chat = http_json("GET", f"{base}{TELEGRAM}/chat?user_id={user_id}")
    return [e for e in chat["events"] if e["dir"] == "out" and e["kind"] == "message"]


def _wait_bot_messages(base: str, user_id: int, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(found := _bot_messages(base, user_id)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} bot messages: {found}"
        time.sleep(0.1)
    return found


async def _followers_and_texts(database_url: str, channel: str) -> tuple[int, list[str]]:
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            followers = await session.scalar(select(func.count()).select_from(Follower).where(
                Follower.channel == channel))
            texts = (await session.scalars(select(Message.text).where(
                Message.channel == channel, Message.direction == "in", Message.kind == "text")
                .order_by(Message.id))).all()
        return followers, list(texts)
    finally:
        await engine.dispose()


async def test_a_restart_is_invisible_to_the_simulators_users(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        base = server.url
        ada = http_json("POST", f"{base}{TELEGRAM}/users", {"first_name": "Ada", "language_code": "en"})["user"]["id"]
        http_json("POST", f"{base}{TELEGRAM}/start", {"user_id": ada})
        http_json("POST", f"{base}{TELEGRAM}/send", {"user_id": ada, "text": "hello"})
        before = _wait_bot_messages(base, ada, 2)
        wei = http_json("POST", f"{base}{WECHAT}/followers", {"nickname": "Wei", "language": "zh_CN"})["openid"]
        assert http_json("POST", f"{base}{WECHAT}/action", {"openid": wei, "action": "follow"})["reply"]
        assert http_json("POST", f"{base}{WECHAT}/action", {"openid": wei, "action": "text", "text": "你好"})["reply"]
        wechat_before = http_json("GET", f"{base}{WECHAT}/timeline?openid={wei}")["entries"]

    with running("run", env=env, cwd=tmp_path, port=port, name="restarted") as server:
        base = server.url
        state = http_json("GET", f"{base}{TELEGRAM}/state")
        assert [(u["id"], u["first_name"]) for u in state["users"]] == [(ada, "Ada")]
        assert _bot_messages(base, ada) == before  # the chat is still there
        update = http_json("POST", f"{base}{TELEGRAM}/send", {"user_id": ada, "text": "hello again"})["update"]
        assert update["message"]["message_id"] > max(m["message_id"] for m in before)
        after = _wait_bot_messages(base, ada, 3)  # answered: not dropped as a duplicate
        assert after[:2] == before
        assert http_json("GET", f"{base}{WECHAT}/timeline?openid={wei}")["entries"] == wechat_before
        assert http_json("POST", f"{base}{WECHAT}/action", {"openid": wei, "action": "text", "text": "在吗"})["reply"]

        done = engagebot("broadcast", "start", "--name", "after-restart", "--text-en", "Spring sale!",
                         "--text-zh", "春季促销！", "--wait", env=env, cwd=tmp_path, timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _wait_bot_messages(base, ada, 4)[-1]["text"] == "Spring sale!"
        timeline = http_json("GET", f"{base}{WECHAT}/timeline?openid={wei}")["entries"]
        assert [e["content"] for e in timeline if e["direction"] == "out"][-1] == "春季促销！"

    followers, texts = await _followers_and_texts(database_url, "telegram")
    assert followers == 1 and texts == ["hello", "hello again"]  # the same follower, every message kept
    wechat_followers, wechat_texts = await _followers_and_texts(database_url, "wechat")
    assert wechat_followers == 1 and wechat_texts == ["你好", "在吗"]
    for name in ("run", "restarted"):
        assert "duplicate dropped" not in (tmp_path / f"{name}.err").read_text()


async def test_after_a_crash_the_telegram_simulator_reuses_no_id_the_bot_has_seen(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        ada = http_json("POST", f"{server.url}{TELEGRAM}/users", {"first_name": "Ada"})["user"]["id"]
        for n in range(3):
            http_json("POST", f"{server.url}{TELEGRAM}/send", {"user_id": ada, "text": f"message {n}"})
        _wait_bot_messages(server.url, ada, 3)
        assert stop(server, signal.SIGKILL) == -signal.SIGKILL  # no clean stop: the last changes may be lost
    with running("run", env=env, cwd=tmp_path, port=port, name="after-crash") as server:
        kept = len(_bot_messages(server.url, ada))  # up to the last 0.25 s before the crash may be lost
        http_json("POST", f"{server.url}{TELEGRAM}/send", {"user_id": ada, "text": "after the crash"})
        _wait_bot_messages(server.url, ada, kept + 1)  # answered, not taken for a message seen before
    restored = [json.loads(line) for line in (tmp_path / "after-crash.err").read_text().splitlines()
                if line.startswith("{") and "simulator state restored" in line]
    assert {r["simulator"]: r["after_crash"] for r in restored}["telegram"] is True
    _followers, texts = await _followers_and_texts(database_url, "telegram")
    assert texts == ["message 0", "message 1", "message 2", "after the crash"]
