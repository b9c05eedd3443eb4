"""An admin API served on loopback over a database with the sample promotions, one operator per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from bot.admin import operators, secrets
from bot.admin.audit import CLI_ACTOR
from bot.admin.plugin import admin_api_plugin
from bot.admin.roles import Role
from bot.admin.schemas import OperatorCreate, TokenCreate
from bot.app import build_app
from bot.settings import Settings
from bot.testing import BotHarness
from handlers import default_router
from tests.offers.conftest import load_into

BOOTSTRAP = "bootstrap-admin-token-for-tests"
PASSWORD = "correct horse battery staple"
API = "/admin/api/v1"


@dataclass
class AdminApi:
    client: TestClient
    harness: BotHarness
    tokens: dict[str, str] = field(default_factory=dict)  # role name (or "bootstrap") -> bearer token
    operator_ids: dict[str, int] = field(default_factory=dict)

    @property
    def sessions(self) -> Any:
        return self.harness.sessions

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, method: str, path: str, who: str = "admin", *, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body or text, headers) of one call to ``/admin/api/v1{path}`` as ``who``."""
        async with self.client.request(method, API + path, headers={**self.auth(who), **(headers or {})},
                                       **kwargs) as response:
            text = await response.text()
            body = await response.json() if response.content_type == "application/json" else text
            return response.status, body, dict(response.headers)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, admin_token=BOOTSTRAP, simulators=False,
                    admin_failure_limit="1000/minute", **overrides)


async def add_operator(harness: BotHarness, name: str, role: Role) -> tuple[int, str]:
    async with harness.sessions() as session:
        op = await operators.add_operator(session, CLI_ACTOR, OperatorCreate(name=name, role=role, password=PASSWORD))
        _row, token = await operators.create_token(session, CLI_ACTOR, op, TokenCreate(label="tests"))
        await session.commit()
        return op.id, token


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its smallest cost: these tests are about who may do what, not about the hash's cost."""
    monkeypatch.setattr(secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@asynccontextmanager
async def serve_admin_api(harness: BotHarness, app: web.Application) -> AsyncIterator[AdminApi]:
    """Serve ``app`` on loopback with one operator (and token) per role, and the bootstrap token."""
    client = TestClient(TestServer(app))
    await client.start_server()
    api = AdminApi(client=client, harness=harness, tokens={"bootstrap": BOOTSTRAP})
    try:
        for role in Role:
            api.operator_ids[role.value], api.tokens[role.value] = await add_operator(harness, role.value, role)
        yield api
    finally:
        await client.close()


@pytest.fixture
async def admin_api(database_url: str, tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        async with serve_admin_api(harness, build_app(settings_for(database_url), plugins=[admin_api_plugin])) as api:
            yield api
