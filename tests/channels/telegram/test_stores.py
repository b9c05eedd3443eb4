"""A Telegram user asks for stores, shares a location with the button, gets the nearest (real HTTP)."""

from __future__ import annotations

import pytest

from tests.support.stores import PEOPLES_SQUARE
from tests.support.stores import load_stores as _load

from .conftest import RigFactory

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.mark.parametrize(("language", "ask", "expected"), [
    ("en", "store near me", ["Share my location", "Xintiandi · 1.3 km", "Open"]),
    ("zh-hans", "附近门店", ["发送我的位置", "新天地店 · 1.3公里", "营业中"]),
])
async def test_telegram_asks_with_its_location_button_then_answers(make_rig: RigFactory, language: str, ask: str,
                                                                   expected: list[str]) -> None:
    rig = await make_rig()
    await _load(rig.harness.sessions)
    user = rig.user(language_code=language)
    rig.sim.send_text(user, ask)
    [asked] = await rig.replies(user, 1)
    keyboard = rig.sim.chat(user).reply_keyboard
    [[button]] = keyboard["keyboard"]
    assert button == {"text": expected[0], "request_location": True} and keyboard["one_time_keyboard"]
    assert asked["text"]

    rig.sim.send_location(user, *PEOPLES_SQUARE)
    [_asked, answer] = await rig.replies(user, 2)
    assert expected[1] in answer["text"] and expected[2] in answer["text"], answer["text"]
    assert rig.sim.chat(user).reply_keyboard is None  # the one-time keyboard went away
