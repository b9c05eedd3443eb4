"""The contract every channel adapter fulfils, and the fallbacks that degrade rich replies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar, Protocol

from aiohttp import web

from bot.channels.images import image_text
from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.dispatcher import Dispatched, LanguageLookup, PassiveSlot
from bot.core.inbound import Inbound
from bot.core.menu import Menu
from bot.core.reply import ArticlesReply, ButtonsReply, ImageReply, LocationRequestReply, QrReply, Reply, TextReply
from bot.core.text import cut_text
from bot.errors import PayloadError

__all__ = ["Capabilities", "Channel", "Dispatch", "ReplyWindow", "numbered_choices"]


class Dispatch(Protocol):
    def __call__(self, msg: Inbound, *, capabilities: Capabilities, passive: PassiveSlot | None = None,
                 language_lookup: LanguageLookup | None = None) -> Awaitable[Dispatched]: ...


MAX_ECHOSTR = 256  # the URL check's challenge: WeChat and Weibo send a short random string


def url_check_answer(echostr: str | None) -> web.Response:
    """Answer a platform's URL check, its signature and timestamp already verified: echo ``echostr``."""
    if not echostr or len(echostr) > MAX_ECHOSTR:
        raise PayloadError("missing or oversized echostr")
    return web.Response(text=echostr, content_type="text/plain")


def numbered_choices(reply: ButtonsReply) -> TextReply:
    """Show buttons as a numbered list; the dispatcher maps a reply of "1" back to the first button."""
    lines = [reply.text, ""] if reply.text else []
    lines += [f"{i}. {b.label}" for i, b in enumerate(reply.buttons, start=1)]
    return TextReply("\n".join(lines))


class Channel(ABC):
    """A platform adapter: turns the platform's requests into Inbound and Reply into the platform's form.

    Subclasses set ``name`` and ``capabilities``, feed messages to ``dispatch`` and implement
    :meth:`send_reply` (the platform's active send API). They override :meth:`degrade` only for
    what their platform shows better than the fallbacks here.
    """

    name: ClassVar[str]
    capabilities: Capabilities

    def __init__(self, *, dispatch: Dispatch, account: str) -> None:
        self._dispatch = dispatch
        self.account = account

    async def dispatch(self, msg: Inbound, *, passive: PassiveSlot | None = None,
                       language_lookup: LanguageLookup | None = None) -> Dispatched:
        return await self._dispatch(msg, capabilities=self.capabilities, passive=passive,
                                    language_lookup=language_lookup)

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes this channel serves (webhooks); none by default."""
        return []

    async def start(self) -> None:  # noqa: B027  (a hook: most channels need nothing here)
        """Open connections and start receiving; called once by the app, in order."""

    async def stop(self) -> None:  # noqa: B027  (a hook, like start)
        """Stop receiving and close connections; called in reverse order of start."""

    async def scene_link(self, scene: str, *, permanent: bool = True) -> str | None:
        """Return what a follower scans or opens to arrive through ``scene`` (a QR's URL, a deep link).

        None when the channel has no such thing. Campaigns print it as a QR code.
        """
        return None

    scene_link._no_scene_links = True  # type: ignore[attr-defined]  # read by bot.offers.links.link_channels

    async def push_menu(self, menu: Menu) -> str | None:
        """Set the platform's menu for this account from ``menu``; say what was set, in one line.

        None when the platform has no menu. Raises ``PlatformAPIError`` (and the other send errors)
        when the platform refuses it.
        """
        return None

    @abstractmethod
    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        """Send one (already degraded) reply through the platform's active API.

        Raises ``QuotaExceeded`` (retry later; ``chat_only`` when the limit is the chat's own),
        ``NotSent`` (surely never reached the platform), ``OutsideReplyWindow``, ``FollowerGone``
        (blocked or unfollowed) or ``PlatformAPIError`` (recorded as failed with its code). Only map
        the platform's errors: the outbox decides retries and pacing (``bot.delivery.retry``).
        """

    def degrade(self, replies: Sequence[Reply]) -> list[Reply]:
        """Render rich replies into what this channel can show."""
        caps = self.capabilities
        out: list[Reply] = []
        for reply in replies:
            match reply:
                case ButtonsReply() if not caps.buttons:
                    out.append(self.fit(numbered_choices(reply)))
                case ArticlesReply(articles=articles) if len(articles) > caps.max_articles:
                    shown = articles[: caps.max_articles]
                    if shown:
                        out.append(ArticlesReply(shown))
                    rest = articles[caps.max_articles:]
                    out.append(self.fit(TextReply("\n\n".join(
                        "\n".join(p for p in (a.title, a.description, a.url) if p) for a in rest))))
                case ImageReply(url=url, caption=caption) if not caps.images:
                    # Its caption and link; nothing when it has neither (a file's path is not for followers).
                    if text := image_text(caption, url):
                        out.append(self.fit(TextReply(text)))
                case ImageReply(url=url, caption=caption) if caption and not caps.image_captions:
                    # The image first, then what it says (the order the follower reads a captioned image).
                    out += [ImageReply(url), self.fit(TextReply(caption))]
                case QrReply(scene=scene, caption=caption, url=url) if caps.images and not caps.image_captions:
                    # An image of the QR (drawn at send time), then the caption and the link as text. A
                    # channel whose images carry captions (Telegram) renders the whole QrReply itself.
                    text = image_text(caption, url)
                    out += [QrReply(scene, "", url), self.fit(TextReply(text))] if text else [QrReply(scene, "", url)]
                case QrReply(scene=scene, caption=caption, url=url):
                    out.append(self.fit(TextReply("\n".join(p for p in (caption, url or scene) if p))))
                case LocationRequestReply(text=text, fallback=fallback) if not caps.location_request:
                    out.append(self.fit(TextReply("\n".join(p for p in (text, fallback) if p))))
                case TextReply():
                    out.append(self.fit(reply))
                case _:
                    out.append(reply)
        return out

    def fit(self, reply: TextReply) -> TextReply:
        """Cut text at the channel's limit without breaking a character or markup."""
        return TextReply(cut_text(reply.text, self.capabilities.max_text_length))

