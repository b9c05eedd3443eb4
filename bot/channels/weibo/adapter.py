"""The Weibo fan-service channel: signed JSON pushes in, passive JSON replies out, slow replies via the API.

Like WeChat, Weibo waits 5 s for the HTTP answer and retries (3 tries in all). A reply ready within
the passive deadline (4.5 s) goes in the answer; otherwise the answer is an empty body ("received,
do not retry") and the reply follows through ``/2/messages/reply.json`` once the handler is done, by
the outbox. Retries never run a handler twice: the dispatcher dedupes on the push's key
(sender_id + created_at + type/subtype, ``protocol.push_message_id``).

A push is taken only when its signature matches (checked before the body is read), its millisecond
timestamp is within ``max_clock_skew`` of our clock, and its signature has not come before with
another body (``ReplayGuard``, shared with WeChat). The body is capped and validated: a 4xx with the
reason, nothing stored.

Windows (PROTOCOLS.md, configurable): unlimited sends within 48 h after the fan acted, one after an
@mention, none after an unfollow; the outbox refuses the rest (undeliverable, with the reason)
without calling the platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.base import Channel, Dispatch, url_check_answer
from bot.channels.deadline import PassiveDeadline
from bot.channels.images import ImageLoader, MediaCache, image_text, qr_source
from bot.channels.replay import ReplayGuard, answered_when_admitted
from bot.core.capabilities import Capabilities, MassSendQuota, ReplyWindow
from bot.core.menu import Menu
from bot.core.reply import ArticlesReply, ImageReply, QrReply, Reply, TextReply
from bot.delivery.outbox import OutboxSender
from bot.errors import PayloadError
from bot.logs import add_secrets
from bot.settings import WeiboSettings
from bot.storage.replay import ReplayLedger
from bot.web import read_body

from . import protocol
from .api import WeiboAPI

log = logging.getLogger("engagebot.weibo")

HELD_FOR_REVIEW = "held for review"


def weibo_capabilities(config: WeiboSettings) -> Capabilities:
    window = timedelta(hours=config.window_hours)
    return Capabilities(
        # Images are uploaded first, then sent through the API: never in the passive answer.
        max_text_length=protocol.MAX_TEXT_CHARS, buttons=False, max_articles=1, images=True, passive_images=False,
        passive_reply_deadline=config.passive_deadline_seconds, max_passive_replies=1,
        window_after_message=ReplyWindow(window), window_after_event=ReplyWindow(window),
        window_after_mention=ReplyWindow(window, config.mention_replies),
        not_met=(("locale", "Weibo's pushes carry no language hint: a fan picks a language with /lang"),),
        mass_send=MassSendQuota(per_period=config.mass_sends_per_day, period=timedelta(days=1))
        if config.mass_sends_per_day else None,
    )


class WeiboChannel(Channel):
    """The brand's fan-service account, served at ``path`` (``/weibo``)."""

    name: ClassVar[str] = "weibo"

    def __init__(self, *, dispatch: Dispatch, account: str, config: WeiboSettings,
                 sessions: async_sessionmaker[AsyncSession], path: str = "/weibo") -> None:
        super().__init__(dispatch=dispatch, account=account)
        if config.app_secret is None or config.access_token is None or config.brand_uid is None:
            raise ValueError("the Weibo account needs app_secret, access_token and brand_uid")
        self.path = path
        self.config = config
        self.brand_uid = config.brand_uid
        self._secret = config.app_secret.get_secret_value()
        add_secrets(self._secret, config.access_token.get_secret_value())
        self.capabilities = weibo_capabilities(config)
        self.api = WeiboAPI(api_base=config.api_base, access_token=config.access_token.get_secret_value())
        self.outbox = OutboxSender(self, sessions)
        self.images = ImageLoader()
        self.media = MediaCache(sessions, f"weibo:{self.brand_uid}")
        self.replay = ReplayGuard(ReplayLedger(sessions.kw["bind"]), scope=self.name,
                                  max_skew=config.max_clock_skew, units_per_second=1000)
        self.passive_deadline = PassiveDeadline(self)

    # --- lifecycle ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path, self.verify_url), web.post(self.path, self.callback)]

    async def start(self) -> None:
        self.outbox.start()

    async def stop(self) -> None:
        await self.passive_deadline.stop()
        await self.outbox.stop()
        await self.api.close()
        await self.images.close()
        await self.replay.ledger.close()

    # --- HTTP ----------------------------------------------------------------------------

    async def verify_url(self, request: web.Request) -> web.Response:
        """Answer the platform's URL check: echo ``echostr`` when the signature matches."""
        q = request.query
        protocol.verify_signature(self._secret, q.get("signature"), q.get("timestamp"), q.get("nonce"))
        self.replay.check_window(q["timestamp"])
        return url_check_answer(q.get("echostr"))

    async def callback(self, request: web.Request) -> web.Response:
        """Verify and parse a push, dispatch it, and answer in time."""
        started = asyncio.get_running_loop().time()  # the platform's 5 s count from here
        q = request.query
        timestamp, nonce, sig = q.get("timestamp", ""), q.get("nonce", ""), q.get("signature")
        protocol.verify_signature(self._secret, sig, timestamp, nonce)
        self.replay.check_window(timestamp)
        body = await read_body(request, protocol.MAX_BODY_BYTES)
        assert sig is not None
        check = self.replay.check(timestamp=timestamp, nonce=nonce, signature=sig, body=body)
        push = protocol.parse_push(body, channel=self.name, account=self.account, brand_uid=self.brand_uid,
                                   replay_check=check)
        deadline = started + (self.capabilities.passive_reply_deadline or 4.5)
        # Answered once the check is settled: with the exchange's write, or on its own (a retry, a late reply).
        exchange = await answered_when_admitted(check, self.passive_deadline.dispatch(push.inbound, deadline))
        if exchange is None or not exchange.passive_replies:
            return web.Response(body=b"")  # an empty body: received, no reply, do not retry
        return web.Response(text=self.render_passive(push.fan_uid, exchange.passive_replies[0]),
                            content_type="application/json")

    # --- rendering -----------------------------------------------------------------------

    def fit(self, reply: TextReply) -> TextReply:
        return TextReply(protocol.fit_text(reply.text))

    def degrade(self, replies: Sequence[Reply]) -> list[Reply]:
        """A QR code is an image of the scene's link (``qr_url``), then its caption and the link as text."""
        return super().degrade([QrReply(r.scene, r.caption, r.url or self.qr_url(r.scene)) if isinstance(r, QrReply)
                                else r for r in replies])

    def _payload(self, reply: Reply) -> tuple[str, dict[str, Any]]:
        """(type, data) of a degraded reply; an image here (the mass API) is its caption and link as text."""
        if isinstance(reply, ArticlesReply):
            return "articles", protocol.articles_data(reply.articles[:1])
        if isinstance(reply, TextReply):
            return "text", protocol.text_data(reply.text)
        if isinstance(reply, ImageReply | QrReply):
            link = reply.url or self.qr_url(reply.scene) if isinstance(reply, QrReply) else reply.url
            return "text", protocol.text_data(image_text(reply.caption, link))
        raise PayloadError(f"cannot send {type(reply).__name__} on Weibo")

    def render_passive(self, fan_uid: str, reply: Reply) -> str:
        msg_type, data = self._payload(self.degrade([reply])[0])
        return protocol.passive_reply(brand_uid=self.brand_uid, fan_uid=fan_uid, msg_type=msg_type, data=data)

    # --- active API ----------------------------------------------------------------------

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        if isinstance(reply, ImageReply | QrReply):
            source = reply.url if isinstance(reply, ImageReply) else qr_source(reply.url or self.qr_url(reply.scene))
            # Uploaded once per content (shared by every process) and reused while the platform keeps it.
            tovfid = await self.media.media_id(await self.images.load(source), self.api.upload_image)
            await self.api.reply(external_id, "image", protocol.image_data(tovfid))
            return
        msg_type, data = self._payload(reply)
        await self.api.reply(external_id, msg_type, data)

    async def send_mass(self, external_ids: list[str], reply: Reply, *, context: dict[str, Any]) -> str | None:
        """One reply to many fans through ``sendall.json``; "held for review" is reported as a status."""
        # One message per mass send: an image's caption and link as text (mass images: not yet).
        msg_type, data = self._payload(reply if isinstance(reply, ImageReply | QrReply) else self.degrade([reply])[0])
        answer = await self.api.sendall(list(external_ids), msg_type, data)
        msg_id = answer.get("msg_id") or answer.get("id") or ""
        status = answer.get("status")
        held = (status in ("reviewing", "held", "held_for_review", "audit", "pending_review")
                or answer.get("reviewing") is True or answer.get("held_for_review") is True)
        log.info("mass send accepted", extra={"channel": self.name, "msg_id": str(msg_id)[:32],
                                              "status": str(status)[:32]})
        text = str(msg_id)[:32]
        return f"{text} ({HELD_FOR_REVIEW})" if held else (text or None)

    async def push_menu(self, menu: Menu) -> str:
        """Replace the fan-service menu: one for every fan, in the menu's default locale."""
        body, dropped = protocol.menu_body(menu)
        if not body["button"]:
            raise PayloadError("nothing of this menu can be shown on Weibo (its menu clicks and opens links only)")
        await self.api.create_menu(body)
        left_out = f"; {dropped} scan/picture/location button(s) left out (Weibo has none)" if dropped else ""
        return f"menu in {menu.default_locale}{left_out}"

    def qr_url(self, scene: str) -> str:
        """The link a campaign QR encodes: the platform's scene QR for the brand's fan-service account."""
        return (f"{self.config.api_base}/2/eps/qrcode/show?uid={self.brand_uid}"
                f"&scene={quote(scene, safe='')}")

    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        """What a fan scans to follow through ``scene`` (``scan``/``scan_follow``): the platform makes it."""
        return await self.api.create_scene_qr(scene, permanent=permanent)
