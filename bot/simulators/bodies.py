"""Reading a whole HTTP body in the simulators (they share no code with the bot: see ``bot.web.read_stream``)."""

from __future__ import annotations

from aiohttp import StreamReader


async def read_upto(stream: StreamReader, limit: int) -> bytes:
    """Read ``stream`` to its end, or until more than ``limit`` bytes came (the caller refuses those).

    ``StreamReader.read(n)`` answers what has arrived so far, not ``n`` bytes: a body that came in
    several packets would be cut at the first.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit and (chunk := await stream.read(limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
