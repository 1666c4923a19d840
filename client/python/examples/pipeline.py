#!/usr/bin/python3
"""A producer-consumer pipeline with backpressure.

    pipeline.py [URL] [--count N]

A producer publishes N readings as fast as it can; a stage (its own
connection) subscribes with the ``block`` policy and a small local queue,
"processes" each reading slowly and publishes a result; a sink counts the
results. The slow stage does not make anything pile up: its full local queue
stops the client reading its socket, the broker's queue for it fills, the
broker stops reading the producer, and the producer's ``await publish()``
waits. Nothing is dropped and every process stays within its bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tern  # noqa: E402


async def producer(url: str, n: int) -> None:
    # A small outbound buffer so that the broker's backpressure reaches
    # publish() quickly.
    async with await tern.connect(url, name="producer", outbound_limit=64 * 1024) as nc:
        for i in range(n):
            await nc.publish("pipeline.raw", i.to_bytes(4, "big") + b"." * 1020)
        await nc.flush(timeout=None)


async def stage(url: str, n: int, ready: asyncio.Event) -> None:
    async with await tern.connect(url, name="stage") as nc:
        async with nc.subscribe("pipeline.raw", policy="block", max_msgs=100,
                                queue_msgs=100) as sub:
            ready.set()
            done = 0
            async for msg in sub:
                value = int.from_bytes(msg.data[:4], "big")
                if done % 1000 == 0:
                    await asyncio.sleep(0.001)  # slow work, now and then
                await nc.publish("pipeline.done", str(value * 2).encode())
                done += 1
                if done == n:
                    break
            await nc.flush()


async def sink(url: str, n: int, ready: asyncio.Event) -> int:
    async with await tern.connect(url, name="sink") as nc:
        async with nc.subscribe("pipeline.done") as sub:
            ready.set()
            total = 0
            async for msg in sub:
                total += 1
                if total == n:
                    return total
    return 0


async def main() -> None:
    ap = argparse.ArgumentParser(description="producer -> slow stage -> sink, with backpressure")
    ap.add_argument("url", nargs="?", default="tern://127.0.0.1:7421")
    ap.add_argument("--count", type=int, default=20000)
    a = ap.parse_args()
    stage_ready, sink_ready = asyncio.Event(), asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        got = tg.create_task(sink(a.url, a.count, sink_ready))
        tg.create_task(stage(a.url, a.count, stage_ready))
        await stage_ready.wait()
        await sink_ready.wait()
        tg.create_task(producer(a.url, a.count))
    print(f"pipeline: {got.result()} of {a.count} results, none lost")


if __name__ == "__main__":
    asyncio.run(main())
