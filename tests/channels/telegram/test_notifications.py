"""What Telegram reports rather than what a follower says is recorded, never answered.

An edited message, a pin (a service message) and the bot added to a group reach the bot over real
HTTP from the simulated Bot API, in polling and in webhook mode.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from telegram import Update

from bot import Kind
from bot.storage.models import PlatformNotice
from tests.channels.telegram.test_updates import inbound, message

from .conftest import RigFactory, eventually

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def _notices(rig) -> list[tuple[str, int | None]]:
    async with rig.harness.sessions() as s:
        return [tuple(r) for r in (await s.execute(select(PlatformNotice.event, PlatformNotice.follower_id)
                                                   .order_by(PlatformNotice.id))).all()]


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_edits_pins_and_groups_are_recorded_and_not_answered(make_rig: RigFactory, mode: str) -> None:
    rig = await make_rig(mode=mode)
    user = rig.user()
    sent = rig.sim.send_text(user, "hello")
    [answer] = await rig.replies(user, 1)

    rig.sim.edit_text(user, sent["message"]["message_id"], "hello again")
    rig.sim.pin(user, answer["message_id"])
    rig.sim.add_bot_to_group(user, -100123)
    recorded = await eventually(lambda: _notices_when(rig, 3))

    follower = await rig.follower(user)
    assert follower is not None
    # Each chat has its own queue: the group's notice may come before or after the follower's two.
    assert sorted(recorded, key=str) == sorted(
        [("edited_message", follower.id), ("pinned_message", follower.id), ("my_chat_member", None)], key=str)
    await asyncio.sleep(0.3)
    assert len(rig.sim.sent(user)) == 1  # the answer to "hello", nothing since
    assert len(await rig.outbound(user)) == 1

    rig.sim.send_text(user, "/help")  # the conversation goes on
    await rig.replies(user, 2)


async def _notices_when(rig, count: int) -> list[tuple[str, int | None]] | None:
    found = await _notices(rig)
    return found if len(found) >= count else None


def test_service_messages_and_edits_are_notifications_and_content_is_not() -> None:
    pinned = inbound(message(pinned_message={"message_id": 3, "date": 1700000000,
                                             "chat": {"id": 42, "type": "private"}, "text": "x"}))
    allowed = inbound(message(write_access_allowed={}))
    sticker = inbound(message(sticker={"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 1,
                                       "height": 1, "is_animated": False, "is_video": False}))
    assert (pinned.kind, pinned.notice.event) == (Kind.NOTIFICATION, "pinned_message")
    assert (allowed.kind, allowed.notice.event) == (Kind.NOTIFICATION, "write_access_allowed")
    assert sticker.kind is Kind.UNKNOWN and sticker.notice is None  # a follower's message: the polite answer


def test_a_live_locations_edits_move_the_followers_last_location() -> None:
    moved = Update.de_json({"update_id": 9, "edited_message": {
        "message_id": 7, "date": 1700000000, "edit_date": 1700000060, "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "Li"},
        "location": {"latitude": 31.2304, "longitude": 121.4737, "live_period": 3600}}}, None)
    msg = inbound(moved)
    assert (msg.kind, msg.notice.event, msg.notice.location) == (Kind.NOTIFICATION, "edited_message",
                                                                 (31.2304, 121.4737))
