"""Photos on Telegram against the Bot API simulator over loopback: uploaded once, then sent by file_id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import ImageReply, Kind, Router
from bot.channels.images import _qr_png
from tests.support.images import outbound_outcomes, png_file

from .conftest import RigFactory

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def poster_router(path: Path) -> Router:
    router = Router("pictures")

    @router.on(Kind.TEXT, priority=500)
    async def poster(msg, ctx):
        return [ImageReply(str(path), caption="Our winter poster")]

    return router


async def test_an_image_reply_is_a_photo_uploaded_once_then_sent_by_file_id(
        make_rig: RigFactory, tmp_path: Path) -> None:
    poster = png_file(tmp_path)
    rig = await make_rig(routers=[poster_router(poster)])
    first, second = rig.user(), rig.user()
    rig.sim.send_text(first, "poster")
    [sent] = await rig.replies(first, 1)
    assert (sent["method"], sent["caption"]) == ("sendPhoto", "Our winter poster")
    file_id = sent["photo_file_id"]
    assert rig.sim.files[file_id].data == poster.read_bytes()  # what the chat page shows
    rig.sim.send_text(second, "poster")
    [again] = await rig.replies(second, 1)
    assert again["photo"] == file_id  # sent by file_id: not uploaded a second time


async def test_an_invite_qr_is_a_photo_of_the_deep_link(make_rig: RigFactory) -> None:
    rig = await make_rig()
    user = rig.user()
    rig.sim.send_text(user, "invite")
    [sent] = await rig.replies(user, 1)
    link = sent["caption"].rsplit("\n", 1)[1]
    assert sent["method"] == "sendPhoto" and link.startswith("https://t.me/engagebot_demo_bot?start=ref-")
    assert rig.sim.files[sent["photo_file_id"]].data == _qr_png(link)


async def test_a_missing_image_ends_failed_with_the_reason(make_rig: RigFactory, tmp_path: Path) -> None:
    rig = await make_rig(routers=[poster_router(tmp_path / "gone.png")])
    user = rig.user()
    rig.sim.send_text(user, "poster")
    rows = await outbound_outcomes(rig.harness.sessions, "image")
    assert rows == [("failed", f"image not sent: {tmp_path / 'gone.png'}: cannot read (No such file or directory)")]
    assert rig.sim.sent(user) == []
