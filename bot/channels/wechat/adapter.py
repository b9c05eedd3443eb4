"""The WeChat Official Account channel: callbacks in, passive replies out, slow replies via the API.

WeChat waits 5 s for the HTTP answer and then retries (3 tries in all). A reply ready within the
passive deadline (4.5 s) goes inline; otherwise the answer is ``success`` and the reply follows
through the customer-service API once the handler is done. Retries never run a handler twice: the
dispatcher dedupes on MsgId (or the event key) in the database.

A callback is taken only when its signature matches, its timestamp is within ``max_clock_skew`` of
our clock, and its signature has not come before with another body (``ReplayGuard``). With an AES
key, plaintext bodies are refused unless ``allow_plaintext`` (for a migration) is on; bodies in the
compatible mode carry the ciphertext, which is what is read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.base import Channel, Dispatch, url_check_answer
from bot.channels.deadline import PassiveDeadline
from bot.channels.images import Image, ImageLoader, MediaCache, image_text, qr_source
from bot.channels.replay import ReplayGuard, answered_when_admitted
from bot.core.capabilities import Capabilities, MassSendQuota, ReplyWindow
from bot.core.inbound import Inbound
from bot.core.menu import Menu
from bot.core.reply import ArticlesReply, ImageReply, QrReply, Reply, TextReply
from bot.core.store import Exchange
from bot.delivery.outbox import OutboxSender
from bot.errors import PayloadError, PlatformAPIError, SignatureError
from bot.logs import add_secrets
from bot.settings import WeChatAccount
from bot.storage.replay import ReplayLedger
from bot.web import read_body

from . import protocol
from .api import INVALID_MEDIA_ID, WeChatAPI
from .language import UserLanguage

log = logging.getLogger("engagebot.wechat")


def wechat_capabilities(config: WeChatAccount) -> Capabilities:
    return Capabilities(
        max_text_length=protocol.MAX_TEXT_BYTES, text_length_in_bytes=True, buttons=False, max_articles=1,
        # Images need the API (upload, then a customer-service message): never in the passive answer.
        images=bool(config.app_id and config.app_secret), passive_images=False, location_datum="gcj02", passive_reply_deadline=config.passive_deadline_seconds, max_passive_replies=1,
        window_after_message=ReplyWindow(timedelta(hours=config.window_after_message_hours),
                                         config.window_after_message_sends),
        window_after_event=ReplyWindow(timedelta(seconds=config.window_after_event_seconds),
                                       config.window_after_event_sends),
        mass_send=MassSendQuota(per_period=config.mass_sends_per_period,
                                period=timedelta(days=config.mass_send_period_days))
        if config.mass_sends_per_period else None,
    )


class WeChatChannel(Channel):
    """One Official Account, served at ``path`` (``/wechat`` or ``/wechat/<name>``)."""

    name: ClassVar[str] = "wechat"

    def __init__(self, *, dispatch: Dispatch, account: str, config: WeChatAccount,
                 sessions: async_sessionmaker[AsyncSession], path: str = "/wechat") -> None:
        super().__init__(dispatch=dispatch, account=account)
        if config.token is None:
            raise ValueError(f"WeChat account {account!r} has no token")
        self.path = path
        self.config = config
        self._token = config.token.get_secret_value()
        add_secrets(self._token, *(v.get_secret_value() for v in (config.app_secret, config.aes_key) if v))
        self.capabilities = wechat_capabilities(config)
        self.crypto: protocol.WeChatCrypto | None = None
        if config.aes_key is not None:
            if not config.app_id:
                raise ValueError(f"WeChat account {account!r}: safe mode (aes_key) needs app_id")
            self.crypto = protocol.WeChatCrypto(self._token, config.aes_key.get_secret_value(), config.app_id)
        self.api: WeChatAPI | None = None
        self.user_language: UserLanguage | None = None
        self.images = ImageLoader()
        self._qr_links: dict[str, str] = {}
        self.media = MediaCache(sessions, f"wechat:{config.app_id}")
        if config.app_id and config.app_secret is not None:
            self.api = WeChatAPI(app_id=config.app_id, app_secret=config.app_secret.get_secret_value(),
                                 api_base=config.api_base, sessions=sessions)
            self.user_language = UserLanguage(self.api)
        self.outbox = OutboxSender(self, sessions)
        # One scope for every account: the signature covers the token, not the path, so a signature of
        # one account verifies on another with the same token; the key (of the signature) keeps
        # accounts with different tokens apart.
        self.replay = ReplayGuard(ReplayLedger(sessions.kw["bind"]), scope=self.name,
                                  max_skew=config.max_clock_skew)
        self.passive_deadline = PassiveDeadline(self)

    # --- lifecycle ------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path, self.verify_url), web.post(self.path, self.callback)]

    async def start(self) -> None:
        self.outbox.start()

    async def stop(self) -> None:
        await self.passive_deadline.stop()
        await self.outbox.stop()
        if self.api is not None:
            await self.api.close()
        await self.images.close()
        await self.replay.ledger.close()

    # --- HTTP ----------------------------------------------------------------------------

    async def verify_url(self, request: web.Request) -> web.Response:
        """Answer WeChat's URL check: echo ``echostr`` when the signature matches."""
        q = request.query
        protocol.verify_signature(self._token, q.get("signature"), q.get("timestamp"), q.get("nonce"))
        self.replay.check_window(q["timestamp"])
        return url_check_answer(q.get("echostr"))

    async def callback(self, request: web.Request) -> web.Response:
        """Verify, decrypt and parse a callback, dispatch it, and answer in time."""
        started = asyncio.get_running_loop().time()  # WeChat's 5 s count from here, not from dispatch
        q = request.query
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        if not q.get("signature"):
            raise SignatureError("unsigned request")
        protocol.verify_signature(self._token, q.get("signature"), timestamp, nonce)
        self.replay.check_window(timestamp)
        body = await read_body(request, protocol.MAX_BODY_BYTES)
        encrypted = q.get("encrypt_type") == "aes"
        if encrypted:
            if self.crypto is None:
                raise PayloadError("safe mode message, but this account has no aes_key")
            xml: bytes | str = self.crypto.decrypt_envelope(
                body, msg_signature=q.get("msg_signature"), timestamp=timestamp, nonce=nonce)
        elif q.get("encrypt_type") not in (None, "raw"):
            raise PayloadError("unknown encrypt_type (expected aes or raw)")
        elif self.crypto is not None and not self.config.allow_plaintext:
            # The signature does not cover the body: in safe mode only the ciphertext proves who wrote it.
            raise PayloadError("plaintext body refused: this account is in safe mode (aes_key set); "
                               "allow_plaintext accepts them during a migration")
        else:
            xml = body
        check = self.replay.check(timestamp=timestamp, nonce=nonce, signature=q["signature"], body=body)
        msg = protocol.parse_message(xml, channel=self.name, account_hint=self.account, replay_check=check)
        deadline = started + (self.capabilities.passive_reply_deadline or 4.5)
        # Answered once the check is settled: with the exchange's write, or on its own (a retry, a late reply).
        exchange = await answered_when_admitted(check, self._dispatch_in_time(msg, deadline))
        if exchange is None or not exchange.passive_replies:
            return web.Response(text=protocol.SUCCESS, content_type="text/plain")
        reply_xml = await self._render_passive(msg, exchange.passive_replies[0])
        if encrypted:
            assert self.crypto is not None
            reply_xml = self.crypto.encrypt(reply_xml, nonce=secrets.token_hex(8), timestamp=int(time.time()))
        return web.Response(text=reply_xml, content_type="application/xml")

    async def _dispatch_in_time(self, msg: Inbound, deadline: float) -> Exchange | None:
        # A new follower's language (user/info) is asked inside the dispatch, within this deadline.
        lookup = self.user_language.before(deadline) if self.user_language is not None else None
        return await self.passive_deadline.dispatch(msg, deadline, language_lookup=lookup)

    # --- rendering -----------------------------------------------------------------------

    def fit(self, reply: TextReply) -> TextReply:
        return TextReply(protocol.truncate_text(reply.text, protocol.MAX_TEXT_BYTES))

    def degrade(self, replies: Sequence[Reply]) -> list[Reply]:
        """One message per reply part (WeChat answers one message inline); images and QR codes as base does."""
        out: list[Reply] = []
        for reply in replies:
            if isinstance(reply, ArticlesReply) and len(reply.articles) > 1:
                out.append(self.fit(TextReply("\n\n".join(
                    "\n".join(p for p in (a.title, a.url) if p) for a in reply.articles))))
            else:
                out.extend(super().degrade([reply]))
        return out

    async def _render_passive(self, msg: Inbound, reply: Reply) -> str:
        follower, account = msg.external_id, (msg.raw or {}).get("ToUserName", self.account)
        rendered = self.degrade([reply])[0]  # never an image: the dispatcher keeps those for the API
        now = int(time.time())
        if isinstance(rendered, ArticlesReply):
            return protocol.render_news(follower, account, rendered.articles[0], now)
        assert isinstance(rendered, TextReply)
        return protocol.render_text(follower, account, rendered.text, now)

    # --- active API ----------------------------------------------------------------------

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        if self.api is None:
            raise PayloadError("this WeChat account has no app_id/app_secret: cannot use the send API")
        rendered = reply
        if isinstance(rendered, ImageReply | QrReply):
            await self._send_image(external_id, await self._image_of(rendered))
        elif isinstance(rendered, ArticlesReply):
            await self.api.send_custom(protocol.custom_news_payload(external_id, rendered.articles[0]))
        elif isinstance(rendered, TextReply):
            await self.api.send_custom(protocol.custom_text_payload(external_id, rendered.text))
        else:
            raise PayloadError(f"cannot send {type(rendered).__name__} on WeChat")

    async def _image_of(self, reply: ImageReply | QrReply) -> Image:
        """The bytes to show: the image's source, or a QR of the scene's link (made by the platform)."""
        if isinstance(reply, ImageReply):
            return await self.images.load(reply.url)
        return await self.images.load(qr_source(reply.url or await self._qr_link(reply.scene)))

    async def _qr_link(self, scene: str) -> str:
        """The link of a scene's QR, asked of the platform once per scene and process."""
        link = self._qr_links.get(scene)
        if link is None:
            link = await self.scene_link(scene)
            assert link is not None  # scene_link answers whenever the API is configured
            # A permanent scene's link does not change: one qrcode/create per scene and process, and the
            # same PNG (the same upload) for every follower who gets it.
            self._qr_links[scene] = link
            while len(self._qr_links) > 10_000:
                del self._qr_links[next(iter(self._qr_links))]
        return link

    async def _send_image(self, external_id: str, image: Image) -> None:
        """Upload (once per content and account, shared by every process), then send the image message.

        An id the platform no longer knows (40007: expired early, or the platform lost it) is
        uploaded again, once.
        """
        assert self.api is not None
        api = self.api
        for attempt in (1, 2):
            media_id = await self.media.media_id(image, api.upload_image)
            try:
                await api.send_custom(protocol.custom_image_payload(external_id, media_id))
                return
            except PlatformAPIError as exc:
                if exc.errcode != INVALID_MEDIA_ID or attempt == 2:
                    raise
                await self.media.forget(image, media_id)

    async def send_mass(self, external_ids: list[str], reply: Reply, *, context: dict[str, Any]) -> str | None:
        """Send one reply to many followers with the mass API (counted against the platform's quota)."""
        if self.api is None:
            raise PayloadError("this WeChat account has no app_id/app_secret: cannot mass-send")
        rendered = self.degrade([reply])[0]
        if isinstance(reply, ImageReply):
            # The mass API takes one message: the caption and link as text (mass images: not yet).
            text = image_text(reply.caption, reply.url)
        elif isinstance(reply, QrReply):
            text = image_text(reply.caption, reply.url or await self._qr_link(reply.scene))
        elif isinstance(rendered, ArticlesReply):
            text = "\n".join(p for p in (rendered.articles[0].title, rendered.articles[0].url) if p)
        elif isinstance(rendered, TextReply):
            text = rendered.text
        else:
            text = getattr(rendered, "caption", "") or getattr(rendered, "scene", "")
        # The idempotency key travels as clientmsgid: a repeat after a crash is not sent twice.
        return str(await self.api.mass_send(list(external_ids), text, client_msg_id=context.get("idempotency_key")))

    async def create_scene_qr(self, scene: str, *, permanent: bool = True) -> dict[str, Any]:
        if self.api is None:
            raise PayloadError("this WeChat account has no app_id/app_secret: cannot create QR codes")
        return await self.api.create_qr(protocol.qrcode_payload(
            scene, permanent=permanent, expire_seconds=None if permanent else 2592000))

    async def push_menu(self, menu: Menu) -> str:
        """Replace the account's menus: the default one, and one per follower language (``matchrule.language``)."""
        if self.api is None:
            raise PayloadError("this WeChat account has no app_id/app_secret: cannot set its menu")
        default, conditional = protocol.menu_payloads(menu)
        added, refused = await self.api.replace_menu(default, conditional)
        languages = [body["matchrule"]["language"] for body in conditional]
        said = f"default menu ({menu.default_locale})"
        if added:
            said += f" and personalized menus for {', '.join(languages[:added])}"
        if refused is None:
            return said
        # The default menu is in place, and the followers of the languages left without theirs see it.
        # WeChat refuses a match on private data such as the language with 65320 (docs/menus.md).
        return (f"{said}{'' if added else ' only'}: WeChat refused the personalized menu for {languages[added]} "
                f"({refused.errcode}: {refused.errmsg}); {', '.join(languages[added:])} see the default menu")

    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        """The URL a WeChat scene QR encodes; scanning it follows the account through ``scene``."""
        if self.api is None:
            return None
        return (await self.create_scene_qr(scene, permanent=permanent))["url"]
