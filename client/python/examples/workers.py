#!/usr/bin/python3
"""Fan-out workers on a queue group.

    workers.py [URL] [--workers 3] [--jobs 300]

Each worker is its own connection and joins the queue group "workers" on
"jobs.>": the broker hands each job to exactly one member. Handlers are
callbacks run by tasks the connection owns, at most ``concurrency`` at a
time per worker (a semaphore), so a burst of jobs cannot start unbounded
work.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tern  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser(description="queue-group workers")
    ap.add_argument("url", nargs="?", default="tern://127.0.0.1:7421")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=300)
    a = ap.parse_args()

    per_worker: collections.Counter[str] = collections.Counter()
    all_done = asyncio.Event()

    def make_handler(name: str):
        async def handle(msg: tern.Msg) -> None:
            await asyncio.sleep(0.001)  # the job's I/O
            per_worker[name] += 1
            if sum(per_worker.values()) == a.jobs:
                all_done.set()
        return handle

    workers = [await tern.connect(a.url, name=f"worker-{i}") for i in range(a.workers)]
    try:
        for i, nc in enumerate(workers):
            await nc.subscribe("jobs.>", queue="workers", cb=make_handler(f"worker-{i}"),
                               concurrency=4)
        async with await tern.connect(a.url, name="dispatcher") as pub:
            for j in range(a.jobs):
                await pub.publish(f"jobs.resize.{j % 7}", b"%d" % j)
            await pub.flush()
        await asyncio.wait_for(all_done.wait(), 60)
    finally:
        for nc in workers:
            await nc.drain()
    print("workers:", ", ".join(f"{k} {v}" for k, v in sorted(per_worker.items())),
          f"= {sum(per_worker.values())} jobs")


if __name__ == "__main__":
    asyncio.run(main())
