"""Handoff on Telegram over real HTTP: the simulator's Bot API, our polling channel and its outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.admin.inbox import Inbox
from bot.core.follower import HandoffState
from bot.i18n import current_locale, default_catalogs
from bot.storage.models import Follower, Message
from handlers.help import help_text
from tests.channels.telegram.conftest import Rig, RigFactory, eventually

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

CATALOGS = default_catalogs()
QUEUED = "OK, I have asked a person from our team to answer you. Please wait here: they will reply soon."


async def _inbound_count(rig: Rig, chat_id: int) -> int:
    async with rig.harness.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Message).join(Follower).where(
            Follower.external_id == str(chat_id), Message.direction == "in"))


async def test_an_agent_takes_a_telegram_chat_replies_through_the_outbox_and_hands_back(
        make_rig: RigFactory) -> None:
    rig = await make_rig()
    inbox = Inbox(rig.harness.sessions, CATALOGS, {"telegram": rig.channel.capabilities}, default_locale="en")
    user = rig.user(language_code="zh-hant")
    rig.sim.send_text(user, "真人客服")
    [told] = await rig.replies(user, 1)
    assert told["text"] == CATALOGS.gettext("zh_Hant", QUEUED) != QUEUED

    rig.sim.send_text(user, "/help")  # queued: stored, not answered

    async def both_stored() -> bool:
        return await _inbound_count(rig, user) == 2

    await eventually(both_stored)
    [summary] = await inbox.conversations(state=HandoffState.QUEUED)
    assert (summary.external_id, summary.locale, summary.window is not None and summary.window.open) == (
        str(user), "zh_Hant", True)

    assert (await inbox.take(summary.follower_id, "alice")).told is False  # they asked: told already
    await inbox.reply(summary.follower_id, "alice", "您好，我是客服 Alice。")
    sent = await rig.replies(user, 2)
    assert [m["text"] for m in sent] == [told["text"], "您好，我是客服 Alice。"]
    await eventually(lambda: _outbound_status(rig, "您好，我是客服 Alice。", "sent"))
    assert len(rig.sim.sent(user)) == 2  # /help got nothing while queued

    await inbox.release(summary.follower_id, "alice")
    rig.sim.send_text(user, "/help")
    [*_, answer] = await rig.replies(user, 3)
    token = current_locale.set("zh_Hant")
    try:
        assert answer["text"] == help_text()  # the bot answers again, in the follower's language
    finally:
        current_locale.reset(token)


async def _outbound_status(rig: Rig, text: str, status: str) -> bool:
    async with rig.harness.sessions() as s:
        return (await s.scalar(select(Message.status).where(Message.text == text, Message.direction == "out"))) == status
