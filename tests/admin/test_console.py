"""The web console over HTTP (``bot/admin/console.py``): sign-in, cookies, CSRF, roles, the audit log,
escaping, languages. The browser drives the same pages in tests/test_console_in_a_browser.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from sqlalchemy import func, select

from bot.admin import operators
from bot.admin.audit import CLI_ACTOR
from bot.admin.console import console_plugin
from bot.admin.models import AuditEntry, ConsoleSession
from bot.admin.plugin import admin_api_plugin
from bot.admin.roles import Role
from bot.admin.schemas import OperatorUpdate
from bot.app import build_app
from bot.i18n import default_catalogs
from bot.offers.models import Claim, Promotion
from bot.testing import BotHarness
from bot.web import came_over_https
from handlers import default_router
from tests.admin.conftest import PASSWORD, add_operator, settings_for
from tests.offers.conftest import load_into

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    client: TestClient
    harness: BotHarness

    async def browser(self, name: str | None = None, password: str = PASSWORD) -> Browser:
        """A browser of its own (its own cookies), signed in as ``name`` when given."""
        session = ClientSession(str(self.client.make_url("")), cookie_jar=CookieJar(unsafe=True),
                                 headers={"Accept-Language": "en"})
        browser = Browser(session)
        self._open.append(session)
        if name is not None:
            status, _html, headers = await browser.sign_in(name, password)
            assert status == 303, (status, _html)
        return browser

    def __post_init__(self) -> None:
        self._open: list[ClientSession] = []

    async def audit_actions(self, actor: str) -> list[str]:
        async with self.harness.sessions() as session:
            query = select(AuditEntry.action).where(AuditEntry.actor == actor).order_by(AuditEntry.id)
            return list((await session.execute(query)).scalars())


@dataclass
class Browser:
    session: ClientSession
    csrf: str = ""

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, Any]:
        async with self.session.get(path, allow_redirects=False, **kwargs) as r:
            html = await r.text()
            if found := CSRF.search(html):
                self.csrf = found.group(1)
            return r.status, html, r.headers

    async def post(self, path: str, form: dict[str, str], *, csrf: str | None = "page",
                   **kwargs: Any) -> tuple[int, str, Any]:
        data = dict(form)
        if csrf is not None:
            data["csrf"] = self.csrf if csrf == "page" else csrf
        async with self.session.post(path, data=data, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r.headers

    async def sign_in(self, name: str, password: str = PASSWORD, **kwargs: Any) -> tuple[int, str, Any]:
        await self.get("/admin/login", **kwargs)
        return await self.post("/admin/login", {"name": name, "password": password}, **kwargs)


async def _console(database_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Console]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        settings = settings_for(database_url).model_copy(update=overrides)
        app = build_app(settings, plugins=[admin_api_plugin, console_plugin])
        client = TestClient(TestServer(app))
        await client.start_server()
        console = Console(client, harness)
        try:
            for role in Role:
                await add_operator(harness, role.value, role)
            yield console
        finally:
            for session in console._open:
                await session.close()
            await client.close()


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for c in _console(database_url, tmp_path):
        yield c


async def test_sign_in_opens_a_strict_httponly_session_and_a_wrong_password_is_refused(console: Console) -> None:
    browser = await console.browser()
    status, html, _ = await browser.sign_in("admin", "not the password")
    assert status == 401 and "Wrong name or password" in html
    status, html, _ = await browser.sign_in("nobody", PASSWORD)
    assert status == 401
    status, _html, headers = await browser.sign_in("admin")
    assert status == 303 and headers["Location"] == "/admin"
    cookie = next(c for c in headers.getall("Set-Cookie") if c.startswith("engagebot_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the proxy test below
    status, html, headers = await browser.get("/admin")
    assert status == 200 and "hotpot-50" in html and "mall-poster" in html
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in \
        headers["Content-Security-Policy"]
    async with console.harness.sessions() as session:  # only a hash of the cookie is stored
        stored = (await session.execute(select(ConsoleSession.token_hash))).scalars().all()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(stored) == 1 and value not in stored[0]
    status, _html, headers = await browser.post("/admin/logout", {})
    assert (status, headers["Location"]) == (303, "/admin/login")
    status, _html, headers = await browser.get("/admin")
    assert status == 303 and headers["Location"] == "/admin/login"
    assert await console.audit_actions("admin") == ["console.sign_in", "console.sign_out"]


def test_the_cookie_is_secure_over_https_direct_or_through_a_trusted_proxy_only() -> None:
    import ipaddress

    trusted = (ipaddress.ip_network("10.0.0.0/8"),)

    def request(peer: str, proto: str | None) -> Any:
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        transport = type("T", (), {"get_extra_info": lambda self, name, default=None:
                                   (peer, 4242) if name == "peername" else default})()
        return make_mocked_request("GET", "/admin/login", headers=headers, transport=transport)

    assert came_over_https(request("10.1.2.3", "https"), trusted)
    assert not came_over_https(request("10.1.2.3", "http"), trusted)
    assert not came_over_https(request("203.0.113.9", "https"), trusted)  # not our proxy: the header is anyone's
    assert not came_over_https(request("10.1.2.3", "https"), ())


async def test_a_form_without_its_csrf_token_is_refused_with_the_reason(console: Console) -> None:
    browser = await console.browser("admin")
    await browser.get("/admin/promotions")
    form = {"slug": "csrf-test", "title_en": "CSRF", "keyword_en": "csrf"}
    for csrf in (None, "", "a-token-from-somewhere-else-0123456789"):
        status, html, _ = await browser.post("/admin/promotions", form, csrf=csrf)
        assert status == 403 and "CSRF" in html, (csrf, status)
    async with console.harness.sessions() as session:
        assert (await session.execute(select(Promotion).where(Promotion.slug == "csrf-test"))).first() is None
    # The sign-in form too (a login CSRF would sign a victim into the attacker's account).
    other = await console.browser()
    status, html, _ = await other.post("/admin/login", {"name": "admin", "password": PASSWORD}, csrf=None)
    assert status == 403 and "CSRF" in html
    assert (await browser.post("/admin/promotions", form))[0] == 303  # with the page's token it goes through


async def test_a_promotion_created_in_the_console_is_listed_live_and_audited(console: Console) -> None:
    browser = await console.browser("marketer")
    await browser.get("/admin/promotions")
    form = {"slug": "noodles", "title_en": "Free noodles", "title_zh_Hans": "免费面条", "keyword_en": "noodles",
            "quota": "2", "scene": "noodle-poster", "source": "Poster <b>in the mall</b>"}
    status, _html, headers = await browser.post("/admin/promotions", form)
    assert (status, headers["Location"]) == (303, "/admin/promotions")
    await console.harness.follower("n1", language="en").say("noodles")
    status, html, _ = await browser.get("/admin/promotions")
    row = re.search(r'<tr data-slug="noodles">(.*?)</tr>', html, re.S)
    assert row and re.search(r'class="n claimed">1<', row.group(1)) and re.search(r'class="n quota">2<', row.group(1))
    assert await console.audit_actions("marketer") == ["console.sign_in", "promotions.load"]
    status, html, _ = await browser.get("/admin")
    assert "Poster &lt;b&gt;in the mall&lt;/b&gt;" in html and "<b>in the mall" not in html
    status, html, _ = await browser.post("/admin/promotions", form)
    assert status == 409
    status, html, _ = await browser.post("/admin/promotions", {**form, "slug": "bad slug!", "scene": ""})
    assert status == 422 and "slug" in html
    status, html, _ = await browser.post("/admin/promotions", {**form, "slug": "other", "quota": "many"})
    assert status == 422
    viewer = await console.browser("viewer")
    status, html, _ = await viewer.get("/admin/promotions")
    assert status == 200 and "noodles" in html and 'id="new-promotion"' not in html
    status, html, _ = await viewer.post("/admin/promotions", {**form, "slug": "by-viewer"})
    assert status == 403


async def test_staff_can_redeem_and_nothing_else(console: Console) -> None:
    await console.harness.follower("p1", language="en").say("hotpot")
    async with console.harness.sessions() as session:
        code = (await session.execute(select(Claim.code))).scalar_one()
    staff = await console.browser()
    status, _html, headers = await staff.sign_in("staff")
    assert headers["Location"] == "/admin/till"
    status, _html, headers = await staff.get("/admin")
    assert (status, headers["Location"]) == (303, "/admin/till")
    for path in ("/admin/promotions", "/admin/inbox", "/admin/audit", "/admin/inbox/1"):
        status, html, _ = await staff.get(path)
        assert status == 403, path
    status, html, _ = await staff.get("/admin/till")
    assert status == 200 and "/admin/promotions" not in html and "/admin/inbox" not in html
    status, html, _ = await staff.post("/admin/promotions", {"slug": "by-staff", "title_en": "x"})
    assert status == 403
    status, html, _ = await staff.post("/admin/till", {"code": code})
    assert status == 200 and 'data-outcome="redeemed"' in html
    status, html, _ = await staff.post("/admin/till", {"code": code})
    assert 'data-outcome="already_redeemed"' in html
    status, html, _ = await staff.post("/admin/till", {"code": "<script>"})
    assert status == 422 and "<script>" not in html
    assert await console.audit_actions("staff") == ["console.sign_in", "code.redeem"]


async def test_a_disabled_operators_session_stops_at_once(console: Console) -> None:
    agent = await console.browser("agent")
    status, _html, headers = await agent.get("/admin")
    assert (status, headers["Location"]) == (303, "/admin/inbox")  # an agent's home
    assert (await agent.get("/admin/inbox"))[0] == 200
    async with console.harness.sessions() as session:
        op = await operators.get_operator(session, "agent")
        await operators.update_operator(session, CLI_ACTOR, op, OperatorUpdate(disabled=True), version=None)
        await session.commit()
    status, _html, headers = await agent.get("/admin/inbox")
    assert (status, headers["Location"]) == (303, "/admin/login")
    status, html, _ = await agent.post("/admin/inbox/1/take", {})
    assert status == 403 and "session has ended" in html
    status, _html, _ = await (await console.browser()).sign_in("agent")
    assert status == 401


async def test_follower_text_is_shown_as_text_never_as_html(console: Console) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await console.harness.follower("fx", language="en").say(attack)
    browser = await console.browser("agent")
    status, html, _ = await browser.get("/admin/inbox")
    assert status == 200 and "<script>alert" not in html
    follower_id = re.search(r'data-follower="(\d+)"', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await browser.get(f"/admin/inbox/{follower_id}")
    assert status == 200 and "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html


async def test_the_language_is_switched_and_remembered(console: Console) -> None:
    catalogs = default_catalogs()
    browser = await console.browser("admin")
    await browser.get("/admin/audit")
    for locale in ("zh_Hans", "zh_Hant", "en"):
        status, _html, headers = await browser.post("/admin/language", {"locale": locale, "next": "/admin/audit"})
        assert (status, headers["Location"]) == (303, "/admin/audit")
        status, html, _ = await browser.get("/admin/audit")
        assert f"<h1>{catalogs.gettext(locale, 'Audit log')}</h1>" in html
        assert f'lang="{locale.replace("_", "-")}"' in html
    assert len({catalogs.gettext(loc, "Audit log") for loc in ("en", "zh_Hans", "zh_Hant")}) == 3
    status, html, _ = await browser.post("/admin/language", {"locale": "fr"})
    assert status == 422
    status, html, _ = await browser.post("/admin/language", {"locale": "en"}, csrf=None)
    assert status == 403
    # Before sign-in the browser's language decides, and the selector works on the sign-in page too.
    fresh = await console.browser()
    status, html, _ = await fresh.get("/admin/login", headers={"Accept-Language": "zh-TW,zh;q=0.8"})
    assert catalogs.gettext("zh_Hant", "Sign in to the console") in html


async def test_the_audit_page_is_for_admins(console: Console) -> None:
    admin = await console.browser("admin")
    status, html, _ = await admin.get("/admin/audit")
    assert status == 200 and "console.sign_in" in html
    for role in ("marketer", "agent", "viewer"):
        other = await console.browser(role)
        assert (await other.get("/admin/audit"))[0] == 403, role


@pytest.fixture
async def strict_console(database_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    async for c in _console(database_url, tmp_path, admin_failure_limit="3/minute"):
        yield c


async def test_sign_in_is_throttled_per_client(strict_console: Console) -> None:
    browser = await strict_console.browser()
    statuses = [(await browser.sign_in("admin", "wrong password " + str(n)))[0] for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    status, _html, _ = await browser.sign_in("admin")  # the right password waits its turn too
    assert status == 429
    async with strict_console.harness.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(ConsoleSession))).scalar_one() == 0


async def test_unusable_input_is_a_clear_4xx_never_a_5xx(console: Console) -> None:
    browser = await console.browser("admin")
    await browser.get("/admin/promotions")
    status, html, _ = await browser.post("/admin/promotions", {"slug": "nul", "title_en": "a\x00b"})
    assert status == 422 and "NUL" in html
    status, html, _ = await browser.post("/admin/inbox/424242/reply", {"text": "hello"})
    assert status == 404
    await console.harness.follower("q1", language="en").say("hi")
    status, html, _ = await browser.get("/admin/inbox")
    follower_id = re.search(r'data-follower="(\d+)"', html).group(1)  # type: ignore[union-attr]
    status, html, _ = await browser.post(f"/admin/inbox/{follower_id}/reply", {"text": "hello"})
    assert status == 409 and "take it first" in html  # the service's own words
    await browser.post("/admin/language", {"locale": "zh_Hans"})
    status, html, _ = await browser.get("/admin/inbox")
    assert f'<td class="state">{default_catalogs().gettext("zh_Hans", "bot")}</td>' in html  # 机器人: the state too
    status, html, _ = await browser.get("/admin/inbox/424242")
    assert status == 404
    assert (await browser.get("/admin/inbox/not-a-number"))[0] == 404
    other = await console.browser()
    status, html, _ = await other.sign_in("admin\x00", PASSWORD)
    assert status == 401
