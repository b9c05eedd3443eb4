"""setWebhook makes the simulator POST updates, with the secret header, retrying until the bot answers 2xx."""

from __future__ import annotations

import pytest
from aiohttp import web
from telegram import Update
from telegram.error import BadRequest, Conflict

from .conftest import serve


async def test_webhook_delivery_with_secret_and_retry(sim, bot, user):
    received: list[tuple[str | None, dict]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(status=500 if len(received) == 1 else 200)  # the first try fails

    app = web.Application()
    app.router.add_post("/tg/hook", hook)
    runner, url = await serve(app)
    try:
        assert await bot.set_webhook(f"{url}/tg/hook", secret_token="s3cret_Token-1")
        update = sim.send_text(user, "/start via-webhook")
        await sim.wait_for(lambda: len(received) >= 2 and not sim.updates, timeout=5)
        assert [secret for secret, _ in received] == ["s3cret_Token-1"] * 2
        assert received[0][1] == received[1][1] == update  # the same update, retried
        parsed = Update.de_json(received[1][1], bot)
        assert parsed.message.text == "/start via-webhook"
        info = await bot.get_webhook_info()
        assert info.url == f"{url}/tg/hook" and info.pending_update_count == 0
        assert "500" in info.last_error_message
        assert [d["status"] for d in sim.webhook_deliveries] == [500, 200]
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        assert await bot.delete_webhook()
        sim.send_text(user, "polling again")
        [again] = await bot.get_updates(timeout=0)
        assert again.message.text == "polling again"
    finally:
        await runner.cleanup()


async def test_bad_secret_token_is_rejected(sim, bot):
    with pytest.raises(BadRequest, match="(?i)secret token"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="no spaces allowed")
    assert sim.webhook is None
