"""Every resource of the admin API, by role: the roles the issue gives it get in, the others get 403."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import AdminApi

ROLES = ("admin", "marketer", "agent", "staff", "viewer")
READERS = {"admin", "marketer", "viewer"}

# (what, method, path, body, the roles allowed): the issue's roles, written out rather than read from the code.
ACCESS: list[tuple[str, str, str, Any, set[str]]] = [
    ("whoami", "GET", "/me", None, set(ROLES)),
    ("list operators", "GET", "/operators", None, {"admin"}),
    ("add an operator", "POST", "/operators", {"name": "new-{role}", "role": "viewer", "password": "x" * 12}, {"admin"}),
    ("an operator's tokens", "GET", "/operators/1/tokens", None, {"admin"}),
    ("make a token", "POST", "/operators/5/tokens", {"label": "by {role}"}, {"admin"}),
    ("set a password", "POST", "/operators/5/password", {"password": "y" * 12}, {"admin"}),
    ("read the audit log", "GET", "/audit", None, {"admin"}),
    ("list rules", "GET", "/rules", None, READERS),
    ("try a message (a dry run)", "POST", "/try-message", {"text": "hi"}, READERS),
    ("add a rule", "POST", "/rules", {"name": "r-{role}", "match": {"en": ["hi"]}, "reply": {"en": "Hi"}},
     {"admin", "marketer"}),
    ("list promotions", "GET", "/promotions", None, READERS),
    ("one promotion", "GET", "/promotions/1", None, READERS),
    ("preview a promotion (a dry run)", "GET", "/promotions/1/preview", None, READERS),
    ("add a promotion", "POST", "/promotions", {"slug": "new-{role}", "title": {"en": "New"}}, {"admin", "marketer"}),
    ("list conversations", "GET", "/conversations", None, {"admin", "agent", "viewer"}),
    ("list campaigns", "GET", "/campaigns", None, READERS),
    ("redeem a code", "POST", "/codes/redeem", {"code": "NOSUCH99"}, {"admin", "staff"}),
    ("search followers", "GET", "/followers", None, {"admin", "marketer", "agent", "viewer"}),
    ("export followers", "GET", "/followers/export.csv", None, {"admin", "marketer"}),
    ("funnel", "GET", "/stats/funnel", None, READERS),
]


@pytest.mark.parametrize(("what", "method", "path", "body", "allowed"), ACCESS, ids=[a[0] for a in ACCESS])
async def test_each_role_gets_in_or_gets_403(admin_api: AdminApi, what: str, method: str, path: str, body: Any,
                                             allowed: set[str]) -> None:
    for role in ROLES:
        payload = None if body is None else {k: v.format(role=role) if isinstance(v, str) else v
                                             for k, v in body.items()}
        status, answer, _ = await admin_api.call(method, path, role, json=payload)
        if role in allowed:
            assert 200 <= status < 300, (role, status, answer)
        else:
            assert status == 403, (role, status, answer)
            assert answer["error"] == "forbidden"


async def test_edits_by_role(admin_api: AdminApi) -> None:
    """PATCH and DELETE: the writers of a resource may, a reader may not (before any If-Match is looked at)."""
    status, rule, headers = await admin_api.call("POST", "/rules", json={"name": "greet", "match": {"en": ["hello"]},
                                                                         "reply": {"en": "Hello!"}})
    assert status == 201
    for role in ("agent", "staff", "viewer"):
        for method, path, body in (("PATCH", f"/rules/{rule['id']}", {"priority": 1}),
                                   ("DELETE", f"/rules/{rule['id']}", None),
                                   ("PATCH", "/promotions/1", {"quota": 600}),
                                   ("PATCH", "/operators/2", {"display_name": "x"}),
                                   ("DELETE", "/tokens/1", None),
                                   ("POST", "/followers/1/tags", {"add": ["vip"]})):
            if role == "agent" and path.startswith("/followers"):
                continue
            status, _answer, _ = await admin_api.call(method, path, role, json=body, headers={"If-Match": '"v1"'})
            assert status == 403, (role, method, path)
    status, _answer, _ = await admin_api.call("PATCH", f"/rules/{rule['id']}", "marketer", json={"priority": 2},
                                              headers={"If-Match": headers["Etag"]})
    assert status == 200


async def test_staff_can_redeem_and_nothing_else(admin_api: AdminApi) -> None:
    follower = admin_api.harness.follower("carol", language="en")
    await follower.say("hotpot")
    code = follower.last_text.splitlines()[1]
    status, answer, _ = await admin_api.call("POST", "/codes/redeem", "staff", json={"code": code})
    assert (status, answer["outcome"], answer["promotion"]) == (200, "redeemed", "hotpot-50")
    status, answer, _ = await admin_api.call("POST", "/codes/redeem", "staff", json={"code": code})
    assert (status, answer["outcome"]) == (200, "already_redeemed")
    paths = ("/rules", "/promotions", "/followers", "/stats/funnel", "/audit", "/operators", "/campaigns",
             "/campaigns/1/qr?channel=wechat")
    refused = [path for path in paths if (await admin_api.call("GET", path, "staff"))[0] == 403]
    assert refused == list(paths)


async def test_the_till_route_takes_a_staff_token_and_refuses_a_marketer(admin_api: AdminApi) -> None:
    follower = admin_api.harness.follower("dave", language="en")
    await follower.say("hotpot")
    code = follower.last_text.splitlines()[1]
    refused = await admin_api.client.post("/admin/redeem", json={"code": code}, headers=admin_api.auth("marketer"))
    assert refused.status == 401
    done = await admin_api.client.post("/admin/redeem", json={"code": code, "by": "till-2"},
                                       headers=admin_api.auth("staff"))
    assert done.status == 200
    assert (await done.json())["outcome"] == "redeemed"
    again = await admin_api.client.post("/admin/redeem", json={"code": code}, headers=admin_api.auth("bootstrap"))
    assert again.status == 409
    status, audit, _ = await admin_api.call("GET", "/audit?action=code.redeem")
    assert [(e["actor"], e["target"], e["after"]["by"]) for e in audit["items"]] == [("staff", f"code:{code}", "till-2")]


async def test_no_token_or_a_wrong_one_is_401(admin_api: AdminApi) -> None:
    for headers in ({}, {"Authorization": "Bearer ebo_not-a-real-token"}, {"Authorization": "Basic YWRtaW46eA=="},
                    {"Authorization": f"Bearer {admin_api.tokens['admin']}x"}):
        async with admin_api.client.get("/admin/api/v1/rules", headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="engagebot"'
            assert (await response.json())["error"] == "unauthorized"
