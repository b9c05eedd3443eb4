"""The composition root: plugins in order, several WeChat accounts, links for the CLI."""

from __future__ import annotations

import hashlib
import time

from bot.app import CORE, build_app, build_core, close_link_channels, create_app, open_link_channels
from bot.settings import Settings
from tests.support.servers import free_port, serve


def _signed(token: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "n0nce"  # fresh: older timestamps are refused
    return {"signature": hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest(),
            "timestamp": timestamp, "nonce": nonce, "echostr": "hello-echo"}


async def test_each_configured_wechat_account_has_its_own_path(database_url: str) -> None:
    import aiohttp

    settings = Settings(database_url=database_url, simulators=False, port=free_port(),
                        wechat={"token": "DefaultToken1", "app_id": "wxdefault", "app_secret": "s1"},
                        wechat_accounts={"service": {"token": "ServiceToken2", "app_id": "wxservice",
                                                     "app_secret": "s2"}})
    app = build_app(settings)
    names = [(c.name, c.account) for c in app[CORE].channels]
    assert names == [("wechat", "default"), ("wechat", "service")]
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/wechat", params=_signed("DefaultToken1")) as resp:
            assert (resp.status, await resp.text()) == (200, "hello-echo")
        async with http.get(f"{url}/wechat/service", params=_signed("ServiceToken2")) as resp:
            assert (resp.status, await resp.text()) == (200, "hello-echo")
        async with http.get(f"{url}/wechat/service", params=_signed("DefaultToken1")) as resp:
            assert resp.status == 403


async def test_the_cli_gets_scene_links_from_a_running_embedded_server(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    async with serve(await create_app(settings), port=settings.port):
        core = build_core(settings)
        await core.open()
        channels = await open_link_channels(core)
        try:
            links = {c.name: await c.scene_link("poster-9") for c in channels}
        finally:
            await close_link_channels(channels)
            await core.close()
    assert links["telegram"] == "https://t.me/engagebot_demo_bot?start=poster-9"
    assert links["wechat"].startswith("http://weixin.qq.com/q/")


async def test_the_landing_page_links_what_plugins_add_such_as_the_operator_console(database_url: str) -> None:
    import aiohttp

    from bot.i18n import default_catalogs
    from bot.landing import LANDING_LINKS, OPERATOR_CONSOLE

    def console_plugin(app, core):  # type: ignore[no-untyped-def]
        app[LANDING_LINKS].append((OPERATOR_CONSOLE, "/console"))

    settings = Settings(database_url=database_url, simulators=False, port=free_port())
    async with serve(build_app(settings, plugins=[console_plugin]), port=settings.port) as url, \
            aiohttp.ClientSession() as http:
        async with http.get(f"{url}/") as resp:
            assert resp.status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"
            html = await resp.text()
    for locale in ("en", "zh_Hans"):
        label = default_catalogs().gettext(locale, OPERATOR_CONSOLE)
        assert f'<a href="/console">{label}</a>' in html
    assert "/simulator/" not in html
