"""Platform notifications are recorded, not answered; a customer-service session pauses the bot.

Every callback goes over real HTTP from the platform simulator to the WeChat adapter.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.broadcast.status import mass_reports
from bot.core.clock import utcnow
from bot.simulators.wechat.protocol import build_xml
from bot.storage.models import Follower, Message, PlatformNotice
from tests.channels.wechat.test_broadcast import SERVICE_ACCOUNT
from tests.channels.wechat.test_broadcast import _setup as run_broadcast
from tests.support.cli import engagebot

ANSWERED = "answered"  # a passive reply in the HTTP answer
SILENT = "silent"  # "success", nothing sent then or later

# (MsgType, Event or None, extra fields, outcome, recorded as a notice)
EVENTS: list[tuple[str, str | None, list[tuple[str, str | int]], str, bool]] = [
    # What a follower does: answered, or silent by nature (an unfollow, a link opened).
    ("event", "subscribe", [], ANSWERED, False),
    ("event", "subscribe", [("EventKey", "qrscene_spring"), ("Ticket", "T1")], ANSWERED, False),
    ("event", "SCAN", [("EventKey", "spring"), ("Ticket", "T1")], ANSWERED, False),
    ("event", "CLICK", [("EventKey", "HELP")], ANSWERED, False),
    ("event", "unsubscribe", [], SILENT, False),
    ("event", "VIEW", [("EventKey", "https://example.com/")], SILENT, False),
    ("event", "view_miniprogram", [("EventKey", "pages/index"), ("MenuId", "1")], SILENT, False),
    # What the platform tells the account: recorded, never answered.
    ("event", "LOCATION", [("Latitude", "23.137466"), ("Longitude", "113.352425"), ("Precision", "119.38")],
     SILENT, True),
    ("event", "MASSSENDJOBFINISH", [("MsgID", "1000001625"), ("Status", "send success"), ("TotalCount", 100),
                                    ("FilterCount", 80), ("SentCount", 75), ("ErrorCount", 5)], SILENT, True),
    ("event", "TEMPLATESENDJOBFINISH", [("MsgID", "200163836"), ("Status", "success")], SILENT, True),
    ("event", "subscribe_msg_popup_event", [], SILENT, True),
    ("event", "subscribe_msg_change_event", [], SILENT, True),
    ("event", "subscribe_msg_sent_event", [], SILENT, True),
    ("event", "scancode_push", [("EventKey", "scan")], SILENT, True),
    ("event", "pic_sysphoto", [("EventKey", "photo")], SILENT, True),
    ("event", "pic_photo_or_album", [("EventKey", "photo")], SILENT, True),
    ("event", "pic_weixin", [("EventKey", "photo")], SILENT, True),
    ("event", "location_select", [("EventKey", "where")], SILENT, True),
    ("event", "card_pass_check", [("CardId", "pFS7Fjg8kV1IdDz01r4SQwMkuCKc")], SILENT, True),
    ("event", "card_not_pass_check", [("CardId", "pFS7Fjg8kV1IdDz01r4SQwMkuCKc")], SILENT, True),
    ("event", "user_get_card", [("CardId", "c1"), ("UserCardCode", "12312312")], SILENT, True),
    ("event", "user_gifting_card", [("CardId", "c1")], SILENT, True),
    ("event", "user_del_card", [("CardId", "c1")], SILENT, True),
    ("event", "user_consume_card", [("CardId", "c1")], SILENT, True),
    ("event", "user_pay_from_pay_cell", [("CardId", "c1")], SILENT, True),
    ("event", "user_view_card", [("CardId", "c1")], SILENT, True),
    ("event", "user_enter_session_from_card", [("CardId", "c1")], SILENT, True),
    ("event", "update_member_card", [("CardId", "c1")], SILENT, True),
    ("event", "card_sku_remind", [("CardId", "c1")], SILENT, True),
    ("event", "card_pay_order", [("OrderId", "404091456")], SILENT, True),
    ("event", "submit_membercard_user_info", [("CardId", "c1")], SILENT, True),
    ("event", "merchant_order", [("OrderId", "13921957628234")], SILENT, True),
    ("event", "kf_create_session", [("KfAccount", "test1@test")], SILENT, True),
    ("event", "kf_close_session", [("KfAccount", "test1@test")], SILENT, True),
    ("event", "kf_switch_session", [("FromKfAccount", "a@test"), ("ToKfAccount", "b@test")], SILENT, True),
    ("event", "qualification_verify_success", [("ExpiredTime", 1442401156)], SILENT, True),
    ("event", "qualification_verify_fail", [("FailTime", 1442401122), ("FailReason", "x")], SILENT, True),
    ("event", "naming_verify_success", [("ExpiredTime", 1442401093)], SILENT, True),
    ("event", "naming_verify_fail", [("FailTime", 1442401061), ("FailReason", "x")], SILENT, True),
    ("event", "annual_renew", [("ExpiredTime", 1442401004)], SILENT, True),
    ("event", "verify_expired", [("ExpiredTime", 1442400900)], SILENT, True),
    ("event", "user_authorize_invoice", [("SuccOrderId", "1202")], SILENT, True),
    ("event", "update_invoice_status", [("Status", "INVOICE_REIMBURSE_INIT")], SILENT, True),
    ("event", "submit_invoice_title", [("title", "x")], SILENT, True),
    ("event", "user_scan_product", [("KeyStandard", "ean13")], SILENT, True),
    ("event", "poi_check_notify", [("UniqId", "123"), ("PoiId", "123")], SILENT, True),
    ("event", "WifiConnected", [("ConnectTime", 0)], SILENT, True),
    ("event", "ShakearoundUserShake", [], SILENT, True),
    ("event", "giftcard_pay_done", [("PageId", "p")], SILENT, True),
    ("event", "publishjobfinish", [], SILENT, True),
    ("event", "weapp_audit_success", [("SuccTime", 1)], SILENT, True),
    ("event", "an_event_wechat_adds_next_year", [], SILENT, True),
    ("device_text", None, [("DeviceType", "gh_x"), ("DeviceID", "d1"), ("Content", "aGk="),
                           ("SessionID", 9), ("OpenID", "o1")], SILENT, True),
    ("device_event", None, [("Event", "bind"), ("DeviceType", "gh_x"), ("DeviceID", "d1")], SILENT, True),
    ("device_status", None, [("DeviceType", "gh_x"), ("DeviceID", "d1"), ("DeviceStatus", 1)], SILENT, True),
    # A follower's message of a kind the bot cannot read yet: the polite answer.
    ("video", None, [("MediaId", "m1"), ("ThumbMediaId", "t1"), ("MsgId", 1234567890123456)], ANSWERED, False),
    ("shortvideo", None, [("MediaId", "m1"), ("ThumbMediaId", "t1"), ("MsgId", 1234567890123457)], ANSWERED,
     False),
    ("file", None, [("Title", "a.pdf"), ("MsgId", 1234567890123458)], ANSWERED, False),
]


def _callback(account: str, openid: str, msg_type: str, event: str | None,
              extra: list[tuple[str, str | int]], *, created: int | None = None) -> bytes:
    head: list[tuple[str, str | int]] = [("ToUserName", account), ("FromUserName", openid),
                                         ("CreateTime", created or int(time.time())), ("MsgType", msg_type)]
    if event is not None:
        head.append(("Event", event))
    return build_xml(head + extra).encode()


async def _outbound_of(env: Any, openid: str) -> list[str]:
    async with env.bot.sessions() as s:
        return list((await s.execute(select(Message.status).join(Follower, Follower.id == Message.follower_id).where(
            Follower.external_id == openid, Message.direction == "out"))).scalars())


@pytest.mark.parametrize(("msg_type", "event", "extra", "outcome", "noticed"), EVENTS,
                         ids=[f"{t}:{e}" if e else t for t, e, *_ in EVENTS])
async def test_every_callback_type_is_answered_or_recorded_as_the_platform_means_it(
        make_env: Any, msg_type: str, event: str | None, extra: list[tuple[str, str | int]], outcome: str,
        noticed: bool) -> None:
    async with make_env() as env:
        openid = await env.following()
        await asyncio.sleep(0.05)
        replies_before = len(await _outbound_of(env, openid))
        body = _callback(env.sim.account_id, openid, msg_type, event, extra)

        answer = await env.sim.send_raw(body)

        assert answer.status == 200, answer.body
        if outcome == ANSWERED:
            assert b"<MsgType>" in answer.body, answer.body
        else:
            assert answer.body == b"success"
            await asyncio.sleep(0.2)  # a deferred reply would be written by now
            assert len(await _outbound_of(env, openid)) == replies_before
        kind = (event or msg_type).lower()
        assert await env.count(PlatformNotice, PlatformNotice.event == kind) == (1 if noticed else 0)


@pytest.mark.parametrize(("scan_info", "status"), [
    ("<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>offers</ScanResult></ScanCodeInfo>", 200),
    ("<ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo>", 400),
    ("", 400),
])
async def test_scan_and_wait_is_answered_as_what_was_scanned_and_refused_without_it(
        make_env: Any, scan_info: str, status: int) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        body = _callback(env.sim.account_id, openid, "event", "scancode_waitmsg", [("EventKey", "scan")])
        body = body.replace(b"</xml>", scan_info.encode() + b"</xml>")

        answer = await env.sim.send_raw(body)

        assert answer.status == status, answer.body
        if status == 200:
            assert b"<MsgType>" in answer.body  # "offers" answered as if typed
        else:
            assert b"ScanResult" in answer.body


async def test_a_location_report_becomes_the_followers_last_location_and_is_recorded_once(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following()
        # An hour ago: WeChat tells events apart by sender, second and name, so the next report
        # (now) is another one, not a retry of this.
        body = _callback(env.sim.account_id, openid, "event", "LOCATION",
                         [("Latitude", "31.230416"), ("Longitude", "121.473701"), ("Precision", "30.0")],
                         created=int(time.time()) - 3600)

        first, retry = await env.sim.send_raw(body), await env.sim.send_raw(body)

        assert (first.body, retry.body) == (b"success", b"success")
        assert await env.count(PlatformNotice, PlatformNotice.event == "location") == 1
        async with env.bot.sessions() as s:
            follower = (await s.execute(select(Follower).where(Follower.external_id == openid))).scalar_one()
        assert (follower.last_latitude, follower.last_longitude) == (31.230416, 121.473701)
        assert follower.last_located_at is not None

        await env.sim.report_location(openid, latitude=22.543096, longitude=114.057865)
        async with env.bot.sessions() as s:
            follower = (await s.execute(select(Follower).where(Follower.external_id == openid))).scalar_one()
        assert (follower.last_latitude, follower.last_longitude) == (22.543096, 114.057865)
        assert not [r for r in env.sim.replies(openid) if r["source"] in ("passive", "custom")][1:]


@pytest.mark.parametrize(("field", "value"), [("Latitude", "north"), ("Latitude", "91"), ("Longitude", "nan"),
                                              ("Longitude", "-180.5")])
async def test_a_malformed_location_report_is_refused_naming_the_field(make_env: Any, field: str,
                                                                        value: str) -> None:
    async with make_env() as env:
        openid = await env.following()
        fields = {"Latitude": "31.2", "Longitude": "121.4", field: value}
        body = _callback(env.sim.account_id, openid, "event", "LOCATION", list(fields.items()))

        answer = await env.sim.send_raw(body)

        assert answer.status == 400 and field.encode() in answer.body
        assert await env.count(PlatformNotice) == 0


async def test_while_the_platforms_customer_service_has_the_follower_the_bot_stays_quiet(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following()
        other = await env.following()
        answered = await env.sim.send_text(openid, "你好")
        assert answered.reply is not None

        await env.sim.customer_service(openid, "create")
        paused = await env.sim.send_text(openid, "我的订单到哪了？")
        await env.sim.customer_service(openid, "switch", kf_account="kf2002@gh_simulated")
        still_paused = await env.sim.send_text(openid, "还在吗")
        not_paused = await env.sim.send_text(other, "你好")

        assert (paused.reply, still_paused.reply) == (None, None)
        assert paused.acknowledged and still_paused.acknowledged
        assert not_paused.reply is not None  # only that follower is paused
        await asyncio.sleep(0.2)
        async with env.bot.sessions() as s:
            texts = list((await s.execute(select(Message.text).join(Follower, Follower.id == Message.follower_id)
                                          .where(Follower.external_id == openid, Message.direction == "in")
                                          .order_by(Message.id))).scalars())
            outbound = await _outbound_of(env, openid)
        assert texts[-2:] == ["我的订单到哪了？", "还在吗"]  # stored, for the person and the record
        assert len(outbound) == 2  # the welcome and the first answer; nothing while paused

        await env.sim.customer_service(openid, "close")
        back = await env.sim.send_text(openid, "谢谢")
        assert back.reply is not None


async def test_the_mass_send_report_shows_in_broadcast_status(make_env: Any, database_url: str) -> None:
    async with make_env(sim_overrides={"mass_delay": 0.01, "mass_send_quota": 4},
                        config_overrides=SERVICE_ACCOUNT) as env:
        _recent, old_en, old_zh, broadcast_id = await run_broadcast(env)
        for _ in range(50):
            if await env.count(PlatformNotice, PlatformNotice.event == "masssendjobfinish") == 2:
                break
            await asyncio.sleep(0.1)
        async with env.bot.sessions() as s:
            reports = await mass_reports(s, broadcast_id)
        assert await env.count(Follower, Follower.external_id == "mphelper") == 0  # not a follower

    assert [(r.recipients, r.report) for r in reports] == [
        (2, {"Status": "send success", "TotalCount": "2", "FilterCount": "2", "SentCount": "2", "ErrorCount": "0"}),
    ] * 2
    done = engagebot("broadcast", "status", str(broadcast_id), env={"ENGAGEBOT_DATABASE_URL": database_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("platform report: send success") == 2, done.stdout
    assert "sent 2, errors 0" in done.stdout


async def test_a_late_retry_of_an_earlier_session_event_does_not_pause_the_follower_again(make_env: Any) -> None:
    """The close came first (the create's first delivery failed); the create's retry, older, changes nothing."""
    async with make_env() as env:
        openid = await env.following(language="en")
        now = int(time.time())
        close = _callback(env.sim.account_id, openid, "event", "kf_close_session", [("KfAccount", "a@t")],
                          created=now)
        late_create = _callback(env.sim.account_id, openid, "event", "kf_create_session", [("KfAccount", "a@t")],
                                created=now - 20)
        assert (await env.sim.send_raw(close)).status == 200
        assert (await env.sim.send_raw(late_create)).status == 200

        answered = await env.sim.send_text(openid, "hello")
        assert answered.reply is not None


async def test_a_desk_session_whose_close_never_came_lapses(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        await env.sim.customer_service(openid, "create")
        assert (await env.sim.send_text(openid, "anyone?")).reply is None
        async with env.bot.sessions() as s:  # the session opened 13 hours ago and no close was ever sent
            await s.execute(update(Follower).where(Follower.external_id == openid).values(
                paused_at=utcnow() - timedelta(hours=13)))
            await s.commit()
        assert (await env.sim.send_text(openid, "hello?")).reply is not None
