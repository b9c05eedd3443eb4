"""Issue 8.2 tried from outside on a real ``engagebot run``: a logged signature replayed where else it verifies.

The signature covers (token, timestamp, nonce), not the path: when two Official Accounts share a
token (an operator's choice), a signature of one verifies on the other. Replayed there with another
body it must be refused like on its own account, and nothing stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

from tests.support.process import http, running
from tests.support.servers import free_port
from tests.support.wechat import signed_query, text_xml

TOKEN = "SharedToken42"


def test_a_signature_replayed_to_another_account_with_the_same_token_is_refused(tmp_path: Path) -> None:
    port = free_port()
    dead_api = f"http://127.0.0.1:{free_port()}"
    account = {"token": TOKEN, "app_id": "wx1234567890abcdef", "app_secret": "app-secret-1", "api_base": dead_api}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"wechat": account, "wechat_accounts": {"shop": {
        **account, "app_id": "wx1234567890abcdee", "app_secret": "app-secret-2"}}}), "utf-8")
    db = tmp_path / "bot.db"
    env = {"ENGAGEBOT_PORT": str(port), "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
           "ENGAGEBOT_SIMULATORS": "false"}
    with running("--config", str(config), "run", env=env, cwd=tmp_path, port=port) as server:
        query = signed_query(TOKEN)
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        status, _h, body = http("POST", f"{server.url}/wechat?{qs}", data=text_xml("oAlice0001", "hi", msg_id=1))
        assert status == 200, body
        # The same query string, read from an access log, with a forged body, on the other account.
        forged = text_xml("oMallory0001", "hotpot", msg_id=2)
        status, _h, body = http("POST", f"{server.url}/wechat/shop?{qs}", data=forged)
        assert status == 403 and b"ReplayError" in body, (status, body)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select external_id from follower").fetchall() == [("oAlice0001",)]
