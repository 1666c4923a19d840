"""The client against a real ternd: every point of the API."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

import tern
from tern import Status


async def until(pred: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Waits for pred() (a generous bound, only against a hang)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


async def test_connect_context_manager_and_close(broker) -> None:
    statuses = []
    async with await tern.connect(broker.url, name="t", on_status=lambda s, e: statuses.append(s)) as nc:
        assert nc.is_connected
        assert nc.server_info["proto"] == 1
        assert nc.connected_server == f"127.0.0.1:{broker.port}"
    assert nc.is_closed
    assert statuses == [Status.CONNECTED, Status.CLOSED]
    await nc.close()  # idempotent
    with pytest.raises(tern.ConnectionClosedError):
        await nc.publish("a", b"x")
    with pytest.raises(tern.ConnectionClosedError):
        nc.subscribe("a")


async def test_close_on_exception_and_cancellation(broker) -> None:
    with pytest.raises(RuntimeError):
        async with await tern.connect(broker.url) as nc:
            sub = nc.subscribe("x")
            raise RuntimeError("boom")
    assert nc.is_closed
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()

    async def body(started: asyncio.Event) -> None:
        async with await tern.connect(broker.url) as nc2:
            async with nc2.subscribe("x") as s:
                started.set()
                async for _ in s:
                    pass

    started = asyncio.Event()
    t = asyncio.create_task(body(started))
    await started.wait()
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


async def test_connect_errors(broker, make_broker) -> None:
    with pytest.raises(OSError):
        await tern.connect("tern://127.0.0.1:1", reconnect=False)
    auth = make_broker("--auth-token", "s3cret")
    with pytest.raises(tern.AuthError):
        await tern.connect(auth.url, token="wrong")
    async with await tern.connect(auth.url, token="s3cret") as nc:
        await nc.flush()
    with pytest.raises(ValueError):
        await tern.connect("tern://host:notaport")


async def test_publish_subscribe_headers_reply_retain(broker) -> None:
    async with await tern.connect(broker.url) as nc:
        await nc.publish("r.kept", b"old", retain=True)
        await nc.publish("r.kept", b"kept", retain=True, ttl_ms=60000, headers={"h": "1"})
        await nc.flush()
        async with nc.subscribe("r.>") as sub:
            m = await sub.next_msg(10)
            assert (m.topic, m.data, m.retained, m.headers) == ("r.kept", b"kept", True, {"h": "1"})
            await nc.publish("r.live", b"\x00\xffbin", headers=[("k", "v"), ("k2", "v2")],
                             reply="r.answer")
            m = await sub.next_msg(10)
            assert m.topic == "r.live" and m.data == b"\x00\xffbin" and not m.retained
            assert m.headers == {"k": "v", "k2": "v2"} and m.reply == "r.answer"
            await m.respond(b"resp")
            m2 = await sub.next_msg(10)
            assert (m2.topic, m2.data) == ("r.answer", b"resp")
            with pytest.raises(tern.TernError):
                await m2.respond(b"no reply topic")
        # errors the client refuses before sending
        with pytest.raises(tern.InvalidTopicError):
            await nc.publish("a.*", b"")
        with pytest.raises(tern.InvalidTopicError):
            nc.subscribe("a..b")
        with pytest.raises(tern.PermissionDeniedError):
            await nc.publish("$SYS.x", b"")
        with pytest.raises(tern.PayloadTooLargeError):
            await nc.publish("a", b"x" * (nc.max_payload + 1))
        with pytest.raises(TypeError):
            await nc.publish("a", "text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            nc.subscribe("a", policy="sometimes")


async def test_ack_counts_receivers_and_flush_is_a_barrier(broker) -> None:
    async with await tern.connect(broker.url) as nc:
        assert await nc.publish("ack.t", b"x", ack=True) == 0
        a = nc.subscribe("ack.t")
        b = nc.subscribe("ack.*")
        await nc.flush()
        assert await nc.publish("ack.t", b"x", ack=True) == 2
        assert (await a.next_msg(10)).data == b"x"
        assert (await b.next_msg(10)).data == b"x"


async def test_unsubscribe_after_n(broker) -> None:
    async with await tern.connect(broker.url) as nc:
        sub = await nc.subscribe("u.x")
        await sub.unsubscribe(after=3)
        for i in range(10):
            await nc.publish("u.x", str(i).encode())
        await nc.flush()
        got = [m.data async for m in sub]
        assert got == [b"0", b"1", b"2"]


async def test_queue_group_fan_out_workers(broker) -> None:
    async with await tern.connect(broker.url) as pub, \
            await tern.connect(broker.url) as w1, await tern.connect(broker.url) as w2:
        seen: list[tuple[str, bytes]] = []
        done = asyncio.Event()
        n = 400

        def worker(name: str):
            async def handle(msg: tern.Msg) -> None:
                seen.append((name, msg.data))
                if len(seen) == n:
                    done.set()
            return handle

        s1 = await w1.subscribe("jobs.*", queue="workers", cb=worker("w1"))
        s2 = await w2.subscribe("jobs.*", queue="workers", cb=worker("w2"))
        for i in range(n):
            await pub.publish("jobs.x", b"%d" % i)
        await asyncio.wait_for(done.wait(), 60)
        assert sorted(int(d) for _, d in seen) == list(range(n))
        assert {w for w, _ in seen} == {"w1", "w2"}
        await s1.unsubscribe()
        await s2.unsubscribe()


async def test_callback_concurrency_is_bounded(broker) -> None:
    async with await tern.connect(broker.url) as nc:
        running = 0
        peak = 0
        finished = 0
        gate = asyncio.Event()

        async def handler(msg: tern.Msg) -> None:
            nonlocal running, peak, finished
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            finished += 1

        await nc.subscribe("cc.x", cb=handler, concurrency=3)
        for _ in range(10):
            await nc.publish("cc.x", b"")
        await until(lambda: running == 3, "three handlers running")
        await nc.flush()
        assert running == 3
        gate.set()
        await until(lambda: finished == 10, "all handled")
        assert peak == 3


async def test_handler_errors_reach_on_error(broker) -> None:
    errors: list[BaseException] = []
    async with await tern.connect(broker.url, on_error=errors.append) as nc:
        def bad(msg: tern.Msg) -> None:
            raise KeyError("handler failed")
        await nc.subscribe("he.x", cb=bad)
        await nc.publish("he.x", b"")
        await until(lambda: bool(errors), "the handler error reported")
        assert isinstance(errors[0], KeyError)


async def test_request_reply_timeout_no_responders(broker) -> None:
    async with await tern.connect(broker.url) as svc, await tern.connect(broker.url) as cli:
        async def double(msg: tern.Msg) -> bytes:
            return msg.data * 2

        await svc.reply("svc.double", double)
        r = await cli.request("svc.double", b"ab", timeout=10)
        assert r.data == b"abab"
        with pytest.raises(tern.NoRespondersError):
            await cli.request("svc.nobody", b"x", timeout=10)
        await svc.subscribe("svc.silent")  # a responder that never answers
        with pytest.raises(tern.TernTimeoutError):
            await cli.request("svc.silent", b"x", timeout=0.2)
        # many at once through the one inbox
        rs = await asyncio.gather(*(cli.request("svc.double", b"%d" % i, timeout=30)
                                    for i in range(200)))
        assert [r.data for r in rs] == [b"%d" % i * 2 for i in range(200)]
        assert len(cli._subs) == 1  # one inbox subscription


async def test_stray_inbox_messages_are_ignored(broker) -> None:
    """Anyone may publish into a connection's inbox: a topic after it that
    names no request (not a number, a number int() refuses, an old one) is
    dropped, and the connection keeps working."""
    async with await tern.connect(broker.url) as svc, await tern.connect(broker.url) as cli:
        await svc.reply("svc.echo", lambda m: m.data)
        assert (await cli.request("svc.echo", b"a", timeout=10)).data == b"a"
        inbox = cli._inbox
        assert inbox is not None
        for tail in ["x", "\u00b2", "1\u00b2", "99999"]:  # "²": isdigit() but not int()
            await svc.publish(inbox + tail, b"stray")
        await svc.flush()
        await cli.flush()
        assert cli.is_connected
        assert (await cli.request("svc.echo", b"b", timeout=10)).data == b"b"


async def test_request_circuit_breaker(broker) -> None:
    async with await tern.connect(broker.url, breaker_threshold=2, breaker_cooldown=0.3) as nc:
        for _ in range(2):
            with pytest.raises(tern.NoRespondersError):
                await nc.request("cb.svc", b"", timeout=10)
        with pytest.raises(tern.CircuitOpenError):
            await nc.request("cb.svc", b"", timeout=10)
        # other topics are not affected
        with pytest.raises(tern.NoRespondersError):
            await nc.request("cb.other", b"", timeout=10)
        await nc.reply("cb.svc", lambda m: b"up")
        await until(lambda: nc._loop.time() >= nc._breakers["cb.svc"].open_until,
                    "the cool-down to end")
        assert (await nc.request("cb.svc", b"", timeout=10)).data == b"up"  # the probe
        assert (await nc.request("cb.svc", b"", timeout=10)).data == b"up"  # closed


async def test_dropped_counter_and_callback(broker) -> None:
    """drop_newest with a consumer that falls behind: DROPPED notices count
    the gaps exactly where they are."""
    n, size = 4000, 8192
    gaps: dict[int, int] = {}  # messages delivered before the notice -> count

    def on_dropped(s: tern.Subscription, count: int) -> None:
        gaps[s.delivered] = gaps.get(s.delivered, 0) + count

    async with await tern.connect(broker.url) as sub_nc, await tern.connect(broker.url) as pub:
        sub = await sub_nc.subscribe("dr.x", max_msgs=16, policy="drop_newest", queue_msgs=8,
                                     on_dropped=on_dropped)

        async def consume() -> int:
            k = expected = 0
            async for m in sub:
                expected += gaps.get(k, 0)
                seq = int.from_bytes(m.data[:4], "big")
                assert seq == expected
                k += 1
                expected += 1
                if seq >= n:
                    return k
            raise AssertionError("ended")

        ct = asyncio.create_task(consume())
        for i in range(n):
            await pub.publish("dr.x", i.to_bytes(4, "big") + b"x" * size)
        await pub.flush(timeout=60)
        seq = n
        while not ct.done():  # a marker after the gap brings the last DROPPED
            await pub.publish("dr.x", seq.to_bytes(4, "big"))
            seq += 1
            await asyncio.wait({ct}, timeout=0.05)
        got = await ct
        assert sub.dropped > 0 and sum(gaps.values()) == sub.dropped
        assert got < n


async def test_block_backpressure_slow_consumer_bounded_memory(broker) -> None:
    n, size, qmsgs = 30000, 1024, 64  # 30 MB: more than the sockets hold
    async with await tern.connect(broker.url) as sub_nc, \
            await tern.connect(broker.url, outbound_limit=64 * 1024, publish_timeout=None) as pub:
        sub = await sub_nc.subscribe("bp.x", max_msgs=64, policy="block", queue_msgs=qmsgs)
        sent = 0

        async def producer() -> None:
            nonlocal sent
            for i in range(n):
                await pub.publish("bp.x", i.to_bytes(4, "big") + b"p" * (size - 4))
                sent += 1
            await pub.flush(timeout=None)

        t = asyncio.create_task(producer())
        # The consumer takes nothing: the publisher must end up held back.
        await until(lambda: pub._wpaused, "the publisher held back")
        assert not t.done() and sent < n
        held_at = sent
        peak = 0
        got = 0
        async for msg in sub:  # slow: one message per loop turn, and check memory
            assert int.from_bytes(msg.data[:4], "big") == got
            got += 1
            pending_msgs, pending_bytes = sub.pending()
            peak = max(peak, pending_msgs)
            assert sub_nc._proto is not None
            # local queue bound + what one read can leave buffered
            assert pending_msgs <= qmsgs
            assert sub_nc._proto.decoder.buffered() <= 4 * 1024 * 1024
            await asyncio.sleep(0)
            if got == n:
                break
        await t
        assert held_at < n and got == n and sub.dropped == 0
        assert peak == qmsgs  # the queue did fill up, and no further


async def test_publish_timeout_and_cancelled_publish_leave_connection_usable(broker) -> None:
    async with await tern.connect(broker.url) as sub_nc, \
            await tern.connect(broker.url, outbound_limit=32 * 1024, publish_timeout=0.2) as pub:
        sub = await sub_nc.subscribe("pt.x", max_msgs=8, policy="block", queue_msgs=8)
        payload = b"z" * 4096
        sent = 0
        with pytest.raises(tern.PublishTimeoutError):
            while True:
                await pub.publish("pt.x", payload)
                sent += 1
        # a task blocked in publish, cancelled
        t = asyncio.create_task(pub.publish("pt.x", payload, timeout=None))
        await asyncio.sleep(0)
        assert not t.done()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        got = 0
        while got < sent:
            await sub.next_msg(30)
            got += 1
        await pub.publish("pt.x", b"after", timeout=30)
        await pub.flush(timeout=30)
        while (await sub.next_msg(30)).data != b"after":
            pass
        assert pub.is_connected


async def test_cancelled_request_and_iteration_leave_connection_usable(broker) -> None:
    async with await tern.connect(broker.url) as nc:
        await nc.subscribe("cx.silent")
        t = asyncio.create_task(nc.request("cx.silent", b"", timeout=30))
        await until(lambda: bool(nc._reqs), "the request in flight")
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert not nc._reqs
        await nc.reply("cx.echo", lambda m: m.data)
        assert (await nc.request("cx.echo", b"e", timeout=10)).data == b"e"

        sub = await nc.subscribe("cx.it")

        async def first() -> tern.Msg:
            async for m in sub:
                return m
            raise AssertionError

        t2 = asyncio.create_task(first())
        await asyncio.sleep(0)
        t2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t2
        await nc.publish("cx.it", b"still")
        assert (await sub.next_msg(10)).data == b"still"


async def test_reconnect_across_broker_restart(broker) -> None:
    statuses: list[Status] = []
    connected = asyncio.Event()

    def on_status(s: Status, err: BaseException | None) -> None:
        statuses.append(s)
        if s is Status.CONNECTED:
            connected.set()

    async with await tern.connect(broker.url, on_status=on_status, reconnect_initial=0.05,
                                  reconnect_max=0.2) as nc:
        sub = await nc.subscribe("rc.>")
        await nc.publish("rc.a", b"before")
        assert (await sub.next_msg(10)).data == b"before"
        connected.clear()
        broker.stop()
        await until(lambda: not nc.is_connected, "the loss seen")
        with pytest.raises((tern.DisconnectedError, tern.TernTimeoutError)):
            await nc.request("other.svc", b"", timeout=0.01)
        await nc.publish("rc.a", b"offline")  # buffered while disconnected
        late = nc.subscribe("late.x")  # made while disconnected
        broker.start()
        await asyncio.wait_for(connected.wait(), 60)
        await asyncio.wait_for(late, 60)  # live once reconnected
        assert await nc.publish("late.x", b"", ack=True) == 1
        assert (await sub.next_msg(30)).data == b"offline"  # resubscribed, then buffer sent
        await nc.publish("rc.a", b"after")
        assert (await sub.next_msg(30)).data == b"after"
        assert nc.reconnects == 1
    assert statuses[0] is Status.CONNECTED and statuses[-1] is Status.CLOSED
    i = statuses.index(Status.DISCONNECTED)
    assert statuses[i + 1] is Status.RECONNECTING and Status.CONNECTED in statuses[i:]


async def test_offline_buffer_is_bounded(broker) -> None:
    async with await tern.connect(broker.url, offline_limit=10000, reconnect_initial=30) as nc:
        broker.stop()
        await until(lambda: not nc.is_connected, "the loss seen")
        with pytest.raises(tern.OutboundBufferFullError):
            for _ in range(1000):
                await nc.publish("ob.x", b"y" * 100)
        assert len(nc._offline) <= 10000


async def test_gives_up_and_closes(broker) -> None:
    statuses: list[Status] = []
    nc = await tern.connect(broker.url, reconnect_initial=0.01, max_reconnect_attempts=2,
                            on_status=lambda s, e: statuses.append(s))
    sub = nc.subscribe("gu.x")
    broker.stop()
    with pytest.raises(tern.ConnectionClosedError):
        async for _ in sub:
            pass
    assert nc.is_closed and statuses.count(Status.RECONNECTING) == 2
    await nc.close()


async def test_server_list_failover_on_goaway(make_broker) -> None:
    a = make_broker()
    b = make_broker()
    connected = asyncio.Event()

    def on_status(s: Status, e: BaseException | None) -> None:
        if s is Status.CONNECTED:
            connected.set()

    async with await tern.connect(f"tern://127.0.0.1:1,{a.url},{b.url}", on_status=on_status,
                                  reconnect_initial=0.01) as nc:
        assert nc.connected_server == f"127.0.0.1:{a.port}"  # the first that accepts
        sub = await nc.subscribe("fo.x")
        connected.clear()
        a.stop(signal.SIGTERM)  # GOAWAY, then close
        await asyncio.wait_for(connected.wait(), 60)
        assert nc.connected_server == f"127.0.0.1:{b.port}"
        async with await tern.connect(b.url) as other:
            await other.publish("fo.x", b"via b")
        assert (await sub.next_msg(30)).data == b"via b"


async def test_server_cooldown_skips_a_dead_server() -> None:
    from tern.client import _Server

    loop = asyncio.get_running_loop()
    c = tern.Connection.__new__(tern.Connection)
    c._loop = loop
    c._servers = [_Server("a", 1), _Server("b", 2)]
    c._server_idx = 0
    c._servers[1].down_until = loop.time() + 60  # b failed too often
    assert c._pick_server()[0] is c._servers[0]
    assert c._pick_server()[0] is c._servers[0]
    c._servers[0].down_until = loop.time() + 30
    srv, wait = c._pick_server()
    assert srv is None and 29 < wait <= 30


async def test_drain_processes_what_was_received(broker) -> None:
    handled: list[bytes] = []
    async with await tern.connect(broker.url) as pub:
        nc = await tern.connect(broker.url)

        async def slow(msg: tern.Msg) -> None:
            await asyncio.sleep(0)
            handled.append(msg.data)

        await nc.subscribe("dn.x", cb=slow)
        for i in range(200):
            await pub.publish("dn.x", b"%d" % i)
        await pub.flush()
        await nc.flush()
        await nc.drain()
        assert nc.is_closed
        assert handled == [b"%d" % i for i in range(200)]


async def test_broker_errors_reach_subscribe_and_on_error(make_broker) -> None:
    b = make_broker("--max-topic", "16", "--max-subs", "2")
    errors: list[BaseException] = []
    async with await tern.connect(b.url, on_error=errors.append) as nc:
        with pytest.raises(tern.InvalidTopicError):
            await nc.subscribe("a.very.long.pattern.>")  # valid, but above this broker's limit
        await nc.subscribe("ok.1")
        await nc.subscribe("ok.2")
        with pytest.raises(tern.TooManySubscriptionsError):
            async with nc.subscribe("ok.3"):
                pass
        await nc.publish("a.topic.longer.than.sixteen", b"")  # non-fatal ERR 4, reported
        await nc.flush()
        assert any(isinstance(e, tern.InvalidTopicError) and e.code == 4 for e in errors)
        assert nc.is_connected
        assert (await nc.publish("ok.1", b"x", ack=True)) == 1
