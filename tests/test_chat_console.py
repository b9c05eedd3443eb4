"""``engagebot chat`` as a newcomer uses it, next to a running ``engagebot run`` (issue 9, points 4, 5, 18).

- It finds the server the way ``run`` was told (``--port``, ``ENGAGEBOT_PORT``, the config file), and
  the command ``run`` prints works when pasted as is.
- ``--as NAME``: the same name is the same follower on every channel, across runs and restarts.
- Every console says the same thing after ``:unfollow``, and "1" after an answer without choices is
  sent as text on every console.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli.console import NO_REPLY, UNFOLLOWED
from bot.i18n import current_locale
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower
from tests.support.process import Server, chat, engagebot, running
from tests.support.servers import free_port

pytestmark = pytest.mark.engine_neutral  # the PostgreSQL pass leaves these to the SQLite pass (tests/conftest.py)

# Weibo is left out here: its pushes carry no language, so `--lang` cannot reach the bot the way these tests expect.
CHANNELS = ["mock", "wechat", "telegram"]
NOT_UNDERSTOOD = "Sorry, I did not understand that. Send /help to see what I can do."


def _help_first_line(locale: str) -> str:
    from handlers.help import help_text

    token = current_locale.set(locale)
    try:
        return help_text().splitlines()[0]
    finally:
        current_locale.reset(token)


HELP_FIRST_LINE = _help_first_line("en")


def _pasted_commands(server: Server, timeout: float = 20) -> dict[str, list[str]]:
    """The chat commands ``run`` printed, by channel, as argv lists."""
    deadline = time.monotonic() + timeout
    while True:
        commands = {}
        for line in server.lines:
            if "or run: " in line:
                argv = shlex.split(line.split("or run: ", 1)[1])
                commands[argv[argv.index("--channel") + 1]] = argv
        if len(commands) == 3 or time.monotonic() > deadline:
            return commands
        time.sleep(0.2)


def _bot_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("bot> ", "     "))]


@pytest.mark.parametrize("way", ["flag", "env", "config"])
async def test_chat_finds_the_server_the_way_run_was_told_and_the_printed_command_works(
        tmp_path: Path, database_url: str, way: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url}
    if way == "flag":
        run_args, chat_args = ["run", "--port", str(port)], ["chat", "--port", str(port)]
    elif way == "env":
        env["ENGAGEBOT_PORT"] = str(port)
        run_args, chat_args = ["run"], ["chat"]
    else:
        (tmp_path / "engagebot.yaml").write_text(f"port: {port}\n")
        run_args, chat_args = ["--config", "engagebot.yaml", "run"], ["--config", "engagebot.yaml", "chat"]
    with running(*run_args, env=env, cwd=tmp_path, port=port, ready="/simulator/telegram") as server:
        for channel in ("wechat", "telegram"):
            done = chat(*chat_args, "--channel", channel, "--lang", "en", "--as", f"{way}-user",
                        lines=["help", ":quit"], env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert f"bot> {HELP_FIRST_LINE}" in done.stdout, (channel, done.stdout, done.stderr)
        commands = _pasted_commands(server)
        assert set(commands) == {"wechat", "telegram", "weibo"}, server.lines
        for channel, argv in commands.items():
            assert argv == ["engagebot", "chat", "--channel", channel, "--port", str(port)]
            # Pasted in another terminal: no ENGAGEBOT_PORT there, no config file, another directory.
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir(exist_ok=True)
            done = chat(*argv[1:], "--as", "pasted", "--lang", "en", lines=["help"], cwd=elsewhere,
                        env={"ENGAGEBOT_DATABASE_URL": database_url})
            assert f"bot> {HELP_FIRST_LINE}" in done.stdout, (argv, done.stdout, done.stderr)
            assert not list(elsewhere.glob("*.db"))  # the console made no database of its own


async def test_chat_without_a_server_names_where_it_looked(tmp_path: Path) -> None:
    port = free_port()
    for channel in ("wechat", "telegram", "weibo"):
        done = chat("chat", "--channel", channel, lines=[], env={"ENGAGEBOT_PORT": str(port)}, cwd=tmp_path)
        assert done.returncode == 2 and f"127.0.0.1:{port}" in done.stderr, done.stderr


async def _followers(database_url: str, channel: str) -> list[tuple[str, str | None, str | None]]:
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.execute(select(Follower.external_id, Follower.display_name, Follower.locale)
                                         .where(Follower.channel == channel).order_by(Follower.id))
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


async def test_the_same_name_is_the_same_follower_on_every_channel_across_runs_and_restarts(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    zh_help = _help_first_line("zh_Hans")
    assert zh_help != HELP_FIRST_LINE
    with running("run", env=env, cwd=tmp_path, port=port, ready="/simulator/telegram"):
        for channel in CHANNELS:  # Amy, whose phone is in Chinese, picks English
            done = chat("chat", "--channel", channel, "--as", "Amy", "--lang", "zh-hans", lines=["English"],
                        env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
    with running("run", env=env, cwd=tmp_path, port=port, ready="/simulator/telegram", name="restarted"):
        for channel in CHANNELS:
            amy = chat("chat", "--channel", channel, "--as", "Amy", "--lang", "zh-hans", lines=["help"],
                       env=env, cwd=tmp_path)
            assert f"bot> {HELP_FIRST_LINE}" in amy.stdout, (channel, amy.stdout)  # still her choice
            bob = chat("chat", "--channel", channel, "--as", "Bob", "--lang", "zh-hans", lines=["help"],
                       env=env, cwd=tmp_path)
            assert f"bot> {zh_help}" in bob.stdout, (channel, bob.stdout)  # another name, another follower
    for channel in CHANNELS:
        followers = await _followers(database_url, channel)
        assert len(followers) == 2, (channel, followers)
        assert [locale for _id, _name, locale in followers] == ["en", None], (channel, followers)


async def test_every_console_says_the_same_after_unfollow_and_takes_a_stale_number_as_text(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port, ready="/simulator/telegram"):
        outputs = {channel: chat("chat", "--channel", channel, "--as", f"Cai-{channel}", "--lang", "en",
                                 lines=[":follow", "1", "1", ":unfollow", ":quit"], env=env, cwd=tmp_path)
                   for channel in CHANNELS}
    for channel, done in outputs.items():
        assert done.returncode == 0, (channel, done.stderr)
        lines = _bot_lines(done.stdout)
        help_at = next(i for i, line in enumerate(lines) if line == f"bot> {HELP_FIRST_LINE}")
        after_help = [line for line in lines[help_at:] if line.startswith("bot> ") or line == UNFOLLOWED]
        # "1" picked the welcome's first choice (help); the help had no choices, so the next "1" is text.
        assert after_help[1:] == [f"bot> {NOT_UNDERSTOOD}", UNFOLLOWED], (channel, done.stdout)
        assert lines[-1] == UNFOLLOWED and NO_REPLY not in lines, (channel, done.stdout)


async def test_a_number_picks_from_the_latest_answer_even_in_the_next_run_on_every_console(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port, ready="/simulator/telegram"):
        for channel in CHANNELS:
            first = chat("chat", "--channel", channel, "--as", "Dee", "--lang", "en", lines=[":follow"],
                         env=env, cwd=tmp_path)
            assert first.returncode == 0, first.stderr
            again = chat("chat", "--channel", channel, "--as", "Dee", "--lang", "en", lines=["1"],
                         env=env, cwd=tmp_path)
            assert _bot_lines(again.stdout)[0] == f"bot> {HELP_FIRST_LINE}", (channel, first.stdout, again.stdout)


def test_chat_help_lists_where_to_find_the_server() -> None:
    done = engagebot("chat", "--help")
    assert done.returncode == 0
    for flag in ("--host", "--port", "--url", "--as"):
        assert flag in done.stdout


async def _console_in_a_terminal(args: list[str], lines: list[str], *, timeout: float = 90) -> str:
    """Run ``engagebot chat ARGS`` with a terminal as its input (so it prompts), typing ``lines`` ahead."""
    import asyncio
    import os
    import pty
    import sys

    from tests.support.process import cli_env

    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args, stdin=slave, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=cli_env())
        os.write(master, "".join(f"{line}\n" for line in lines).encode())
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_telegram_console_prints_each_answer_before_the_next_prompt(database_url: str) -> None:
    from bot import Inbound, Kind, Router, TextReply
    from bot.app import create_app
    from bot.channels.telegram.plugin import TELEGRAM_CHANNEL
    from bot.settings import Settings
    from bot.simulation import TELEGRAM_SIMULATOR
    from tests.support.servers import serve

    router = Router("two-parts")

    @router.on(Kind.TEXT, priority=100, when=lambda msg, ctx: msg.text == "two parts")
    async def two_parts(msg: Inbound, ctx: object) -> list:
        return [TextReply("first part"), TextReply("second part")]

    port = free_port()
    app = await create_app(Settings(database_url=database_url, port=port), routers=[router])
    async with serve(app, port=port) as url:
        await app[TELEGRAM_CHANNEL].wait_ready(20)
        app[TELEGRAM_SIMULATOR].response_delay(1.0, "sendMessage")  # a slow Telegram: parts 1 s apart
        out = await _console_in_a_terminal(
            ["chat", "--channel", "telegram", "--url", url, "--as", "Dana", "--lang", "en"],
            ["two parts", "help", "two parts", ":quit"])
    turns = out.split("you> ")[1:]  # what followed each prompt, up to the next one
    assert [t.count("bot> ") for t in turns] == [2, 1, 2, 0], out
    assert "bot> first part\nbot> second part\n" == turns[0] == turns[2], out
    assert turns[1].startswith(f"bot> {HELP_FIRST_LINE}"), out


async def test_the_wechat_console_prints_replies_sent_through_the_api_before_the_next_prompt(
        database_url: str) -> None:
    from bot import Inbound, Kind, Router, TextReply
    from bot.app import create_app
    from bot.settings import Settings
    from tests.support.servers import serve

    router = Router("three-parts")

    @router.on(Kind.TEXT, priority=100, when=lambda msg, ctx: msg.text == "three parts")
    async def three_parts(msg: Inbound, ctx: object) -> list:  # one passive reply, two through the API
        return [TextReply("part one"), TextReply("part two"), TextReply("part three")]

    port = free_port()
    app = await create_app(Settings(database_url=database_url, port=port), routers=[router])
    async with serve(app, port=port) as url:
        out = await _console_in_a_terminal(
            ["chat", "--channel", "wechat", "--url", url, "--as", "Dana", "--lang", "en"],
            ["three parts", "three parts", ":quit"])
    turns = out.split("you> ")[1:]
    assert turns[:2] == ["bot> part one\nbot> part two\nbot> part three\n"] * 2, out


@pytest.mark.parametrize("channel", ["wechat", "telegram"])
async def test_lang_for_a_follower_that_exists_says_it_keeps_its_phone_language(
        tmp_path: Path, database_url: str, channel: str) -> None:
    # The README's sequence: `chat --channel wechat --lang en`, later `chat --channel wechat --lang zh-HK`
    # with the same (default) name. The second --lang cannot change that follower's phone: say so, and how.
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port, ready="/simulator/telegram"):
        first = chat("chat", "--channel", channel, "--lang", "en", lines=["help"], env=env, cwd=tmp_path)
        assert "already exists" not in first.stdout, first.stdout
        same = chat("chat", "--channel", channel, "--lang", "EN", lines=[], env=env, cwd=tmp_path)
        assert "already exists" not in same.stdout, same.stdout  # the same language, written otherwise
        again = chat("chat", "--channel", channel, "--lang", "zh-HK", lines=["help"], env=env, cwd=tmp_path)
        hk = chat("chat", "--channel", channel, "--as", "hk-phone", "--lang", "zh-HK", lines=["help"],
                  env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert ("console-user already exists, with its phone in en: --lang sets the language of a new follower "
            "only. Use another --as NAME, or say English / 中文 / 繁體 to switch.") in again.stdout, again.stdout
    assert f"bot> {HELP_FIRST_LINE}" in again.stdout, again.stdout  # still English, as the note says
    assert "already exists" not in hk.stdout, hk.stdout
    assert f"bot> {_help_first_line('zh_Hant')}" in hk.stdout, hk.stdout  # a new name: a Hong Kong phone
