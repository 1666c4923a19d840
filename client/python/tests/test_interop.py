"""Interoperability with the C client: the tern CLI (libtern) on one side,
this client on the other; payloads, headers, reply topics, retained flags
and request/reply go both ways."""

from __future__ import annotations

import asyncio

import tern


async def run(cli: str, broker, *args: str) -> str:
    p = await asyncio.create_subprocess_exec(cli, "-s", f"127.0.0.1:{broker.port}", *args,
                                             stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(p.communicate(), 60)
    assert p.returncode == 0, (args, out)
    return out.decode()


async def start_ready(cli: str, broker, *args: str) -> asyncio.subprocess.Process:
    """Starts a CLI command with --ready and waits until its subscription
    is live."""
    p = await asyncio.create_subprocess_exec(cli, "-s", f"127.0.0.1:{broker.port}", *args,
                                             "--ready", stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    assert p.stderr is not None
    line = await asyncio.wait_for(p.stderr.readline(), 60)
    assert b"ready" in line, line
    return p


async def finish(p: asyncio.subprocess.Process) -> str:
    out, _ = await asyncio.wait_for(p.communicate(), 60)
    assert p.returncode == 0, out
    return out.decode()


async def test_c_publishes_python_receives(broker, tern_cli) -> None:
    await run(tern_cli, broker, "pub", "--retain", "-H", "a=b", "--reply", "ret.reply",
              "ic.ret", "kept")
    async with await tern.connect(broker.url) as nc:
        async with nc.subscribe("ic.>") as sub:
            m = await sub.next_msg(30)
            assert (m.topic, m.data, m.headers, m.reply, m.retained) == (
                "ic.ret", b"kept", {"a": "b"}, "ret.reply", True)
            await run(tern_cli, broker, "pub", "-H", "k=v", "-H", "k2=v 2", "--reply",
                      "live.reply", "ic.live", "live é")
            m = await sub.next_msg(30)
            assert (m.topic, m.data, m.headers, m.reply, m.retained) == (
                "ic.live", "live é".encode(), {"k": "v", "k2": "v 2"}, "live.reply", False)
            out = await run(tern_cli, broker, "pub", "--ack", "ic.acked", "x")
            assert "1" in out
            assert (await sub.next_msg(30)).topic == "ic.acked"


async def test_python_publishes_c_receives(broker, tern_cli) -> None:
    async with await tern.connect(broker.url) as nc:
        await nc.publish("pc.ret", b"kept", retain=True, headers={"a": "b"})
        await nc.flush()
        p = await start_ready(tern_cli, broker, "sub", "--count", "2", "--headers", "pc.>")
        await nc.publish("pc.live", "live é".encode(), headers=[("k", "v")])
        out = await finish(p)
    assert out == "[#1] pc.ret (retained): kept\n  a: b\n[#2] pc.live: live é\n  k: v\n"


async def test_python_requests_c_replies(broker, tern_cli) -> None:
    p = await start_ready(tern_cli, broker, "reply", "--count", "1", "svc.c", "from C")
    async with await tern.connect(broker.url) as nc:
        r = await nc.request("svc.c", b"question", timeout=30)
        assert r.data == b"from C"
    out = await finish(p)
    assert "svc.c: question" in out


async def test_c_requests_python_replies(broker, tern_cli) -> None:
    async with await tern.connect(broker.url) as nc:
        await nc.reply("svc.py", lambda m: b"py says " + m.data)
        out = await run(tern_cli, broker, "req", "-t", "30000", "svc.py", "hi")
        assert out == "py says hi\n"
        # and no responders is the same error on both sides
        p = await asyncio.create_subprocess_exec(
            tern_cli, "-s", f"127.0.0.1:{broker.port}", "req", "svc.none", "x",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await p.communicate()
        assert p.returncode == 1 and b"no responders" in err
