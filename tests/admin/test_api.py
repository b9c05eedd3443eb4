"""The admin API's behaviour: validation (422 naming the field), edits that cannot overwrite each other
(409), tokens that stop working at once, live promotion counters, followers, the audit log."""

from __future__ import annotations

import asyncio
import csv
import io

from sqlalchemy import select

from bot.storage.models import Follower
from tests.admin.conftest import AdminApi

RULE = {"name": "greet", "match": {"en": ["hello"]}, "reply": {"en": "Hello!"}}


async def test_invalid_input_is_422_naming_the_field(admin_api: AdminApi) -> None:
    cases = [
        ("POST", "/rules", {**RULE, "name": "no spaces allowed"}, "name"),
        ("POST", "/rules", {**RULE, "priority": 5000}, "priority"),
        ("POST", "/rules", {**RULE, "regex": True, "match": {"en": ["(unclosed"]}}, "match"),
        ("POST", "/rules", {**RULE, "match": {"xx": ["hi"]}}, "match"),
        ("POST", "/rules", {**RULE, "surprise": 1}, "surprise"),
        ("POST", "/operators", {"name": "eve", "role": "owner", "password": "x" * 12}, "role"),
        ("POST", "/operators", {"name": "eve", "role": "staff", "password": "short"}, "password"),
        ("POST", "/followers/1/tags", {"add": ["a,b"]}, "add.0"),
        ("GET", "/rules?limit=0", None, "limit"),
        ("GET", "/rules?cursor=abc", None, "cursor"),
    ]
    for method, path, body, field in cases:
        status, answer, _ = await admin_api.call(method, path, json=body)
        assert (status, answer.get("field")) == (422, field), (path, body, answer)
        assert answer["reason"].startswith(f"{field}: ")
    async with admin_api.client.post("/admin/api/v1/rules", data=b"{not json", headers=admin_api.auth("admin")) as r:
        assert r.status == 400
    async with admin_api.client.post("/admin/api/v1/rules", data=b"[" * 100_000, headers=admin_api.auth("admin")) as r:
        assert r.status == 413


async def test_a_quota_below_the_codes_claimed_is_refused(admin_api: AdminApi) -> None:
    for name in ("p1", "p2"):
        await admin_api.harness.follower(name, language="en").say("hotpot")
    status, promo, headers = await admin_api.call("GET", "/promotions/1", "viewer")
    assert (status, promo["claimed"], promo["quota"], promo["remaining"]) == (200, 2, 500, 498)
    status, answer, _ = await admin_api.call("PATCH", "/promotions/1", "marketer", json={"quota": 1},
                                             headers={"If-Match": headers["Etag"]})
    assert (status, answer["field"]) == (422, "quota")
    status, answer, _ = await admin_api.call("PATCH", "/promotions/1", "marketer",
                                             json={"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2029-01-01T00:00:00Z"},
                                             headers={"If-Match": headers["Etag"]})
    assert (status, answer["field"]) == (422, "ends_at")
    status, answer, new_headers = await admin_api.call("PATCH", "/promotions/1", "marketer", json={"quota": 2},
                                                       headers={"If-Match": headers["Etag"]})
    assert (status, answer["quota"], answer["remaining"], answer["version"]) == (200, 2, 0, promo["version"] + 1)
    assert new_headers["Etag"] == f'"v{promo["version"] + 1}"'
    await admin_api.harness.follower("p3", language="en").say("hotpot")  # the quota is live: no third code
    status, promo, _ = await admin_api.call("GET", "/promotions/1")
    assert promo["claimed"] == 2
    status, audit, _ = await admin_api.call("GET", "/audit?action=promotion.update")
    [entry] = audit["items"]
    assert (entry["actor"], entry["before"]["quota"], entry["after"]["quota"]) == ("marketer", 500, 2)


async def test_two_edits_from_the_same_version_one_wins_the_other_gets_409(admin_api: AdminApi) -> None:
    status, rule, headers = await admin_api.call("POST", "/rules", "marketer", json=RULE)
    assert status == 201
    path, etag = f"/rules/{rule['id']}", headers["Etag"]
    first = await admin_api.call("PATCH", path, "marketer", json={"priority": 1}, headers={"If-Match": etag})
    second = await admin_api.call("PATCH", path, "admin", json={"priority": 2}, headers={"If-Match": etag})
    assert (first[0], second[0]) == (200, 409)
    assert "changed" in second[1]["reason"]
    # At the same moment: exactly one of them lands, whatever the interleaving.
    etag = first[2]["Etag"]
    results = await asyncio.gather(*(admin_api.call("PATCH", path, who, json={"priority": n}, headers={"If-Match": etag})
                                     for n, who in enumerate(("admin", "marketer", "admin", "marketer"), start=10)))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 409, 409, 409]
    winner = next(r[1] for r in results if r[0] == 200)
    status, stored, _ = await admin_api.call("GET", path)
    assert stored["priority"] == winner["priority"]
    assert (await admin_api.call("DELETE", path, headers={"If-Match": etag}))[0] == 409
    assert (await admin_api.call("DELETE", path))[0] == 428
    assert (await admin_api.call("DELETE", path, headers={"If-Match": f'"v{stored["version"]}"'}))[0] == 204
    status, answer, _ = await admin_api.call("GET", path)
    assert (status, answer["reason"]) == (404, f"no prompt rule {rule['id']}")


async def test_a_disabled_operators_token_is_refused_at_once(admin_api: AdminApi) -> None:
    assert (await admin_api.call("GET", "/rules", "marketer"))[0] == 200
    status, op, headers = await admin_api.call("GET", f"/operators/{admin_api.operator_ids['marketer']}")
    status, op, _ = await admin_api.call("PATCH", f"/operators/{op['id']}", json={"disabled": True},
                                         headers={"If-Match": headers["Etag"]})
    assert (status, op["disabled"]) == (200, True)
    assert (await admin_api.call("GET", "/rules", "marketer"))[0] == 401
    # The till route reads the same table.
    async with admin_api.client.post("/admin/redeem", json={"code": "ABCDEFGH"}, headers=admin_api.auth("marketer")) as r:
        assert r.status == 401


async def test_a_revoked_token_is_refused_and_a_new_one_is_shown_once(admin_api: AdminApi) -> None:
    staff_id = admin_api.operator_ids["staff"]
    status, made, _ = await admin_api.call("POST", f"/operators/{staff_id}/tokens", json={"label": "till 9"})
    assert status == 201 and made["token"].startswith(made["prefix"])
    status, listed, _ = await admin_api.call("GET", f"/operators/{staff_id}/tokens")
    assert all("token" not in t for t in listed["items"]) and made["id"] in [t["id"] for t in listed["items"]]
    headers = {"Authorization": f"Bearer {made['token']}"}
    async with admin_api.client.get("/admin/api/v1/me", headers=headers) as r:
        assert (r.status, (await r.json())["name"]) == (200, "staff")
    status, revoked, _ = await admin_api.call("DELETE", f"/tokens/{made['id']}")
    assert status == 200 and revoked["revoked_at"] is not None
    async with admin_api.client.get("/admin/api/v1/me", headers=headers) as r:
        assert r.status == 401
    assert (await admin_api.call("GET", "/me", "staff"))[0] == 200  # its other token still works


async def test_operators_clash_and_cannot_lock_themselves_out(admin_api: AdminApi) -> None:
    status, answer, _ = await admin_api.call("POST", "/operators", json={"name": "viewer", "role": "viewer",
                                                                          "password": "x" * 12})
    assert (status, answer["reason"]) == (409, "an operator named 'viewer' exists")
    me = admin_api.operator_ids["admin"]
    _status, op, headers = await admin_api.call("GET", f"/operators/{me}")
    status, answer, _ = await admin_api.call("PATCH", f"/operators/{me}", json={"disabled": True},
                                             headers={"If-Match": headers["Etag"]})
    assert status == 409
    assert (await admin_api.call("GET", "/operators/999999"))[0] == 404
    assert (await admin_api.call("GET", "/operators/0"))[0] == 404


async def test_every_write_leaves_an_audit_row_with_before_and_after(admin_api: AdminApi) -> None:
    _status, rule, headers = await admin_api.call("POST", "/rules", "marketer", json=RULE)
    await admin_api.call("PATCH", f"/rules/{rule['id']}", "marketer", json={"reply": {"en": "Hi!"}},
                         headers={"If-Match": headers["Etag"]})
    await admin_api.call("POST", f"/operators/{admin_api.operator_ids['viewer']}/password", json={"password": "z" * 12})
    status, audit, _ = await admin_api.call("GET", "/audit?limit=3")
    assert status == 200
    newest = [(e["actor"], e["action"], e["target"]) for e in audit["items"]]
    assert newest == [("admin", "operator.reset_password", "operator:viewer"), ("marketer", "rule.update", "rule:greet"),
                      ("marketer", "rule.create", "rule:greet")]
    reset, update, create = audit["items"]
    # No password hash in the log: only what the reset ended.
    assert reset["before"] is None and reset["after"] == {"console_sessions_ended": 0, "tokens_revoked": []}
    assert (update["before"]["reply"], update["after"]["reply"]) == ({"en": "Hello!"}, {"en": "Hi!"})
    assert create["before"] is None and create["after"]["name"] == "greet"
    status, older, _ = await admin_api.call("GET", f"/audit?limit=3&cursor={audit['next_cursor']}")
    assert older["items"][0]["id"] < create["id"]
    assert (await admin_api.call("GET", "/audit", "marketer"))[0] == 403


async def test_followers_are_searched_tagged_and_exported(admin_api: AdminApi) -> None:
    for name, language in (("amy", "en"), ("bo", "zh-CN"), ("=cmd", "en")):
        await admin_api.harness.follower(name, language=language).say("hi")
    async with admin_api.sessions() as session:
        ids = {f.external_id: f.id for f in (await session.execute(select(Follower))).scalars()}
    status, tagged, _ = await admin_api.call("POST", f"/followers/{ids['amy']}/tags", "agent",
                                             json={"add": ["vip", "100%_real"]})
    assert (status, tagged["tags"]) == (200, ["vip", "100%_real"])
    await admin_api.call("POST", f"/followers/{ids['=cmd']}/tags", "agent", json={"add": ["vipx"]})
    status, found, _ = await admin_api.call("GET", "/followers?tag=vip", "viewer")
    assert [f["external_id"] for f in found["items"]] == ["amy"]  # not vipx
    status, found, _ = await admin_api.call("GET", "/followers?tag=100%25_real")
    assert [f["external_id"] for f in found["items"]] == ["amy"]
    status, found, _ = await admin_api.call("GET", "/followers?channel=mock&limit=2")
    assert len(found["items"]) == 2 and found["next_cursor"] is not None
    status, rest, _ = await admin_api.call("GET", f"/followers?channel=mock&limit=2&cursor={found['next_cursor']}")
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert (await admin_api.call("GET", "/followers?channel=wechat"))[1]["items"] == []
    status, untagged, _ = await admin_api.call("POST", f"/followers/{ids['amy']}/tags", json={"remove": ["vip"]})
    assert untagged["tags"] == ["100%_real"]
    status, text, headers = await admin_api.call("GET", "/followers/export.csv", "marketer")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["external_id"] for r in rows) == ["'=cmd", "amy", "bo"]  # a formula is kept as text
    status, audit, _ = await admin_api.call("GET", "/audit?action=follower.tag")
    assert [(e["actor"], e["before"]["tags"], e["after"]["tags"]) for e in audit["items"]][-1] == (
        "agent", [], ["vip", "100%_real"])
    assert (await admin_api.call("GET", "/followers/424242"))[0] == 404


async def test_the_funnel_counts_claims_and_names_an_unknown_campaign(admin_api: AdminApi) -> None:
    follower = admin_api.harness.follower("scanner", language="en")
    await follower.scan("mall-poster-2026")
    status, funnel, _ = await admin_api.call("GET", "/stats/funnel?campaign=mall-poster", "viewer")
    assert status == 200
    [row] = funnel["items"]
    assert (row["campaign"], row["scans"], row["people"]) == ("mall-poster", 1, 1)
    await admin_api.harness.follower("scanner-2", language="zh-CN").scan("mall-poster-2026")
    status, split, _ = await admin_api.call("GET", "/stats/funnel?per_channel=true", "marketer")
    [total] = (await admin_api.call("GET", "/stats/funnel?campaign=mall-poster"))[1]["items"]
    assert [(r["campaign"], r["channel"]) for r in split["items"]] == [("mall-poster", "mock")]
    keys = ("scans", "people", "follows", "claims", "redemptions")
    assert {k: split["items"][0][k] for k in keys} == {k: total[k] for k in keys}
    assert (total["scans"], total["claims"]) == (2, 2)
    status, answer, _ = await admin_api.call("GET", "/stats/funnel?campaign=nope")
    assert (status, answer["reason"]) == (404, "no campaign 'nope'")


async def test_nul_characters_are_422_not_a_database_error(admin_api: AdminApi) -> None:
    """PostgreSQL stores no NUL in text: refused at the edge, naming where it was."""
    for method, path, body, field in (
        ("POST", "/rules", {**RULE, "reply": {"en": "Hi\u0000"}}, "reply.en"),
        ("POST", "/operators", {"name": "nul", "role": "viewer", "password": "x" * 12, "display_name": "a\u0000"},
         "display_name"),
        ("POST", "/codes/redeem", {"code": "ABCDEFGH", "by": "\u0000"}, "by"),
        ("GET", "/followers?channel=%00", None, "channel"),
        ("GET", "/audit?actor=a%00", None, "actor"),
    ):
        status, answer, _ = await admin_api.call(method, path, json=body)
        assert (status, answer["field"]) == (422, field), (path, answer)
    async with admin_api.client.post("/admin/redeem", json={"code": "ABCDEFGH", "by": "till\u0000"},
                                     headers=admin_api.auth("staff")) as r:
        assert r.status == 422


PROMOTION = {"slug": "spring-tea", "title": {"en": "Spring tea", "zh_Hans": "春茶"}, "quota": 100,
             "keywords": {"en": ["spring tea"]}, "code": {"strategy": "unique", "prefix": "TEA"}}


async def test_a_promotion_is_created_checked_by_the_file_model_and_audited(admin_api: AdminApi) -> None:
    status, promo, headers = await admin_api.call("POST", "/promotions", "marketer", json=PROMOTION)
    assert (status, promo["slug"], promo["quota"], promo["claimed"], promo["code_strategy"]) == \
        (201, "spring-tea", 100, 0, "unique")
    assert headers["Etag"] == f'"v{promo["version"]}"'
    assert (await admin_api.call("GET", f"/promotions/{promo['id']}", "viewer"))[1]["title"]["zh_Hans"] == "春茶"
    status, answer, _ = await admin_api.call("POST", "/promotions", "admin", json={**PROMOTION, "quota": 5})
    assert (status, answer["error"]) == (409, "conflict")
    status, audit, _ = await admin_api.call("GET", "/audit?action=promotion.create")
    assert [(r["actor"], r["target"], r["after"]["quota"]) for r in audit["items"]] == \
        [("marketer", "promotion:spring-tea", 100)]


async def test_an_invalid_promotion_is_422_naming_the_field(admin_api: AdminApi) -> None:
    cases = [
        ({**PROMOTION, "slug": "Not A Slug"}, "slug"),
        ({**PROMOTION, "quota": 0}, "quota"),
        ({**PROMOTION, "title": {"xx": "?"}}, "title"),
        ({**PROMOTION, "poster": "/etc/passwd"}, "poster"),
        ({**PROMOTION, "code": {"strategy": "pool", "codes_csv": "codes.csv"}}, "code.strategy"),
        ({**PROMOTION, "surprise": True}, "surprise"),
    ]
    for body, field in cases:
        status, answer, _ = await admin_api.call("POST", "/promotions", "marketer", json=body)
        assert (status, answer.get("field")) == (422, field), (body, answer)
    status, page, _ = await admin_api.call("GET", "/promotions")
    assert "spring-tea" not in [p["slug"] for p in page["items"]]
