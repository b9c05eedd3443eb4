"""Fixes from the console/API review (issue 14): a password reset ends the operator's sessions (and on request
its tokens), query strings with control characters are refused, the follower export fails loudly, the
reply-window reasons are translated, the deferred-reply count, the owed list, the role/name form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import ClientPayloadError, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.admin import followers, operators
from bot.admin.audit import CLI_ACTOR
from bot.admin.console import console_plugin
from bot.admin.errors import Conflict
from bot.admin.handoff import ReplyWindowClosed, sweep_queue_timeouts
from bot.admin.models import AuditEntry, ConsoleSession
from bot.admin.plugin import admin_api_plugin
from bot.admin.roles import Role
from bot.admin.schemas import PasswordReset
from bot.admin.web_auth import sign_in
from bot.app import build_app
from bot.channels.plugin import Lifetime, PluginContext
from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.clock import utcnow
from bot.delivery.windows import SENDS_USED_UP, WindowReason, refusal_reason
from bot.i18n import N_, default_catalogs
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from handlers import default_router
from tests.admin.conftest import BOOTSTRAP, PASSWORD, add_operator, settings_for
from tests.admin.test_console import Console, _console

NEW_PASSWORD = "a brand new password"
TWO_SENDS = Capabilities(max_text_length=100, window_after_message=ReplyWindow(timedelta(hours=48), max_sends=2))


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for c in _console(database_url, tmp_path):
        yield c


async def live_sessions(console: Console, operator_id: int) -> int:
    async with console.harness.sessions() as s:
        return (await s.scalar(select(func.count()).select_from(ConsoleSession)
                               .where(ConsoleSession.operator_id == operator_id))) or 0


async def api_status(console: Console, token: str) -> int:
    async with console.client.get("/admin/api/v1/me", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


# --- 1. a password reset ends the operator's sessions ----------------------------------------------------
async def test_the_reset_service_ends_console_sessions_and_revokes_tokens_only_when_asked(console: Console) -> None:
    sessions = console.harness.sessions
    assert await sign_in(sessions, "agent", PASSWORD) is not None
    assert await sign_in(sessions, "agent", PASSWORD) is not None
    assert await sign_in(sessions, "viewer", PASSWORD) is not None
    async with sessions() as s:
        agent = await operators.get_operator(s, "agent")
        token_row, token = await operators.create_token(s, CLI_ACTOR, agent, operators.TokenCreate(label="t"))
        await s.commit()
    assert await live_sessions(console, agent.id) == 2
    async with sessions() as s:
        await operators.reset_password(s, CLI_ACTOR, await operators.get_operator(s, "agent"),
                                       PasswordReset(password=NEW_PASSWORD))
        await s.commit()
    assert await live_sessions(console, agent.id) == 0
    async with sessions() as s:
        viewer = await operators.get_operator(s, "viewer")
    assert await live_sessions(console, viewer.id) == 1  # someone else's session lives on
    assert await api_status(console, token) == 200  # tokens are kept unless asked
    async with sessions() as s:
        await operators.reset_password(s, CLI_ACTOR, await operators.get_operator(s, "agent"),
                                       PasswordReset(password=NEW_PASSWORD + "2", revoke_tokens=True))
        await s.commit()
    assert await api_status(console, token) == 401
    async with sessions() as s:
        after = (await s.execute(select(AuditEntry.after).where(AuditEntry.action == "operator.reset_password")
                                 .order_by(AuditEntry.id))).scalars().all()
    assert after[0] == {"console_sessions_ended": 2, "tokens_revoked": []}
    assert token_row.id in after[1]["tokens_revoked"]  # with the fixture's own token


async def test_a_reset_in_the_console_signs_the_victim_out_and_can_revoke_tokens(console: Console) -> None:
    victim = await console.browser("marketer")
    assert (await victim.get("/admin/promotions"))[0] == 200
    admin = await console.browser("admin")
    status, html, _ = await admin.get("/admin/operators")
    page = re.search(r'<a href="(/admin/operators/\d+)">marketer</a>', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await admin.get(page)
    assert 'name="revoke_tokens"' in html
    status, html, _ = await admin.post(f"{page}/tokens", {"label": "laptop"})
    token = re.search(r'<code id="token">(ebo_[A-Za-z0-9_-]+)</code>', html).group(1)  # type: ignore[union-attr]
    assert (await admin.post(f"{page}/password", {"password": NEW_PASSWORD}))[0] == 303
    status, _html, headers = await victim.get("/admin/promotions")
    assert (status, headers["Location"]) == (303, "/admin/login")  # the old cookie is dead at once
    assert await api_status(console, token) == 200
    assert (await (await console.browser("admin")).get("/admin"))[0] == 200  # the admin's own session lives
    assert (await admin.get(page))[0] == 200
    assert (await admin.post(f"{page}/password", {"password": NEW_PASSWORD, "revoke_tokens": "1"}))[0] == 303
    assert await api_status(console, token) == 401


async def test_a_reset_through_the_api_revokes_tokens_on_request_only_with_a_true_boolean(console: Console) -> None:
    async with console.harness.sessions() as s:
        agent = await operators.get_operator(s, "agent")
        _row, token = await operators.create_token(s, CLI_ACTOR, agent, operators.TokenCreate(label="t"))
        await s.commit()
    path, auth = f"/admin/api/v1/operators/{agent.id}/password", {"Authorization": f"Bearer {BOOTSTRAP}"}
    async with console.client.post(path, json={"password": NEW_PASSWORD, "revoke_tokens": "yes"}, headers=auth) as r:
        assert r.status == 422 and (await r.json())["field"] == "revoke_tokens"
    async with console.client.post(path, json={"password": NEW_PASSWORD}, headers=auth) as r:
        assert r.status == 200
    assert await api_status(console, token) == 200
    async with console.client.post(path, json={"password": NEW_PASSWORD, "revoke_tokens": True}, headers=auth) as r:
        assert r.status == 200
    assert await api_status(console, token) == 401


# --- 2. control characters in query strings; the follower export fails loudly ---------------------------
async def test_a_nul_in_a_query_string_is_a_422_page_not_a_database_error(console: Console) -> None:
    await console.harness.follower("f1", language="en").say("hello")
    marketer = await console.browser("marketer")
    for path in ("/admin/followers?channel=x%00y", "/admin/followers?source=%00", "/admin/followers?tag=a%00",
                 "/admin/followers/export.csv?channel=x%00y", "/admin/audit?before=%00",
                 "/admin/promotions?anything=%00"):
        status, html, headers = await marketer.get(path)
        assert status == 422, (path, status)
        assert "NUL" in html and headers["Content-Type"].startswith("text/html")
    assert (await marketer.get("/admin/followers?channel=mock"))[0] == 200


async def test_an_export_that_fails_before_its_first_bytes_is_an_error_status(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(followers, "search_followers", broken)
    marketer = await console.browser("marketer")
    await marketer.get("/admin/followers")
    async with marketer.session.get("/admin/followers/export.csv") as r:
        assert r.status == 500 and not r.headers["Content-Type"].startswith("text/csv")
    async with console.client.get("/admin/api/v1/followers/export.csv",
                                  headers={"Authorization": f"Bearer {BOOTSTRAP}"}) as r:
        assert r.status == 500


async def test_an_export_that_fails_midway_breaks_the_connection_instead_of_ending_the_file(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        await console.harness.follower(f"f{n}", language="en").say("hello")
    real = followers.search_followers
    calls = 0

    async def fails_second_time(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise Conflict("the database went away")  # an error the console's pages catch and show
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(followers, "EXPORT_BATCH", 1)
    monkeypatch.setattr(followers, "search_followers", fails_second_time)
    marketer = await console.browser("marketer")
    async with marketer.session.get("/admin/followers/export.csv") as r:
        assert r.status == 200
        with pytest.raises(ClientPayloadError):  # not a clean end of a short file
            await r.read()
    calls = 0
    async with console.client.get("/admin/api/v1/followers/export.csv",
                                  headers={"Authorization": f"Bearer {BOOTSTRAP}"}) as r:
        assert r.status == 200
        with pytest.raises(ClientPayloadError):
            await r.read()
    monkeypatch.setattr(followers, "search_followers", real)
    async with marketer.session.get("/admin/followers/export.csv") as r:  # unbroken, it ends as a whole file
        assert r.status == 200 and len((await r.text()).splitlines()) == 4


# --- 4. deferred replies are the ones sent; the rest are counted apart ------------------------------------
async def test_deferred_replies_count_only_sent_ones_and_failures_are_shown_apart(console: Console) -> None:
    async with console.harness.sessions() as s, s.begin():
        f = Follower(channel="telegram", account="main", external_id="t", created_at=utcnow(), tags=[])
        s.add(f)
        await s.flush()
        for status in ("passive", "sent", "sent", "failed", "undeliverable", "undeliverable", "pending", "sending"):
            s.add(Message(follower_id=f.id, channel=f.channel, account="main", direction="out", kind="text",
                          text="hello", status=status, created_at=utcnow()))
    status, html, _ = await (await console.browser("viewer")).get("/admin")
    row = re.search(r'<tr data-channel="telegram"><td>telegram</td>(.*?)</tr>', html)
    assert status == 200 and row
    cells = dict(re.findall(r'<td class="n (\w+)">(\d+)</td>', row.group(1)))
    assert cells == {"passive": "1", "deferred": "2", "pending": "2", "failed": "1", "undeliverable": "2"}
    async with console.client.get("/admin/api/v1/stats/activity",
                                  headers={"Authorization": f"Bearer {BOOTSTRAP}"}) as r:
        replies = (await r.json())["replies"]
    assert replies == [{"channel": "telegram", "passive": 1, "deferred": 2, "pending": 2, "failed": 1,
                        "undeliverable": 2}]


# --- 5. the owed list: the longest owed first, with the follower's own last message ----------------------
async def test_the_owed_list_in_the_console_and_the_api_shows_the_longest_owed_first_and_what_they_said(
        console: Console) -> None:
    for name in ("early", "late"):
        await console.harness.follower(name, language="en").say(f"human, {name} here")
    await sweep_queue_timeouts(console.harness.sessions, catalogs=default_catalogs(), timeout=timedelta(minutes=15),
                               default_locale="en", now=utcnow() + timedelta(minutes=16))
    now = utcnow()
    ids = {}
    async with console.harness.sessions() as s, s.begin():
        for name, owed_hours, active_hours in (("early", 5, 1), ("late", 1, 0)):
            ids[name] = (await s.execute(select(Follower.id).where(Follower.external_id == name))).scalar_one()
            await s.execute(update(Follower).where(Follower.id == ids[name]).values(
                owed_since=now - timedelta(hours=owed_hours), last_action_at=now - timedelta(hours=active_hours)))
    status, html, _ = await (await console.browser("agent")).get("/admin/inbox")
    owed = re.search(r'<table id="owed">(.*?)</table>', html, re.S)
    assert status == 200 and owed
    assert re.findall(r'data-follower="(\d+)"', owed.group(1)) == [str(ids["early"]), str(ids["late"])]
    assert re.findall(r'<td class="asked">([^<]*)</td>', owed.group(1)) == ["human, early here", "human, late here"]
    async with console.client.get("/admin/api/v1/conversations?owed=true",
                                  headers={"Authorization": f"Bearer {BOOTSTRAP}"}) as r:
        items = (await r.json())["items"]
    assert [i["follower_id"] for i in items] == [ids["early"], ids["late"]]
    assert [i["last_inbound"]["text"] for i in items] == ["human, early here", "human, late here"]
    assert all(i["last_message"]["direction"] == "out" for i in items)  # the bot's notice, newer


# --- 6. one see_other, no dead gettext ---------------------------------------------------------------------
def test_the_console_pages_share_one_redirect_helper_and_no_unused_gettext() -> None:
    from bot import web
    from bot.admin import console, console_operations

    assert console.see_other is console_operations.see_other is web.see_other
    assert not hasattr(console_operations.Operations, "gettext")
    answer = web.see_other("/admin/x")
    assert (answer.status, answer.headers["Location"]) == (303, "/admin/x")


# --- 3. the reply window's reasons in the operator's language ---------------------------------------------
def test_a_window_reason_is_english_as_text_and_translated_with_its_parameters() -> None:
    catalogs = default_catalogs()
    closed = ReplyWindowClosed(N_("conversation {id}: {reason}; the follower must write first"), id=3,
                               reason=WindowReason(SENDS_USED_UP, sends=5))
    assert str(closed) == "conversation 3: outside the reply window: its 5 sends are used up; the follower must write first"
    zh = closed.localized(lambda m: catalogs.gettext("zh_Hans", m))
    assert zh == "会话 3：已超出回复时限：5 次发送已用完；须等粉丝先发消息"
    hant = closed.localized(lambda m: catalogs.gettext("zh_Hant", m))
    assert "5 次發送已用完" in hant and "outside" not in hant
    assert refusal_reason(TWO_SENDS, following=True, kind="message", at=utcnow(), sends=2, now=utcnow()) == \
        "outside the reply window: its 2 sends are used up"  # English for the row's reason, logs, API, CLI
    assert refusal_reason(TWO_SENDS, following=False, kind="message", at=utcnow(), sends=0, now=utcnow()) \
        .render(lambda m: catalogs.gettext("zh_Hans", m)) == "粉丝已取消关注"


@pytest.fixture
async def windowed_console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    """The console in an app whose one channel is the harness's mock channel: a 48 h window of two sends."""
    async with BotHarness(routers=[default_router()], database_url=database_url, capabilities=TWO_SENDS) as harness:
        def mock_channel_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
            ctx.channels.append(harness.channel)
            return None

        app = build_app(settings_for(database_url), plugins=[mock_channel_plugin, admin_api_plugin, console_plugin])
        client = TestClient(TestServer(app))
        await client.start_server()
        console = Console(client, harness)
        try:
            await add_operator(harness, "agent", Role.AGENT)
            yield console
        finally:
            for session in console._open:
                await session.close()
            await client.close()


async def test_a_zh_console_says_why_a_reply_is_refused_in_chinese(windowed_console: Console) -> None:
    console = windowed_console
    await console.harness.follower("fan", language="en").say("hello")
    async with console.harness.sessions() as s, s.begin():
        fid = (await s.execute(select(Follower.id).where(Follower.external_id == "fan"))).scalar_one()
    agent = await console.browser("agent")
    await agent.get("/admin/inbox")
    assert (await agent.post(f"/admin/inbox/{fid}/take", {}))[0] == 303
    async with console.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == fid).values(window_sends=2))
    await agent.post("/admin/language", {"locale": "zh_Hans"})
    status, html, _ = await agent.post(f"/admin/inbox/{fid}/reply", {"text": "one too many"})
    assert status == 409 and "已超出回复时限：2 次发送已用完" in html and "outside the reply window" not in html
    status, html, _ = await agent.get(f"/admin/inbox/{fid}")
    assert status == 200 and "已超出回复时限：2 次发送已用完" in html and "sends are used up" not in html


# --- 7. role and display name in the console ---------------------------------------------------------------
async def test_an_admin_changes_role_and_display_name_on_the_operator_page(console: Console) -> None:
    admin = await console.browser("admin")
    status, html, _ = await admin.get("/admin/operators")
    page = re.search(r'<a href="(/admin/operators/\d+)">viewer</a>', html).group(1)  # type: ignore[union-attr]
    own = re.search(r'<a href="(/admin/operators/\d+)">admin</a>', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await admin.get(page)
    assert 'id="profile"' in html
    version = re.search(r'id="profile">\s*<input type="hidden" name="csrf" value="[^"]+"><input type="hidden" '
                        r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    form = {"role": "marketer", "display_name": "Wen <HQ>", "version": version}
    assert (await admin.post(f"{page}/profile", form, csrf=None))[0] == 403
    assert (await admin.post(f"{page}/profile", form))[0] == 303
    status, html, _ = await admin.get(page)
    assert "Wen &lt;HQ&gt;" in html and '<option value="marketer" selected>' in html
    assert (await admin.post(f"{page}/profile", {**form, "role": "agent"}))[0] == 409  # the page was stale
    assert (await admin.post(f"{page}/profile", {**form, "role": "boss", "version": str(int(version) + 1)}))[0] == 422
    now_marketer = await console.browser("viewer")
    assert (await now_marketer.get("/admin/followers/export.csv"))[0] == 200  # a marketer's right, not a viewer's
    async with console.harness.sessions() as s:
        rows = (await s.execute(select(AuditEntry.before, AuditEntry.after).where(AuditEntry.action == "operator.update")
                                )).all()
    assert [(b["role"], a["role"], a["display_name"]) for b, a in rows] == [("viewer", "marketer", "Wen <HQ>")]
    marketer = await console.browser("marketer")
    await marketer.get("/admin/promotions")
    assert (await marketer.post(f"{page}/profile", {**form, "version": str(int(version) + 1)}))[0] == 403
    status, html, _ = await admin.get(own)
    own_version = re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await admin.post(f"{own}/profile", {"role": "viewer", "display_name": "", "version": own_version})
    assert status == 409 and "cannot disable or demote itself" in html
