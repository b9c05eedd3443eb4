"""The mock channel over HTTP (``ENGAGEBOT_MOCK_SINK``): a real server process driven without any platform."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.app import build_app
from bot.channels.mock_plugin import mock_plugin
from bot.settings import load_settings
from tests.support.servers import serve

SORRY = "Sorry, I did not understand that. Send /help to see what I can do."


@pytest.fixture
async def base(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = load_settings(database_url=database_url, mock_sink=f"sqlite+aiosqlite:///{tmp_path / 'sink.db'}")
    async with serve(build_app(settings, plugins=[mock_plugin])) as url:
        yield url


async def test_a_message_is_answered_inline_and_a_repeat_gets_the_same_stored_answer(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for duplicate in (False, True):
            async with http.post(f"{base}/mock", json={"from": "amy", "text": "zzz", "message_id": "m1",
                                                       "language": "en"}) as resp:
                assert resp.status == 200
                assert await resp.json() == {"replies": [SORRY], "duplicate": duplicate}


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "body is not JSON"),
    (b"[1]", "body must be a JSON object"),
    (b'{"text": "hi"}', "field 'from'"),
    (b'{"from": "", "text": "hi"}', "field 'from'"),
    (b'{"from": "amy", "text": 5}', "field 'text'"),
    (b'{"from": "amy", "kind": "image"}', "field 'kind'"),
    (b'{"from": "amy", "message_id": ""}', "field 'message_id'"),
])
async def test_bad_input_gets_400_with_the_field_named(base: str, body: bytes, reason: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/mock", data=body) as resp:
            assert resp.status == 400
            assert reason in (await resp.json())["reason"]
        async with http.post(f"{base}/mock", data=b"{" + b" " * 20_000 + b"}") as resp:
            assert resp.status == 413


def test_without_a_sink_there_is_no_mock_route(database_url: str) -> None:
    app = build_app(load_settings(database_url=database_url), plugins=[mock_plugin])
    assert not [r for r in app.router.routes() if r.resource is not None and r.resource.canonical == "/mock"]
