"""The Weibo simulator as ``engagebot run`` mounts it: stored random credentials, state kept in the database."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.core.services import Services
from bot.settings import Settings, WeiboSettings
from bot.simulation import (
    PAGES,
    SIMULATORS,
    load_simulator_credentials,
    mount_simulators,
    simulated_accounts,
    simulators_to_mount,
)
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade


@dataclass
class _Core:
    sessions: object
    services: Services = field(default_factory=Services)


async def _serve(core: _Core, credentials) -> tuple[TestClient, web.Application]:
    app = web.Application()
    app[SIMULATORS] = {}
    lifetime = mount_simulators(app, core.sessions, credentials, "http://127.0.0.1:1", ["weibo"])
    assert lifetime is not None
    app.cleanup_ctx.append(lifetime)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, app


def test_weibo_is_simulated_when_it_is_not_configured() -> None:
    assert "weibo" in simulators_to_mount(Settings())
    assert PAGES["weibo"] == "/simulator/weibo"


async def test_credentials_are_random_per_database_and_state_survives_a_restart(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    try:
        core = _Core(make_sessionmaker(engine))
        credentials = await load_simulator_credentials(core)
        assert credentials.weibo_app_secret and credentials.weibo_access_token.startswith("2.00")
        assert credentials.weibo_app_secret not in repr(credentials)
        assert (await load_simulator_credentials(_Core(core.sessions))) == credentials  # stored, not re-made
        account = simulated_accounts(credentials, "http://127.0.0.1:1", ["weibo"])["weibo"]
        assert isinstance(account, WeiboSettings) and account.api_base == "http://127.0.0.1:1"
        assert account.app_secret is not None and account.app_secret.get_secret_value() == credentials.weibo_app_secret
        assert credentials.weibo_app_secret not in repr(account)

        client, app = await _serve(core, credentials)
        sim = app[SIMULATORS]["weibo"]
        assert sim.callback_url == "http://127.0.0.1:1/weibo"
        r = await client.post("/simulator/weibo/api/fans", json={"screen_name": "Ada", "language": "en"})
        uid = (await r.json())["uid"]
        post = next(iter(sim.posts))
        r = await client.post("/simulator/weibo/api/comment", json={"uid": uid, "post_id": str(post), "text": "hi"})
        assert r.status == 201
        r = await client.get("/2/comments/to_me.json", params={"access_token": credentials.weibo_access_token})
        assert r.status == 200 and (await r.json())["total_number"] == 1
        await client.close()  # the lifetime saves the state

        client, app = await _serve(core, credentials)
        again = app[SIMULATORS]["weibo"]
        assert again.fans[uid].screen_name == "Ada"
        assert sorted(again.posts) == sorted(sim.posts), (again.posts, sim.posts)
        r = await client.get("/2/comments/to_me.json", params={"access_token": credentials.weibo_access_token})
        assert [c["text"] for c in (await r.json())["comments"]] == ["hi"]
        await client.close()
    finally:
        await engine.dispose()
