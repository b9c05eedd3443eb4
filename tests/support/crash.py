"""Run real ``engagebot run`` processes against the stand-in platforms (``platforms.py``), kill and restart them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.platforms import TELEGRAM_SECRET, TELEGRAM_TOKEN, WECHAT
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3  # short, so rows a killed instance held go out again soon after its restart
DUTY_LEASE_SECONDS = 2  # short, so a restarted instance (or a standby) takes a killed one's duties soon


@dataclass
class Instance:
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class CrashRig:
    """The platforms' process and ``instances`` bot processes sharing one database."""

    tmp: Path
    database_url: str
    instances: int = 1
    telegram_mode: str = "polling"
    mock_sink: str | None = None
    workers: int = 1  # worker processes of each instance (engagebot run --workers)
    bots: list[Instance] = field(default_factory=list)
    platforms: subprocess.Popen[bytes] | None = None
    platform_port: int = 0
    kills: int = 0

    @property
    def platform(self) -> str:
        return f"http://127.0.0.1:{self.platform_port}"

    async def __aenter__(self) -> CrashRig:
        self.bots = [Instance(free_port(), self.tmp / f"bot{i}.log") for i in range(self.instances)]
        self.platform_port = free_port()
        self.platforms = subprocess.Popen(
            [sys.executable, "-m", "tests.support.platforms", "--port", str(self.platform_port),
             "--bots", ",".join(b.base for b in self.bots)],
            cwd=ROOT, env=self._base_env(), stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "platforms.log", "wb"))
        await self._wait_http(f"{self.platform}/control/ready", self.platforms)
        for i in range(self.instances):
            await self.start(i)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for bot in self.bots:
            if bot.proc is not None and bot.proc.poll() is None:
                bot.proc.send_signal(signal.SIGTERM)
        for bot in self.bots:
            if bot.proc is not None:
                try:
                    bot.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    bot.proc.kill()
        if self.platforms is not None:
            self.platforms.send_signal(signal.SIGTERM)
            try:
                self.platforms.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.platforms.kill()

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEBOT_")}
        env["PYTHONPATH"] = str(ROOT)
        return env

    def env(self, bot: Instance) -> dict[str, str]:
        env = self._base_env()
        env.update({
            "ENGAGEBOT_DATABASE_URL": self.database_url, "ENGAGEBOT_PORT": str(bot.port),
            "ENGAGEBOT_LOG_LEVEL": "WARNING", "ENGAGEBOT_SIMULATORS": "false",
            "ENGAGEBOT_WORKERS": str(self.workers), "ENGAGEBOT_DUTY_LEASE_SECONDS": str(DUTY_LEASE_SECONDS),
            "ENGAGEBOT_OUTBOX__LEASE_SECONDS": str(LEASE_SECONDS),
            "ENGAGEBOT_OUTBOX__NO_SENDER_WAIT_SECONDS": "300",  # restarts are not "no sender"
            "ENGAGEBOT_WECHAT__TOKEN": WECHAT["token"], "ENGAGEBOT_WECHAT__APP_ID": WECHAT["app_id"],
            "ENGAGEBOT_WECHAT__APP_SECRET": WECHAT["app_secret"], "ENGAGEBOT_WECHAT__API_BASE": self.platform,
            "ENGAGEBOT_TELEGRAM__TOKEN": TELEGRAM_TOKEN, "ENGAGEBOT_TELEGRAM__API_BASE": f"{self.platform}/bot",
            "ENGAGEBOT_TELEGRAM__MODE": self.telegram_mode,
        })
        if self.telegram_mode == "webhook":
            env.update({"ENGAGEBOT_TELEGRAM__WEBHOOK_URL": f"{self.platform}/lb/telegram",
                        "ENGAGEBOT_TELEGRAM__WEBHOOK_SECRET": TELEGRAM_SECRET})
        if self.mock_sink:
            env["ENGAGEBOT_MOCK_SINK"] = self.mock_sink
        return env

    async def start(self, i: int) -> None:
        bot = self.bots[i]
        bot.starts += 1
        log = open(bot.log, "ab")
        bot.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=self.tmp, env=self.env(bot),
                                    stdout=subprocess.DEVNULL, stderr=log)
        await self._wait_http(f"{bot.base}/healthz", bot.proc, log=bot.log)

    def stop(self, i: int) -> None:
        """SIGTERM: the orderly stop."""
        proc = self.bots[i].proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def kill(self, i: int) -> None:
        """SIGKILL: no cleanup of any kind runs in the bot."""
        proc = self.bots[i].proc
        assert proc is not None and proc.poll() is None, "the instance died before it was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.kills += 1

    async def _wait_http(self, url: str, proc: subprocess.Popen[bytes], *, log: Path | None = None) -> None:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"{url}: process exited {proc.returncode}: "
                                         + (log.read_text()[-3000:] if log else ""))
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} did not come up")
                await asyncio.sleep(0.1)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            async with http.request(method, f"{self.platform}/control/{path}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

    def logs(self) -> str:
        return "\n".join(f"--- {b.log.name}\n{b.log.read_text()[-4000:]}" for b in self.bots if b.log.exists())


async def eventually_in(check: Callable[[], Awaitable[Any]], timeout: float, what: str, rig: CrashRig) -> Any:
    """Re-run ``check`` until it returns something truthy; past ``timeout``, fail with the rig's logs."""
    deadline = time.monotonic() + timeout
    while True:
        if value := await check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout}s\n{rig.logs()}")
        await asyncio.sleep(0.2)
