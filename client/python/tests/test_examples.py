"""The examples run against a real ternd and do what they say."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

EX = Path(__file__).resolve().parents[1] / "examples"


async def run_example(name: str, *args: str) -> str:
    p = await asyncio.create_subprocess_exec("/usr/bin/python3", "-W", "error", str(EX / name),
                                             *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(p.communicate(), 120)
    assert p.returncode == 0, out
    return out.decode()


async def test_pipeline(broker) -> None:
    out = await run_example("pipeline.py", broker.url, "--count", "5000")
    assert "5000 of 5000 results, none lost" in out


async def test_workers(broker) -> None:
    out = await run_example("workers.py", broker.url, "--workers", "2", "--jobs", "100")
    assert "= 100 jobs" in out


async def test_rpc(broker) -> None:
    out = await run_example("rpc.py", broker.url)
    assert "call 2: circuit open, failed at once" in out
    assert "the probe got: ACME: 42.00" in out


async def test_graceful_shutdown(broker) -> None:
    p = await asyncio.create_subprocess_exec("/usr/bin/python3", "-W", "error",
                                             str(EX / "shutdown.py"), broker.url,
                                             stdout=asyncio.subprocess.PIPE)
    assert p.stdout is not None
    lines = []
    while (line := await asyncio.wait_for(p.stdout.readline(), 60)) != b"ready\n":
        assert line, lines
        lines.append(line)
    p.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(p.communicate(), 60)
    assert p.returncode == 0
    assert b"stopping: draining" in out and b"status: closed" in out
