"""The asyncio connection, subscriptions and messages.

One :class:`Connection` is one TCP connection to a ternd (re-established
after a loss), driven by an :class:`asyncio.Protocol` on the running loop;
for a ``tls://`` server the connection is TLS (the standard library's
:mod:`ssl` under asyncio's transport), with a new handshake on every
reconnect.
Everything it starts in the background (reconnecting, heartbeats, callback
subscriptions and their handlers) is a task it owns and cancels on close.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import logging
import os
import random
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from . import protocol as P
from .errors import (
    FATAL_CODES,
    CircuitOpenError,
    ConnectionClosedError,
    ConnectTimeoutError,
    DisconnectedError,
    DuplicateSidError,
    GoAwayError,
    InvalidTopicError,
    NoRespondersError,
    OutboundBufferFullError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    PublishTimeoutError,
    StaleConnectionError,
    TernError,
    TernTimeoutError,
    TLSError,
    TooManySubscriptionsError,
    error_from_wire,
)

__all__ = ["connect", "make_tls_context", "Connection", "Subscription", "Msg", "Status"]

_log = logging.getLogger("tern")

_FLUSH_AT = 64 * 1024  # write the batch at once when it reaches this size
_pub_head = P.pub_head
_request_frame = P.request_frame
_reply_frame = P.reply_frame


class Status(enum.Enum):
    """Connection states reported to ``on_status``, in order: CONNECTED,
    then for each loss DISCONNECTED, RECONNECTING (once per attempt) and
    CONNECTED again, and finally CLOSED."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class Msg:
    """A message delivered to a subscription.

    ``topic`` (str), ``data`` (bytes), ``headers`` (dict of str to str, or
    None; a key the publisher repeated keeps its last value), ``reply`` (the
    topic to answer on, or None), ``retained`` (True when it comes from the
    broker's retained store rather than a live publish), ``sid`` (the
    subscription's id on the wire).
    """

    __slots__ = ("topic", "data", "reply", "headers", "retained", "sid", "_conn", "_size")

    def __init__(self, conn: Connection, sid: int, topic: str, data: bytes,
                 reply: str | None, headers: dict[str, str] | None,
                 retained: bool, size: int) -> None:
        self._conn = conn
        self.sid = sid
        self.topic = topic
        self.data = data
        self.reply = reply
        self.headers = headers
        self.retained = retained
        self._size = size

    async def respond(self, data: bytes = b"", *, headers: P.Headers | None = None) -> None:
        """Publishes data to this message's reply topic; TernError if it has
        none."""
        if self.reply is None:
            raise TernError("the message has no reply topic")
        if headers is None:
            await self._conn._publish_reply(self.reply, data)
        else:
            await self._conn.publish(self.reply, data, headers=headers)

    def __repr__(self) -> str:
        extra = ""
        if self.reply is not None:
            extra += f" reply={self.reply!r}"
        if self.headers:
            extra += f" headers={self.headers!r}"
        if self.retained:
            extra += " retained"
        return f"<Msg {self.topic!r} {len(self.data)} bytes{extra}>"


MsgCallback = Callable[[Msg], Awaitable[Any] | Any]


def _expire(fut: asyncio.Future[Any], topic: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(TernTimeoutError(f"no reply on {topic!r} within {timeout} s"))


def _call(cb: Callable[..., Any], *args: Any) -> Any:
    """Calls a user callback that may be a plain function or a coroutine
    function; returns the awaitable or None."""
    r = cb(*args)
    return r if inspect.isawaitable(r) else None


class Subscription:
    """A subscription: an async iterator of :class:`Msg`, an async context
    manager (unsubscribes on exit) and an awaitable (``await`` returns it once
    the broker has it live).

    Messages wait in a bounded local queue (``queue_msgs`` messages,
    ``queue_bytes`` bytes). When it is full the connection stops reading its
    socket until the application has taken half of it, so under the ``block``
    policy a slow consumer holds the publisher back through the broker.
    ``dropped`` counts the messages the broker reported dropped (DROPPED);
    ``delivered`` the messages received.
    """

    def __init__(self, conn: Connection, sid: int, pattern: str, *, queue: str | None,
                 max_msgs: int, max_bytes: int, policy: str | None, queue_msgs: int,
                 queue_bytes: int, cb: MsgCallback | None, concurrency: int,
                 on_dropped: Callable[[Subscription, int], Any] | None) -> None:
        self._conn = conn
        self.sid = sid
        self.pattern = pattern
        self.queue = queue
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self.policy = policy
        self.queue_msgs = max(1, queue_msgs)
        self.queue_bytes = max(1, queue_bytes)
        self.dropped = 0
        self.delivered = 0
        self._on_dropped = on_dropped
        self._cb = cb
        self._concurrency = max(1, concurrency)
        self._q: collections.deque[Msg] = collections.deque()
        self._qbytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._full = False
        self._closed = False  # no more messages will be queued
        self._error: BaseException | None = None
        self._total: int | None = None  # unsubscribe(after=N): end after N in total
        self._live: asyncio.Future[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        # A plain-function handler run in the read path (reply()).
        self._inline: Callable[[Msg], None] | None = None

    # -- receiving ---------------------------------------------------------

    def _take(self) -> Msg:
        msg = self._q.popleft()
        self._qbytes -= msg._size
        if self._full and len(self._q) <= self.queue_msgs // 2 and self._qbytes <= self.queue_bytes // 2:
            self._unfull()
        return msg

    def _unfull(self) -> None:
        if self._full:
            self._full = False
            self._conn._sub_unfull()

    def pending(self) -> tuple[int, int]:
        """(messages, bytes) waiting in the local queue."""
        return len(self._q), self._qbytes

    def __aiter__(self) -> AsyncIterator[Msg]:
        return self

    async def __anext__(self) -> Msg:
        while True:
            if self._q:
                return self._take()
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            fut = self._waiter = self._conn._loop.create_future()
            try:
                await fut
            finally:
                if self._waiter is fut:
                    self._waiter = None

    async def next_msg(self, timeout: float | None = None) -> Msg:
        """The next message; TernTimeoutError after timeout seconds,
        ConnectionClosedError (or the loss's error) once the subscription has
        ended and its queue is empty."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except StopAsyncIteration:
            raise ConnectionClosedError("the subscription has ended") from None
        except TimeoutError as e:
            if isinstance(e, TernError):
                raise
            raise TernTimeoutError(f"no message on {self.pattern!r} within {timeout} s") from None

    def _end(self, error: BaseException | None = None, discard: bool = False) -> None:
        self._closed = True
        if self._live is not None and not self._live.done():
            self._live.set_result(None)
        if error is not None and self._error is None:
            self._error = error
        if discard:
            self._q.clear()
            self._qbytes = 0
            self._unfull()
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # -- lifecycle ---------------------------------------------------------

    async def _wait_live(self) -> Subscription:
        if self._live is not None:
            await self._live
        return self

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self._wait_live().__await__()

    async def __aenter__(self) -> Subscription:
        return await self._wait_live()

    async def __aexit__(self, *exc: Any) -> None:
        await self.unsubscribe()

    async def unsubscribe(self, after: int | None = None) -> None:
        """Ends the subscription now (queued messages are discarded), or with
        ``after=N`` once N messages in total have been delivered (the broker
        stops after N; iteration ends when they have been taken)."""
        conn = self._conn
        if after is not None:
            if after <= 0:
                raise ValueError("after must be positive")
            self._total = after
            if self.delivered >= after:
                conn._forget(self)
                self._end()
                return
            if conn._subs.get(self.sid) is self:
                conn._write(P.encode_unsub(self.sid, after - self.delivered))
            return
        if conn._subs.get(self.sid) is self:
            conn._forget(self)
            if conn._state is not _CLOSED:
                conn._write(P.encode_unsub(self.sid))
        self._end(discard=True)
        await self._stop_dispatch(cancel=True)

    async def _stop_dispatch(self, cancel: bool) -> None:
        t = self._dispatcher
        if t is None:
            return
        if cancel and t is not asyncio.current_task():
            t.cancel()
        if t is not asyncio.current_task():
            await asyncio.gather(t, return_exceptions=True)
        hs = [h for h in self._handlers if h is not asyncio.current_task()]
        if cancel:
            for h in hs:
                h.cancel()
        if hs:
            await asyncio.gather(*hs, return_exceptions=True)

    # -- callback mode -----------------------------------------------------

    async def _dispatch(self) -> None:
        cb = self._cb
        assert cb is not None
        if self._concurrency == 1:  # in order, one at a time
            async for msg in self:
                await self._invoke(cb, msg)
            return
        sem = asyncio.Semaphore(self._concurrency)
        async for msg in self:
            await sem.acquire()
            t = self._conn._loop.create_task(self._invoke(cb, msg, sem))
            self._handlers.add(t)
            t.add_done_callback(self._handlers.discard)

    async def _invoke(self, cb: MsgCallback, msg: Msg,
                      sem: asyncio.Semaphore | None = None) -> None:
        """Runs one handler; its exception is reported, never swallowed."""
        try:
            r = _call(cb, msg)
            if r is not None:
                await r
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._conn._report(e)
        finally:
            if sem is not None:
                sem.release()

    def __repr__(self) -> str:
        return f"<Subscription sid={self.sid} {self.pattern!r}>"


class _Breaker:
    __slots__ = ("fails", "open_until", "probing")

    def __init__(self) -> None:
        self.fails = 0
        self.open_until = 0.0
        self.probing = False


class _Server:
    __slots__ = ("host", "port", "tls", "fails", "down_until")

    def __init__(self, host: str, port: int, tls: bool = False) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.fails = 0
        self.down_until = 0.0

    def __repr__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(url: str | list[str], tls: bool = False) -> list[_Server]:
    """Server addresses from "tern://host:port", "tls://host:port",
    "host:port", "host", "[v6addr]:port", a comma-separated list of them,
    or a list. "tls://" makes that server TLS, "tern://" plaintext; one
    without a scheme takes ``tls``."""
    items = url if isinstance(url, list) else url.split(",")
    out = []
    for raw in items:
        s = raw.strip()
        use_tls = tls
        if s.startswith("tern://"):
            s = s[7:]
            use_tls = False
        elif s.startswith("tls://"):
            s = s[6:]
            use_tls = True
        s = s.rstrip("/")
        if not s:
            raise ValueError(f"malformed server url {raw!r}")
        port = P_DEFAULT_PORT
        if s.startswith("["):
            host, sep, rest = s[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"malformed server url {raw!r}")
            if rest:
                port = int(rest[1:])
        elif s.count(":") == 1:
            host, _, p = s.partition(":")
            port = int(p)
        else:
            host = s
        if not host or not 0 < port < 65536:
            raise ValueError(f"malformed server url {raw!r}")
        out.append(_Server(host, port, use_tls))
    return out


def make_tls_context(*, ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None,
                insecure_skip_verify: bool = False) -> ssl.SSLContext:
    """The client's TLS policy as an :class:`ssl.SSLContext` (what
    :func:`connect` builds from its ``tls_*`` options): TLS 1.2 at least,
    the server's certificate checked against ``ca_file`` (PEM; None: the
    system's trust store) and against the server's name, ``cert_file`` and
    ``key_file`` (PEM) the client's certificate for mutual TLS.
    ``insecure_skip_verify`` accepts any certificate for any name: the
    traffic is encrypted but anyone in the middle can read and change it;
    for tests only, and logged as a warning on the "tern" logger.
    Raises TLSError when a file cannot be loaded."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise TLSError(f"TLS: CA file {ca_file}: {_ssl_reason(e)}") from e
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if key_file is not None and cert_file is None:
        raise TLSError("TLS: tls_key_file without tls_cert_file")
    if cert_file is not None:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as e:
            raise TLSError(f"TLS: certificate {cert_file}, key {key_file or cert_file}: "
                           f"{_ssl_reason(e)}") from e
    if insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _log.warning("tls_insecure_skip_verify: the server's certificate and name are NOT "
                     "checked; the traffic is encrypted but anyone in the middle can read "
                     "and change it. For tests only.")
    return ctx


_SSL_TAIL = re.compile(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$")

# OpenSSL's reasons for a record that is not TLS (what a plaintext server's
# HELLO looks like to a TLS client).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
                      "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL", "RECORD_LENGTH_MISMATCH"})


def _ssl_reason(e: BaseException) -> str:
    """OpenSSL's words for e: "tlsv1 alert unknown ca", "certificate verify
    failed: Hostname mismatch, ...", not the "[SSL: ...] (_ssl.c:...)"
    wrapping."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason).lower().replace("_", " ")
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return _SSL_TAIL.sub("", str(e)) or type(e).__name__


def _tls_error(e: ssl.SSLError, srv: _Server, handshake: bool) -> TLSError:
    """The TLSError for an ssl failure on the connection to srv."""
    what = f"TLS handshake with {srv}" if handshake else f"TLS with {srv}"
    if isinstance(e, ssl.SSLError) and e.reason in _NOT_TLS:
        err = TLSError(f"{what}: not TLS: the server did not answer in TLS "
                       f"(a plaintext port? use tern:// for it): {_ssl_reason(e)}")
    else:
        err = TLSError(f"{what}: {_ssl_reason(e)}")
    err.__cause__ = e
    return err


P_DEFAULT_PORT = 7421

_CONNECTING, _CONNECTED, _RECONNECTING, _CLOSED = 0, 1, 2, 3


def _fail_quietly(f: asyncio.Future[Any], err: BaseException) -> None:
    """Fails a handshake future that nobody may await any more (the
    handshake stopped at an earlier step) without asyncio logging it."""
    if not f.done():
        f.set_exception(err)
        f.exception()


_RX_SIZE = 256 * 1024


class _Proto(asyncio.BufferedProtocol):
    """One TCP connection's protocol; forwards to its Connection.

    A BufferedProtocol: the transport reads into one preallocated buffer per
    connection, and the decoder copies out what came. A plain Protocol is
    handed a new bytes object per read that asyncio allocates at its full
    256 KiB read size; until glibc has raised its mmap threshold (which
    depends on what else the program allocated and freed) each such read
    maps and unmaps 256 KiB, about 10 us, more than the rest of receiving a
    reply."""

    def __init__(self, conn: Connection, srv: _Server) -> None:
        self.conn = conn
        self.srv = srv
        self.rx = memoryview(bytearray(_RX_SIZE))
        self.transport: asyncio.Transport | None = None
        self.decoder = P.Decoder(conn._on_msg, self._on_frame)
        loop = conn._loop
        self.hello: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.ok: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.established = False
        self.reason: BaseException | None = None
        self.last_rx = loop.time()
        self.paused = False  # reading paused because a subscription is full

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.conn._outbound_limit)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.rx

    def buffer_updated(self, nbytes: int) -> None:
        self.last_rx = self.conn._loop.time()
        try:
            self.decoder.feed(self.rx[:nbytes])
        except TernError as e:
            self.fail(e)

    def fail(self, err: BaseException) -> None:
        """Ends this connection with err as the reason."""
        if self.reason is None:
            self.reason = err
        for f in (self.hello, self.ok):
            _fail_quietly(f, err)
        if self.transport is not None:
            self.transport.abort()

    def _on_frame(self, f: list[Any]) -> bool:
        t = f[0]
        if not self.established:
            if t == P.HELLO:
                if self.hello.done():
                    raise ProtocolError("a second HELLO")
                self.hello.set_result(f[1])
                return False
            if t == P.ERR:
                # Also before HELLO: a TLS-only broker answers a plaintext
                # client with ERR 1 "TLS required" and no HELLO.
                self.fail(error_from_wire(f[1], f[2]))
                return True
            if not self.hello.done():
                raise ProtocolError(f"frame type {t} before HELLO")
            if t == P.OK:
                if not self.ok.done():
                    self.ok.set_result(None)
                return False
            if t == P.PING:
                if self.transport is not None:
                    self.transport.write(P.PONG_FRAME)
                return False
            if t == P.GOAWAY:
                self.fail(GoAwayError(f[1]))
                return True
            raise ProtocolError(f"frame type {t} before the CONNECT was answered")
        return self.conn._on_frame(self, f)

    def pause_writing(self) -> None:
        if self.conn._proto is self:
            self.conn._wpaused = True
            self.conn._wready.clear()

    def resume_writing(self) -> None:
        if self.conn._proto is self:
            self.conn._wpaused = False
            self.conn._wready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError):
            exc = _tls_error(exc, self.srv, not self.established)
        if self.reason is None:
            self.reason = exc if exc is not None else ConnectionClosedError(
                "the server closed the connection")
        for f in (self.hello, self.ok):
            _fail_quietly(f, self.reason)
        if not self.closed.done():
            self.closed.set_result(None)
        self.conn._on_lost(self)


class Connection:
    """A connection to a tern broker; made by :func:`connect`.

    Use it as ``async with await tern.connect(...) as nc:`` or call
    :meth:`close` (or :meth:`drain`) yourself. All methods must be called on
    the loop the connection was made on.

    Attributes: ``server_info`` (the broker's HELLO map), ``max_payload``,
    ``last_error`` (the last error reported asynchronously), ``status``.
    """

    def __init__(self, servers: list[_Server], *, name: str | None, user: str | None,
                 password: str | None, token: str | None, echo: bool,
                 connect_timeout: float, reconnect: bool, reconnect_initial: float,
                 reconnect_max: float, reconnect_jitter: float, max_reconnect_attempts: int,
                 server_failures_before_cooldown: int, server_cooldown: float,
                 outbound_limit: int, offline_limit: int, publish_timeout: float | None,
                 heartbeat: float | None, inbox_prefix: str, breaker_threshold: int,
                 breaker_cooldown: float, breaker_max_topics: int,
                 queue_msgs: int, queue_bytes: int,
                 on_status: Callable[[Status, BaseException | None], Any] | None,
                 on_error: Callable[[BaseException], Any] | None,
                 tls_context: ssl.SSLContext | None = None,
                 tls_server_name: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._servers = servers
        self._tls_ctx = tls_context
        self._tls_name = tls_server_name
        self._server_idx = 0
        self._connect_frame = P.encode_connect(name=name, user=user, password=password,
                                               token=token, echo=echo)
        self._connect_timeout = connect_timeout
        self._reconnect = reconnect
        self._rc_initial = reconnect_initial
        self._rc_max = reconnect_max
        self._rc_jitter = reconnect_jitter
        self._rc_attempts = max_reconnect_attempts
        self._srv_fail_limit = server_failures_before_cooldown
        self._srv_cooldown = server_cooldown
        self._outbound_limit = outbound_limit
        self._offline_limit = offline_limit
        self._publish_timeout = publish_timeout
        self._heartbeat_override = heartbeat
        self._inbox_prefix = inbox_prefix
        self._breaker_threshold = breaker_threshold
        self._breaker_cooldown = breaker_cooldown
        self._breaker_max = breaker_max_topics
        self._queue_msgs = queue_msgs
        self._queue_bytes = queue_bytes
        self._on_status = on_status
        self._on_error = on_error

        self._state = _CONNECTING
        self._proto: _Proto | None = None
        self._transport: asyncio.Transport | None = None
        self._wbuf = bytearray()
        self._flush_pending = False
        self._wpaused = False
        self._wready = asyncio.Event()
        self._wready.set()
        self._offline = bytearray()
        self._subs: dict[int, Subscription] = {}
        self._next_sid = 1
        self._nfull = 0
        self._pongs: collections.deque[list[Any]] = collections.deque()  # [fut|None, held]
        self._acks: dict[int, list[Any]] = {}  # id -> [fut|None, held, req_n|None]
        self._next_ack = 0
        self._reqs: dict[int, asyncio.Future[Msg]] = {}
        self._next_req = 0
        # Request timeouts: one timer per connection, armed for the earliest
        # deadline, rather than a timer handle per request (n -> deadline).
        self._req_due: dict[int, tuple[float, str, float]] = {}
        self._req_heads: dict[str, bytes] = {}
        self._inbox_b = b""
        self._req_timer: asyncio.TimerHandle | None = None
        self._req_timer_at = 0.0
        self._inbox: str | None = None
        self._inbox_sub: Subscription | None = None
        self._inbox_sid = -1
        self._breakers: dict[str, _Breaker] = {}
        self._prefixes: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hb_task: asyncio.Task[None] | None = None
        self._rc_task: asyncio.Task[None] | None = None
        self._closed_fut: asyncio.Future[None] = self._loop.create_future()
        self.server_info: dict[str, Any] = {}
        self.max_payload = P.DEFAULT_MAX_PAYLOAD
        self.last_error: BaseException | None = None
        self.status = Status.DISCONNECTED
        self.reconnects = 0

    # -- context manager ---------------------------------------------------

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def is_connected(self) -> bool:
        """True while a broker connection is up and accepted."""
        return self._state == _CONNECTED

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed for good."""
        return self._state == _CLOSED

    @property
    def connected_server(self) -> str | None:
        """"host:port" of the broker connected to, or None."""
        if self._state != _CONNECTED:
            return None
        return repr(self._servers[self._server_idx])

    # -- tasks and callbacks -----------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        t = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self._report(t.exception())  # type: ignore[arg-type]

    def _report(self, err: BaseException) -> None:
        """An asynchronous error: kept in last_error, given to on_error."""
        self.last_error = err
        if self._on_error is not None:
            try:
                r = _call(self._on_error, err)
                if r is not None:
                    self._spawn(r)
            except Exception:
                pass

    def _set_status(self, s: Status, err: BaseException | None = None) -> None:
        self.status = s
        if self._on_status is not None:
            try:
                r = _call(self._on_status, s, err)
                if r is not None:
                    self._spawn(r)
            except Exception as e:
                self._report(e)

    # -- connecting --------------------------------------------------------

    async def _first_connect(self) -> None:
        last: BaseException | None = None
        for i in range(len(self._servers)):
            self._server_idx = i
            try:
                await self._open(self._servers[i])
            except (OSError, TernError, TimeoutError) as e:
                last = e
                continue
            self._set_status(Status.CONNECTED)
            return
        self._state = _CLOSED
        self.status = Status.CLOSED
        self._closed_fut.set_result(None)
        assert last is not None
        if isinstance(last, TernError):
            raise last
        if isinstance(last, TimeoutError):
            raise ConnectTimeoutError(f"connect to {self._servers[-1]} timed out") from None
        raise last

    async def _open(self, srv: _Server) -> None:
        """Connects to srv, handshakes, re-sends the subscriptions and the
        offline buffer, and makes the connection current."""
        proto: _Proto | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if srv.tls:
                    # A new handshake each time, inside the connect timeout
                    # (asyncio's own handshake limit set just past it).
                    assert self._tls_ctx is not None
                    _, p = await self._loop.create_connection(
                        lambda: _Proto(self, srv), srv.host, srv.port, ssl=self._tls_ctx,
                        server_hostname=self._tls_name or srv.host,
                        ssl_handshake_timeout=self._connect_timeout + 1.0)
                else:
                    _, p = await self._loop.create_connection(lambda: _Proto(self, srv),
                                                              srv.host, srv.port)
                proto = p
                info = await proto.hello
                if info.get("proto") != 1:
                    raise ProtocolError(f"the server speaks protocol {info.get('proto')}, not 1")
                mf = info.get("max_frame") or P.DEFAULT_MAX_FRAME
                proto.decoder.max_frame = max(mf, 64 * 1024)
                tr = proto.transport
                assert tr is not None
                tr.write(self._connect_frame)
                await proto.ok
        except BaseException as e:
            if proto is not None:
                if proto.transport is not None:
                    proto.transport.abort()
                if isinstance(e, TimeoutError) and proto.reason is not None:
                    raise proto.reason from None
            if isinstance(e, ssl.SSLError):
                raise _tls_error(e, srv, True) from e
            if srv.tls and isinstance(e, (ConnectionResetError, ConnectionAbortedError)) \
                    and proto is None:
                # The server hung up in the middle of the handshake.
                raise TLSError(f"TLS handshake with {srv}: the server closed the "
                               f"connection ({e})") from e
            if isinstance(e, TimeoutError):
                raise ConnectTimeoutError(f"no handshake with {srv} within "
                                          f"{self._connect_timeout} s") from None
            raise
        if self._state == _CLOSED:
            tr.abort()
            raise ConnectionClosedError("closed while connecting")
        srv.fails = 0
        self.server_info = info
        self.max_payload = info.get("max_payload") or P.DEFAULT_MAX_PAYLOAD
        proto.established = True
        proto.decoder.on_puback = self._on_puback
        self._proto = proto
        self._transport = tr
        self._wpaused = False
        self._wready.set()
        # Subscriptions first, then what was buffered while offline.
        out = bytearray()
        for sub in self._subs.values():
            out += P.encode_sub(sub.sid, sub.pattern, queue=sub.queue, max_msgs=sub.max_msgs,
                                max_bytes=sub.max_bytes, overflow=sub.policy)
            if sub._total is not None:
                out += P.encode_unsub(sub.sid, sub._total - sub.delivered)
        out += self._wbuf
        out += self._offline
        self._wbuf = bytearray()
        self._offline = bytearray()
        for p in self._pongs:
            p[1] = False
        for a in self._acks.values():
            a[1] = False
        self._state = _CONNECTED
        if out:
            tr.write(out)
        for sub in self._subs.values():  # made while disconnected: live after a PONG
            if sub._live is not None and not sub._live.done():
                self._spawn(self._confirm(sub))
        hb = self._heartbeat_override
        if hb is None:
            hb = (info.get("heartbeat_ms") or 0) / 1000.0
        if hb > 0:
            self._hb_task = self._spawn(self._heartbeat(proto, hb))

    async def _heartbeat(self, proto: _Proto, period: float) -> None:
        """PINGs a broker silent for one period; a broker silent for two is
        stale and the connection is dropped (then reconnected)."""
        loop = self._loop
        pinged = False
        while self._proto is proto:
            await asyncio.sleep(period / 2)
            if proto.paused:  # we are not reading: silence says nothing
                proto.last_rx = loop.time()
                continue
            idle = loop.time() - proto.last_rx
            if idle >= 2 * period:
                proto.fail(StaleConnectionError(f"no frame from the broker for {idle:.1f} s"))
                return
            if idle >= period and self._state == _CONNECTED:
                if not pinged:
                    self._pongs.append([None, False])
                    self._write(P.PING_FRAME)
                    pinged = True
            else:
                pinged = False

    def _on_lost(self, proto: _Proto) -> None:
        if self._proto is not proto:
            return
        reason = proto.reason
        self._proto = None
        self._transport = None
        self._wbuf = bytearray()
        self._nfull = sum(1 for s in self._subs.values() if s._full)
        if self._hb_task is not None:
            self._hb_task.cancel()
            self._hb_task = None
        if self._state == _CLOSED:
            return
        going = self._reconnect
        self._fail_inflight(DisconnectedError(f"connection lost: {reason}") if going
                            else ConnectionClosedError(f"connection lost: {reason}"),
                            held_too=not going)
        self._set_status(Status.DISCONNECTED, reason)
        if reason is not None and not isinstance(reason, ConnectionClosedError):
            self._report(reason)
        if going:
            self._state = _RECONNECTING
            self._wready.set()
            self._rc_task = self._spawn(self._reconnect_loop(reason))
        else:
            self._spawn(self._shutdown(ConnectionClosedError(f"connection lost: {reason}")))

    def _fail_inflight(self, err: BaseException, held_too: bool) -> None:
        keep: collections.deque[list[Any]] = collections.deque()
        for p in self._pongs:
            if p[1] and not held_too:
                keep.append(p)
            elif p[0] is not None and not p[0].done():
                p[0].set_exception(err)
        self._pongs = keep
        held_reqs = set()
        for aid in list(self._acks):
            a = self._acks[aid]
            if a[1] and not held_too:
                if a[2] is not None:
                    held_reqs.add(a[2])
                continue
            del self._acks[aid]
            if a[0] is not None and not a[0].done():
                a[0].set_exception(err)
        # Requests already sent (their PUBACK may have come) fail too; those
        # still in the offline buffer complete on the next connection.
        for n, rf in self._reqs.items():
            if n not in held_reqs and not rf.done():
                rf.set_exception(err)

    def _backoff(self, attempt: int) -> float:
        d = min(self._rc_max, self._rc_initial * (2 ** min(attempt - 1, 30)))
        return d - d * self._rc_jitter * random.random()

    def _pick_server(self) -> tuple[_Server | None, float]:
        """The next server not cooling down (moving on from the current
        one), or None and how long until one is."""
        n = len(self._servers)
        now = self._loop.time()
        for k in range(1, n + 1):
            i = (self._server_idx + k) % n
            if self._servers[i].down_until <= now:
                self._server_idx = i
                return self._servers[i], 0.0
        return None, min(s.down_until for s in self._servers) - now

    async def _reconnect_loop(self, reason: BaseException | None) -> None:
        attempt = 0
        while self._state == _RECONNECTING:
            attempt += 1
            if 0 <= self._rc_attempts < attempt:
                await self._shutdown(ConnectionClosedError(
                    f"gave up reconnecting after {attempt - 1} attempts: {reason}"))
                return
            self._set_status(Status.RECONNECTING, reason)
            await asyncio.sleep(self._backoff(attempt))
            srv, wait = self._pick_server()
            if srv is None:  # every server is cooling down
                await asyncio.sleep(wait)
                srv, _ = self._pick_server()
                if srv is None:
                    continue
            try:
                await self._open(srv)
            except (OSError, TernError, TimeoutError) as e:
                reason = e
                srv.fails += 1
                if self._srv_fail_limit > 0 and srv.fails >= self._srv_fail_limit:
                    srv.down_until = self._loop.time() + self._srv_cooldown
                    srv.fails = 0
                continue
            self.reconnects += 1
            self._rc_task = None
            self._set_status(Status.CONNECTED)
            return

    # -- frames in -----------------------------------------------------------

    def _on_msg(self, sid: int, topic: str, data: bytes, reply: str | None,
                headers: dict[str, str] | None, retained: bool, size: int) -> bool:
        # The hot path of receiving: Subscription._push written out here to
        # save a call per message.
        if sid == self._inbox_sid:
            # A message on the inbox: straight to its request (no queue).
            inbox = self._inbox
            if inbox is not None and sid in self._subs:
                tail = topic[len(inbox):]
                if tail.isdecimal():  # what int() takes (isdigit() passes "²")
                    f = self._reqs.get(int(tail))
                    if f is not None and not f.done():
                        f.set_result(Msg(self, sid, topic, data, reply, headers, retained, size))
            return False
        sub = self._subs.get(sid)
        if sub is None:
            return False
        if sub._inline is not None:
            sub.delivered += 1
            if sub._total is not None and sub.delivered >= sub._total:
                self._forget(sub)
                sub._end()
            try:
                sub._inline(Msg(self, sid, topic, data, reply, headers, retained, size))
            except Exception as e:
                self._report(e)
            return False
        q = sub._q
        q.append(Msg(self, sid, topic, data, reply, headers, retained, size))
        sub._qbytes += size
        sub.delivered += 1
        if sub._total is not None and sub.delivered >= sub._total:
            self._forget(sub)
            sub._closed = True
        w = sub._waiter
        if w is not None:
            sub._waiter = None
            if not w.done():
                w.set_result(None)
        if len(q) >= sub.queue_msgs or sub._qbytes >= sub.queue_bytes:
            if not sub._full:
                sub._full = True
                self._nfull += 1
            p = self._proto
            if p is not None and p.transport is not None and not p.paused:
                p.paused = True
                p.transport.pause_reading()
            return True
        return False

    def _sub_unfull(self) -> None:
        self._nfull -= 1
        if self._nfull > 0:
            return
        p = self._proto
        if p is not None and p.paused and p.transport is not None:
            p.paused = False
            p.last_rx = self._loop.time()
            try:
                p.decoder.resume()
            except TernError as e:
                p.fail(e)
                return
            if not p.decoder.stopped and not p.paused:
                p.transport.resume_reading()

    def _on_frame(self, proto: _Proto, f: list[Any]) -> bool:
        t = f[0]
        if t == P.PING:
            self._write(P.PONG_FRAME)
        elif t == P.PONG:
            if self._pongs:
                fut = self._pongs.popleft()[0]
                if fut is not None and not fut.done():
                    fut.set_result(None)
        elif t == P.PUBACK:
            self._on_puback(f[1], f[2])
        elif t == P.DROPPED:
            sub = self._subs.get(f[1])
            if sub is not None:
                sub.dropped += f[2]
                if sub._on_dropped is not None:
                    try:
                        r = _call(sub._on_dropped, sub, f[2])
                        if r is not None:
                            self._spawn(r)
                    except Exception as e:
                        self._report(e)
        elif t == P.ERR:
            err = error_from_wire(f[1], f[2])
            if f[1] in FATAL_CODES:
                proto.reason = err  # the broker closes next
            else:
                self._report(err)
                self._sub_error(err)
        elif t == P.GOAWAY:
            # The broker stops reading: buffer from now on, and let the close
            # come (then reconnect, to the next server if there is one).
            proto.reason = GoAwayError(f[1])
            self._state = _RECONNECTING if self._reconnect else self._state
            if self._reconnect:
                self._offline = self._wbuf + self._offline
                self._wbuf = bytearray()
        elif t == P.OK:
            pass
        elif t == P.HELLO:
            raise ProtocolError("HELLO after the handshake")
        return False

    def _on_puback(self, aid: int, receivers: int) -> bool:
        """A PUBACK, from the decoder directly once the connection is up."""
        a = self._acks.pop(aid, None)
        if a is not None:
            if a[2] is not None:
                if receivers == 0:
                    rf = self._reqs.get(a[2])
                    if rf is not None and not rf.done():
                        rf.set_exception(NoRespondersError("no responders"))
            elif a[0] is not None and not a[0].done():
                a[0].set_result(receivers)
        return False

    def _sub_error(self, err: TernError) -> None:
        """A non-fatal ERR about a subscription fails the subscribe() being
        confirmed (the broker answers in order, before its PONG)."""
        if isinstance(err, (InvalidTopicError, DuplicateSidError, TooManySubscriptionsError)):
            for sub in self._subs.values():
                if sub._live is not None and not sub._live.done():
                    sub._live.set_exception(err)
                    sub._live.exception()
                    self._forget(sub)
                    sub._end(err)
                    break

    # -- frames out ----------------------------------------------------------

    def _write(self, frame: bytes | bytearray) -> None:
        """Queues a frame. The first frame of a loop turn goes to the socket
        at once (no added latency for a lone request or reply); the ones after
        it in the same turn are batched into one write at the end of the turn
        or every 64 KiB (while a batch is pending the buffer is never empty,
        so the order holds)."""
        if self._state == _CONNECTED:
            if not self._flush_pending:
                self._flush_pending = True
                self._loop.call_soon(self._flush_cb)
                if self._transport is not None:
                    self._transport.write(frame)
                    return
            w = self._wbuf
            w += frame
            if len(w) >= _FLUSH_AT:
                self._flush_now()
        elif self._state == _CLOSED:
            raise ConnectionClosedError("the connection is closed")
        else:
            if len(self._offline) + len(frame) > self._offline_limit and self._offline:
                raise OutboundBufferFullError(
                    f"offline buffer full ({len(self._offline)} bytes) while reconnecting")
            self._offline += frame

    def _write_now(self, frame: bytes) -> None:
        """Writes a lone frame (a request, a reply) straight to the socket
        when nothing is batched, without arming the end-of-turn flush: one
        loop turn less per request. Otherwise queues it like _write."""
        if self._state == _CONNECTED and not self._flush_pending and self._transport is not None:
            self._transport.write(frame)
        else:
            self._write(frame)

    def _flush_cb(self) -> None:
        self._flush_pending = False
        self._flush_now()

    def _flush_now(self) -> None:
        w = self._wbuf
        if w and self._transport is not None and self._state == _CONNECTED:
            self._wbuf = bytearray()
            self._transport.write(w)

    async def _wait_room(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                while self._wpaused and self._state == _CONNECTED:
                    await self._wready.wait()
        except TimeoutError:
            raise PublishTimeoutError(
                f"publish waited {timeout} s for the outbound buffer to drain "
                "(the broker is holding this publisher back)") from None

    def _prefix(self, topic: str) -> bytes:
        pre = self._prefixes.get(topic)
        if pre is None:
            raw = P.check_topic(topic)
            if topic[0] == "$":
                raise PermissionDeniedError(f"topics beginning with $ are the server's: {topic!r}")
            if len(self._prefixes) >= 4096:
                self._prefixes.clear()
            pre = self._prefixes[topic] = P.topic_prefix(raw)
        return pre

    async def publish(self, topic: str, data: bytes = b"", *, headers: P.Headers | None = None,
                      reply: str | None = None, retain: bool = False, ttl_ms: int = 0,
                      ack: bool = False, timeout: float | None = -1.0) -> int | None:
        """Publishes data (bytes) to topic.

        Backpressure: when the connection's outbound buffer is above its
        high-water mark (``outbound_limit``), the call waits until it drains,
        at most ``timeout`` seconds (default: the connection's
        ``publish_timeout``; None = forever), then raises
        PublishTimeoutError. A publish that raises or is cancelled while
        waiting for room has sent nothing.

        ``headers``: a mapping of str to str, or (key, value) pairs;
        ``reply``: a reply topic; ``retain``: replace the topic's retained
        message (empty data deletes it); ``ttl_ms``: the retained message's
        expiry. ``ack=True`` waits for the broker's PUBACK and returns the
        number of subscriptions the message reached (0: nobody listened;
        TernTimeoutError after ``timeout``, the message possibly delivered);
        otherwise returns None as soon as the message is queued for sending.

        While the client is reconnecting, the message goes to the offline
        buffer (sent after the subscriptions once reconnected);
        OutboundBufferFullError when that is full.
        """
        pre = self._prefixes.get(topic)
        if pre is None:
            pre = self._prefix(topic)
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("data must be bytes, not str (encode it)")
            data = bytes(data)
        n = len(data)
        if n > self.max_payload:
            raise PayloadTooLargeError(f"payload of {n} bytes above max_payload {self.max_payload}")
        if self._wpaused:
            await self._wait_room(self._publish_timeout if timeout == -1.0 else timeout)
        if headers is None and reply is None and not retain and not ttl_ms and not ack:
            if self._flush_pending and self._state == _CONNECTED:  # hot path: batch
                w = self._wbuf
                w += _pub_head(pre, n)
                w += data
                if len(w) >= _FLUSH_AT:
                    self._flush_now()
            else:
                self._write(_pub_head(pre, n) + data)
            return None
        if reply is not None:
            P.check_topic(reply, what="reply topic")
        if not ack:
            self._write(P.encode_pub(topic, data, reply=reply, headers=headers,
                                     retain=retain, ttl_ms=ttl_ms))
            return None
        aid = self._next_ack
        frame = P.encode_pub(topic, data, reply=reply, headers=headers, ack=aid,
                             retain=retain, ttl_ms=ttl_ms)
        fut: asyncio.Future[int] = self._loop.create_future()
        self._write(frame)
        self._next_ack += 1
        self._acks[aid] = [fut, self._state != _CONNECTED, None]
        t = self._publish_timeout if timeout == -1.0 else timeout
        try:
            async with asyncio.timeout(t):
                return await fut
        except TimeoutError:
            raise TernTimeoutError(f"no PUBACK within {t} s") from None
        finally:
            self._acks.pop(aid, None)

    async def _publish_reply(self, topic: str, data: bytes) -> None:
        """publish() to a reply topic that came in a MSG: the broker has
        validated it already (it refuses a PUB whose reply is not a valid
        topic), and each is used once, so it is neither checked again nor
        cached."""
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("data must be bytes, not str (encode it)")
            data = bytes(data)
        if len(data) > self.max_payload:
            raise PayloadTooLargeError(f"payload above max_payload {self.max_payload}")
        if self._wpaused:
            await self._wait_room(self._publish_timeout)
        self._write_now(_reply_frame(topic.encode(), data))

    async def flush(self, timeout: float | None = 10.0) -> None:
        """Sends a PING and waits for its PONG: once it returns, the broker
        has handled everything this connection sent before (subscriptions are
        live, publishes routed). TernTimeoutError after timeout seconds."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._write(P.PING_FRAME)
        entry = [fut, self._state != _CONNECTED]
        self._pongs.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            entry[0] = None  # its PONG may still come and must be matched
            raise TernTimeoutError(f"no PONG within {timeout} s") from None
        except asyncio.CancelledError:
            entry[0] = None
            raise

    # -- subscribing -----------------------------------------------------------

    def subscribe(self, pattern: str, *, queue: str | None = None, max_msgs: int = 0,
                  max_bytes: int = 0, policy: str | None = None, queue_msgs: int | None = None,
                  queue_bytes: int | None = None, cb: MsgCallback | None = None,
                  concurrency: int = 1,
                  on_dropped: Callable[[Subscription, int], Any] | None = None) -> Subscription:
        """Subscribes to pattern (``*`` one token, ``>`` the rest).

        Returns a :class:`Subscription` at once (the SUB is on its way);
        ``await`` it or enter it with ``async with`` to wait until the broker
        has it live. ``queue``: join a queue group. ``max_msgs``,
        ``max_bytes``: the broker's pending limits for it (0 = the broker's
        default); ``policy``: what the broker does when they are exceeded:
        ``block`` (default), ``drop_oldest``, ``drop_newest``,
        ``disconnect``. ``queue_msgs``, ``queue_bytes``: bounds of the local
        queue (default: the connection's). ``cb``: a handler (function or
        coroutine function) run for each message by a task the connection
        owns, at most ``concurrency`` at a time (1 keeps the order); without
        it, iterate the subscription. ``on_dropped(sub, count)`` is called for
        each DROPPED notice (``sub.dropped`` counts them in any case).
        """
        if self._state == _CLOSED:
            raise ConnectionClosedError("the connection is closed")
        P.check_topic(pattern, wildcards=True, what="pattern")
        frame = P.encode_sub(0, pattern, queue=queue, overflow=policy)  # validates policy
        del frame
        sid = self._next_sid
        self._next_sid += 1
        sub = Subscription(self, sid, pattern, queue=queue, max_msgs=max_msgs,
                           max_bytes=max_bytes, policy=policy,
                           queue_msgs=queue_msgs or self._queue_msgs,
                           queue_bytes=queue_bytes or self._queue_bytes, cb=cb,
                           concurrency=concurrency, on_dropped=on_dropped)
        self._subs[sid] = sub
        sub._live = self._loop.create_future()
        if self._state == _CONNECTED:
            self._write(P.encode_sub(sid, pattern, queue=queue, max_msgs=max_msgs,
                                     max_bytes=max_bytes, overflow=policy))
            self._spawn(self._confirm(sub))
        # else: the SUB goes out with the others once reconnected, and the
        # subscription is live after the PONG that follows them (_open).
        if cb is not None:
            sub._dispatcher = self._spawn(sub._dispatch())
        return sub

    async def _confirm(self, sub: Subscription) -> None:
        live = sub._live
        assert live is not None
        try:
            await self.flush(timeout=None)
        except TernError:
            pass  # lost before the PONG: the SUB is re-sent on reconnect
        if not live.done():
            live.set_result(None)

    def _forget(self, sub: Subscription) -> None:
        if self._subs.get(sub.sid) is sub:
            del self._subs[sub.sid]
            if sub._full:
                sub._unfull()

    # -- request / reply ---------------------------------------------------

    def _req_head(self, topic: str) -> bytes:
        """``94 03`` + topic: how a request to topic starts (cached)."""
        pre = self._prefix(topic)
        if len(self._req_heads) >= 4096:
            self._req_heads.clear()
        head = self._req_heads[topic] = P.request_head(pre)
        return head

    def _ensure_inbox(self) -> str:
        if self._inbox is None:
            self._inbox = f"{self._inbox_prefix}.{os.urandom(8).hex()}."
            self._inbox_b = self._inbox.encode()
            self._inbox_sub = self.subscribe(self._inbox + ">")
            self._inbox_sid = self._inbox_sub.sid
        return self._inbox

    def _arm_req_timer(self, due: float) -> None:
        if self._req_timer is not None:
            self._req_timer.cancel()
        self._req_timer_at = due
        self._req_timer = self._loop.call_at(due, self._expire_reqs)

    def _expire_reqs(self) -> None:
        """Fails the requests past their deadline; re-arms for the next."""
        self._req_timer = None
        now = self._loop.time()
        nxt = None
        due = self._req_due
        for n in list(due):
            when, topic, timeout = due[n]
            if when <= now:
                del due[n]
                f = self._reqs.get(n)
                if f is not None:
                    _expire(f, topic, timeout)
            elif nxt is None or when < nxt:
                nxt = when
        if nxt is not None:
            self._arm_req_timer(nxt)

    def _breaker_check(self, topic: str) -> _Breaker | None:
        if self._breaker_threshold <= 0:
            return None
        b = self._breakers.get(topic)
        if b is None:
            if len(self._breakers) >= self._breaker_max:
                victim = min(self._breakers, key=lambda k: self._breakers[k].fails)
                del self._breakers[victim]
            b = self._breakers[topic] = _Breaker()
        if b.open_until:
            if self._loop.time() < b.open_until or b.probing:
                raise CircuitOpenError(f"circuit breaker open for {topic!r}")
            b.probing = True  # half-open: this request is the probe
        return b

    def _breaker_record(self, b: _Breaker, ok: bool) -> None:
        b.probing = False
        if ok:
            b.fails = 0
            b.open_until = 0.0
            return
        b.fails += 1
        if b.open_until or b.fails >= self._breaker_threshold:
            b.open_until = self._loop.time() + self._breaker_cooldown

    async def request(self, topic: str, data: bytes = b"", *, timeout: float = 5.0,
                      headers: P.Headers | None = None) -> Msg:
        """Publishes a request and returns the first reply.

        Replies come through one wildcard inbox subscription per connection.
        NoRespondersError when nobody is subscribed to topic (the broker's
        PUBACK counts 0 receivers); TernTimeoutError after timeout seconds;
        CircuitOpenError at once while the topic's circuit breaker is open
        (``breaker_threshold`` consecutive timeouts or no-responders open it
        for ``breaker_cooldown`` seconds; then one probe request goes
        through, and its outcome closes or re-opens it); DisconnectedError if
        the connection was lost in flight.
        """
        if self._wpaused:
            await self._wait_room(self._publish_timeout)
        b = self._breaker_check(topic) if self._breaker_threshold > 0 else None
        ok = False
        counted = True
        n = self._next_req
        self._next_req += 1
        fut: asyncio.Future[Msg] = self._loop.create_future()
        self._reqs[n] = fut
        aid = -1
        try:
            inbox = self._inbox
            if inbox is None:
                inbox = self._ensure_inbox()
            aid = self._next_ack
            if type(data) is not bytes:
                data = bytes(data)
            if headers is None:
                head = self._req_heads.get(topic)
                if head is None:
                    head = self._req_head(topic)
                frame = _request_frame(head, data, b"%s%d" % (self._inbox_b, n), aid)
            else:
                frame = P.encode_pub(topic, data, reply=f"{inbox}{n}", headers=headers, ack=aid)
            if len(data) > self.max_payload:
                raise PayloadTooLargeError(f"payload above max_payload {self.max_payload}")
            self._write_now(frame)
            self._next_ack += 1
            self._acks[aid] = [None, self._state != _CONNECTED, n]
            # No timer per request: the connection's one timer is armed for
            # the earliest deadline (requests with the same timeout made one
            # after the other never re-arm it).
            due = self._loop.time() + timeout
            self._req_due[n] = (due, topic, timeout)
            if self._req_timer is None or due < self._req_timer_at:
                self._arm_req_timer(due)
            msg = await fut
            ok = True
            if b is not None and not (b.fails or b.open_until or b.probing):
                b = None  # closed and stays closed: nothing to record
            return msg
        except (NoRespondersError, TernTimeoutError):
            raise
        except BaseException:
            counted = False
            raise
        finally:
            self._reqs.pop(n, None)
            self._req_due.pop(n, None)
            self._acks.pop(aid, None)
            if b is not None:
                if counted:
                    self._breaker_record(b, ok)
                else:
                    b.probing = False

    def reply(self, pattern: str, handler: Callable[[Msg], Awaitable[bytes | None] | bytes | None],
              *, queue: str | None = None, concurrency: int = 1) -> Subscription:
        """Serves requests on pattern: ``handler(msg)`` (function or coroutine
        function) returns the reply's bytes (None: no reply), published to
        the request's reply topic. Exceptions go to ``on_error``. Returns
        the subscription (``await`` it to know it is live)."""

        async def serve(msg: Msg) -> None:
            r = handler(msg)
            if inspect.isawaitable(r):
                r = await r
            if r is not None and msg.reply is not None:
                await self._publish_reply(msg.reply, r)

        if concurrency == 1 and not inspect.iscoroutinefunction(handler):
            # A plain function answers from the read path: no task and no
            # loop turn per request. Its reply is queued without waiting for
            # room (one reply per request read, so it stays bounded).
            def answer(msg: Msg) -> None:
                r = handler(msg)
                if type(r) is bytes and msg.reply is not None:
                    self._reply_now(msg.reply, r)
                elif inspect.isawaitable(r):
                    self._spawn(serve_result(msg, r))
                elif r is not None and msg.reply is not None:
                    self._reply_now(msg.reply, r)

            async def serve_result(msg: Msg, r: Awaitable[bytes | None]) -> None:
                data = await r
                if data is not None and msg.reply is not None:
                    await self._publish_reply(msg.reply, data)

            sub = self.subscribe(pattern, queue=queue)
            sub._inline = answer
            return sub
        return self.subscribe(pattern, queue=queue, cb=serve, concurrency=concurrency)

    def _reply_now(self, topic: str, data: bytes) -> None:
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("a reply must be bytes, not str (encode it)")
            data = bytes(data)
        if len(data) > self.max_payload:
            raise PayloadTooLargeError(f"reply above max_payload {self.max_payload}")
        self._write_now(_reply_frame(topic.encode(), data))

    # -- ending ------------------------------------------------------------

    async def drain(self, timeout: float = 30.0) -> None:
        """Unsubscribes everything, lets the subscriptions hand out (or their
        handlers process) the messages already received, flushes what was
        published, then closes."""
        if self._state == _CLOSED:
            return
        subs = [s for s in self._subs.values() if s is not self._inbox_sub]
        try:
            async with asyncio.timeout(timeout):
                for s in subs:
                    if self._subs.get(s.sid) is s:
                        self._forget(s)
                        if self._state != _CLOSED:
                            self._write(P.encode_unsub(s.sid))
                if self._state == _CONNECTED:
                    await self.flush(timeout=None)
                for s in subs:
                    s._end()
                for s in subs:
                    await s._stop_dispatch(cancel=False)
                if self._state == _CONNECTED:
                    await self.flush(timeout=None)
        except (TimeoutError, TernError):
            pass
        await self.close()

    async def close(self) -> None:
        """Closes the connection: sends what is already queued (briefly),
        cancels every background task it owns, fails pending flushes, acks
        and requests with ConnectionClosedError and ends every subscription
        (their iterators stop). Safe to call more than once."""
        if self._state == _CLOSED:
            await self._closed_fut
            return
        await self._shutdown(None)

    async def _shutdown(self, err: BaseException | None) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        proto = self._proto
        if proto is not None and proto.transport is not None and self._wbuf:
            proto.transport.write(self._wbuf)
        self._wbuf = bytearray()
        self._offline = bytearray()
        cerr = err if err is not None else ConnectionClosedError("the connection is closed")
        self._fail_inflight(cerr, held_too=True)
        for f in self._reqs.values():
            if not f.done():
                f.set_exception(cerr)
        if self._req_timer is not None:
            self._req_timer.cancel()
            self._req_timer = None
        for s in list(self._subs.values()):
            s._end(err)
        self._subs.clear()
        self._wready.set()
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        for s in (self._inbox_sub,):
            if s is not None:
                s._end()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if proto is not None and proto.transport is not None:
            proto.transport.close()
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.shield(proto.closed)
            except TimeoutError:
                proto.transport.abort()
                await proto.closed
        self._proto = None
        self._transport = None
        if not self._closed_fut.done():
            self._closed_fut.set_result(None)
        self._set_status(Status.CLOSED, err)


async def connect(url: str | list[str] = "tern://127.0.0.1:7421", *, name: str | None = None,
                  user: str | None = None, password: str | None = None,
                  token: str | None = None, echo: bool = True, connect_timeout: float = 5.0,
                  reconnect: bool = True, reconnect_initial: float = 0.1,
                  reconnect_max: float = 5.0, reconnect_jitter: float = 0.2,
                  max_reconnect_attempts: int = 60, server_failures_before_cooldown: int = 3,
                  server_cooldown: float = 5.0, outbound_limit: int = 8 << 20,
                  offline_limit: int = 8 << 20, publish_timeout: float | None = 30.0,
                  heartbeat: float | None = None, inbox_prefix: str = "_INBOX",
                  breaker_threshold: int = 0, breaker_cooldown: float = 5.0,
                  breaker_max_topics: int = 1024, queue_msgs: int = 65536,
                  queue_bytes: int = 64 << 20,
                  on_status: Callable[[Status, BaseException | None], Any] | None = None,
                  on_error: Callable[[BaseException], Any] | None = None,
                  tls: bool = False, tls_ca_file: str | None = None,
                  tls_cert_file: str | None = None, tls_key_file: str | None = None,
                  tls_server_name: str | None = None, tls_insecure_skip_verify: bool = False,
                  tls_context: ssl.SSLContext | None = None) -> Connection:
    """Connects to a tern broker and returns the :class:`Connection`.

    ``url``: "tern://host:port", "tls://host:port", "host:port",
    "[v6]:port", or several of them comma-separated (or a list): the first
    connect tries each once, in order, and raises the last error if none
    accepts; every reconnect attempt moves on to the next server. ``name``,
    ``user``/``password``, ``token``, ``echo`` go in CONNECT (over TLS as
    over plaintext). ``connect_timeout``: seconds from the TCP connect to
    the broker's OK, the TLS handshake included.

    TLS: a "tls://" server (or one without a scheme when ``tls`` is true)
    is reached over TLS 1.2 or later, with a new handshake on every
    reconnect. Its certificate must chain to ``tls_ca_file`` (PEM; None:
    the system's trust store) and name the URL's host (a DNS name, or an IP
    address in its SANs), or ``tls_server_name`` when given.
    ``tls_cert_file`` and ``tls_key_file`` (PEM) are the client's
    certificate for a broker that asks for one (mutual TLS; a broker user
    bound to its subject with ``cert_subject`` is then logged in without
    credentials). ``tls_insecure_skip_verify`` accepts any certificate for
    any name (encrypted, but open to anyone in the middle): for tests only,
    logged as a warning on the "tern" logger. ``tls_context``: an
    :class:`ssl.SSLContext` of your own instead of those options (the
    server name is still ``tls_server_name`` or the URL's host). A refused
    handshake raises TLSError with the reason ("certificate verify failed:
    unable to get local issuer certificate", "... Hostname mismatch ...",
    "tlsv1 alert unknown ca", "sslv3 alert certificate expired", "tlsv13
    alert certificate required", "not TLS").

    Reconnect (on by default): a lost connection (EOF, socket error, fatal
    ERR, GOAWAY, missed heartbeats) is re-established; attempt n waits
    min(reconnect_max, reconnect_initial * 2**(n-1)) shortened by a random
    fraction of at most reconnect_jitter, then re-sends CONNECT, every
    subscription, then what was published meanwhile (at most
    ``offline_limit`` bytes; beyond it publish raises
    OutboundBufferFullError). After ``max_reconnect_attempts`` failures in a
    row (negative: never give up) the connection closes. A server that
    fails ``server_failures_before_cooldown`` attempts in a row is skipped
    for ``server_cooldown`` seconds (a circuit breaker per server).

    ``outbound_limit``: the high-water mark (bytes) above which publish
    waits, at most ``publish_timeout`` seconds. ``heartbeat``: seconds of
    broker silence before the client PINGs it (twice that: the connection is
    dead); default: the broker's heartbeat_ms from HELLO. ``queue_msgs``,
    ``queue_bytes``: default bounds of each subscription's local queue.
    ``breaker_threshold`` (0 = off), ``breaker_cooldown``: the per-topic
    request circuit breaker (see :meth:`Connection.request`).
    ``on_status(status, error)``: connection state changes;
    ``on_error(error)``: errors reported asynchronously (non-fatal ERRs,
    handler exceptions, the reason of a loss). Callbacks may be coroutine
    functions.
    """
    servers = parse_servers(url, tls)
    ctx: ssl.SSLContext | None = None
    if tls_context is not None:
        if tls_ca_file or tls_cert_file or tls_key_file or tls_insecure_skip_verify:
            raise ValueError("tls_context replaces tls_ca_file, tls_cert_file, tls_key_file "
                             "and tls_insecure_skip_verify: set those on the context")
        ctx = tls_context
    elif any(s.tls for s in servers):
        ctx = make_tls_context(ca_file=tls_ca_file, cert_file=tls_cert_file,
                               key_file=tls_key_file,
                               insecure_skip_verify=tls_insecure_skip_verify)
    conn = Connection(servers, name=name, user=user, password=password, token=token,
                      echo=echo, connect_timeout=connect_timeout, reconnect=reconnect,
                      reconnect_initial=reconnect_initial, reconnect_max=reconnect_max,
                      reconnect_jitter=reconnect_jitter,
                      max_reconnect_attempts=max_reconnect_attempts,
                      server_failures_before_cooldown=server_failures_before_cooldown,
                      server_cooldown=server_cooldown, outbound_limit=outbound_limit,
                      offline_limit=offline_limit, publish_timeout=publish_timeout,
                      heartbeat=heartbeat, inbox_prefix=inbox_prefix,
                      breaker_threshold=breaker_threshold, breaker_cooldown=breaker_cooldown,
                      breaker_max_topics=breaker_max_topics, queue_msgs=queue_msgs,
                      queue_bytes=queue_bytes, on_status=on_status, on_error=on_error,
                      tls_context=ctx, tls_server_name=tls_server_name)
    await conn._first_connect()
    return conn
