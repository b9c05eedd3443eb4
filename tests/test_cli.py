"""The engagebot command: run serves /healthz and stops cleanly; bad settings stop it with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.cli import ROOT, engagebot, one_error_line
from tests.support.servers import free_port


def test_run_serves_healthz_and_stops_on_sigterm(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENGAGEBOT_DATABASE_URL": database_url,
           "ENGAGEBOT_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    assert resp.status == 200 and b'"ok"' in resp.read()
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "engagebot run did not come up"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "engagebot: stopping" in err


@pytest.mark.parametrize(("env", "named"), [
    ({"ENGAGEBOT_DATABASE_URL": "mysql://root@localhost/x"}, "ENGAGEBOT_DATABASE_URL"),
    ({"ENGAGEBOT_DATABASE_URL": "not a url"}, "ENGAGEBOT_DATABASE_URL"),
    ({"ENGAGEBOT_PORT": "eighty"}, "ENGAGEBOT_PORT"),
    ({"ENGAGEBOT_WECHAT__AES_KEY": "short"}, "ENGAGEBOT_WECHAT__AES_KEY"),
    ({"ENGAGEBOT_TELEGRAM__TOKEN": "nonsense"}, "ENGAGEBOT_TELEGRAM__TOKEN"),
    ({"ENGAGEBOT_TIMEZONE": "Mars/Olympus"}, "ENGAGEBOT_TIMEZONE"),
    ({"ENGAGEBOT_DEFAULT_LOCALE": "fr"}, "ENGAGEBOT_DEFAULT_LOCALE"),
])
def test_bad_settings_stop_the_start_with_one_line_naming_the_setting(
        tmp_path: Path, env: dict[str, str], named: str) -> None:
    done = engagebot("run", env=env, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("engagebot: setting ") and named in lines[0], done.stderr
    assert not list(tmp_path.iterdir())  # nothing created


def test_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={
        "ENGAGEBOT_DATABASE_URL": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("engagebot: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [("run",), ("run", "--workers", "2"), ("db", "upgrade")])
def test_an_unreachable_database_is_named_in_the_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    """`run` said only "engagebot: Connection refused" (uvloop's words): which connection, the port it
    listens on? The line says it is the database, and where."""
    port = free_port()
    listen = ("--port", str(free_port())) if command[0] == "run" else ()
    done = engagebot(*command, *listen, env={
        "ENGAGEBOT_DATABASE_URL": f"postgresql+asyncpg://nobody:pw@127.0.0.1:{port}/nothing",
        "ENGAGEBOT_SIMULATORS": "false"}, cwd=tmp_path)
    line = one_error_line(done)
    assert line.startswith(f"engagebot: database at 127.0.0.1:{port}/nothing unreachable: "), line
    assert "pw" not in line and "nobody" not in line


@pytest.mark.parametrize("where", ["missing/dir", "a-file"])
def test_a_metrics_directory_that_cannot_be_written_stops_the_start_naming_it(tmp_path: Path, where: str) -> None:
    """PROMETHEUS_MULTIPROC_DIR pointing nowhere (a tmpfs not mounted, a typo): the server used to start,
    say it was ready, and answer every message and every scrape 500 (the counters could not be written)."""
    (tmp_path / "a-file").write_text("")
    directory = tmp_path / where
    for args in (("run",), ("run", "--workers", "2")):
        done = engagebot(*args, "--port", str(free_port()), env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "ENGAGEBOT_SIMULATORS": "false",
                                     "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"},
                         cwd=tmp_path, timeout=60)
        line = one_error_line(done)
        assert line.startswith(f"engagebot: PROMETHEUS_MULTIPROC_DIR {directory}: "), line
    assert not (tmp_path / "bot.db").exists()  # refused before anything was created


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("port: [1, 2\n", "utf-8")
    done = engagebot("--config", str(bad), "db", "upgrade", cwd=tmp_path)
    assert done.returncode == 2 and "config file" in done.stderr and "c.yaml" in done.stderr
    typo = tmp_path / "t.yaml"
    typo.write_text("prot: 80\n", "utf-8")
    done = engagebot("--config", str(typo), "db", "upgrade", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"engagebot: config file {typo}: key 'prot': not a setting; did you mean 'port'?"


def test_db_upgrade_reports_the_revision(database_url: str, tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": database_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("database at revision ")


async def test_a_database_migrated_by_a_newer_release_is_one_line(
        sessions: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path) -> None:
    """`engagebot db upgrade` (and `run`) of an older release on a database a newer one migrated:
    Alembic does not know the revision; one line saying so, not its traceback."""
    async with sessions.begin() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9001'"))
    for command in (("db", "upgrade"), ("run", "--port", "0")):
        done = engagebot(*command, env={"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false"},
                         cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            "engagebot: database schema at 9001, newer than this release's "), done.stderr


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": "sqlite+aiosqlite:////nonexistent/dir/x.db"},
                     cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "engagebot: database: unable to open database file"


def test_an_in_memory_sqlite_url_works_for_one_command(tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": "sqlite+aiosqlite:///:memory:"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_misspelled_variable_warns_naming_the_closest_setting(tmp_path: Path, database_url: str) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PROT": "9000",
                                           "ENGAGEBOT_WECHAT_TOKEN": "abc123"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "engagebot: warning: ENGAGEBOT_PROT is not a setting and is ignored; did you mean ENGAGEBOT_PORT?",
        "engagebot: warning: ENGAGEBOT_WECHAT_TOKEN is not a setting and is ignored; "
        "did you mean ENGAGEBOT_WECHAT__TOKEN?",
    ]


@pytest.mark.parametrize("command", [["promo", "list"], ["prompts", "list"], ["broadcast", "status"]])
def test_a_misspelled_variable_is_warned_once_per_command(tmp_path: Path, database_url: str,
                                                          command: list[str]) -> None:
    # These commands read the settings more than once; the newcomer sees each warning once.
    done = engagebot(*command, env={"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PROT": "9000"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "engagebot: warning: ENGAGEBOT_PROT is not a setting and is ignored; did you mean ENGAGEBOT_PORT?"]


def test_a_misspelled_key_inside_a_group_stops_the_start_naming_the_closest(tmp_path: Path) -> None:
    done = engagebot("run", env={"ENGAGEBOT_WECHAT__TOKN": "abc123"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("engagebot: setting ENGAGEBOT_WECHAT__TOKN: not a setting; "
                                   "did you mean ENGAGEBOT_WECHAT__TOKEN?")
    nested = tmp_path / "accounts.yaml"
    nested.write_text("wechat_accounts:\n  service:\n    app_secert: x\n", "utf-8")
    done = engagebot("run", "--config", str(nested), cwd=tmp_path)
    assert done.stderr.strip() == (f"engagebot: config file {nested}: key 'wechat_accounts.service.app_secert': "
                                   "not a setting; did you mean 'wechat_accounts.service.app_secret'?")
    assert not (tmp_path / "engagebot.db").exists()


def test_a_bad_value_is_named_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = "eighty"\n', "utf-8")
    done = engagebot("--config", str(config), "run", cwd=tmp_path)
    assert done.stderr.strip() == (f"engagebot: config file {config}: key 'port': "
                                   "Input should be a valid integer, unable to parse string as an integer")
    done = engagebot("--config", str(config), "run", env={"ENGAGEBOT_PORT": "ninety"}, cwd=tmp_path)
    assert done.stderr.strip() == ("engagebot: setting ENGAGEBOT_PORT: "
                                   "Input should be a valid integer, unable to parse string as an integer")


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_works_before_or_after_the_command(where: str, tmp_path: Path) -> None:
    db = tmp_path / "from-config.db"
    config = tmp_path / "c.yaml"
    config.write_text(f"database_url: sqlite+aiosqlite:///{db}\n", "utf-8")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: hours\n    match: {en: [hours]}\n    reply: {en: Open.}\n", "utf-8")
    flag = ["--config", str(config)]
    load = [*flag, "prompts", "load", str(rules)] if where == "before" else ["prompts", "load", str(rules), *flag]
    done = engagebot(*load, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = engagebot("prompts", "list", *flag, cwd=tmp_path)
    assert listed.stdout.startswith("hours ")
    assert db.exists() and not (tmp_path / "engagebot.db").exists()


def test_help_lists_every_command_group_without_markup() -> None:
    done = engagebot("--help")
    assert done.returncode == 0
    assert "`" not in done.stdout
    for group in ["run", "chat", "db", "prompts", "i18n", "promo", "campaign", "broadcast", "stores", "menu"]:
        assert f"\n    {group} " in done.stdout, group
    for command in ["upgrade", "load, list", "show, redeem", "qr, stats", "start, status, cancel, work", "load, push, show"]:
        assert command in done.stdout, command
    version = engagebot("--version")
    import tomllib

    expected = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert version.returncode == 0 and version.stdout.strip() == f"engagebot {expected}"


def test_chat_help_lists_the_console_actions() -> None:
    done = engagebot("chat", "--help")
    assert done.returncode == 0
    for action in [":follow", ":scan", ":click", ":unfollow", ":quit", ":start", ":block"]:
        assert action in done.stdout, action


def test_the_server_runs_on_uvloop_when_it_is_installed_and_other_commands_on_asyncio() -> None:
    import argparse

    from bot.cli import build_parser, loop_factory

    uvloop = pytest.importorskip("uvloop")
    assert loop_factory(build_parser().parse_args(["run"])) is uvloop.new_event_loop
    assert loop_factory(build_parser().parse_args(["db", "upgrade"])) is None
    assert loop_factory(argparse.Namespace()) is None
