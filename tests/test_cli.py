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

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def engagebot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT,
                          timeout=timeout)


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


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("port: [1, 2\n", "utf-8")
    done = engagebot("--config", str(bad), "db", "upgrade", cwd=tmp_path)
    assert done.returncode == 2 and "config file" in done.stderr and "c.yaml" in done.stderr
    typo = tmp_path / "t.yaml"
    typo.write_text("prot: 80\n", "utf-8")
    done = engagebot("--config", str(typo), "db", "upgrade", cwd=tmp_path)
    assert done.returncode == 2 and "ENGAGEBOT_PROT" in done.stderr


def test_db_upgrade_reports_the_revision(database_url: str, tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": database_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("database at revision ")


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": "sqlite+aiosqlite:////nonexistent/dir/x.db"},
                     cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "engagebot: database: unable to open database file"


def test_an_in_memory_sqlite_url_works_for_one_command(tmp_path: Path) -> None:
    done = engagebot("db", "upgrade", env={"ENGAGEBOT_DATABASE_URL": "sqlite+aiosqlite:///:memory:"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
