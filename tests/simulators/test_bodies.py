"""The simulators read a body whole, however many packets it came in, and stop just past their limit."""

from __future__ import annotations

import asyncio
from unittest import mock

from aiohttp import StreamReader

from bot.simulators.bodies import read_upto


def stream_of(*packets: bytes) -> StreamReader:
    """A body whose packets arrive one after another, 10 ms apart (as from a slow client)."""
    loop = asyncio.get_running_loop()
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=loop)
    for n, packet in enumerate(packets):
        loop.call_later(0.01 * n, reader.feed_data, packet)
    loop.call_later(0.01 * len(packets), reader.feed_eof)
    return reader


async def test_a_body_in_several_packets_is_read_whole() -> None:
    assert await read_upto(stream_of(b'{"text": ', b'"hello"', b"}"), 1024) == b'{"text": "hello"}'


async def test_a_body_past_the_limit_is_read_one_byte_past_it_for_the_caller_to_refuse() -> None:
    assert await read_upto(stream_of(b"x" * 6, b"y" * 6), 10) == b"x" * 6 + b"y" * 5
    assert await read_upto(stream_of(b"x" * 10), 10) == b"x" * 10
