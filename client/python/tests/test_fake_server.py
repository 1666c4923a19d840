"""A fake server (asyncio, in the test) that misbehaves: the client must give
a clear error and never hang."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import tern
from tern import Status
from tern import protocol as P

HELLO = P.encode([P.HELLO, {"proto": 1, "server": "fake/0", "server_id": "f",
                            "max_payload": 1 << 20, "max_frame": (1 << 20) + 65536,
                            "auth_required": False, "heartbeat_ms": 0}])
OK = b"\x00\x00\x00\x02\x91\x09"

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_frame(r: asyncio.StreamReader) -> bytes:
    n = int.from_bytes(await r.readexactly(4), "big")
    return await r.readexactly(n)


class Fake:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.server: asyncio.base_events.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await self.script(r, w)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"tern://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.handlers:
            t.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()


def sends(*chunks: bytes, then_wait: bool = True) -> Script:
    """A server that sends chunks (after reading CONNECT when a chunk
    follows HELLO's OK) then waits for the client to go."""

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for c in chunks:
            w.write(c)
            await w.drain()
            if c == HELLO:
                await read_frame(r)  # CONNECT
        if then_wait:
            await r.read()

    return script


@pytest.mark.parametrize("chunks,err,match", [
    ((HELLO, b"\xff\xff\xff\xff"), tern.ProtocolError, "above max_frame"),
    ((b"\x00\x00\x00\x02\x91\x09",), tern.ProtocolError, "before HELLO"),
    ((P.encode([P.HELLO, "not a map"]),), tern.ProtocolError, "info map"),
    ((P.encode([P.HELLO, {"proto": 2}]),), tern.ProtocolError, "protocol 2"),
    ((HELLO, b"\x00\x00\x00\x0a\x94\x06\x01\xa3a.b\xa2hi"), tern.ProtocolError,
     "payload must be bin"),
    ((HELLO, P.encode([P.ERR, 2, "bad credentials"])), tern.AuthError, "bad credentials"),
    ((HELLO, b"\x00\x00\x00\x05\x92\x08"), tern.ConnectionClosedError, "closed"),  # cut mid-frame
    ((HELLO, P.encode([P.GOAWAY, "bye"])), tern.GoAwayError, "bye"),
])
async def test_malformed_handshake_raises(chunks, err, match) -> None:
    async with Fake(sends(*chunks, then_wait=False)) as url:
        with pytest.raises(err, match=match):
            await tern.connect(url, reconnect=False, connect_timeout=30)


async def test_silent_server_times_out() -> None:
    async with Fake(sends()) as url:
        with pytest.raises(tern.ConnectTimeoutError):
            await tern.connect(url, reconnect=False, connect_timeout=0.2)


async def test_malformed_frame_after_handshake_ends_waits() -> None:
    """A bad MSG once connected: the connection ends with ProtocolError; an
    iterator and a flush waiting on it finish instead of hanging."""
    gate = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(HELLO)
        await read_frame(r)
        w.write(OK)
        await read_frame(r)  # SUB
        await read_frame(r)  # PING of the subscribe confirmation
        w.write(P.PONG_FRAME)
        await gate.wait()
        w.write(b"\x00\x00\x00\x03\x92\x06\x01")  # a MSG missing its topic and payload
        await r.read()

    errors: list[BaseException] = []
    statuses: list[Status] = []
    async with Fake(script) as url:
        nc = await tern.connect(url, reconnect=False, on_error=errors.append,
                                on_status=lambda s, e: statuses.append(s))
        sub = await nc.subscribe("a.>")
        it = asyncio.create_task(sub.__anext__())
        fl = asyncio.create_task(nc.flush(timeout=None))
        await asyncio.sleep(0)
        gate.set()
        with pytest.raises(tern.ConnectionClosedError, match="MSG"):
            await it
        with pytest.raises(tern.ConnectionClosedError):
            await fl
        assert any(isinstance(e, tern.ProtocolError) for e in errors)
        assert statuses[-1] is Status.CLOSED
        await nc.close()


async def test_client_answers_pings_and_detects_a_silent_server() -> None:
    pong = asyncio.Event()

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(P.encode([P.HELLO, {"proto": 1, "heartbeat_ms": 100}]))
        await read_frame(r)
        w.write(OK + P.PING_FRAME)
        assert await read_frame(r) == b"\x91\x08"
        pong.set()
        while True:  # then answers nothing: the client's PINGs go unanswered
            await read_frame(r)

    lost = asyncio.Event()
    reasons: list[BaseException | None] = []

    def on_status(s: Status, e: BaseException | None) -> None:
        if s is Status.DISCONNECTED:
            reasons.append(e)
            lost.set()

    async with Fake(script) as url:
        async with await tern.connect(url, reconnect=False, on_status=on_status) as nc:
            await asyncio.wait_for(pong.wait(), 30)
            await asyncio.wait_for(lost.wait(), 30)
            assert isinstance(reasons[0], tern.StaleConnectionError)
            assert nc.is_closed or not nc.is_connected
