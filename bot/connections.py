"""The public port under hostile load: header and body timeouts, a cap on connections, quiet accept errors.

aiohttp waits as long as a client likes for a request's headers, so thousands of sockets trickling
a byte at a time used to exhaust the file descriptors: ``/healthz`` timed out and asyncio logged
"socket.accept() out of system resource" hundreds of thousands of times. :class:`ConnectionGuard`
sits between asyncio and aiohttp's request handler (a protocol wrapping aiohttp's, plus a
middleware that says when a request is in progress):

- headers: from its first byte, a request has ``header_timeout`` seconds to finish its headers;
- body: once the headers are in, ``body_timeout`` seconds to send the body (then 408);
- a cap: at most ``max_connections`` open; a new connection past it closes the oldest idle one
  (waiting for headers, or between keep-alive requests), so a flood of slow sockets cannot keep
  out a health check; with no idle one to close, the new connection is closed;
- what it closes, and asyncio's accept errors, are logged as counts at most once a minute.

A reverse proxy in front (``deploy/nginx.conf``) applies its own limits before any of this.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.errors import RequestTimeout, ServerStopping

log = logging.getLogger("engagebot.connections")

# File descriptors kept for the database, log files and outgoing calls besides the connections.
FD_HEADROOM = 64
SUMMARY_INTERVAL = 60.0
# Connections the kernel queues before accept(). asyncio also accepts up to this many at each turn of
# the loop, and the guard sees (and closes) them a few turns later, so several backlogs' worth of
# descriptors can be open beyond the cap for a moment: the backlog stays small against the cap.
MAX_BACKLOG = 128
BACKLOG_TURNS = 4
ACCEPT_ERROR = "socket.accept() out of system resource"


class RateLimitedLog:
    """Count events by kind; log the first at once, then the counts at most once per ``interval``."""

    def __init__(self, message: str, *, interval: float = SUMMARY_INTERVAL, level: int = logging.WARNING) -> None:
        self.message = message
        self.interval = interval
        self.level = level
        self._counts: Counter[str] = Counter()
        self._last = float("-inf")
        self._flush: asyncio.TimerHandle | None = None

    def count(self, kind: str, **extra: Any) -> None:
        self._counts[kind] += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.flush(**extra)
        elif self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(self._last + self.interval - now, self.flush)

    def flush(self, **extra: Any) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._counts:
            log.log(self.level, self.message, extra={**dict(self._counts), **extra,
                                                     "per_seconds": self.interval})
            self._counts.clear()
            self._last = time.monotonic()

    def close(self) -> None:
        self.flush()


class _Connection(asyncio.Protocol):
    """aiohttp's request handler for one connection, with the guard watching it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self._deadline: asyncio.TimerHandle | None = None

    # asyncio -> aiohttp, watched
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio hands a Transport to a stream protocol
        self.inner.connection_made(transport)
        self._start_deadline()  # a new connection is there to send a request: its headers are due
        self.guard._opened(self)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._deadline is None:  # the first byte of the next keep-alive request
            self._start_deadline()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard._closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # the guard's view
    def request_started(self) -> None:
        self.busy = True
        self._cancel_deadline()
        self.guard._now_busy(self)

    def request_finished(self) -> None:
        self.busy = False
        self.guard._now_idle(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _headers_late(self) -> None:
        self._deadline = None
        if not self.busy:
            self.guard.shed.count("header_timeouts")
            self.abort()

    def _start_deadline(self) -> None:
        self._deadline = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._headers_late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class ConnectionGuard:
    """Timeouts and a cap for every connection of one listening port (see the module docstring)."""

    def __init__(self, *, header_timeout: float, body_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.shed = RateLimitedLog("connections closed by the guard")
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._idle: OrderedDict[_Connection, None] = OrderedDict()  # oldest idle first
        self._awaiting_body: dict[int, web.Request] = {}  # by id(): a request is a mapping, not hashable

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def backlog(self) -> int:
        return min(MAX_BACKLOG, max(16, self.max_connections // 4))

    def files_needed(self) -> int:
        """Descriptors at worst: the cap, the accepts not closed yet, and the rest of the process."""
        return self.max_connections + BACKLOG_TURNS * self.backlog + FD_HEADROOM

    def fit_file_limit(self) -> str | None:
        """Make room for ``max_connections`` under the process's file limit; return a warning if it cannot.

        The soft limit is raised toward the hard one; if that is still too low, the cap is lowered,
        so the guard closes connections before accept() runs out of descriptors.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.files_needed()
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft == resource.RLIM_INFINITY or soft >= wanted:
            return None
        asked = self.max_connections
        while self.max_connections > 8 and self.files_needed() > soft:
            self.max_connections -= 1
        return (f"the open-file limit ({soft}) leaves room for {self.max_connections} connections, not "
                f"{asked}; the cap is now {self.max_connections} (raise ulimit -n)")

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Connection(self, inner())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Mark the connection busy while a request runs; give its body ``body_timeout`` seconds."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is not None:
            connection.request_started()
        timer = None
        if request.body_exists and not request.content.is_eof():
            timer = asyncio.get_running_loop().call_later(self.body_timeout, self._body_late, request)
            self._awaiting_body[id(request)] = request
        try:
            return await handler(request)
        finally:
            if timer is not None:
                timer.cancel()
                del self._awaiting_body[id(request)]
            if connection is not None:
                connection.request_finished()

    def _body_late(self, request: web.Request) -> None:
        if not request.content.is_eof():
            self.shed.count("body_timeouts")
            request.content.set_exception(RequestTimeout(f"request body not received within {self.body_timeout:g} s"))

    async def stop_waiting_for_bodies(self, _app: web.Application) -> None:
        """At stop (``on_shutdown``): a request still sending its body is answered 503 now.

        The stop waits for requests in flight; one whose client stalled (or was itself stopped
        half-way through a send, as an in-process client is at stop) would hold it for up to
        ``body_timeout``. Its client retries, here after the restart or on another instance.
        """
        for request in list(self._awaiting_body.values()):
            if not request.content.is_eof():
                request.content.set_exception(ServerStopping("server stopping: request body not received"))

    # bookkeeping, called by the connections
    def _opened(self, connection: _Connection) -> None:
        assert connection.transport is not None
        self._open[connection.transport] = connection
        self._idle[connection] = None
        if len(self._open) <= self.max_connections:
            return
        victim = next(iter(self._idle))
        if victim is connection:  # every other connection is in a request: refuse this one
            self.shed.count("refused_at_cap")
        else:
            self.shed.count("idle_closed_at_cap")
        # Forget it now: asyncio closes its socket only at the next turn, and the next newcomer of
        # this turn must pick another victim.
        self._closed(victim)
        victim.abort()

    def _closed(self, connection: _Connection) -> None:
        if connection.transport is not None:
            self._open.pop(connection.transport, None)
        self._idle.pop(connection, None)
        connection.busy = False

    def _now_busy(self, connection: _Connection) -> None:
        self._idle.pop(connection, None)

    def _now_idle(self, connection: _Connection) -> None:
        if connection.transport is not None and connection.transport in self._open:
            self._idle[connection] = None
            self._idle.move_to_end(connection)

    def close(self) -> None:
        self.shed.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int, *,
                 reuse_port: bool = False) -> None:
        super().__init__(runner, backlog=guard.backlog)
        self._guard = guard
        self._reuse_port = reuse_port  # several processes listen on the port (``engagebot run --workers``)
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self._guard.protocol_factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=True, reuse_port=self._reuse_port or None, family=socket.AF_UNSPEC)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> RateLimitedLog:
    """Log asyncio's "accept out of system resource" as a count once a minute instead of once per try.

    Other errors reach the loop's previous handler unchanged.
    """
    errors = RateLimitedLog("accept failed: out of file descriptors", level=logging.ERROR)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_ERROR):
            exc = context.get("exception")
            errors.count("accept_errors", reason=str(exc) if exc else "")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return errors
