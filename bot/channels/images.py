"""Images a reply carries: where their bytes come from, what the platforms accept, uploads kept for reuse.

An ``ImageReply.url`` names its source:

- ``https://...`` / ``http://...``: fetched (at most :data:`MAX_IMAGE_BYTES`), e.g. a file our own
  server publishes; a fetched source is kept in memory for a few minutes, so a broadcast does not
  fetch it once per follower;
- ``qr:<link>``: a QR code of ``<link>``, drawn as PNG with segno (in a worker thread);
- an absolute path (or ``file://`` URL): a local file, e.g. a promotion's poster.

WeChat and Weibo send an image by a platform id obtained by uploading it (WeChat's temporary media
lives 3 days). :class:`MediaCache` keeps that id per account and content hash in the ``shared_token``
table, which every process of the deployment (web instances and ``engagebot workers``) reads: a
broadcast to 10,000 followers, spread over several worker processes, uploads the image once (the
sends of one process wait for its upload; processes racing each other may each upload it once), and
a retried send reuses it.

Where an image cannot be shown, it is told as text by :func:`image_text`: its caption, and its link
only when the source is one a follower can open (never a file path of our server, nor a ``qr:``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.errors import PayloadTooLarge, PlatformAPIError, QuotaExceeded
from bot.files import MAX_IMAGE_BYTES, image_format, image_problem, read_image_bytes
from bot.storage.dialect import upsert
from bot.storage.models import SharedToken
from bot.web import KeyedLocks, read_stream

QR_PREFIX = "qr:"
# Reuse an uploaded id until this long before the platform forgets it (a send in progress must not race it).
EXPIRY_MARGIN = timedelta(hours=1)
FETCHED_TTL = 300.0  # seconds a fetched source is kept in memory
FETCHED_MAX = 8  # sources kept (10 MB each at most)
KEY_MAX = 128  # shared_token.name


class ImageError(PlatformAPIError):
    """An image that cannot be sent (missing, too large, not PNG/JPEG/GIF/BMP): the send fails with why."""

    def __init__(self, message: str) -> None:
        super().__init__(-3, message)
        self.args = (f"image not sent: {self.errmsg}",)  # the outbox's reason: ours, not the platform's


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    extension: str
    mime_type: str
    digest: str  # sha256 of data, hex: the key of its uploads

    @property
    def filename(self) -> str:
        return f"{self.digest[:16]}.{self.extension}"


def qr_source(link: str) -> str:
    """The image source of a QR code that encodes ``link``."""
    return QR_PREFIX + link


def shareable_link(source: str) -> str:
    """The link a follower may be shown for an image source: an http(s) URL, else "" (a file path,
    ``file://`` or ``qr:`` source means nothing to a follower, and a path tells about our server)."""
    return source if source.startswith(("https://", "http://")) else ""


def image_text(caption: str, source: str) -> str:
    """An image told as text (a channel without images, a mass send): its caption, then its shareable link."""
    return "\n".join(p for p in (caption, shareable_link(source)) if p)


def check_image(data: bytes, where: str) -> Image:
    """Return ``data`` as an Image, or raise ImageError naming ``where`` when a platform would refuse it."""
    problem = image_problem(data)
    found = image_format(data)
    if problem is not None or found is None:
        raise ImageError(f"{where}: {problem}")
    return Image(data, *found, hashlib.sha256(data).hexdigest())


def local_path(source: str) -> Path | None:
    """The file a source names (an absolute path or a ``file://`` URL), else None."""
    if source.startswith("file://"):
        return Path(unquote(urlsplit(source).path))
    path = Path(source)
    return path if path.is_absolute() else None


def read_image_file(path: Path) -> Image:
    try:
        data = read_image_bytes(path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ImageError(f"{path}: {exc}") from None
    return check_image(data, str(path))


def _qr_png(link: str) -> bytes:
    import io

    import segno

    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


class ImageLoader:
    """Turns a source into bytes; one per channel (it holds an HTTP client and the fetched sources)."""

    def __init__(self, *, timeout: float = 15.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._fetched: OrderedDict[str, tuple[float, Image]] = OrderedDict()
        self._fetching = KeyedLocks()  # concurrent sends of one URL wait for one fetch

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def load(self, source: str) -> Image:
        if source.startswith(QR_PREFIX):
            return check_image(await asyncio.to_thread(_qr_png, source[len(QR_PREFIX):]), "QR code")
        if source.startswith(("https://", "http://")):
            return await self._fetch(source)
        path = local_path(source)
        if path is None:
            raise ImageError(f"image source {source[:80]!r}: not a URL, a QR or an absolute path")
        return await asyncio.to_thread(read_image_file, path)

    def _kept(self, url: str) -> Image | None:
        kept = self._fetched.get(url)
        return kept[1] if kept is not None and time.monotonic() - kept[0] < FETCHED_TTL else None

    async def _fetch(self, url: str) -> Image:
        """Fetch ``url`` whole (once for the sends waiting on it); a network failure is retried later."""
        if (image := self._kept(url)) is not None:
            return image
        async with self._fetching(url):
            if (image := self._kept(url)) is not None:
                return image  # fetched while this send waited
            return await self._get(url)

    async def _get(self, url: str) -> Image:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._http.get(url) as resp:
                if resp.status != 200:
                    raise ImageError(f"image {url[:80]}: HTTP {resp.status}")
                data = await read_stream(resp.content, MAX_IMAGE_BYTES, declared=resp.content_length)
        except PayloadTooLarge:
            raise ImageError(f"image {url[:80]}: image larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise QuotaExceeded(f"image {url[:80]} unreachable: {type(exc).__name__}", retry_after=30.0) from None
        image = check_image(data, f"image {url[:80]}")
        self._fetched[url] = (time.monotonic(), image)
        self._fetched.move_to_end(url)
        while len(self._fetched) > FETCHED_MAX:
            self._fetched.popitem(last=False)
        return image


Upload = Callable[[Image], Awaitable[tuple[str, timedelta]]]


class MediaCache:
    """Platform ids of uploaded images, per account and content hash, shared through the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], scope: str) -> None:
        self.sessions = sessions
        self.scope = scope  # e.g. "wechat:<app_id>"
        # The content hash stays whole in the key: a scope too long for the column is hashed instead.
        if len(f"media:{scope}:") + 64 > KEY_MAX:
            scope = hashlib.sha256(scope.encode()).hexdigest()[:32]
        self._prefix = f"media:{scope}:"
        self._uploading = KeyedLocks()  # concurrent sends of one image (a broadcast) wait for one upload
        self.uploads = 0

    def _key(self, image: Image) -> str:
        return self._prefix + image.digest

    async def _known(self, key: str) -> str | None:
        async with self.sessions() as session:
            row = (await session.execute(select(SharedToken).where(SharedToken.name == key))).scalar_one_or_none()
        return row.value if row is not None and utcnow() < row.expires_at else None

    async def media_id(self, image: Image, upload: Upload) -> str:
        """The platform's id for ``image``: the one uploaded before while it is still valid, else a new upload."""
        key = self._key(image)
        if (known := await self._known(key)) is not None:
            return known
        async with self._uploading(key):
            if (known := await self._known(key)) is not None:
                return known  # uploaded while this send waited
            return await self._upload(key, image, upload)

    async def _upload(self, key: str, image: Image, upload: Upload) -> str:
        media_id, lifetime = await upload(image)
        self.uploads += 1
        now = utcnow()
        expires_at = now + lifetime - EXPIRY_MARGIN
        async with self.sessions() as session:
            await session.execute(upsert(session, SharedToken, index_elements=[SharedToken.name], set_={
                "value": media_id, "expires_at": expires_at, "updated_at": now}).values(
                name=key, value=media_id, expires_at=expires_at, updated_at=now))
            # Forgotten uploads of this account go with it: the table holds only what may be reused.
            await session.execute(delete(SharedToken).where(
                SharedToken.name.like(f"{self._prefix}%"), SharedToken.expires_at < now))
            await session.commit()
        return media_id

    async def forget(self, image: Image, media_id: str) -> None:
        """Drop an id the platform no longer knows (it answered "invalid media id"); not a newer one that
        a concurrent send uploaded meanwhile."""
        async with self.sessions() as session:
            await session.execute(delete(SharedToken).where(SharedToken.name == self._key(image),
                                                            SharedToken.value == media_id))
            await session.commit()

