"""Small real images for the image tests: PNG files drawn with segno, and an image served over HTTP."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import segno
from sqlalchemy import select

from bot.storage.models import Message


def png_bytes(text: str = "engagebot") -> bytes:
    out = io.BytesIO()
    segno.make(text).save(out, kind="png", scale=3)
    return out.getvalue()


def noise_png_bytes(side: int = 600, seed: int = 7) -> bytes:
    """A PNG of random pixels, ``side`` x ``side`` RGB: noise does not compress, so it weighs about 3*side**2 bytes."""
    rows = random.Random(seed).randbytes(side * side * 3)
    raw = b"".join(b"\0" + rows[y * side * 3:(y + 1) * side * 3] for y in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_file(directory: Path, name: str = "poster.png", text: str = "engagebot") -> Path:
    path = directory / name
    path.write_bytes(png_bytes(text))
    return path


async def outbound_outcomes(sessions: Any, kind: str, want: int = 1, timeout: float = 10.0) -> list[tuple[str, str | None]]:
    """(status, reason) of the outbound rows of ``kind``, once ``want`` of them are settled (or at ``timeout``)."""
    rows: list[Any] = []
    for _ in range(int(timeout / 0.05)):
        async with sessions() as s:
            rows = list((await s.execute(select(Message.status, Message.reason).where(
                Message.direction == "out", Message.kind == kind).order_by(Message.id))).all())
        if len(rows) >= want and all(status not in ("pending", "sending") for status, _ in rows):
            break
        await asyncio.sleep(0.05)
    return [(status, reason) for status, reason in rows]
