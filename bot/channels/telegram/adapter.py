"""The Telegram channel: python-telegram-bot 22 inside our asyncio app, by long polling or by webhook.

PTB does the HTTP and parsing only; our router does all the matching. Every update becomes an
Inbound queued per chat: each chat has one worker, so a chat's messages are handled in order while
different chats run concurrently, and its replies go out in order through the outbox
(``OutboxSender``: a row is marked sent only after Telegram's 200).

Nothing Telegram delivered is lost: an update is acknowledged only once it is stored. Polling
fetches with ``Bot.get_updates`` and asks for the next batch with ``offset`` past the stored
updates only (Telegram keeps the others and sends them again); a webhook request is answered 200
once its update is stored, and 503 otherwise, so Telegram retries it. A repeat of a stored update
is dropped by the dispatcher's dedupe and is not answered twice.

Connecting (getMe, commands, polling or setWebhook) runs in a background task that retries with
backoff, because the app's lifetime hooks run before its own port listens (the in-process
simulator is not reachable yet) and a real Telegram can be unreachable at boot too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import (
    BotCommand,
    InputFile,
    KeyboardButton,
    LinkPreviewOptions,
    MenuButton,
    MenuButtonCommands,
    MenuButtonDefault,
    MenuButtonWebApp,
    ReplyKeyboardMarkup,
    Update,
    WebAppInfo,
)
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application

from bot.core.capabilities import Capabilities
from bot.core.dispatcher import follower_hash
from bot.core.inbound import Inbound, Kind
from bot.core.menu import Menu
from bot.core.reply import ArticlesReply, ButtonsReply, ImageReply, LocationRequestReply, QrReply, Reply, TextReply
from bot.delivery.outbox import OutboxSender
from bot.errors import (
    FollowerGone,
    PayloadError,
    PayloadTooLarge,
    PlatformAPIError,
    SignatureError,
    platform_text,
)
from bot.i18n import N_, default_catalogs
from bot.logs import add_secrets
from bot.storage.duties import run_while
from bot.storage.menus import load_menu
from bot.storage.models import Follower, Message

from ..base import Channel, Dispatch
from ..images import ImageLoader, qr_source
from .config import CHAT_PER_SECOND, OVERALL_PER_SECOND, TelegramConfig
from .errors import send_failure
from .polling import UpdatePoller
from .queues import ChatQueues
from .render import (
    MAX_CAPTION,
    MAX_TEXT,
    TOKEN_PREFIX,
    article_text,
    callback_data_for,
    cut_to,
    deep_link,
    keyboard,
    split_message,
)
from .updates import ALLOWED_UPDATES, update_to_inbound

QUIET_CONNECT_SECONDS = 1.0  # connection misses this soon after start are logged at INFO, later ones warn

log = logging.getLogger("engagebot.telegram")

TELEGRAM_CAPABILITIES = Capabilities(
    max_text_length=MAX_TEXT, buttons=True, max_articles=1, images=True, image_captions=True,
    passive_reply_deadline=None,
    location_request=True,
    max_sends_per_second=OVERALL_PER_SECOND, max_sends_per_chat_per_second=CHAT_PER_SECOND,
)
WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# The bot's menu, in every catalog language (Telegram shows the one matching the user's app).
COMMANDS = (
    ("start", N_("Start over and see the welcome")),
    ("help", N_("What this bot can do")),
    ("lang", N_("Switch language: English or Chinese")),
)
COMMAND_LANGUAGES = (("en", None), ("zh_Hans", "zh"))  # catalog locale, Telegram language_code


class TelegramChannel(Channel):
    """Telegram through python-telegram-bot: private chats, inline buttons, photos, deep links."""

    name: ClassVar[str] = "telegram"
    capabilities = TELEGRAM_CAPABILITIES

    def __init__(self, *, dispatch: Dispatch, sessions: async_sessionmaker[AsyncSession], config: TelegramConfig,
                 account: str | None = None, receive: bool = True) -> None:
        super().__init__(dispatch=dispatch, account=account or config.bot_id)
        self.config = config
        add_secrets(config.token, config.token.split(":", 1)[-1], config.webhook_secret)
        self.receive = receive  # False: send only (a worker process beside the web instances)
        self.sessions = sessions
        # The configured rates are the ones declared: the outbox's limiter is the only pacing.
        self.capabilities = replace(TELEGRAM_CAPABILITIES, max_sends_per_second=config.overall_per_second,
                                    max_sends_per_chat_per_second=config.chat_per_second)
        self.outbox = OutboxSender(self, sessions, sweep_every=config.sweep_every)
        self.application = self._build_application()
        self.bot_username: str | None = None
        self.ready = asyncio.Event()  # set once connected and receiving
        self._connector: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        # True: this process polls only while it holds the bot's lease (``engagebot run``'s duties).
        self.polls_by_lease = False
        self._receiving_stopped = False
        self._polling: UpdatePoller | None = None
        self._queues = ChatQueues(self._process)  # handling (and storing) per chat, in order
        self._replies = ChatQueues(self._send_replies)  # replies per chat, in order
        self._background: set[asyncio.Task[Any]] = set()
        self._dispatch_slots = asyncio.Semaphore(config.max_concurrent_dispatch)
        self._long_payloads: OrderedDict[str, str] = OrderedDict()  # callback token -> payload
        self._gone: set[str] = set()  # chats that answered 403 since they last wrote
        self._sent_keys: OrderedDict[str, None] = OrderedDict()  # idempotency keys Telegram took (200)
        self.images = ImageLoader()
        # Photos uploaded from bytes (a file, a QR) by content hash: Telegram's file_id sends them again.
        self._photo_ids: OrderedDict[str, str] = OrderedDict()

    # -- building and lifetime --------------------------------------------------------------------------
    def _build_application(self) -> Application:
        cfg = self.config
        builder = (
            Application.builder().token(cfg.token).base_url(cfg.base_url).base_file_url(cfg.base_file_url)
            .connect_timeout(5.0).pool_timeout(5.0).read_timeout(cfg.send_timeout).write_timeout(cfg.send_timeout)
            .updater(None)  # we poll ourselves: the offset must not pass an update before it is stored
        )
        return builder.build()

    def routes(self) -> list[web.RouteDef]:
        if self.config.mode != "webhook" or not self.receive:
            return []
        return [web.post(WEBHOOK_PATH, self.handle_webhook)]

    async def start(self) -> None:
        """Connect in the background (retrying with backoff); ``ready`` is set once receiving."""
        self._receiving_stopped = False
        if self._connector is None or self._connector.done():
            self._connector = asyncio.create_task(self._connect(), name="telegram-connect")
            self._connector.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("telegram channel failed to start", extra={"error": self._redact(exc)}, exc_info=exc)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def _connect(self) -> None:
        first, longest = self.config.connect_backoff
        delay = first
        began = time.monotonic()
        while True:
            try:
                await self.application.initialize()  # getMe: checks the token, learns the username
                break
            except InvalidToken:
                log.error("telegram rejected the bot token; the Telegram channel stays off")
                return
            except (TelegramError, OSError) as exc:
                # The embedded simulator is served by this process a moment after this first try:
                # a miss within the first second is expected, later ones are worth a warning.
                level = logging.WARNING if time.monotonic() - began >= QUIET_CONNECT_SECONDS else logging.INFO
                log.log(level, "telegram not reachable, retrying", extra={"error": self._redact(exc), "in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
        self.bot_username = self.application.bot.username
        await self.application.start()
        if not self.receive:
            self.outbox.start()
            self.ready.set()
            log.info("telegram connected to send only", extra={"bot": self.bot_username})
            return
        await self._set_commands()
        delay = first
        while True:
            try:
                await self._start_receiving()
                break
            except (TelegramError, OSError) as exc:
                log.warning("telegram receiving not started, retrying",
                            extra={"error": self._redact(exc), "in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
        self.outbox.start()
        self.ready.set()
        log.info("telegram connected", extra={"bot": self.bot_username, "mode": self.config.mode})

    async def _start_receiving(self) -> None:
        bot = self.application.bot
        if self.config.mode == "webhook":
            await bot.set_webhook(self.config.webhook_url, secret_token=self.config.webhook_secret,
                                  allowed_updates=list(ALLOWED_UPDATES))
            return
        await bot.delete_webhook()  # getUpdates is refused while a webhook is set
        if not self.polls_by_lease:
            self._start_polling()

    def _start_polling(self) -> None:
        if self._receiving_stopped or (self._poller is not None and not self._poller.done()):
            return
        if self._polling is None:  # kept across lease changes: its offset passes only stored updates
            self._polling = UpdatePoller(self.application.bot, self._submit, poll_timeout=self.config.poll_timeout,
                                         backoff=self.config.connect_backoff, redact=self._redact)
        self._poller = asyncio.create_task(self._polling.run(), name="telegram-poll")

    async def poll_while_held(self) -> None:
        """Polling as a duty (``bot.storage.duties``): one process of the deployment polls the bot, since
        Telegram answers a second ``getUpdates`` with Conflict. Set ``polls_by_lease`` before :meth:`start`."""
        await self.ready.wait()
        await run_while(self._start_polling, self._give_up_polling)

    async def _give_up_polling(self) -> None:
        """The lease lost or given back: stop, and confirm what is stored now while the poll is still ours
        (later, another process's long poll would be cut with Conflict). What is stored after this is
        fetched again by the next holder and dropped as a duplicate."""
        await self._stop_poller()
        if self._polling is not None:
            await self._polling.acknowledge()

    async def _stop_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    async def _set_commands(self) -> None:
        """Register the commands (the loaded menu's, else /start, /help, /lang) in English (default) and Chinese.

        The menu is a convenience, never a reason not to start: whatever fails (reading the stored
        menu, Telegram refusing a language) is logged, and the channel goes on.
        """
        try:
            async with self.sessions() as session:
                stored = await load_menu(session)
        except (SQLAlchemyError, OSError, ValueError) as exc:  # the database, or a stored menu unreadable now
            log.warning("stored menu not read: setting the built-in commands", extra={"error": self._redact(exc)})
            stored = None
        try:
            if stored is not None:
                await self.push_menu(stored[0])
            else:
                await self._push_commands(None)
        except (TelegramError, PlatformAPIError) as exc:
            log.warning("setMyCommands failed", extra={"error": self._redact(exc)})

    async def _push_commands(self, menu: Menu | None) -> None:
        """``setMyCommands`` for each language; one Telegram refuses is logged and the others still set.
        Any refused: raises the first refusal once all were tried."""
        catalogs = default_catalogs()
        refused: TelegramError | None = None
        for locale, language_code in COMMAND_LANGUAGES:
            if menu is not None and menu.commands:
                commands = [BotCommand(c.command, menu.label(c.description, locale)) for c in menu.commands]
            else:
                commands = [BotCommand(name, catalogs.gettext(locale, text)) for name, text in COMMANDS]
            try:
                await self.application.bot.set_my_commands(commands, language_code=language_code)
            except TelegramError as exc:
                log.warning("setMyCommands failed", extra={"language": language_code, "error": self._redact(exc)})
                refused = refused or exc
        if refused is not None:
            raise refused

    async def push_menu(self, menu: Menu) -> str:
        """Set the commands per language (``setMyCommands``; none in the menu: the built-in ones) and the
        menu button (``setChatMenuButton``: the command list, or a web app)."""
        spec = menu.menu_button
        button: MenuButton
        if spec.get("type") == "web_app":
            button = MenuButtonWebApp(menu.label(spec["label"], menu.default_locale), WebAppInfo(spec["url"]))
        elif spec.get("type") == "default":
            button = MenuButtonDefault()
        else:
            button = MenuButtonCommands()
        refused: TelegramError | None = None
        try:
            await self._push_commands(menu)
        except TelegramError as exc:  # the other languages are set: the menu button still is
            refused = exc
        try:
            await self.application.bot.set_chat_menu_button(menu_button=button)
        except TelegramError as exc:
            refused = refused or exc
        if refused is not None:
            raise PlatformAPIError(-1, self._redact(refused)) from None
        codes = ", ".join(code or "default" for _locale, code in COMMAND_LANGUAGES)
        what = f"{len(menu.commands)} command(s)" if menu.commands else "the built-in commands"
        return f"{what} for {codes}; menu button: {spec.get('type', 'commands')}"

    async def stop_receiving(self) -> None:
        """Stop taking new updates (polling); queued ones are still handled by :meth:`stop`."""
        self._receiving_stopped = True
        await self._stop_poller()

    async def stop(self) -> None:
        """Stop in reverse: connecting, receiving, queued updates, outbox sweeper, PTB."""
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
            self._connector = None
        await self.stop_receiving()
        await self._queues.drain(self.config.drain_timeout)
        if self._polling is not None and not self.polls_by_lease:  # a duty confirms when it gives the poll up
            await self._polling.acknowledge()
        self._polling = None
        await self._replies.drain(self.config.drain_timeout)
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.drain_timeout)
        await self.outbox.stop()
        await self.images.close()
        application = self.application
        try:
            if application.running:
                await application.stop()
            await application.shutdown()
        except Exception as exc:
            log.warning("telegram shutdown failed", extra={"error": self._redact(exc)})
        self.ready.clear()

    def _redact(self, exc: BaseException) -> str:
        return platform_text(f"{type(exc).__name__}: {exc}".replace(self.config.token, "<token>"))

    # -- inbound ------------------------------------------------------------------------------------------
    async def handle_webhook(self, request: web.Request) -> web.Response:
        """``POST /telegram``: check the secret, store the update, then answer 200 (503: Telegram retries)."""
        expected = self.config.webhook_secret or ""
        given = request.headers.get(SECRET_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise SignatureError("missing or wrong X-Telegram-Bot-Api-Secret-Token")
        limit = self.config.max_body
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body larger than {limit} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise PayloadError("body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("update_id"), int) or isinstance(
                body.get("update_id"), bool):
            raise PayloadError("body is not an Update: a JSON object with an integer update_id expected")
        if not self.application.running:
            return web.json_response({"error": "starting", "reason": "not ready, retry later"}, status=503)
        try:
            update = Update.de_json(body, self.application.bot)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            # OverflowError: a date past datetime's range; RecursionError: messages quoting messages
            # nested past Python's limit. Bad input (400: Telegram drops it), not a 500 it retries forever.
            raise PayloadError(f"malformed Update: {type(exc).__name__}") from None
        # Check every field now, while the sender can still hear why (400 naming the field).
        update_to_inbound(update, channel=self.name, account=self.account)
        stored = self._submit(update)
        if stored is not None:
            try:
                await asyncio.shield(stored)  # the client going away must not cancel the storing
            except Exception as exc:
                log.warning("telegram update not stored; asking for a retry",
                            extra={"update_id": update.update_id, "error": type(exc).__name__})
                return web.json_response({"error": "not stored", "reason": "could not store the update, retry later"},
                                         status=503)
        return web.Response(status=200)

    def _submit(self, update: Update) -> asyncio.Future[None] | None:
        """Queue an update for its chat's worker; the future is done once it is stored (None: nothing to store).

        Synchronous, so updates are queued in the order they are submitted.
        """
        try:
            msg = update_to_inbound(update, channel=self.name, account=self.account)
        except PayloadError as exc:  # a field too long or malformed: nothing of it is stored
            log.warning("telegram update refused", extra={"update_id": update.update_id, "reason": str(exc)})
            msg = None
        except Exception:  # a shape we did not foresee: skip it, keep the others flowing
            log.exception("telegram update not understood", extra={"update_id": update.update_id})
            msg = None
        query_id = update.callback_query.id if update.callback_query is not None else None
        if msg is None:
            if query_id is not None:
                self._spawn(self._answer(query_id))
            return None
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.submit(msg.external_id, (msg, query_id, stored))
        return stored

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _process(self, item: tuple[Inbound, str | None, asyncio.Future[None]]) -> None:
        msg, query_id, stored = item
        self._gone.discard(msg.external_id)
        try:
            if msg.kind is Kind.CLICK and (msg.payload or "").startswith(TOKEN_PREFIX):
                msg = replace(msg, payload=await self._resolve_payload(msg))
            result = await self._dispatch_with_retry(msg)
        except BaseException as exc:
            if not stored.done():
                if isinstance(exc, asyncio.CancelledError):
                    stored.cancel()
                else:
                    stored.set_exception(exc)
            raise
        finally:
            if query_id is not None:  # always stop the button's spinner, whatever happened
                await self._answer(query_id)
        if not stored.done():
            stored.set_result(None)
        if result.duplicate:
            return  # its replies were (or are being) sent by the first try, or the sweeper
        if result.exchange.pending_ids:  # stored: the next message of the chat need not wait for these
            self._replies.submit(msg.external_id, result.exchange.pending_ids)

    async def _send_replies(self, pending_ids: list[int]) -> None:
        await self.outbox.deliver(pending_ids)

    async def _dispatch_with_retry(self, msg: Inbound) -> Any:
        """Dispatch; retry a few times when the database hiccups (dedupe makes a retry safe)."""
        for attempt in range(4):
            try:
                async with self._dispatch_slots:
                    return await self.dispatch(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == 3:
                    raise
                log.warning("dispatch failed, retrying", exc_info=True,
                            extra={"channel": self.name, "follower": follower_hash(msg)})
                await asyncio.sleep(self.config.dispatch_retry_pause * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _answer(self, query_id: str) -> None:
        try:
            await self.application.bot.answer_callback_query(query_id)
        except TelegramError as exc:  # too old, or Telegram down: the spinner stops by itself
            log.info("answerCallbackQuery failed", extra={"error": self._redact(exc)})

    async def _resolve_payload(self, msg: Inbound) -> str:
        """Map a hashed callback token back to the button's payload: memory, then the stored message."""
        token = msg.payload or ""
        if token in self._long_payloads:
            return self._long_payloads[token]
        async with self.sessions() as session:
            bodies = (await session.execute(
                select(Message.body).join(Follower, Follower.id == Message.follower_id).where(
                    Follower.channel == self.name, Follower.account == self.account,
                    Follower.external_id == msg.external_id, Message.direction == "out",
                    Message.kind == "buttons").order_by(Message.id.desc()).limit(50))).scalars().all()
        for body in bodies:
            for button in (body or {}).get("buttons", []):
                payload = button.get("payload", "")
                if callback_data_for(payload) == token:
                    self._remember_payload(token, payload)
                    return payload
        return token

    def _remember_payload(self, token: str, payload: str) -> None:
        self._long_payloads[token] = payload
        self._long_payloads.move_to_end(token)
        while len(self._long_payloads) > 10_000:
            self._long_payloads.popitem(last=False)

    # -- outbound -----------------------------------------------------------------------------------------
    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        """The deep link ``https://t.me/<bot>?start=<scene>`` (waits briefly for getMe at boot)."""
        if self.bot_username is None:
            try:
                await asyncio.wait_for(self.ready.wait(), 5)
            except TimeoutError:
                return None
        return deep_link(self.bot_username, scene) if self.bot_username else None

    def fit(self, reply: TextReply) -> TextReply:
        return TextReply(cut_to(reply.text, MAX_TEXT))

    def degrade(self, replies: Sequence[Reply]) -> list[Reply]:
        """Split long text into several messages; a QR becomes its deep link; extra articles become text."""
        out: list[Reply] = []
        for reply in replies:
            match reply:
                case TextReply(text=text):
                    out += [TextReply(part) for part in split_message(text)]
                case ButtonsReply(text=text, buttons=buttons):
                    *head, last = split_message(text)
                    out += [TextReply(part) for part in head]
                    out.append(ButtonsReply(last, buttons) if buttons else TextReply(last))
                case QrReply(scene=scene, caption=caption, url=url):
                    # A photo of the QR with the caption and the link; the link is the bot's deep link,
                    # rendered at send time when the bot's username is not known yet.
                    link = url or (deep_link(self.bot_username, scene) if self.bot_username else None) or ""
                    out.append(QrReply(scene, caption, link))
                case ArticlesReply(articles=articles) if len(articles) > 1:
                    for part in super().degrade([reply]):
                        out += self.degrade([part]) if isinstance(part, TextReply) else [part]
                case _:
                    out.append(reply)
        return out

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        """Send one reply; Telegram's errors are raised as typed failures (``errors.send_failure``).

        FollowerGone on 403 (blocked, deactivated), QuotaExceeded on flood control (this chat's
        ``retry_after``), NotSent when Telegram is unreachable or answers 5xx (nothing was sent),
        PlatformAPIError otherwise; the outbox's retry policy decides what happens next. A request
        whose answer never came is a PlatformAPIError: it may have been delivered, and a second copy
        is worse than a reported failure. Telegram has no idempotency key, so the outbox's
        ``context["idempotency_key"]`` of each part sent is remembered (in memory): when a row's
        later part fails and the row is retried, the parts already delivered are skipped.
        """
        key = (context or {}).get("idempotency_key")
        if key is not None and key in self._sent_keys:
            return  # this part went out before a later part failed; the row's retry must not repeat it
        if external_id in self._gone:
            raise FollowerGone("bot blocked by the user (403 earlier)")
        try:
            await self._send(int(external_id), reply)
        except TelegramError as exc:
            failure = send_failure(exc, self._redact)
            if isinstance(failure, FollowerGone):
                self._gone.add(external_id)
            raise failure from exc
        if key is not None:
            self._sent_keys[key] = None
            if len(self._sent_keys) > 50_000:
                self._sent_keys.popitem(last=False)

    async def _send_photo(self, chat_id: int, source: str, caption: str) -> None:
        """A URL goes to Telegram as it is (Telegram fetches it); other sources are uploaded, then sent by file_id."""
        bot = self.application.bot
        text = cut_to(caption, MAX_CAPTION) or None
        if source.startswith(("https://", "http://")):
            await bot.send_photo(chat_id, source, caption=text)
            return
        image = await self.images.load(source)
        file_id = self._photo_ids.get(image.digest)
        if file_id is not None:
            await bot.send_photo(chat_id, file_id, caption=text)
            return
        sent = await bot.send_photo(chat_id, InputFile(image.data, filename=image.filename), caption=text)
        if sent.photo:
            self._photo_ids[image.digest] = sent.photo[-1].file_id
            while len(self._photo_ids) > 1000:
                self._photo_ids.popitem(last=False)

    async def _send(self, chat_id: int, reply: Reply) -> None:
        bot = self.application.bot
        match reply:
            case TextReply(text=text):
                for part in split_message(text):
                    await bot.send_message(chat_id, part)
            case ButtonsReply(text=text, buttons=buttons):
                *head, last = split_message(text)
                for part in head:
                    await bot.send_message(chat_id, part)
                for button in buttons:
                    data = callback_data_for(button.payload)
                    if data != button.payload:
                        self._remember_payload(data, button.payload)
                markup = keyboard(buttons) if buttons else None
                await bot.send_message(chat_id, last or "\u2063", reply_markup=markup)
            case ArticlesReply(articles=articles):
                for article in articles:
                    text = article_text(article) or article.url or "\u2063"
                    if article.picture_url:
                        await bot.send_photo(chat_id, article.picture_url, caption=cut_to(text, MAX_CAPTION))
                    else:
                        preview = LinkPreviewOptions(url=article.url) if article.url else None
                        for part in split_message(text):
                            await bot.send_message(chat_id, part, link_preview_options=preview)
            case ImageReply(url=url, caption=caption):
                await self._send_photo(chat_id, url, caption)
            case LocationRequestReply(text=text, button=button):
                # A one-time keyboard: the follower's tap sends their location as a message.
                ask = ReplyKeyboardMarkup([[KeyboardButton(cut_to(button, 64), request_location=True)]],
                                          one_time_keyboard=True, resize_keyboard=True)
                await bot.send_message(chat_id, cut_to(text, MAX_TEXT) or "\u2063", reply_markup=ask)
            case QrReply(scene=scene, caption=caption, url=url):
                link = url or (deep_link(self.bot_username, scene) if self.bot_username else None)
                if link is None:  # no username, no deep link: the scene as text
                    await bot.send_message(chat_id, "\n".join(x for x in (caption, scene) if x))
                    return
                await self._send_photo(chat_id, qr_source(link), "\n".join(x for x in (caption, link) if x))
