"""Signed WeChat callbacks built by hand, for attacks the simulator would never send.

Written independently of the adapter (like a platform would be): the signature is sha1 of the sorted
(token, timestamp, nonce), per the platform's documentation.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import aiohttp


def signed_query(token: str, *, timestamp: int | str | None = None, nonce: str | None = None) -> dict[str, str]:
    """The query string WeChat puts on a callback: signature, timestamp (now by default), nonce."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(5)
    signature = hashlib.sha1("".join(sorted((token, ts, nonce))).encode()).hexdigest()
    return {"signature": signature, "timestamp": ts, "nonce": nonce}


def text_xml(openid: str, text: str, *, msg_id: int | str, to_user: str = "gh_simulated",
             create_time: int | None = None) -> bytes:
    ct = int(time.time()) if create_time is None else create_time
    return (f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{ct}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def event_xml(openid: str, event: str, *, key: str | None = None, to_user: str = "gh_simulated") -> bytes:
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event>{key_xml}</xml>").encode()


async def post(http: aiohttp.ClientSession, url: str, query: dict[str, str], body: bytes) -> tuple[int, str]:
    """POST a callback; return (status, body text)."""
    async with http.post(url, params=query, data=body, headers={"Content-Type": "text/xml"}) as resp:
        return resp.status, await resp.text()


def reason(answer: str) -> Any:
    """The ``reason`` of an error answer (JSON), or the raw text."""
    import json

    try:
        return json.loads(answer).get("reason")
    except ValueError:
        return answer
