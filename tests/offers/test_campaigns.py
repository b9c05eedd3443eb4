"""Campaigns: every touch recorded, a grant on follow in one step, the funnel, QR files per channel."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from sqlalchemy import select, update

from bot import ButtonsReply, TextReply
from bot.channels.base import Channel
from bot.channels.mock import MOCK_CAPABILITIES
from bot.offers import CampaignTouch, Claim, campaign_links, funnel_stats, write_qr_files
from bot.testing import BotHarness

from .conftest import follower_row


class LinkChannel(Channel):
    name: ClassVar[str] = "fakechat"
    capabilities = MOCK_CAPABILITIES

    def __init__(self, name: str = "fakechat", prefix: str = "https://qr.example/") -> None:
        super().__init__(dispatch=None, account="acct")  # type: ignore[arg-type]
        self.channel_name, self.prefix = name, prefix

    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        return f"{self.prefix}{scene}"

    async def send_reply(self, external_id: str, reply: Any, *, context: Any = None) -> None:
        raise NotImplementedError


class NoLinkChannel(LinkChannel):
    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        return None


async def test_follow_through_a_campaign_greets_and_grants_the_offer_at_once(offers: BotHarness) -> None:
    li = offers.follower("li", language="zh-hans")
    replies = await li.follow("mall-poster-2026")
    assert isinstance(replies[0], ButtonsReply)
    assert replies[0].text.startswith("欢迎")
    assert isinstance(replies[1], TextReply)
    assert re.match("这是您的「火锅立减50元」优惠码：\n[A-Z2-9]{8}\n立减¥50.00\n", replies[1].text)
    row = await follower_row(offers, "li")
    assert row.first_source == "mall-poster-2026"
    async with offers.sessions() as session:
        touch = (await session.execute(select(CampaignTouch))).scalar_one()
        claim = (await session.execute(select(Claim))).scalar_one()
    assert (touch.kind, touch.new_follower, touch.follower_id) == ("follow", True, row.id)
    assert (claim.via, claim.campaign_id) == ("campaign", touch.campaign_id)


async def test_a_scan_by_a_follower_gives_the_same_code_again_without_a_welcome(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    await alice.follow("mall-poster-2026")
    code = alice.replies[1].text.splitlines()[1]
    replies = await alice.scan("mall-poster-2026")
    assert len(replies) == 1
    assert replies[0].text.splitlines()[:2] == ["You already have a code for “Hotpot ¥50 off”. Here it is again:", code]


async def test_a_campaign_without_an_offer_only_records_the_touch_and_welcomes(offers: BotHarness) -> None:
    bob = offers.follower("bob", language="en")
    replies = await bob.follow("kol-lily")
    assert len(replies) == 1 and replies[0].text.startswith("Welcome!")
    await bob.scan("kol-lily")
    assert bob.last_text.startswith("Welcome back!")
    async with offers.sessions() as session:
        kinds = (await session.execute(select(CampaignTouch.kind, CampaignTouch.new_follower)
                                       .order_by(CampaignTouch.id))).all()
    assert [tuple(k) for k in kinds] == [("follow", True), ("scan", False)]


async def test_an_unknown_scene_is_just_a_welcome(offers: BotHarness) -> None:
    carol = offers.follower("carol", language="en")
    await carol.follow("some-other-scene")
    assert carol.texts == ["Welcome! Thanks for following us. Ask me anything, or pick one:"]


async def test_the_funnel_counts_scans_follows_claims_and_redemptions(offers: BotHarness, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b", "c"):
        await offers.follower(name).follow("mall-poster-2026")
    await offers.follower("a").scan("mall-poster-2026")
    old = offers.follower("old")
    await old.say("hi")
    await old.scan("mall-poster-2026")  # already following: a scan, not a follow
    await offers.follower("d").follow("kol-lily")
    async with offers.sessions() as session:
        first = (await session.execute(select(Claim.id).order_by(Claim.id).limit(1))).scalar_one()
        await session.execute(update(Claim).where(Claim.id == first).values(redeemed_at=Claim.claimed_at))
        await session.commit()
        rows = {r.slug: r for r in await funnel_stats(session)}
    poster, kol = rows["mall-poster"], rows["kol-lily"]
    assert (poster.scans, poster.people, poster.follows, poster.claims, poster.redemptions) == (5, 4, 3, 4, 1)
    assert (kol.scans, kol.people, kol.follows, kol.claims, kol.redemptions) == (1, 1, 1, 0, 0)
    from bot.cli import main

    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", offers.database_url)
    assert await asyncio.to_thread(main, ["campaign", "stats", "mall-poster"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["campaign", "source", "scans", "people", "follows", "claims", "redeemed",
                                "follow%", "redeem%"]
    assert lines[2].split() == ["mall-poster", "Poster,", "Jing'an", "mall", "5", "4", "3", "4", "1", "60%", "25%"]


async def test_campaign_links_ask_each_channel_and_skip_those_without_links() -> None:
    core = SimpleNamespace(channels=[LinkChannel("wechat", "https://mp.example/q/"), NoLinkChannel("weibo"),
                                     LinkChannel("telegram", "https://t.me/brand_bot?start=")])
    assert await campaign_links(core, "mall-poster-2026") == {
        "wechat": "https://mp.example/q/mall-poster-2026", "telegram": "https://t.me/brand_bot?start=mall-poster-2026"}


async def test_qr_files_are_written_per_channel(tmp_path: Path) -> None:
    links = {"wechat": "https://mp.example/q/x", "telegram": "https://t.me/brand_bot?start=x"}
    written = await write_qr_files(links, "mall-poster", tmp_path / "qr")
    assert sorted(p.name for p in written) == ["mall-poster-telegram.png", "mall-poster-telegram.svg",
                                               "mall-poster-wechat.png", "mall-poster-wechat.svg"]
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"


async def test_campaign_qr_command_writes_files_for_the_cores_channels(
        offers: BotHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import bot.app
    from bot.cli import main

    real = bot.app.build_core

    def build_core_with_channels(settings: Any, **kwargs: Any) -> Any:
        core = real(settings, **kwargs)
        core.channels.append(LinkChannel("telegram", "https://t.me/brand_bot?start="))
        return core

    monkeypatch.setattr(bot.app, "build_core", build_core_with_channels)
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", offers.database_url)
    out = tmp_path / "qr"
    assert await asyncio.to_thread(main, ["campaign", "qr", "mall-poster", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mall-poster-telegram.png", "mall-poster-telegram.svg"]
    assert "telegram: https://t.me/brand_bot?start=mall-poster-2026" in capsys.readouterr().out


async def test_campaign_qr_finds_the_simulators_of_a_server_on_another_port(tmp_path: Path, database_url: str) -> None:
    # As the README has it: `engagebot run --port N`, load the example offers, `engagebot campaign qr`.
    from tests.support.process import engagebot, running
    from tests.support.servers import free_port

    examples = Path(__file__).resolve().parents[2] / "examples" / "offers.yaml"
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url}
    with running("run", "--port", str(port), env=env, cwd=tmp_path, port=port, ready="/simulator/telegram"):
        assert engagebot("promo", "load", str(examples), env=env, cwd=tmp_path).returncode == 0
        done = await asyncio.to_thread(engagebot, "campaign", "qr", "mall-poster", "--port", str(port),
                                       "--out", str(tmp_path / "qr"), env=env, cwd=tmp_path)
        nobody = free_port()
        missed = await asyncio.to_thread(engagebot, "campaign", "qr", "mall-poster", "--port", str(nobody),
                                         "--out", str(tmp_path / "none"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "qr").iterdir()) == [
        "mall-poster-telegram.png", "mall-poster-telegram.svg", "mall-poster-wechat.png", "mall-poster-wechat.svg",
        "mall-poster-weibo.png", "mall-poster-weibo.svg"]
    assert "telegram: https://t.me/engagebot_demo_bot?start=mall-poster-2026" in done.stdout
    assert missed.returncode == 2
    assert missed.stderr.splitlines()[-1] == (
        "engagebot: no link for the scene: the simulators give links only while `engagebot run` serves them; "
        f"none answered at http://127.0.0.1:{nobody} (`engagebot campaign qr mall-poster --port N` if it runs "
        "on another port)"), missed.stderr
    assert not (tmp_path / "none").exists() or not list((tmp_path / "none").iterdir())
