"""Stored files: capped in size and number (the oldest go first), and only ever served as downloads."""

from __future__ import annotations

import aiohttp

from bot.simulators.telegram import TelegramBotAPISimulator

from .conftest import serve


async def _upload(http: aiohttp.ClientSession, base: str, sim: TelegramBotAPISimulator, chat: int, name: str,
                  data: bytes) -> tuple[int, dict]:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(chat))
    form.add_field("document", data, filename=name, content_type="text/html")
    async with http.post(f"{base}/bot{sim.token}/sendDocument", data=form) as resp:
        return resp.status, await resp.json()


async def test_uploads_past_the_count_drop_the_oldest_and_too_big_ones_are_refused(user: int) -> None:
    sim = TelegramBotAPISimulator()
    sim.max_files, sim.max_file_bytes, sim.max_files_bytes = 3, 1000, 1500
    sim.add_user(user, first_name="Li Lei", started=True)
    runner, base = await serve(sim.make_app())
    try:
        async with aiohttp.ClientSession() as http:
            ids = []
            for n in range(4):
                status, body = await _upload(http, base, sim, user, f"f{n}.html", f"<p>{n}</p>".encode())
                assert status == 200
                ids.append(body["result"]["document"]["file_id"])
            async with http.get(f"{base}/simulator/telegram/api/file/{ids[0]}") as resp:
                assert resp.status == 404  # the oldest was dropped
            for file_id in ids[1:]:
                async with http.get(f"{base}/simulator/telegram/api/file/{file_id}") as resp:
                    assert resp.status == 200 and resp.content_type == "application/octet-stream"
                    assert resp.headers["X-Content-Type-Options"] == "nosniff"
                    assert resp.headers["Content-Disposition"].startswith('attachment; filename="file_')
            status, body = await _upload(http, base, sim, user, "big.html", b"x" * 1001)
            assert status == 400 and body["description"] == "Bad Request: file is too big: at most 1000 bytes"
            # Bytes in all: a second 900-byte file pushes out everything older.
            for n in range(2):
                status, body = await _upload(http, base, sim, user, f"b{n}.bin", b"y" * 900)
                assert status == 200
            assert list(sim.files) == [body["result"]["document"]["file_id"]]
    finally:
        await sim.close()
        await runner.cleanup()


def test_a_strange_upload_name_never_reaches_the_download_header() -> None:
    sim = TelegramBotAPISimulator()
    stored = sim.add_file(b"x", kind="document", mime_type="text/html", extension='ht"ml\r\n')
    assert stored.file_path.endswith(".bin")
