"""Updates PTB cannot even build, posted to the webhook of a real ``engagebot run``.

A date past ``datetime``'s range or a ``reply_to_message`` chain nested past Python's recursion
limit (about 100 KB, under the body cap) make ``Update.de_json`` raise ``OverflowError`` or
``RecursionError``. Such an update is bad input: 400 with a reason, so Telegram drops it, never a
500 (which Telegram retries forever) with a traceback. The updates around it are answered.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.process import ROOT, cli_env, http, running
from tests.support.servers import free_port

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "424242:" + secrets.token_urlsafe(26)
SECRET = "hook_" + secrets.token_hex(8)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _message(user: int, message_id: int, *, date: int | None = None) -> dict[str, Any]:
    return {"message_id": message_id, "date": int(time.time()) if date is None else date, "text": "hello",
            "chat": {"id": user, "type": "private"}, "from": {"id": user, "is_bot": False, "first_name": "Eve"}}


def _reply_chain(user: int, depth: int) -> str:
    """An update whose message quotes a message quoting a message... ``depth`` times (as JSON text:
    ``json.dumps`` itself stops at the recursion limit)."""
    head = json.dumps(_message(user, 1))[:-1]
    link = f', "reply_to_message": {{"message_id": 2, "date": 1700000000, "text": "x", ' \
           f'"chat": {{"id": {user}, "type": "private"}}'
    return '{"update_id": 2, "message": ' + head + link * depth + "}" * depth + "}}"


HOSTILE = {
    "date-overflow": lambda u: json.dumps({"update_id": 2, "message": _message(u, 1, date=10**20)}),
    "date-year-out-of-range": lambda u: json.dumps({"update_id": 2, "message": _message(u, 1, date=10**12)}),
    "reply-chain-past-the-recursion-limit": lambda u: _reply_chain(u, 900),
}


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_webhook_update_ptb_cannot_build_is_400_not_500(tmp_path: Path, make: Any) -> None:
    api_port, port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "bot.simulators.telegram", "--port", str(api_port),
                            "--token", TOKEN], env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        env = {"ENGAGEBOT_PORT": str(port), "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
               "ENGAGEBOT_TELEGRAM__TOKEN": TOKEN, "ENGAGEBOT_TELEGRAM__API_BASE": f"http://127.0.0.1:{api_port}/bot",
               "ENGAGEBOT_TELEGRAM__MODE": "webhook", "ENGAGEBOT_TELEGRAM__WEBHOOK_SECRET": SECRET,
               "ENGAGEBOT_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram"}
        with running("run", env=env, cwd=tmp_path, port=port) as server:
            async with aiohttp.ClientSession() as client:
                async def post(update: dict[str, Any] | str) -> tuple[int, Any]:
                    body = update if isinstance(update, str) else json.dumps(update)
                    async with client.post(f"{server.url}/telegram", data=body.encode(), headers={
                            SECRET_HEADER: SECRET, "Content-Type": "application/json"}) as resp:
                        return resp.status, await resp.text()

                deadline = time.monotonic() + 30
                while (answer := await post({"update_id": 1, "message": _message(700001, 1)}))[0] == 503:
                    assert time.monotonic() < deadline, answer  # the bot is still connecting to the Bot API
                    time.sleep(0.2)
                assert answer[0] == 200, answer
                hostile = make(700002)
                assert len(hostile) < 256 * 1024  # under the webhook's body cap: PTB gets to see it
                status, body = await post(hostile)
                assert status == 400, (status, body[:300])
                assert "malformed Update" in body or "not JSON" in body, body[:300]
                assert (await post({"update_id": 3, "message": _message(700003, 1)}))[0] == 200
            assert http("GET", server.url + "/healthz")[0] == 200
        assert "Traceback" not in server.stderr and "Error handling request" not in server.stderr
    finally:
        api.terminate()
        api.wait(timeout=10)
