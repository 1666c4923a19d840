#!/usr/bin/python3
"""A service that shuts down gracefully on SIGTERM (or SIGINT).

    shutdown.py [URL]

It serves "svc.echo" and consumes "events.>". On SIGTERM it stops taking
work, lets the handlers finish what was already received (drain():
unsubscribe, process the queue, flush, close) and exits 0. Connection state
changes are logged by on_status.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tern  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser(description="graceful shutdown on SIGTERM")
    ap.add_argument("url", nargs="?", default="tern://127.0.0.1:7421")
    a = ap.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_status(status: tern.Status, err: BaseException | None) -> None:
        print(f"status: {status.value}" + (f" ({err})" if err else ""), flush=True)

    handled = 0

    async def on_event(msg: tern.Msg) -> None:
        nonlocal handled
        await asyncio.sleep(0)  # the work
        handled += 1

    nc = await tern.connect(a.url, name="graceful", on_status=on_status)
    await nc.reply("svc.echo", lambda m: m.data)
    await nc.subscribe("events.>", cb=on_event, concurrency=8)
    print("ready", flush=True)
    await stop.wait()
    print("stopping: draining", flush=True)
    await nc.drain(timeout=10)
    print(f"stopped after {handled} events", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
