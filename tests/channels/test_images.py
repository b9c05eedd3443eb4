"""The media cache of images.py against the real table: its keys keep the whole content hash."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.channels.images import Image, MediaCache, check_image
from bot.storage.models import SharedToken
from bot.testing import BotHarness
from tests.support.images import png_bytes


async def test_two_images_under_a_long_scope_keep_their_own_upload(harness: BotHarness) -> None:
    scope = "wechat:" + "a" * 120  # longer than the key column: the scope gives way, not the content hash
    cache, uploaded = MediaCache(harness.sessions, scope), []

    async def upload(image: Image) -> tuple[str, timedelta]:
        uploaded.append(image.digest)
        return f"id-{len(uploaded)}", timedelta(days=3)

    first, second = check_image(png_bytes("first"), "first"), check_image(png_bytes("second"), "second")
    assert [await cache.media_id(image, upload) for image in (first, second, first, second)] == [
        "id-1", "id-2", "id-1", "id-2"]
    assert uploaded == [first.digest, second.digest]
    async with harness.sessions() as session:
        names = list((await session.execute(select(SharedToken.name).where(SharedToken.name.like("media:%")))).scalars())
    assert sorted(n.rsplit(":", 1)[1] for n in names) == sorted([first.digest, second.digest])
    assert all(len(n) <= 128 for n in names)
    # A send that saw a stale id drops that one only, not the one a concurrent send uploaded since.
    await cache.forget(second, "id-0")
    await cache.forget(first, "id-1")
    assert [await cache.media_id(image, upload) for image in (first, second)] == ["id-3", "id-2"]
