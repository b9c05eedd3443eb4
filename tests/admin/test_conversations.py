"""The inbox in the admin API: list, messages, take, reply, release by role; the operator is the agent;
each action audited; a reply outside the window and another agent's conversation are 409s; a reply is
sent at once through the app's own channel sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from bot.admin.handoff import sweep_queue_timeouts
from bot.admin.plugin import admin_api_plugin
from bot.admin.roles import Role
from bot.app import build_app
from bot.channels.mock import MOCK_CAPABILITIES
from bot.channels.plugin import Lifetime, PluginContext
from bot.core.capabilities import ReplyWindow
from bot.core.clock import utcnow
from bot.delivery import OutboxSender
from bot.i18n import default_catalogs
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from handlers import default_router
from tests.admin.conftest import AdminApi, add_operator, serve_admin_api, settings_for

# The mock channel with WeChat's window after a message: 48 hours, 5 sends.
WINDOWED = replace(MOCK_CAPABILITIES, window_after_message=ReplyWindow(timedelta(hours=48), 5))
WRITERS = {"admin", "agent"}
READERS = {"admin", "agent", "viewer"}


@pytest.fixture
async def inbox_api(database_url: str, tmp_path: Path) -> AsyncIterator[AdminApi]:
    """The admin API in an app whose one channel is the harness's mock channel, with its outbox sender."""
    async with BotHarness(routers=[default_router()], database_url=database_url, capabilities=WINDOWED) as harness:
        sender = OutboxSender(harness.channel, harness.sessions)
        harness.channel.outbox = sender  # type: ignore[attr-defined]

        def mock_channel_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
            ctx.channels.append(harness.channel)
            return None

        app = build_app(settings_for(database_url), plugins=[mock_channel_plugin, admin_api_plugin])
        try:
            async with serve_admin_api(harness, app) as api:
                yield api
        finally:
            await sender.stop()


async def follower_id(api: AdminApi, external_id: str) -> int:
    async with api.sessions() as s:
        return (await s.execute(select(Follower.id).where(Follower.external_id == external_id))).scalar_one()


async def audit_rows(api: AdminApi, action: str) -> list[dict[str, Any]]:
    status, page, _ = await api.call("GET", f"/audit?action={action}")
    assert status == 200
    return list(page["items"])


async def test_the_list_is_newest_first_with_locale_state_and_window(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("old", language="en").say("hello")
    await inbox_api.harness.follower("new", language="zh-TW").say("你好")
    await inbox_api.harness.follower("new2", language="en").say("human")
    for role in Role:
        status, page, _ = await inbox_api.call("GET", "/conversations", role.value)
        assert status == (200 if role.value in READERS else 403), role
    status, page, _ = await inbox_api.call("GET", "/conversations", "agent")
    assert [c["external_id"] for c in page["items"]] == ["new2", "new", "old"]
    first = page["items"][0]
    assert (first["state"], first["agent"], first["locale"], first["channel"]) == ("queued", None, "en", "mock")
    assert page["items"][1]["locale"] == "zh_Hant"
    assert first["window"]["open"] is True and first["window"]["closes_at"] is not None
    status, page, _ = await inbox_api.call("GET", "/conversations?state=queued", "agent")
    assert [c["external_id"] for c in page["items"]] == ["new2"]
    status, page, _ = await inbox_api.call("GET", "/conversations?limit=2", "agent")
    assert (len(page["items"]), page["next_cursor"]) == (2, "2")
    status, page, _ = await inbox_api.call("GET", "/conversations?limit=2&cursor=2", "agent")
    assert ([c["external_id"] for c in page["items"]], page["next_cursor"]) == (["old"], None)


async def test_messages_are_paged_oldest_first_within_a_page(inbox_api: AdminApi) -> None:
    fan = inbox_api.harness.follower("fan", language="en")
    for word in ("hello", "hi", "menu"):
        await fan.say(word)
    fid = await follower_id(inbox_api, "fan")
    async with inbox_api.sessions() as s:
        ids = list((await s.execute(select(Message.id).where(Message.follower_id == fid)
                                    .order_by(Message.id))).scalars())
    status, page, _ = await inbox_api.call("GET", f"/conversations/{fid}/messages?limit=2", "viewer")
    assert status == 200
    assert [m["id"] for m in page["items"]] == ids[-2:]
    assert page["conversation"]["follower_id"] == fid and page["next_cursor"] == str(ids[-2])
    status, older, _ = await inbox_api.call("GET", f"/conversations/{fid}/messages?limit=2&cursor={ids[-2]}")
    assert [m["id"] for m in older["items"]] == ids[-4:-2]
    assert (await inbox_api.call("GET", f"/conversations/{fid}/messages", "marketer"))[0] == 403
    assert (await inbox_api.call("GET", "/conversations/999999/messages", "agent"))[0] == 404


async def test_take_reply_release_as_the_operator_audited_and_sent_at_once(inbox_api: AdminApi) -> None:
    fan = inbox_api.harness.follower("fan", language="en")
    await fan.say("hello")
    fid = await follower_id(inbox_api, "fan")
    for role in ("marketer", "staff", "viewer"):
        for action in ("take", "release"):
            assert (await inbox_api.call("POST", f"/conversations/{fid}/{action}", role))[0] == 403, (role, action)
        assert (await inbox_api.call("POST", f"/conversations/{fid}/reply", role, json={"text": "hi"}))[0] == 403

    status, change, _ = await inbox_api.call("POST", f"/conversations/{fid}/take", "agent")
    assert (status, change["state"], change["agent"], change["changed"], change["told"]) == \
        (200, "taken", "agent", True, True)
    assert (await inbox_api.call("POST", f"/conversations/{fid}/take", "agent"))[1]["changed"] is False

    before = len(inbox_api.harness.channel.sent["fan"])
    status, queued, _ = await inbox_api.call("POST", f"/conversations/{fid}/reply", "agent",
                                             json={"text": "A person here: how can I help?"})
    assert status == 201 and queued["window"]["open"] is True
    sent = inbox_api.harness.channel.sent["fan"]
    assert [getattr(r, "text", None) for r in sent[before:]] == ["A person here: how can I help?"]  # no sweep needed
    async with inbox_api.sessions() as s:
        row = await s.get(Message, queued["message_id"])
        assert row is not None and (row.sent_by, row.status) == ("agent", "sent")

    status, change, _ = await inbox_api.call("POST", f"/conversations/{fid}/release", "agent")
    assert (status, change["state"], change["changed"]) == (200, "bot", True)

    agent_id = inbox_api.operator_ids["agent"]
    for action, after in (("conversation.take", {"agent": "agent"}),
                          ("conversation.reply", {"agent": "agent", "text": "A person here: how can I help?"}),
                          ("conversation.release", {"agent": "agent", "force": False})):
        rows = await audit_rows(inbox_api, action)
        assert [(r["actor"], r["operator_id"], r["target"], r["after"]) for r in rows] == \
            [("agent", agent_id, f"conversation:{fid}", after)], action


async def test_another_agents_conversation_is_409_and_force_is_the_admins(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("fan", language="en").say("hello")
    fid = await follower_id(inbox_api, "fan")
    assert (await inbox_api.call("POST", f"/conversations/{fid}/take", "agent"))[0] == 200
    status, answer, _ = await inbox_api.call("POST", f"/conversations/{fid}/take", "admin")
    assert (status, answer["error"]) == (409, "conflict")
    assert "taken by agent 'agent'" in answer["reason"]
    status, answer, _ = await inbox_api.call("POST", f"/conversations/{fid}/reply", "admin", json={"text": "hi"})
    assert status == 409 and "taken by agent 'agent'" in answer["reason"]
    assert (await inbox_api.call("POST", f"/conversations/{fid}/release", "admin"))[0] == 409
    extra_id, extra_token = await add_operator(inbox_api.harness, "agent2", Role.AGENT)
    inbox_api.tokens["agent2"] = extra_token
    assert (await inbox_api.call("POST", f"/conversations/{fid}/release?force=true", "agent2"))[0] == 403
    status, change, _ = await inbox_api.call("POST", f"/conversations/{fid}/release?force=true", "admin")
    assert (status, change["state"]) == (200, "bot")
    assert [r["after"] for r in await audit_rows(inbox_api, "conversation.release")] == \
        [{"agent": "admin", "force": True}]
    assert await audit_rows(inbox_api, "conversation.take") and len(await audit_rows(inbox_api, "conversation.take")) == 1


async def test_a_reply_outside_the_window_is_409_with_the_reason_and_not_audited(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("fan", language="en").say("hello")
    fid = await follower_id(inbox_api, "fan")
    assert (await inbox_api.call("POST", f"/conversations/{fid}/take", "agent"))[0] == 200
    async with inbox_api.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == fid).values(last_action_at=utcnow() - timedelta(hours=49)))
    status, answer, _ = await inbox_api.call("POST", f"/conversations/{fid}/reply", "agent", json={"text": "late"})
    assert status == 409
    assert "outside the reply window; the follower must write first" in answer["reason"]
    assert await audit_rows(inbox_api, "conversation.reply") == []


async def test_invalid_inbox_input_is_422_naming_the_field(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("fan", language="en").say("hello")
    fid = await follower_id(inbox_api, "fan")
    cases = [
        ("POST", f"/conversations/{fid}/reply", {"text": "   "}, "text"),
        ("POST", f"/conversations/{fid}/reply", {"text": "x" * 4001}, "text"),
        ("POST", f"/conversations/{fid}/reply", {"text": "hi", "agent": "someone-else"}, "agent"),
        ("GET", "/conversations?state=sleeping", None, "state"),
        ("GET", "/conversations?agent=two%20words", None, "agent"),
        ("GET", f"/conversations/{fid}/messages?limit=500", None, "limit"),
        ("POST", f"/conversations/{fid}/release?force=maybe", None, "force"),
    ]
    for method, path, body, field in cases:
        status, answer, _ = await inbox_api.call(method, path, "agent", json=body)
        assert (status, answer.get("field")) == (422, field), (path, body, answer)
    assert (await inbox_api.call("POST", "/conversations/999999/take", "agent"))[0] == 404


async def time_out_the_queue(api: AdminApi) -> int:
    """The handoff-timeout duty's sweep, run as if the timeout had passed; how many went back to the bot."""
    return await sweep_queue_timeouts(api.sessions, catalogs=default_catalogs(), timeout=timedelta(minutes=15),
                                      default_locale="en", now=utcnow() + timedelta(minutes=16))


async def test_a_timed_out_queued_follower_stays_owed_until_an_agent_answers(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("asker", language="en").say("human")
    await inbox_api.harness.follower("idle", language="en").say("hello")
    fid = await follower_id(inbox_api, "asker")
    assert await time_out_the_queue(inbox_api) == 1
    status, page, _ = await inbox_api.call("GET", "/conversations?owed=true", "viewer")
    assert status == 200 and [c["external_id"] for c in page["items"]] == ["asker"]
    owed = page["items"][0]
    assert owed["state"] == "bot" and owed["owed_since"] is not None  # back to the bot, still owed
    status, page, _ = await inbox_api.call("GET", "/conversations?owed=false", "agent")
    assert [c["external_id"] for c in page["items"]] == ["idle"]
    assert (await inbox_api.call("POST", f"/conversations/{fid}/take", "agent"))[0] == 200
    assert (await inbox_api.call("GET", "/conversations?owed=true", "agent"))[1]["items"][0]["owed_since"]
    status, _queued, _ = await inbox_api.call("POST", f"/conversations/{fid}/reply", "agent", json={"text": "Hi!"})
    assert status == 201
    assert (await inbox_api.call("GET", "/conversations?owed=true", "agent"))[1]["items"] == []


async def test_an_owed_answer_can_be_dismissed_by_an_agent_audited(inbox_api: AdminApi) -> None:
    await inbox_api.harness.follower("asker", language="en").say("human")
    fid = await follower_id(inbox_api, "asker")
    await time_out_the_queue(inbox_api)
    for role in ("marketer", "staff", "viewer"):
        assert (await inbox_api.call("POST", f"/conversations/{fid}/dismiss", role))[0] == 403, role
    status, answer, _ = await inbox_api.call("POST", f"/conversations/{fid}/dismiss", "agent")
    assert (status, answer) == (200, {"follower_id": fid, "changed": True})
    assert (await inbox_api.call("GET", "/conversations?owed=true", "agent"))[1]["items"] == []
    assert (await inbox_api.call("POST", f"/conversations/{fid}/dismiss", "agent"))[1]["changed"] is False
    assert [r["after"] for r in await audit_rows(inbox_api, "conversation.dismiss")] == [{"agent": "agent"}]
    assert (await inbox_api.call("POST", "/conversations/999999/dismiss", "agent"))[0] == 404
