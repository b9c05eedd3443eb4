"""HTTP plumbing shared by every route: typed errors to status codes, bodies, clients, throttling, locks per key."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiohttp import StreamReader, web
from aiohttp.typedefs import Handler
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from bot.errors import EngagebotError, PayloadTooLarge, ServerStopping
from bot.logs import REQUEST_ID, accept_request_id

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger("engagebot.web")


REQUEST_ID_HEADER = "X-Request-Id"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id (the caller's, when sane): on every log line while it is handled
    (tasks it starts included), and in the answer's ``X-Request-Id``."""
    request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    except TimeoutError:  # aiohttp's 504
        raise
    except Exception:
        # Unexpected (the database gone, a bug): logged here, under the request's id, and answered
        # 500 with it; left to aiohttp, its line had no id and its answer no X-Request-Id.
        log.error("request failed", exc_info=True, extra={"path": request.path})
        response = web.json_response({"error": "InternalError", "reason": "internal error"}, status=500)
    finally:
        REQUEST_ID.reset(token)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a typed error with its status and reason (JSON unless the route asked for text)."""
    try:
        return await handler(request)
    except EngagebotError as exc:
        if exc.http_status >= 500 and not isinstance(exc, ServerStopping):
            log.error("request failed", exc_info=exc, extra={"path": request.path})
        else:
            log.info("request refused", extra={"path": request.path, "status": exc.http_status,
                                               "reason": str(exc)})
        return web.json_response({"error": type(exc).__name__, "reason": str(exc)}, status=exc.http_status)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes; raise PayloadTooLarge past it, without reading on."""
    return await read_stream(request.content, limit, declared=request.content_length)


async def read_stream(stream: StreamReader, limit: int, *, declared: int | None = None) -> bytes:
    """Read ``stream`` to its end (a request's or a response's body); raise PayloadTooLarge past ``limit``
    bytes (or at once when the ``declared`` Content-Length says so), without reading on.

    ``StreamReader.read(n)`` answers what has arrived so far, not ``n`` bytes: only a loop to EOF gets the whole body.
    """
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
    return b"".join(chunks)


class KeyedLocks:
    """One ``asyncio.Lock`` per key, kept only while a task holds or awaits it (a weak table: no lock per key forever)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def client_address(request: web.Request, trusted_proxies: Sequence[Network] = ()) -> str:
    """The client's IP address: the peer's, or, behind a trusted reverse proxy, from X-Forwarded-For.

    Proxies append the address they received from, so the header is read from the right, skipping
    the trusted proxies; a client cannot pose as another by sending the header itself.
    """
    peer = request.remote or ""
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    for hop in reversed([h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a malformed hop: stop trusting the rest of the chain
        if not _in(hop, trusted_proxies):
            return hop
    return peer


def came_over_https(request: web.Request, trusted_proxies: Sequence[Network] = ()) -> bool:
    """Whether the client's request came over HTTPS: to us directly, or to a trusted reverse proxy that
    says so in X-Forwarded-Proto (a client elsewhere cannot claim it by sending the header itself)."""
    if request.secure:
        return True
    if not trusted_proxies or not _in(request.remote or "", trusted_proxies):
        return False
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


IPV6_CLIENT_PREFIX = 64  # an IPv6 subscriber is given a /64 (or more): its addresses are one client


def client_key(address: str) -> str:
    """Who is counted as one client: an IPv4 address (also written IPv4-mapped), an IPv6 /64.

    Counting an IPv6 client per address would let it rotate through the 2**64 addresses of its own
    network and never be throttled.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip), IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class FailureThrottle:
    """Count failures (a wrong token, an unknown code) per client; past ``rate`` (``10/minute``), refuse.

    A client is an address as ``client_key`` groups them (an IPv6 client is its /64).

    A moving window (the ``limits`` library, in memory): once a client has used up its failures, it
    waits until the oldest one leaves the window. Successes are not counted. Each instance counts
    alone; several replicas behind a proxy multiply the allowance, which the proxy's own limit caps.
    """

    def __init__(self, rate: str, *, namespace: str = "failures") -> None:
        self.rate = parse(rate)
        self.namespace = namespace
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._locks = KeyedLocks()

    @asynccontextmanager
    async def attempt(self, client: str) -> AsyncIterator[int | None]:
        """Hold ``client``'s turn while it tries; yield the seconds it must wait first, or None.

        One attempt per client at a time: a burst of concurrent guesses cannot all pass the check
        before the first failure is counted.
        """
        client = client_key(client)
        async with self._locks(client):
            yield await self.retry_after(client)

    async def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        client = client_key(client)
        if await self._limiter.test(self.rate, self.namespace, client):
            return None
        stats = await self._limiter.get_window_stats(self.rate, self.namespace, client)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def failed(self, client: str) -> None:
        await self._limiter.hit(self.rate, self.namespace, client_key(client))


def see_other(location: str) -> web.Response:
    """303: after a form, the browser GETs ``location`` (a reload does not post the form again)."""
    return web.Response(status=303, headers={"Location": location})


def too_many_failures(retry_after: int) -> web.Response:
    """429 with Retry-After, for a client that failed too often."""
    return web.json_response({"error": "too many failed attempts", "retry_after": retry_after}, status=429,
                             headers={"Retry-After": str(retry_after)})
