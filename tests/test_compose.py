"""deploy/compose.yaml: PostgreSQL, several engagebot replicas, nginx in front, readiness by /readyz.

The structure is checked without Docker; ``docker compose config`` validates the file where the
Docker CLI has its compose plugin.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from bot.settings import Settings
from tests.support.cli import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def test_postgres_replicas_and_nginx_wired_in_order_with_readiness_checks() -> None:
    services = compose()["services"]
    assert services["db"]["image"].startswith("postgres:")
    bot = services["bot"]
    assert bot["deploy"]["replicas"] >= 2
    assert "ports" not in bot and bot["expose"] == ["8080"]  # only nginx is published
    assert "/readyz" in " ".join(bot["healthcheck"]["test"])
    assert bot["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["migrate"]["command"] == ["engagebot", "db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    nginx = services["nginx"]
    assert nginx["depends_on"] == {"bot": {"condition": "service_healthy"}}
    assert nginx["ports"] == ["80:80"] and "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    # Every replica on the shared PostgreSQL, and the settings it is given are real, valid settings.
    env = bot["environment"]
    assert env["ENGAGEBOT_DATABASE_URL"].startswith("postgresql+asyncpg://") and "@db:5432/" in env["ENGAGEBOT_DATABASE_URL"]
    settings = Settings(**{k.removeprefix("ENGAGEBOT_").lower(): v for k, v in env.items()
                           if k.startswith("ENGAGEBOT_") and "__" not in k})
    # docker stop waits longer than engagebot's own graceful stop, so a stop is never cut short.
    grace = int(bot["stop_grace_period"].removesuffix("s"))
    assert grace > settings.shutdown_timeout


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if found.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_validates_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` (the Docker CLI's compose plugin) nor docker-compose is installed")
    done = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                          timeout=60, cwd=COMPOSE.parent)
    assert done.returncode == 0, done.stderr
