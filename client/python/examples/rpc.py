#!/usr/bin/python3
"""Request/reply with timeouts and a circuit breaker.

    rpc.py [URL]

A "prices" service answers requests (an async handler; replies go to the
requester's inbox). A client calls it with a timeout. Then the service goes
away: the client sees NoRespondersError twice, after which its circuit
breaker for that topic opens and further calls fail at once with
CircuitOpenError instead of waiting; after the cool-down one probe goes
through, and the service being back closes the breaker.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tern  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser(description="request/reply with a circuit breaker")
    ap.add_argument("url", nargs="?", default="tern://127.0.0.1:7421")
    a = ap.parse_args()

    async def price(msg: tern.Msg) -> bytes:
        return b"%s: 42.00" % msg.data

    async with await tern.connect(a.url, name="client", breaker_threshold=2,
                                  breaker_cooldown=0.5) as client:
        service = await tern.connect(a.url, name="prices")
        await service.reply("svc.prices", price, queue="prices")
        reply = await client.request("svc.prices", b"ACME", timeout=2.0)
        print("reply:", reply.data.decode())
        await service.close()  # the service goes away

        for attempt in range(4):
            try:
                await client.request("svc.prices", b"ACME", timeout=2.0)
            except tern.NoRespondersError:
                print(f"call {attempt}: no responders")
            except tern.CircuitOpenError:
                print(f"call {attempt}: circuit open, failed at once")
            except tern.TernTimeoutError:
                print(f"call {attempt}: timed out")

        async with await tern.connect(a.url, name="prices") as service:  # back
            await service.reply("svc.prices", price, queue="prices")
            await asyncio.sleep(0.6)  # the cool-down
            reply = await client.request("svc.prices", b"ACME", timeout=2.0)
            print("after the cool-down, the probe got:", reply.data.decode())


if __name__ == "__main__":
    asyncio.run(main())
