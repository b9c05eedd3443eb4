"""The console's operations pages over HTTP (``bot/admin/console_operations.py``): broadcasts with live
progress, followers (search, tag, CSV, pages), operator accounts and tokens, the dashboard's activity
figures, followers owed an answer after the queue's timeout, and service refusals in the operator's
language. Each page by role (allowed and refused), CSRF, 4xx for bad input, escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.admin.handoff import sweep_queue_timeouts
from bot.admin.models import AuditEntry
from bot.broadcast.models import DONE, Broadcast
from bot.core.clock import utcnow
from bot.i18n import default_catalogs
from bot.settings import Settings
from bot.storage.models import Follower, Message
from tests.admin.conftest import PASSWORD
from tests.admin.test_console import Browser, Console, _console

CATALOGS = default_catalogs()


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for c in _console(database_url, tmp_path):
        yield c


async def audit(console: Console, action: str) -> list[tuple[str, str]]:
    async with console.harness.sessions() as session:
        rows = (await session.execute(select(AuditEntry.actor, AuditEntry.target).where(AuditEntry.action == action)
                                      .order_by(AuditEntry.id))).all()
    return [(r.actor, r.target) for r in rows]


async def follower_id(console: Console, external_id: str) -> int:
    async with console.harness.sessions() as s:
        return (await s.execute(select(Follower.id).where(Follower.external_id == external_id))).scalar_one()


async def roles_see(console: Console, path: str) -> dict[str, int]:
    seen = {}
    for role in ("admin", "marketer", "agent", "staff", "viewer"):
        seen[role] = (await (await console.browser(role)).get(path))[0]
    return seen


# --- broadcasts ----------------------------------------------------------------------------------------
async def test_a_broadcast_started_in_the_console_shows_live_progress_until_done(console: Console) -> None:
    assert await roles_see(console, "/admin/broadcasts") == \
        {"admin": 200, "marketer": 200, "agent": 403, "staff": 403, "viewer": 200}
    marketer = await console.browser("marketer")
    await marketer.get("/admin/broadcasts")
    form = {"name": "Spring <b>sale</b>", "text_en": "Spring sale!", "text_zh_Hans": "春季促销！", "tags": "vip, new",
            "channels": "mock", "locale_en": "1"}
    status, _html, headers = await marketer.post("/admin/broadcasts", form, csrf=None)
    assert status == 403
    status, _html, headers = await marketer.post("/admin/broadcasts", form)
    assert status == 303
    broadcast_id = int(headers["Location"].rsplit("/", 1)[1])
    assert await audit(console, "broadcast.start") == [("marketer", f"broadcast:{broadcast_id}")]
    async with console.harness.sessions() as s:
        b = await s.get(Broadcast, broadcast_id)
        assert b is not None and b.audience["tags"] == ["vip", "new"] and b.audience["locales"] == ["en"]
    status, html, _ = await marketer.get(f"/admin/broadcasts/{broadcast_id}")
    assert status == 200 and '<meta http-equiv="refresh" content="3">' in html  # queued: it refreshes itself
    assert "Spring &lt;b&gt;sale&lt;/b&gt;" in html and "<b>sale" not in html
    assert "Channels: mock; Languages: en; Tags: vip, new</p>" in html

    # The worker wrote its rows: 2 sent, 1 pending, 1 failed of 4.
    fan = console.harness.follower("fan", language="en")
    await fan.say("hello")
    fid = await follower_id(console, "fan")
    async with console.harness.sessions() as s, s.begin():
        await s.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(status="sending"))
        for n, status_ in enumerate(("sent", "sent", "pending", "failed")):
            s.add(Message(follower_id=fid, channel="mock", account="main", direction="out", kind="text", text="x",
                          status=status_, created_at=utcnow(), broadcast_id=broadcast_id, dedupe_key=f"b{n}"))
    status, html, _ = await marketer.get(f"/admin/broadcasts/{broadcast_id}")
    assert 'http-equiv="refresh"' in html
    for name, value in (("total", 4), ("sent", 2), ("pending", 1), ("failed", 1)):
        assert f'class="n {name}">{value}<' in html, name
    status, html, _ = await (await console.browser("viewer")).get("/admin/broadcasts")
    assert f'data-broadcast="{broadcast_id}"' in html and 'class="n sent">2<' in html
    assert 'id="new-broadcast"' not in html

    async with console.harness.sessions() as s, s.begin():
        await s.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(status=DONE))
    status, html, _ = await marketer.get(f"/admin/broadcasts/{broadcast_id}")
    assert 'http-equiv="refresh"' not in html and 'data-status="done"' in html  # over: no more refreshing
    assert 'id="cancel"' not in html


async def test_a_broadcast_is_cancelled_by_a_writer_only_and_bad_forms_are_4xx(console: Console) -> None:
    marketer = await console.browser("marketer")
    await marketer.get("/admin/broadcasts")
    status, _html, headers = await marketer.post("/admin/broadcasts", {"name": "b1", "text_en": "hi"})
    path = headers["Location"]
    viewer = await console.browser("viewer")
    await viewer.get(path)
    assert (await viewer.post(f"{path}/cancel", {}))[0] == 403
    assert (await viewer.post("/admin/broadcasts", {"name": "by-viewer", "text_en": "hi"}))[0] == 403
    assert (await marketer.get(path))[0] == 200
    status, _html, headers = await marketer.post(f"{path}/cancel", {})
    assert (status, headers["Location"]) == (303, path)
    status, html, _ = await marketer.get(path)
    assert 'data-status="cancelled"' in html and 'http-equiv="refresh"' not in html
    status, html, _ = await marketer.post(f"{path}/cancel", {})
    assert status == 409 and "is over" in html
    for form, field in (({"name": "no text"}, "texts"), ({"name": "", "text_en": "x"}, "name"),
                        ({"name": "d", "text_en": "x", "since": "yesterday"}, "since"),
                        ({"name": "p", "text_en": "x", "promotion": "nope"}, "promotion")):
        status, html, _ = await marketer.post("/admin/broadcasts", form)
        assert status == 422 and field in html, (form, status)
    assert (await marketer.get("/admin/broadcasts/424242"))[0] == 404


# --- followers -----------------------------------------------------------------------------------------
async def test_followers_are_searched_tagged_and_exported_by_role(console: Console) -> None:
    await console.harness.follower("en1", language="en").say("hello")
    await console.harness.follower("zh1", language="zh-CN").say("你好")
    en1 = await follower_id(console, "en1")
    async with console.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == en1)
                        .values(display_name='<script>alert("x")</script>', locale="en"))
    assert await roles_see(console, "/admin/followers") == \
        {"admin": 200, "marketer": 200, "agent": 200, "staff": 403, "viewer": 200}
    agent = await console.browser("agent")
    status, html, _ = await agent.get("/admin/followers?locale=en")
    assert status == 200 and f'data-follower="{en1}"' in html and "zh1" not in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'id="export"' not in html  # agents may not take personal data out
    status, _html, headers = await agent.post(f"/admin/followers/{en1}/tags",
                                              {"add": "vip", "next": "/admin/followers?locale=en"})
    assert (status, headers["Location"]) == (303, "/admin/followers?locale=en")
    status, html, _ = await agent.get("/admin/followers?tag=vip")
    assert f'data-follower="{en1}"' in html and "zh1" not in html
    assert await audit(console, "follower.tag") == [("agent", f"follower:{en1}")]
    assert (await agent.post(f"/admin/followers/{en1}/tags", {"add": "x"}, csrf="wrong"))[0] == 403
    assert (await agent.post(f"/admin/followers/{en1}/tags", {}))[0] == 422
    assert (await agent.post(f"/admin/followers/{en1}/tags", {"add": "way too long a tag " * 3}))[0] == 422
    assert (await agent.post("/admin/followers/424242/tags", {"add": "vip"}))[0] == 404
    assert (await agent.get("/admin/followers/export.csv"))[0] == 403
    viewer = await console.browser("viewer")
    await viewer.get("/admin/followers")
    assert (await viewer.post(f"/admin/followers/{en1}/tags", {"add": "x"}))[0] == 403
    assert (await viewer.get("/admin/followers?channel=" + "c" * 40))[0] == 422

    marketer = await console.browser("marketer")
    status, html, _ = await marketer.get("/admin/followers?tag=vip")
    assert 'href="/admin/followers/export.csv?tag=vip"' in html
    async with marketer.session.get("/admin/followers/export.csv?tag=vip", allow_redirects=False) as r:
        body = await r.text()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert body.splitlines()[0].startswith("id,channel") and len(body.splitlines()) == 2 and "en1" in body


async def test_followers_come_in_pages(console: Console) -> None:
    async with console.harness.sessions() as s, s.begin():
        s.add_all([Follower(channel="mock", account="main", external_id=f"p{n:02}", created_at=utcnow(), tags=[])
                   for n in range(55)])
    viewer = await console.browser("viewer")
    status, html, _ = await viewer.get("/admin/followers?channel=mock")
    assert status == 200 and html.count("data-follower=") == 50
    more = re.search(r'id="more" href="|href="([^"]+)" id="more"', html)
    assert more and more.group(1)
    status, html, _ = await viewer.get(more.group(1).replace("&amp;", "&"))
    assert html.count("data-follower=") == 5 and 'id="more"' not in html
    assert (await viewer.get("/admin/followers?after=x"))[0] == 422


# --- operators -----------------------------------------------------------------------------------------
async def test_admins_manage_operators_and_tokens_in_the_console(console: Console) -> None:
    assert await roles_see(console, "/admin/operators") == \
        {"admin": 200, "marketer": 403, "agent": 403, "staff": 403, "viewer": 403}
    admin = await console.browser("admin")
    await admin.get("/admin/operators")
    new = {"name": "mei", "display_name": "Mei <Jing'an>", "role": "staff", "password": "a long password 1"}
    assert (await admin.post("/admin/operators", new, csrf=None))[0] == 403
    status, _html, headers = await admin.post("/admin/operators", new)
    assert status == 303
    page = headers["Location"]
    status, html, _ = await admin.get(page)
    assert status == 200 and "a long password 1" not in html and "Mei &lt;Jing&#39;an&gt;" in html
    assert (await admin.post("/admin/operators", new))[0] == 409
    for bad in ({**new, "name": "mei2", "password": "short"}, {**new, "name": "mei3", "role": "boss"},
                {**new, "name": "Bad Name"}):
        assert (await admin.post("/admin/operators", bad))[0] == 422, bad
    marketer = await console.browser("marketer")
    await marketer.get("/admin/followers")  # a page of theirs, for a valid CSRF token
    assert (await marketer.post("/admin/operators", {**new, "name": "by-marketer"}))[0] == 403
    assert (await marketer.post(f"{page}/password", {"password": "a marketer's choice"}))[0] == 403
    mei = await console.browser("mei", "a long password 1")
    assert (await mei.get("/admin/till"))[0] == 200

    status, html, _ = await admin.post(f"{page}/tokens", {"label": "till-3"})
    token = re.search(r'<code id="token">(ebo_[A-Za-z0-9_-]+)</code>', html)
    assert status == 201 and token
    async with admin.session.get("/admin/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}) as r:
        assert r.status == 200 and (await r.json())["name"] == "mei"
    status, html, _ = await admin.get(page)
    assert token.group(1) not in html and "till-3" in html  # shown once
    token_id = re.search(r'data-token="(\d+)"', html).group(1)  # type: ignore[union-attr]
    assert (await admin.post(f"/admin/tokens/{token_id}/revoke", {}))[0] == 303
    async with admin.session.get("/admin/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}) as r:
        assert r.status == 401

    version = re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    assert (await admin.post(f"{page}/disabled", {"disabled": "1", "version": version}))[0] == 303
    status, _html, headers = await mei.get("/admin/till")
    assert (status, headers["Location"]) == (303, "/admin/login")  # disabled: the session ends at once
    assert (await admin.post(f"{page}/disabled", {"disabled": "0", "version": version}))[0] == 409  # stale page
    status, html, _ = await admin.get(page)
    version = re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    assert (await admin.post(f"{page}/disabled", {"disabled": "0", "version": version}))[0] == 303
    assert (await admin.post(f"{page}/password", {"password": "short"}))[0] == 422
    assert (await admin.post(f"{page}/password", {"password": "another long password"}))[0] == 303
    assert (await (await console.browser()).sign_in("mei", "a long password 1"))[0] == 401
    assert (await (await console.browser()).sign_in("mei", "another long password"))[0] == 303
    assert [a for a, _t in await audit(console, "operator.update")] == ["admin", "admin"]
    assert (await audit(console, "token.create"))[-1] == ("admin", "operator:mei")
    assert await audit(console, "operator.reset_password") == [("admin", "operator:mei")]
    assert (await admin.get("/admin/operators/424242"))[0] == 404


async def test_an_admin_cannot_lock_themself_out_and_is_told_in_their_language(console: Console) -> None:
    admin = await console.browser("admin")
    status, html, _ = await admin.get("/admin/operators")
    own = re.search(r'<a href="(/admin/operators/\d+)">admin</a>', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await admin.get(own)
    assert 'id="own-account"' in html and 'id="disable"' not in html  # no button to lock oneself out...
    version = "1"
    status, html, _ = await admin.post(f"{own}/disabled", {"disabled": "1", "version": version})  # ...nor a way
    assert status == 409 and "an operator cannot disable or demote itself" in html
    await admin.post("/admin/language", {"locale": "zh_Hans"})
    status, html, _ = await admin.post(f"{own}/disabled", {"disabled": "1", "version": version})
    expected = CATALOGS.gettext("zh_Hans", "an operator cannot disable or demote itself; ask another admin")
    assert status == 409 and expected != "an operator cannot disable or demote itself; ask another admin"
    assert expected in html
    status, html, _ = await admin.get("/admin/broadcasts/424242")
    assert status == 404 and "没有群发 424242" in html  # a refusal with its parameter, in Chinese
    await admin.post("/admin/language", {"locale": "zh_Hant"})
    status, html, _ = await admin.post("/admin/inbox/424242/take", {})
    assert status == 404 and "沒有對話 424242" in html
    assert (await (await console.browser("admin")).get("/admin/till"))[0] == 200  # still an admin, still enabled


# --- dashboard -----------------------------------------------------------------------------------------
async def test_the_dashboard_shows_messages_per_day_reply_routes_and_the_median_answer_time(console: Console) -> None:
    async with console.harness.sessions() as s, s.begin():
        a = Follower(channel="wechat", account="main", external_id="w", created_at=utcnow(), tags=[])
        b = Follower(channel="telegram", account="main", external_id="t", created_at=utcnow(), tags=[])
        s.add_all([a, b])
        await s.flush()
        # An hour ago, all four in one day of the console's time zone (settings.timezone): the dashboard
        # counts by that day, and an hour ago is yesterday there from 00:00 to 01:00 (16:00 UTC).
        zone = ZoneInfo(Settings().timezone)
        asked = utcnow() - timedelta(hours=1)
        next_midnight = (asked.astimezone(zone) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        asked = min(asked, next_midnight.astimezone(UTC) - timedelta(minutes=20))
        day = asked.astimezone(zone).date().isoformat()
        rows = []
        for f, wait, status in ((a, 2, "passive"), (a, 4, "passive"), (b, 10, "sent"), (b, 60, "sent")):
            rows.append(Message(follower_id=f.id, channel=f.channel, account="main", direction="in", kind="text",
                                text="hi", status="handled", created_at=asked))
            rows.append(Message(follower_id=f.id, channel=f.channel, account="main", direction="out", kind="text",
                                text="hello", status=status, created_at=asked, sent_at=asked + timedelta(seconds=wait)))
            asked += timedelta(minutes=5)
        for row in rows:  # one by one: ids in the order written
            s.add(row)
            await s.flush()
    status, html, _ = await (await console.browser("viewer")).get("/admin")
    assert status == 200
    assert re.search(r'<tr data-channel="" data-seconds="7.0"><td>all channels</td><td class="n answered">4<', html)
    assert 'data-channel="telegram" data-seconds="35.0"' in html and 'data-channel="wechat" data-seconds="3.0"' in html
    assert re.search(r'data-channel="wechat"><td>wechat</td><td class="n passive">2</td><td class="n deferred">0<', html)
    assert re.search(r'data-channel="telegram"><td>telegram</td><td class="n passive">0</td><td class="n deferred">2<',
                     html)
    their_day = re.search(rf'<tr data-day="{day}"><td>[0-9-]+</td>(.*?)</tr>', html)
    assert their_day and 'data-channel="telegram">2 / 2<' in their_day.group(1)
    assert 'data-channel="wechat">2 / 2<' in their_day.group(1)
    assert (await (await console.browser("agent")).get("/admin"))[0] == 303  # not theirs: sent to their inbox


# --- the inbox's owed answers --------------------------------------------------------------------------
async def test_a_timed_out_queued_follower_is_listed_as_owed_until_dismissed(console: Console) -> None:
    await console.harness.follower("asker", language="en").say("human")
    fid = await follower_id(console, "asker")
    back = await sweep_queue_timeouts(console.harness.sessions, catalogs=CATALOGS, timeout=timedelta(minutes=15),
                                      default_locale="en", now=utcnow() + timedelta(minutes=16))
    assert back == 1
    viewer = await console.browser("viewer")
    status, html, _ = await viewer.get("/admin/inbox")
    owed = re.search(r'<table id="owed">(.*?)</table>', html, re.S)
    assert owed and f'data-follower="{fid}"' in owed.group(1)
    status, html, _ = await viewer.get(f"/admin/inbox/{fid}")
    assert 'id="owed"' in html and 'id="dismiss"' not in html
    assert (await viewer.post(f"/admin/inbox/{fid}/dismiss", {}))[0] == 403
    agent: Browser = await console.browser("agent")
    status, html, _ = await agent.get(f"/admin/inbox/{fid}")
    assert 'id="dismiss"' in html
    assert (await agent.post(f"/admin/inbox/{fid}/dismiss", {}, csrf=None))[0] == 403
    status, _html, headers = await agent.post(f"/admin/inbox/{fid}/dismiss", {})
    assert (status, headers["Location"]) == (303, f"/admin/inbox/{fid}")
    status, html, _ = await agent.get("/admin/inbox")
    assert 'id="owed"' not in html
    assert await audit(console, "conversation.dismiss") == [("agent", f"conversation:{fid}")]


async def test_new_pages_refuse_a_signed_out_browser(console: Console) -> None:
    anonymous = await console.browser()
    for path in ("/admin/broadcasts", "/admin/followers", "/admin/operators"):
        status, _html, headers = await anonymous.get(path)
        assert (status, headers["Location"]) == (303, "/admin/login"), path
    status, html, _ = await anonymous.post("/admin/operators", {"name": "x", "role": "admin", "password": PASSWORD})
    assert status == 403
