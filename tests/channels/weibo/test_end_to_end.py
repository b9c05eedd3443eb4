"""The Weibo adapter against the Weibo simulator, both served by one embedded `engagebot run` app, over
real HTTP: a fan's DMs, a campaign scan, and a public comment answered once by the megaphone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.app import CORE, create_app
from bot.files import read_data_file
from bot.rules import parse_prompt_rules
from bot.settings import Settings
from bot.simulation import SIMULATORS
from bot.storage.models import Follower, Message
from bot.storage.prompts import replace_prompt_rules
from tests.support.broadcast import start_broadcast, statuses
from tests.support.servers import free_port, serve

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def _eventually(check: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def _load_example_rules(app: Any) -> None:
    parsed = parse_prompt_rules(read_data_file(EXAMPLES / "rules.yaml"), source="rules.yaml")
    async with app[CORE].sessions() as session, session.begin():
        await replace_prompt_rules(session, [r.model_dump() for r in parsed.rules])


async def test_a_fan_dms_the_brand_and_is_answered_in_the_fans_language(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    app = await create_app(settings)
    async with serve(app, port=settings.port):
        await _load_example_rules(app)
        sim = app[SIMULATORS]["weibo"]
        assert await sim.verify_callback()  # the URL check, signed with this database's app secret
        fan = sim.add_fan(language="en")
        await sim.follow(fan)
        await asyncio.sleep(settings.prompt_rules_ttl + 0.5)  # the rule cache refreshes
        await sim.send_text(fan, "what are your opening hours?")
        texts = await _eventually(lambda: [r.get("text", "") for r in sim.replies(fan)
                                           if "10:00-22:00" in str(r.get("text", ""))])
        assert texts, sim.replies(fan)
        async with app[CORE].sessions() as session:
            stored = (await session.execute(select(func.count()).select_from(Message).where(
                Message.channel == "weibo", Message.direction == "in"))).scalar_one()
        assert stored == 2  # the follow and the message, each once


async def test_a_comment_with_a_rule_keyword_gets_exactly_one_public_reply(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    app = await create_app(settings)
    async with serve(app, port=settings.port):
        await _load_example_rules(app)
        sim = app[SIMULATORS]["weibo"]
        post = sim.brand_post("New menu this week!")
        fan = sim.add_fan(language="en", following=True)
        await asyncio.sleep(settings.prompt_rules_ttl + 0.5)
        comment_id, _push = await sim.comment(fan, post, "Do you do delivery?")

        def brand_answers() -> list[dict[str, Any]]:
            return [c for c in sim.thread(post) if c["user"]["id"] == sim.brand_uid]

        answers = await _eventually(brand_answers, timeout=30)
        assert len(answers) == 1 and "Meituan" in answers[0]["text"]
        assert answers[0]["reply_comment"]["id"] == comment_id
        await asyncio.sleep(6)  # another polling cycle (every 5 s for the simulated account) adds nothing
        assert len(brand_answers()) == 1


async def test_the_campaign_qr_is_the_platforms_and_a_scene_link_opens_the_scan_flow(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    app = await create_app(settings)
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        weibo = next(c for c in app[CORE].channels if c.name == "weibo")
        link = await weibo.scene_link("poster-9")  # what `engagebot campaign qr` draws
        assert link == app[SIMULATORS]["weibo"].scenes["poster-9"].url
        async with http.get(f"{url}/2/eps/qrcode/show", params={"ticket": link.rsplit("/", 1)[1]}) as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
        async with http.get(weibo.qr_url("poster-9"), allow_redirects=False) as resp:  # a QR sent in a DM
            assert resp.status == 302 and resp.headers["Location"] == "/simulator/weibo/scan?scene=poster-9"


async def test_a_broadcast_reaches_weibo_fans_alongside_wechat_and_telegram_followers(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    app = await create_app(settings)
    async with serve(app, port=settings.port):
        wechat, telegram, weibo = (app[SIMULATORS][name] for name in ("wechat", "telegram", "weibo"))
        openid = wechat.add_follower(language="en")
        await wechat.follow(openid)
        user = telegram.add_user(language_code="en")
        telegram.start(user)
        fan = weibo.add_fan(language="en")
        await weibo.follow(fan)
        sessions = app[CORE].sessions

        async def followers() -> int:
            async with sessions() as session:
                return (await session.execute(select(func.count()).select_from(Follower))).scalar_one()

        async with asyncio.timeout(20):
            while await followers() < 3:
                await asyncio.sleep(0.1)
        broadcast_id = await start_broadcast(sessions, texts={"en": "Spring sale", "zh_Hans": "春季促销"})

        def received() -> dict[str, int]:
            return {"wechat": sum("Spring sale" in str(r) for r in wechat.replies(openid)),
                    "telegram": sum("Spring sale" in str(e) for e in telegram.timeline(user)),
                    "weibo": sum("Spring sale" in str(r) for r in weibo.replies(fan))}

        assert await _eventually(lambda: all(received().values()), timeout=30), received()
        assert received() == {"wechat": 1, "telegram": 1, "weibo": 1}
        # A platform has the message before its answer is recorded (the outcome is written once the
        # API call returns): under load the last outcomes land a moment after the fans see it.
        async with asyncio.timeout(20):
            while (found := await statuses(sessions, broadcast_id)) != {"sent": 3} and "sending" in found:
                await asyncio.sleep(0.1)
        assert found == {"sent": 3}
