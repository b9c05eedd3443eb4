"""The conformance kit: checks every channel adapter must pass, written once against a driver per channel.

A driver (:class:`ChannelDriver`) knows one channel and its platform's fake: how to build them, act as
the platform (a signed message, a badly signed one, a retry, a notification, something the bot cannot
read) and read what the follower was shown. :class:`ChannelConformance` holds the checks; a channel's
test module subclasses it and gives the driver::

    from bot.testing.conformance import ChannelConformance

    class TestWebChat(ChannelConformance):
        @pytest.fixture
        def conformance_driver(self):
            return WebChatDriver()

Each check reads the channel's declared capabilities: a point the platform does not have (no
passive-reply deadline, no reply window, sends that cannot be deduplicated) is checked as declared.
A point the channel does not meet at all is named in ``Capabilities.not_met`` with the reason, and
its check verifies what follows from that declaration instead (no signature: an unsigned request is
taken; no windows: a send after a long silence goes; no pace: a burst goes; no language hint: the
messages carry none; no crash guarantee: a repeated send is shown twice); a point whose declaration
has no behaviour to check is reported skipped, with the reason, never passed.
"""

from __future__ import annotations

import asyncio
import io
import math
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import regex
import segno
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.base import Channel
from bot.core.capabilities import Capabilities
from bot.core.clock import utcnow
from bot.core.context import Context
from bot.core.inbound import Inbound, Kind
from bot.core.reply import Article, ArticlesReply, Button, ButtonsReply, ImageReply, Reply, TextReply
from bot.core.router import Router
from bot.core.serialize import reply_to_dict
from bot.delivery.outbox import OutboxSender
from bot.delivery.ratelimit import RateLimiter
from bot.i18n import SUPPORTED_LOCALES, _, default_catalogs
from bot.storage.models import Follower, Message

__all__ = ["POINTS", "ChannelConformance", "ChannelDriver", "conformance_router", "serve_loopback", "wait_for_texts"]

# The points a channel is checked on; ``Capabilities.not_met`` names the ones it does not meet.
POINTS = ("signature", "retry", "deadline", "windows", "rates", "degrade", "cut", "unknown", "notification",
          "locale", "crash")
POLITE = "Thanks! I can only read text for now. Send /help to see what I can do."  # the built-in answer's msgid
SILENT = (Kind.FOLLOW, Kind.UNFOLLOW, Kind.SCAN, Kind.VIEW, Kind.COMMAND)  # the drivers' own steps: no answer
UNREADABLE = (Kind.IMAGE, Kind.VOICE, Kind.LOCATION, Kind.LINK, Kind.UNKNOWN)
SLOW_MARGIN = 1.0  # seconds the slow handler outlasts the channel's passive deadline
LONG_TEXT = "engagebot 汉字 👍🏽 naïve e\u0301 " * 600  # words, CJK, an emoji with a modifier, a combining accent


class ChannelDriver(ABC):
    """How the checks reach one channel: build it beside its platform's fake and act as that platform.

    ``start`` serves both on loopback (real HTTP) with a fresh database at ``database_url`` and the
    given routers as the only handlers; afterwards ``channel`` and ``sessions`` are set.
    """

    channel: Channel
    sessions: async_sessionmaker[AsyncSession]

    @property
    def capabilities(self) -> Capabilities:
        return self.channel.capabilities

    @abstractmethod
    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def follower(self, *, language: str | None = None) -> str:
        """A new follower who has followed (their reply window open); ``language`` (``en``, ``zh_Hans``)
        is what their platform tells the bot, in the platform's own form. Return their external id."""

    @abstractmethod
    async def send_text(self, follower: str, text: str) -> int:
        """The platform delivers one signed text message; return the HTTP status the bot answered with."""

    @abstractmethod
    async def send_badly_signed(self, follower: str, text: str) -> int:
        """Like :meth:`send_text` with a wrong signature (or secret); return the bot's HTTP status."""

    @abstractmethod
    async def send_retry(self, follower: str, text: str) -> None:
        """Deliver one text message twice, the second time as the platform's retry of the first."""

    @abstractmethod
    async def send_notification(self, follower: str) -> int:
        """The platform reports something about the follower that is no message (a receipt, a location report)."""

    @abstractmethod
    async def send_unreadable(self, follower: str) -> int:
        """The follower sends something the bot cannot read (a sticker, a file, a kind unknown to the adapter)."""

    @abstractmethod
    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        """Wait until the follower was shown ``count`` messages (inline or sent); return their texts in
        order, button labels on lines of their own after the text, an image as ``[image]`` (its caption on
        the next line when the image carries one). Fail when they do not come in time."""


async def serve_loopback(app: web.Application) -> tuple[str, web.AppRunner]:
    """Serve ``app`` on a free loopback port (real HTTP, as a platform calls); ``runner.cleanup()`` stops it."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}", runner


async def wait_for_texts(read: Callable[[], list[str]], count: int, *, timeout: float = 10) -> list[str]:
    """Poll ``read()`` (what a follower was shown so far) until it holds ``count`` texts; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while len(found := read()) < count:
        if loop.time() > until:
            raise AssertionError(f"expected {count} messages within {timeout}s, the follower was shown {found}")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # one more look: a message too many would come now
    return read()


def conformance_router(state: dict[str, Any]) -> Router:
    """The handlers the checks talk to: each answers one ``cf-`` word; ``state`` counts and flags."""
    router = Router("conformance")

    @router.on(regex=r"^cf-count$")
    async def count(msg: Inbound, ctx: Context) -> list[Reply]:
        state["count"] = state.get("count", 0) + 1
        return [TextReply("counted")]

    @router.on(regex=r"^cf-slow$")
    async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
        await asyncio.sleep(state["slow_seconds"])
        state["slow_done"] = True
        return [TextReply("slow but here")]

    @router.on(regex=r"^cf-rich$")
    async def rich(msg: Inbound, ctx: Context) -> list[Reply]:
        return rich_replies(state["image_url"])

    @router.on(regex=r"^cf-hint$")
    async def hint(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply(f"hint={msg.language_hint}")]

    @router.on(regex=r"^cf-long$")
    async def long(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply(LONG_TEXT)]

    @router.on(regex=r"^cf-locale$")
    async def locale(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply(f"locale={ctx.locale}")]

    @router.on(regex=r"^cf-ping$")
    async def ping(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply("pong")]

    @router.on(*UNREADABLE)
    async def unreadable(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply(_(POLITE))]

    @router.fallback()
    async def unexpected(msg: Inbound, ctx: Context) -> list[Reply]:
        # Anything else a follower does is answered, so a notification taken for a message shows.
        return [] if msg.kind in SILENT else [TextReply(f"unexpected {msg.kind}: {msg.text[:40]}")]

    return router


def rich_replies(image_url: str) -> list[Reply]:
    return [ButtonsReply("Pick a colour", (Button("Red", "red"), Button("Blue", "blue"))),
            ArticlesReply((Article("First story", "https://example.com/1", "One"),
                           Article("Second story", "https://example.com/2", "Two"))),
            ImageReply(image_url, caption="A cat")]


async def serve_image() -> tuple[str, web.AppRunner]:
    """A PNG on a loopback port (no internet in CI): its URL, and the runner to clean up."""
    out = io.BytesIO()
    segno.make("engagebot conformance").save(out, kind="png", scale=4)
    png = out.getvalue()

    async def image(_request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", image)
    url, runner = await serve_loopback(app)
    return f"{url}/cat.png", runner


class FakeClock:
    """A clock for a RateLimiter that moves only when the limiter waits: pacing checked in no real time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def departures(limiter: RateLimiter, chats: Sequence[str]) -> list[float]:
    """When each send (one per chat in ``chats``, in order) gets its turn from ``limiter``, on its clock."""
    found = []
    for chat in chats:
        await limiter.acquire(chat)
        found.append(limiter.clock.time())
    return found


def expect(actual: Any, expected: Any) -> None:
    """``assert actual == expected``, saying both (pytest rewrites no assert outside test modules)."""
    assert actual == expected, f"expected {expected!r}, got {actual!r}"


def measure(text: str, caps: Capabilities) -> int:
    return len(text.encode("utf-8")) if caps.text_length_in_bytes else len(text)


class ChannelConformance:
    """The checks. Subclass it in a test module and override the ``conformance_driver`` fixture."""

    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        raise NotImplementedError("override the conformance_driver fixture with your channel's driver")

    @pytest.fixture
    def conformance_state(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    async def driver(self, conformance_driver: ChannelDriver,
                     conformance_state: dict[str, Any]) -> AsyncIterator[ChannelDriver]:
        with tempfile.TemporaryDirectory(prefix="engagebot-conformance-") as tmp:
            await conformance_driver.start(database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bot.db'}",
                                           routers=[conformance_router(conformance_state)])
            deadline = conformance_driver.capabilities.passive_reply_deadline
            conformance_state["slow_seconds"] = (deadline or 0.2) + SLOW_MARGIN
            try:
                yield conformance_driver
            finally:
                await conformance_driver.stop()

    @staticmethod
    def declared(driver: ChannelDriver, point: str) -> bool:
        """Is ``point`` declared not met in the channel's capabilities? Then a reason must be given."""
        reason = dict(driver.capabilities.not_met).get(point)
        if reason is None:
            return False
        assert reason.strip(), f"declare {point!r} with a reason"
        return True

    @classmethod
    def skip_if_declared(cls, driver: ChannelDriver, point: str) -> None:
        """A declaration with no behaviour to check: reported skipped (with its reason), not passed."""
        if cls.declared(driver, point):
            pytest.skip(f"{driver.channel.name} declares {point!r} not met: {dict(driver.capabilities.not_met)[point]}")

    @staticmethod
    async def stored(driver: ChannelDriver, follower: str) -> tuple[int, int]:
        """(followers, messages) stored for ``follower`` on this channel."""
        async with driver.sessions() as session:
            followers = await session.scalar(select(func.count()).select_from(Follower).where(
                Follower.channel == driver.channel.name, Follower.external_id == follower))
            messages = await session.scalar(select(func.count()).select_from(Message).join(
                Follower, Follower.id == Message.follower_id).where(
                Follower.channel == driver.channel.name, Follower.external_id == follower))
        return int(followers or 0), int(messages or 0)

    @staticmethod
    async def send_after_silence(driver: ChannelDriver, follower: str, text: str) -> str | None:
        """Send ``text`` to a follower silent for longer than any window lasts; return the row's status
        (None: the channel has no outbox, ``text`` went straight through ``send_reply``)."""
        caps = driver.capabilities
        windows = [w.duration for w in (caps.window_after_message, caps.window_after_event) if w is not None]
        silent = max(windows, default=timedelta(0)) + timedelta(days=3)
        outbox = getattr(driver.channel, "outbox", None)
        async with driver.sessions() as session:
            row = (await session.execute(select(Follower).where(
                Follower.channel == driver.channel.name, Follower.external_id == follower))).scalar_one()
            row.last_action_at = utcnow() - silent
            late = Message(follower_id=row.id, channel=driver.channel.name, account=driver.channel.account,
                           direction="out", kind="text", text=text, body=reply_to_dict(TextReply(text)),
                           status="pending", attempts=0, created_at=utcnow())
            session.add(late)
            await session.commit()
        if not isinstance(outbox, OutboxSender):  # no engine: the channel's own send, as it would go
            await driver.channel.send_reply(follower, TextReply(text))
            return None
        await outbox.deliver([late.id])
        async with driver.sessions() as session:
            status, reason = (await session.execute(select(Message.status, Message.reason).where(
                Message.id == late.id))).one()
        assert status != "undeliverable" or "window" in (reason or ""), f"refused for {reason!r}, not for the window"
        return str(status)

    # -- the checks -------------------------------------------------------------------------------------

    async def test_what_the_channel_declares_not_met_is_a_known_point_with_a_reason(self,
                                                                                   driver: ChannelDriver) -> None:
        for point, reason in driver.capabilities.not_met:
            assert point in POINTS, f"{point!r} is no conformance point (one of {', '.join(POINTS)})"
            assert reason.strip(), f"declare {point!r} with a reason"

    async def test_a_bad_signature_is_refused_and_nothing_is_stored(self, driver: ChannelDriver) -> None:
        follower = f"77{id(driver) % 10**6:06d}"  # digits: a valid id on every platform
        status = await driver.send_badly_signed(follower, "cf-count")
        if self.declared(driver, "signature"):  # nothing is checked: the request is taken as any other
            expect(status, 200)
            followers, messages = await self.stored(driver, follower)
            assert followers == 1 and messages >= 1, "declared unsigned, yet the request was not taken"
            return
        assert status in (401, 403), f"a bad signature got HTTP {status}"
        expect(await self.stored(driver, follower), (0, 0))

    async def test_a_platform_retry_is_handled_once(self, driver: ChannelDriver,
                                                    conformance_state: dict[str, Any]) -> None:
        self.skip_if_declared(driver, "retry")
        follower = await driver.follower(language="en")
        await driver.send_retry(follower, "cf-count")
        expect(await driver.received(follower, 1), ["counted"])
        await driver.send_text(follower, "cf-ping")  # after the retry's answer, if there were a second one
        expect(await driver.received(follower, 2), ["counted", "pong"])
        expect(conformance_state["count"], 1)

    async def test_a_slow_handler_is_answered_in_time_then_through_the_send_api(
            self, driver: ChannelDriver, conformance_state: dict[str, Any]) -> None:
        if self.declared(driver, "deadline"):  # then no deadline is declared, and the reply still comes
            expect(driver.capabilities.passive_reply_deadline, None)
        follower = await driver.follower(language="en")
        status = await driver.send_text(follower, "cf-slow")
        if driver.capabilities.passive_reply_deadline is not None:
            # The platform got its answer while the handler still ran: the reply comes by the fallback path.
            expect(status, 200)
            assert not conformance_state.get("slow_done"), "the platform waited for the slow handler"
        expect(await driver.received(follower, 1, timeout=10 + conformance_state["slow_seconds"]), ["slow but here"])

    async def test_reply_windows_are_enforced_before_sending(self, driver: ChannelDriver) -> None:
        """A reply to a follower silent for longer than the declared window is refused without calling the
        platform; with no window (declared, or not met) it is sent."""
        caps = driver.capabilities
        windows = [w for w in (caps.window_after_message, caps.window_after_event) if w is not None]
        if self.declared(driver, "windows"):
            assert not windows, "a channel that declares windows must keep them: send through the outbox"
        else:  # windows are the delivery engine's, from the declared capabilities: reused, not rewritten
            assert isinstance(getattr(driver.channel, "outbox", None), OutboxSender), \
                "send through bot.delivery.outbox.OutboxSender"
        follower = await driver.follower(language="en")
        await driver.send_text(follower, "cf-ping")
        expect(await driver.received(follower, 1), ["pong"])
        status = await self.send_after_silence(driver, follower, "after a long silence")
        if windows:
            expect(status, "undeliverable")
            expect(await driver.received(follower, 1), ["pong"])  # the platform was never asked
        else:
            assert status in (None, "sent"), f"no window declared, yet the send ended {status!r}"
            expect(await driver.received(follower, 2), ["pong", "after a long silence"])

    async def test_sends_are_paced_by_the_declared_rates(self, driver: ChannelDriver) -> None:
        """The channel's outbox paces by the declared rates: on a fake clock, the send past a second's
        worth (overall, or to one chat) is held until that second has passed; with no rate, none waits."""
        caps = driver.capabilities
        outbox = getattr(driver.channel, "outbox", None)
        if self.declared(driver, "rates"):  # nothing paces: a burst reaches the follower whole
            expect((caps.max_sends_per_second, caps.max_sends_per_chat_per_second), (None, None))
            assert not isinstance(outbox, OutboxSender), "a channel sending through the outbox is paced by it"
            follower = await driver.follower(language="en")
            burst = [f"burst {n}" for n in range(5)]
            for text in burst:
                await driver.channel.send_reply(follower, TextReply(text))
            expect(await driver.received(follower, len(burst)), burst)
            return
        assert isinstance(outbox, OutboxSender), "send through bot.delivery.outbox.OutboxSender"
        limiter = outbox.limiter
        overall, per_chat = caps.max_sends_per_second, caps.max_sends_per_chat_per_second
        expect((limiter.interval, limiter.chat_interval), (1 / overall if overall else 0.0,
                                                           1 / per_chat if per_chat else 0.0))
        real_clock = limiter.clock  # the limiter's turns move a few fake seconds ahead: this test ends here
        limiter.clock = FakeClock(real_clock.time())
        try:
            checks = [(overall, [f"cf-chat-{n}" for n in range(50)])]  # 50 chats: the overall rate
            if per_chat is not None or overall is None:  # one chat: its own rate (and the overall one)
                checks.append((per_chat, ["cf-chat"] * 50))
            for rate, chats in checks:
                if rate is None:  # not paced: a burst all goes at once
                    times = await departures(limiter, chats[:5])
                    expect(times[-1] - times[0], 0.0)
                    continue
                allowed = math.ceil(min(rate, overall or rate) if chats[0] == chats[1] else rate)
                times = await departures(limiter, chats[:allowed + 1])
                assert times[allowed - 1] - times[0] < 1, f"{allowed} sends did not fit in a second at {rate}/s"
                assert times[allowed] - times[0] >= 1 - 1e-9, f"send {allowed + 1} was not held at {rate}/s"
        finally:
            limiter.clock = real_clock

    async def test_richer_replies_are_degraded_to_what_the_channel_declares(
            self, driver: ChannelDriver, conformance_state: dict[str, Any]) -> None:
        caps = driver.capabilities
        image_url, image_server = await serve_image()
        conformance_state["image_url"] = image_url
        try:
            degraded = driver.channel.degrade(rich_replies(image_url))
            for reply in degraded:
                assert not isinstance(reply, ButtonsReply) or caps.buttons
                assert not isinstance(reply, ImageReply) or caps.images
                assert not isinstance(reply, ArticlesReply) or len(reply.articles) <= caps.max_articles
                assert not isinstance(reply, TextReply) or measure(reply.text, caps) <= caps.max_text_length
            self.skip_if_declared(driver, "degrade")
            follower = await driver.follower(language="en")
            await driver.send_text(follower, "cf-rich")
            shown = await driver.received(follower, len(degraded))
        finally:
            await image_server.cleanup()
        text = "\n".join(shown)
        assert "Red" in text and "Blue" in text, f"the choices are lost: {shown!r}"  # as buttons or numbered lines
        assert "First story" in text and "Second story" in text, f"a story is lost: {shown!r}"
        images = [m for m in shown if m.startswith("[image]")]
        if caps.images:  # the image arrived as an image, its caption on it or right after it
            expect(len(images), 1)
            at = shown.index(images[0])
            assert "A cat" in images[0] or shown[at + 1:at + 2] == ["A cat"], f"the caption is lost: {shown!r}"
        else:  # it became its caption and its link
            expect(images, [])
            assert any("A cat" in m and image_url in m for m in shown), f"the image is lost: {shown!r}"

    async def test_long_text_is_cut_on_a_clean_boundary(self, driver: ChannelDriver) -> None:
        caps = driver.capabilities
        self.skip_if_declared(driver, "cut")
        follower = await driver.follower(language="en")
        await driver.send_text(follower, "cf-long")
        text = (await driver.received(follower, 1))[0]
        assert measure(text, caps) <= caps.max_text_length, f"{measure(text, caps)} over {caps.max_text_length}"
        kept = text.removesuffix("…")
        assert kept and LONG_TEXT.startswith(kept), f"not a cut of the text: {text[:80]!r}..."
        boundaries, at = {0}, 0
        for cluster in regex.findall(r"\X", LONG_TEXT):
            at += len(cluster)
            boundaries.add(at)
        assert len(kept) in boundaries, "cut inside a character or an emoji"

    async def test_what_the_bot_cannot_read_is_answered_politely(self, driver: ChannelDriver) -> None:
        self.skip_if_declared(driver, "unknown")
        follower = await driver.follower(language="en")
        expect(await driver.send_unreadable(follower), 200)
        catalogs = default_catalogs()
        # In the follower's English, or in the default locale where the platform tells no language.
        polite = {catalogs.gettext(loc, POLITE)
                  for loc in (SUPPORTED_LOCALES if self.declared(driver, "locale") else ["en"])}
        (answer,) = await driver.received(follower, 1)
        assert answer in polite, f"{answer!r} is not the polite answer"

    async def test_platform_notifications_are_not_answered(self, driver: ChannelDriver) -> None:
        self.skip_if_declared(driver, "notification")
        follower = await driver.follower(language="en")
        expect(await driver.send_notification(follower), 200)
        await driver.send_text(follower, "cf-ping")
        expect(await driver.received(follower, 1), ["pong"])  # nothing came before the ping's answer

    @pytest.mark.parametrize(("language", "locale"), [("en", "en"), ("zh_Hans", "zh_Hans")])
    async def test_the_platform_s_language_hint_picks_the_locale(self, driver: ChannelDriver, language: str,
                                                                  locale: str) -> None:
        follower = await driver.follower(language=language)
        if self.declared(driver, "locale"):  # the platform tells no language: the messages carry no hint
            await driver.send_text(follower, "cf-hint")
            expect(await driver.received(follower, 1), ["hint=None"])
            return
        await driver.send_text(follower, "cf-locale")
        expect(await driver.received(follower, 1), [f"locale={locale}"])

    async def test_a_send_cut_short_by_a_crash_is_repeated_as_the_channel_declares(self, driver: ChannelDriver) -> None:
        """A crash after the platform took a send, before its outcome was recorded: the row is left
        ``sending``; after its lease the outbox sends it again with the same idempotency key. A platform
        that drops repeats shows it once; otherwise the row is flagged ``resent_in_doubt``."""
        outbox = getattr(driver.channel, "outbox", None)
        follower = await driver.follower(language="en")
        await driver.send_text(follower, "cf-ping")
        expect(await driver.received(follower, 1), ["pong"])
        text = "after the crash"
        if self.declared(driver, "crash"):  # no guarantee: nothing drops a repeat, the follower sees it twice
            expect(driver.capabilities.idempotent_sends, False)
            assert not isinstance(outbox, OutboxSender), "a channel sending through the outbox has its guarantees"
            for _ in range(2):
                await driver.channel.send_reply(follower, TextReply(text), context={"idempotency_key": "cf-crash"})
            expect(await driver.received(follower, 3), ["pong", text, text])
            return
        assert isinstance(outbox, OutboxSender), "send through bot.delivery.outbox.OutboxSender"
        async with driver.sessions() as session:
            row = (await session.execute(select(Follower).where(
                Follower.channel == driver.channel.name, Follower.external_id == follower))).scalar_one()
            stuck = Message(follower_id=row.id, channel=driver.channel.name, account=driver.channel.account,
                            direction="out", kind="text", text=text, body=reply_to_dict(TextReply(text)),
                            status="sending", attempts=1, created_at=utcnow(),
                            next_attempt_at=utcnow() - timedelta(seconds=1))  # its sender's lease ran out
            session.add(stuck)
            await session.commit()
        # What the dead sender had sent, as the outbox sends it: the platform has it.
        await driver.channel.send_reply(follower, TextReply(text), context={"idempotency_key": f"outbox:{stuck.id}",
                                                                            "message_id": stuck.id})
        await outbox.sweep_once()
        async with driver.sessions() as session:
            status, in_doubt = (await session.execute(select(Message.status, Message.resent_in_doubt).where(
                Message.id == stuck.id))).one()
        expect((status, in_doubt), ("sent", not driver.capabilities.idempotent_sends))
        shown = await driver.received(follower, 2)
        if driver.capabilities.idempotent_sends:
            expect(shown, ["pong", text])
        else:  # at least once, maybe twice: what the flag tells the operator
            assert shown[1:] in ([text], [text, text]), f"shown {shown!r}"
