"""Channels and handlers come from installed packages by entry point; broken ones are named, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import create_app, default_plugins
from bot.channels.registry import PluginError, channel_plugins, handler_routers, installed_channels
from bot.settings import Settings
from bot.simulation import SIMULATORS
from tests.support.cli import engagebot
from tests.support.plugins import install_dist, install_webchat
from tests.support.servers import free_port, serve


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site-packages of its own on sys.path, and its modules forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("webchat_channel", "plugin_")):
            del sys.modules[name]


def test_engagebot_s_own_channels_come_by_entry_point_in_their_order() -> None:
    found = installed_channels()
    assert [p.platform for p in found.plugins] == ["wechat", "telegram", "weibo", "mock"]
    assert set(found.packages.values()) == {"engagebot"}
    assert found.problems == {}


async def test_an_installed_channel_is_served_end_to_end(site: Path, database_url: str) -> None:
    install_webchat(site)
    port = free_port()
    app = await create_app(Settings(database_url=database_url, port=port))
    assert "webchat" in [getattr(p, "platform", None) for p in default_plugins(Settings(database_url=database_url))]
    async with serve(app, port=port):
        platform = app[SIMULATORS]["webchat"]
        answer = await platform.say("visitor-1", "/help", locale="en")
        assert answer.status == 200
        assert answer.replies and answer.replies[0]["text"]  # the built-in /help, in the visitor's English
        refused = await platform.post(platform.event("visitor-1", text="hi"), secret="not-the-secret-at-all")
        assert refused.status == 403


def test_the_channels_command_lists_an_installed_channel_and_its_state(site: Path, tmp_path: Path) -> None:
    install_webchat(site)
    env = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parent.parent}",
           "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
    listed = engagebot("channels", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[1:]}
    assert rows["webchat"] == ["engagebot-webchat", "simulated"]
    assert rows["wechat"] == ["engagebot", "simulated"]
    configured = engagebot("channels", env={**env, "ENGAGEBOT_CHANNELS__WEBCHAT__SECRET": "s" * 16,
                                            "ENGAGEBOT_CHANNELS__WEBCHAT__API_BASE": "https://chat.example"})
    rows = {line.split()[0]: line.split()[1:3] for line in configured.stdout.splitlines()[1:]}
    assert rows["webchat"] == ["engagebot-webchat", "configured"]
    assert rows["wechat"] == ["engagebot", "off"]  # a real platform is configured: no simulators


def test_bad_settings_of_an_installed_channel_name_the_variable(site: Path, database_url: str) -> None:
    install_webchat(site)
    settings = Settings(database_url=database_url, channels={"webchat": {"secret": "short"}})
    with pytest.raises(Exception, match="ENGAGEBOT_CHANNELS__WEBCHAT__SECRET") as caught:
        from bot.app import build_app

        build_app(settings)
    assert "ENGAGEBOT_CHANNELS__WEBCHAT__API_BASE" in str(caught.value)


@pytest.mark.parametrize(("value", "source", "reason"), [
    ("plugin_missing.nowhere:plugin", None, "cannot be imported: ModuleNotFoundError"),
    ("plugin_wrong:plugin", "plugin = 42\n", "is a int, not a bot.channels.plugin.ChannelPlugin"),
    ("plugin_misnamed:plugin", "from bot.channels.plugin import ChannelPlugin\n"
                               "plugin = ChannelPlugin('other', lambda app, ctx: None)\n",
     "serves platform 'other'; name them alike"),
])
def test_a_broken_channel_is_named_and_stops_startup_when_configured(site: Path, value: str, source: str | None,
                                                                     reason: str) -> None:
    module = value.split(":")[0]
    install_dist(site, "broken-chat", {"engagebot.channels": {"brokenchat": value}},
                 packages={module: source} if source else None)
    skipped = channel_plugins(Settings())  # nothing asked of it: skipped, with a warning
    assert "brokenchat" not in [p.platform for p in skipped]
    with pytest.raises(PluginError) as caught:
        channel_plugins(Settings(channels={"brokenchat": {}}))
    assert str(caught.value).startswith(f"engagebot.channels: brokenchat = {value} (package broken-chat): {reason}")


def test_the_channels_command_shows_a_broken_plugin_and_fails(site: Path, tmp_path: Path) -> None:
    install_dist(site, "broken-chat", {"engagebot.channels": {"brokenchat": "plugin_gone:plugin"}})
    listed = engagebot("channels", env={"PYTHONPATH": f"{site}:{Path(__file__).resolve().parent.parent}",
                                        "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"})
    assert listed.returncode == 1
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("brokenchat")]
    assert row.split()[1:3] == ["-", "broken"] and "cannot be imported: ModuleNotFoundError" in row


def test_engagebot_s_channels_are_served_even_when_its_entry_points_are_missing(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An install older than its pyproject.toml (an editable install not redone) still serves the built-ins."""
    from bot.channels import registry

    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert [p.platform for p in installed_channels().plugins] == ["wechat", "telegram", "weibo", "mock"]
    assert "reinstall" in caplog.text


def test_a_plugin_channel_s_settings_are_not_taken_for_unknown_variables() -> None:
    from bot.settings import unknown_environment

    assert unknown_environment({"ENGAGEBOT_CHANNELS__WEBCHAT__SECRET": "x", "ENGAGEBOT_CHANNELZ": "1"}) == [
        "ENGAGEBOT_CHANNELZ is not a setting and is ignored; did you mean ENGAGEBOT_CHANNELS?"]


def test_two_packages_claiming_one_channel_name_stop_startup(site: Path) -> None:
    install_dist(site, "fake-wechat", {"engagebot.channels": {"wechat": "plugin_fake:plugin"}},
                 packages={"plugin_fake": "plugin = None\n"})
    with pytest.raises(PluginError, match=r"engagebot.channels: wechat = .* the name is taken by "):
        channel_plugins(Settings())


def test_a_broken_plugin_stops_engagebot_run_with_one_line(site: Path, tmp_path: Path) -> None:
    install_dist(site, "broken-chat", {"engagebot.channels": {"brokenchat": "plugin_gone:plugin"}})
    env = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parent.parent}", "ENGAGEBOT_CHANNELS__BROKENCHAT__X": "1",
           "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
    done = engagebot("run", "--port", str(free_port()), env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "engagebot: engagebot.channels: brokenchat = plugin_gone:plugin (package broken-chat): cannot be imported")
    assert "Traceback" not in done.stderr


HANDLER = '''
from bot import Kind, Router, TextReply


def routes() -> Router:
    router = Router("{name}")

    @router.on(Kind.TEXT, keywords={{"en": ["ping"]}})
    async def ping(msg, ctx):
        return [TextReply("{name}")]

    return router


routes.order = 5  # before the handlers of order 100 (the default)
'''


async def test_installed_handlers_answer_before_the_built_ins_in_their_order(site: Path, database_url: str) -> None:
    install_dist(site, "plugin-handlers", {"engagebot.handlers": {"zeta": "plugin_zeta:routes",
                                                                 "alpha": "plugin_alpha:routes"}},
                 packages={"plugin_zeta": HANDLER.format(name="zeta").replace("order = 5", "order = 1 "),
                           "plugin_alpha": HANDLER.format(name="alpha")})
    assert [r.name for r in handler_routers()] == ["zeta", "alpha"]
    from bot.app import build_core

    core = build_core(Settings(database_url=database_url))
    await core.open()
    try:
        from bot.channels.mock import MockChannel
        from bot.core.inbound import Kind

        channel = MockChannel(dispatch=core.dispatcher.dispatch)
        replies = await channel.receive("amy", Kind.TEXT, "ping", language_hint="en")
        assert [r.text for r in replies] == ["zeta"]  # type: ignore[union-attr]
    finally:
        await core.close()


def test_a_handler_plugin_that_is_not_a_router_is_named(site: Path) -> None:
    install_dist(site, "plugin-handlers", {"engagebot.handlers": {"bad": "plugin_bad:routes"}},
                 packages={"plugin_bad": "def routes():\n    return 'nope'\n"})
    with pytest.raises(PluginError, match=r"^engagebot.handlers: bad = plugin_bad:routes \(package plugin-handlers\): "
                                          r"gives a str, not a bot.Router$"):
        handler_routers()


def test_engagebot_run_serves_an_installed_and_configured_channel(site: Path, tmp_path: Path) -> None:
    """A real server process finds the package on its path and answers the new channel's signed webhook."""
    import hashlib
    import hmac
    import json

    from tests.support.process import http, running

    install_webchat(site)
    secret, port = "configured-secret-0123", free_port()
    env = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parent.parent}",
           "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "ENGAGEBOT_PORT": str(port),
           "ENGAGEBOT_CHANNELS__WEBCHAT__SECRET": secret,
           "ENGAGEBOT_CHANNELS__WEBCHAT__API_BASE": "http://127.0.0.1:9"}  # unused: the answer carries the reply
    body = json.dumps({"id": "evt-1", "type": "message", "user": "amy", "text": "/help", "locale": "en"}).encode()
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        status, _headers, answer = http("POST", f"{server.url}/webchat", data=body, headers={
            "Content-Type": "application/json", "X-Webchat-Signature": signature})
        assert status == 200, answer
        assert json.loads(answer)["replies"][0]["text"]
        refused, _headers, _answer = http("POST", f"{server.url}/webchat", data=body, headers={
            "Content-Type": "application/json", "X-Webchat-Signature": "0" * 64})
        assert refused == 403
        assert "simulators: none (real platform configured: webchat)" in server.lines


def test_settings_of_a_channel_that_is_not_installed_stop_startup_naming_both() -> None:
    settings = Settings(channels={"linechat": {"secret": "s" * 16}})
    with pytest.raises(PluginError) as caught:
        channel_plugins(settings)
    assert str(caught.value) == ("setting ENGAGEBOT_CHANNELS__LINECHAT__... (channels.linechat): no channel plugin "
                                 "'linechat' is installed (no engagebot.channels entry point named linechat)")
    with pytest.raises(PluginError, match="channel 'wechat' takes no settings there"):
        channel_plugins(Settings(channels={"wechat": {"token": "t"}}))  # WeChat reads ENGAGEBOT_WECHAT__*


def test_engagebot_run_refuses_a_channel_configured_but_not_installed(tmp_path: Path) -> None:
    env = {"ENGAGEBOT_CHANNELS__LINECHAT__SECRET": "s" * 16,
           "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
    done = engagebot("run", "--port", str(free_port()), env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "engagebot: setting ENGAGEBOT_CHANNELS__LINECHAT__... (channels.linechat): no channel plugin 'linechat' "
        "is installed (no engagebot.channels entry point named linechat)")
    listed = engagebot("channels", env=env)
    assert listed.returncode == 1
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("linechat")]
    assert row.split()[1:3] == ["-", "missing"]


def test_a_real_platform_is_what_each_installed_plugin_s_configured_says(site: Path) -> None:
    from bot.simulation import real_platforms, simulators_to_mount

    install_dist(site, "plugin-always", {"engagebot.channels": {"always": "plugin_always:plugin"}},
                 packages={"plugin_always": "from bot.channels.plugin import ChannelPlugin\n"
                                            "plugin = ChannelPlugin('always', lambda app, ctx: None,\n"
                                            "                       configured=lambda s: s.port == 8181)\n"})
    assert (real_platforms(Settings()), simulators_to_mount(Settings())) == ([], ["wechat", "telegram", "weibo"])
    assert (real_platforms(Settings(port=8181)), simulators_to_mount(Settings(port=8181))) == (["always"], [])
    assert real_platforms(Settings(mock_sink="sqlite+aiosqlite:///sink.db")) == []  # the mock is no platform


def test_a_handler_package_seen_twice_on_the_path_is_loaded_once(site: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install also on the path from its source folder: the same entry point twice."""
    for folder in (site, tmp_path / "again"):
        install_dist(folder, "plugin-handlers", {"engagebot.handlers": {"alpha": "plugin_alpha:routes"}},
                     packages={"plugin_alpha": HANDLER.format(name="alpha")})
    monkeypatch.syspath_prepend(str(tmp_path / "again"))
    assert [r.name for r in handler_routers()] == ["alpha"]
