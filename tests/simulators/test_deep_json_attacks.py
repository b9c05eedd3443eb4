"""Deeply nested JSON sent to every JSON input of the embedded simulators, on a real ``engagebot run``.

A few kilobytes of ``[`` reach Python's recursion limit in ``json.loads``: each input must answer it
as the bad input it is (4xx, or the platform's own error code), never 500 with a traceback, and the
server keeps serving.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

from bot.simulation import SIMULATED_WECHAT_APP_ID
from tests.support.db import stored_simulator_credentials
from tests.support.process import http, http_json, running
from tests.support.servers import free_port

DEEP = "[" * 5000  # 5 KB: under every body cap, far past the recursion limit


def _post(url: str, data: bytes, content_type: str) -> tuple[int, bytes]:
    status, _headers, body = http("POST", url, data=data, headers={"Content-Type": content_type})
    return status, body


async def test_deeply_nested_json_in_every_simulator_input_is_refused_not_a_500(tmp_path: Path) -> None:
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env = {"ENGAGEBOT_PORT": str(port), "ENGAGEBOT_DATABASE_URL": database_url}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        base = server.url
        creds = await stored_simulator_credentials(database_url)
        bot = f"{base}/bot{creds['telegram']['token']}"
        access = http_json("GET", f"{base}/cgi-bin/token?grant_type=client_credential&appid="
                                  f"{SIMULATED_WECHAT_APP_ID}&secret={creds['wechat']['app_secret']}")["access_token"]

        # JSON bodies: the phone pages, the Bot API, the WeChat platform API.
        for url in (f"{base}/simulator/wechat/api/followers", f"{base}/simulator/wechat/api/action",
                    f"{base}/simulator/telegram/api/users", f"{base}/simulator/telegram/api/send",
                    f"{bot}/sendMessage", f"{bot}/getUpdates"):
            status, body = _post(url, DEEP.encode(), "application/json")
            assert 400 <= status < 500, (url, status, body[:200])
        for path in ("message/custom/send", "message/mass/sendall", "qrcode/create"):
            status, body = _post(f"{base}/cgi-bin/{path}?access_token={access}", DEEP.encode(), "application/json")
            assert status == 200 and json.loads(body)["errcode"] == 47001, (path, status, body[:200])

        # JSON inside form fields of the Bot API (reply_markup, allowed_updates).
        chat = http_json("POST", f"{base}/simulator/telegram/api/users", {"first_name": "Deep"})
        chat_id = str(chat["user"]["id"])
        http_json("POST", f"{base}/simulator/telegram/api/start", {"user_id": chat["user"]["id"]})
        for method, field, extra in (("sendMessage", "reply_markup", {"chat_id": chat_id, "text": "hi"}),
                                     ("getUpdates", "allowed_updates", {})):
            form = urllib.parse.urlencode({**extra, field: DEEP}).encode()
            status, body = _post(f"{bot}/{method}", form, "application/x-www-form-urlencoded")
            assert status == 400, (method, field, status, body[:200])
            assert json.loads(body)["ok"] is False

        assert http("GET", base + "/healthz")[0] == 200
    assert "RecursionError" not in server.stderr
    assert "Error handling request" not in server.stderr
