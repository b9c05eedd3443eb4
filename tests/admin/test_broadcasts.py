"""Broadcasts in the admin API: start (queued for the worker, audited), progress as rows are written,
cancel (audited; 409 once over), validation naming the field."""

from __future__ import annotations

from bot.broadcast.expand import expand_broadcast
from tests.admin.conftest import AdminApi

START = {"name": "spring", "texts": {"en": "Spring tea is here", "zh-hans": "春茶上市"}, "locales": ["en", "zh-CN"]}


async def test_start_progress_and_cancel_audited(admin_api: AdminApi) -> None:
    harness = admin_api.harness
    await harness.follower("amy", language="en").follow()
    await harness.follower("bai", language="zh-CN").follow()
    await harness.follower("tw", language="zh-TW").follow()  # reads zh_Hant: outside the locales asked for
    status, started, _ = await admin_api.call("POST", "/broadcasts", "marketer", json=START)
    assert (status, started["status"], started["total"]) == (201, "queued", 0)
    assert started["texts"] == {"en": "Spring tea is here", "zh_Hans": "春茶上市"}
    assert started["audience"]["locales"] == ["en", "zh_Hans"]
    bid = started["id"]

    await expand_broadcast(harness.sessions, bid)  # what the running server's broadcast worker does
    status, shown, _ = await admin_api.call("GET", f"/broadcasts/{bid}", "viewer")
    assert (status, shown["total"], shown["pending"], shown["sent"]) == (200, 2, 2, 0)
    status, page, _ = await admin_api.call("GET", "/broadcasts", "marketer")
    assert [b["id"] for b in page["items"]] == [bid]

    status, cancelled, _ = await admin_api.call("POST", f"/broadcasts/{bid}/cancel", "marketer")
    assert (status, cancelled["status"], cancelled["cancelled"], cancelled["pending"]) == (200, "cancelled", 2, 0)
    status, answer, _ = await admin_api.call("POST", f"/broadcasts/{bid}/cancel", "admin")
    assert (status, answer["error"]) == (409, "conflict")
    assert (await admin_api.call("POST", "/broadcasts/999999/cancel", "admin"))[0] == 404

    status, audit, _ = await admin_api.call("GET", "/audit")
    rows = [(r["action"], r["actor"], r["target"]) for r in audit["items"] if r["action"].startswith("broadcast.")]
    assert rows == [("broadcast.cancel", "marketer", f"broadcast:{bid}"),
                    ("broadcast.start", "marketer", f"broadcast:{bid}")]


async def test_broadcasts_by_role(admin_api: AdminApi) -> None:
    for role in ("admin", "marketer", "agent", "staff", "viewer"):
        status, started, _ = await admin_api.call("POST", "/broadcasts", role, json=START)
        assert status == (201 if role in ("admin", "marketer") else 403), role
        assert (await admin_api.call("GET", "/broadcasts", role))[0] == \
            (200 if role in ("admin", "marketer", "viewer") else 403), role
        if status == 201:
            assert (await admin_api.call("POST", f"/broadcasts/{started['id']}/cancel", role))[0] == 200
    assert (await admin_api.call("POST", "/broadcasts/1/cancel", "viewer"))[0] == 403


async def test_an_invalid_broadcast_is_422_naming_the_field(admin_api: AdminApi) -> None:
    cases = [
        ({**START, "texts": {}}, "texts"),
        ({**START, "texts": {"xx": "hi"}}, "texts"),
        ({**START, "texts": {"en": "   "}}, "texts"),
        ({**START, "locales": ["klingon"]}, "locales"),
        ({**START, "channels": ["No Spaces"]}, "channels.0"),
        ({**START, "since": "yesterday"}, "since"),
        ({**START, "promotion": "no-such-promotion"}, "promotion"),
        ({**START, "name": ""}, "name"),
        ({**START, "surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        status, answer, _ = await admin_api.call("POST", "/broadcasts", "marketer", json=body)
        assert (status, answer.get("field")) == (422, field), (body, answer)
    status, page, _ = await admin_api.call("GET", "/broadcasts")
    assert page["items"] == []
