"""The OpenAPI document describes exactly the served routes, and schemathesis, fuzzing a live server
from that document, finds no 5xx and no answer that breaks it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.admin.api import PREFIX
from bot.admin.openapi import document
from bot.admin.plugin import OPENAPI_PATH, admin_api_plugin
from bot.admin.routes import ROUTES
from bot.app import build_app
from tests.admin.conftest import BOOTSTRAP, AdminApi, add_operator, settings_for
from tests.offers.conftest import load_into
from tests.support.servers import serve

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Per operation; enough to reach every field's edge, small enough for a shared 2-core machine.
EXAMPLES = os.environ.get("ENGAGEBOT_TEST_SCHEMATHESIS_EXAMPLES", "25")


async def test_the_document_is_openapi_3_1_and_lists_every_route(admin_api: AdminApi) -> None:
    async with admin_api.client.get(OPENAPI_PATH) as response:
        assert response.status == 200
        served = await response.json()
    assert served == document()
    assert served["openapi"] == "3.1.0"
    described = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    assert described == {(r.method, PREFIX + r.path) for r in ROUTES}
    routes = {(r.method, r.resource.canonical) for r in admin_api.client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith(PREFIX)}
    assert routes == described


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(database_url: str, tmp_path: Path) -> None:
    from bot.admin.roles import Role
    from bot.testing import BotHarness
    from handlers import default_router

    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        await add_operator(harness, "someone", Role.MARKETER)  # an id for the operator routes to find
        follower = harness.follower("fuzzed", language="en")
        await follower.say("hotpot")  # a follower and a claimed code
        app = build_app(settings_for(database_url), plugins=[admin_api_plugin])
        async with serve(app) as base_url:
            st = Path(sys.executable).with_name("st")
            process = await asyncio.create_subprocess_exec(
                str(st), "--config-file", str(CONFIG), "run", f"{base_url}{OPENAPI_PATH}", "--checks", "all", "--mode", "all",
                # "Schema-valid request rejected" flags input JSON Schema cannot judge but the service must
                # refuse with 422 (a regex RE2 cannot compile, a quota below the codes claimed, no locale):
                # those refusals are the point.
                "--exclude-checks", "positive_data_acceptance",
                "--header", f"Authorization: Bearer {BOOTSTRAP}", "--max-examples", EXAMPLES, "--seed", "14",
                "--generation-database", "none", "--suppress-health-check", "all", "--workers", "1",
                "--no-color", "--request-timeout", "20", "--continue-on-failure",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=540)
    report = output.decode("utf-8", "replace")
    print(report)  # shown with -s: what was covered
    assert process.returncode == 0, report[-6000:]
