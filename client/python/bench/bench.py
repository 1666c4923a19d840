#!/usr/bin/python3
"""tern's Python client against ternd, and redis-py's asyncio client against
redis-server, side by side in one run.

    /usr/bin/python3 client/python/bench/bench.py [--runs 5] [--msgs 200000]
                                                   [--reqs 5000] [--build build]
                                                   [--tls]

Rows: publish msgs/s and subscribe msgs/s at 16 B and 1 KiB, request/reply
round trips/s. Both brokers run as children on 127.0.0.1, on free ports;
every measured client is its own process (so the other side of a
measurement never shares its interpreter):

- publish: one process publishes --msgs messages, nobody subscribed, then
  waits until the broker has them all (tern: flush(), a PING/PONG barrier;
  redis: the replies of its PUBLISHes). redis-py is measured as its users
  write it, one ``await r.publish()`` per message, and also pipelined in
  batches of 1000 (the best it can do; shown for reference).
- subscribe: the client under test subscribes and counts --msgs messages
  from the first to the last; a C publisher floods it (``tern bench --pub 1
  --sub 0`` for ternd, with the default ``block`` policy holding it back;
  ``redis-benchmark -P 100 PUBLISH`` for redis, with the pub/sub output
  buffer limit lifted so redis does not drop the subscriber).
- request/reply: a requester process makes sequential requests to a
  responder process, both with the same client (redis has no request/reply:
  the responder answers on the requester's channel named in the message,
  the usual pattern). The four processes stay up for the whole row and
  tern and redis take turns of --reqs/10 requests, ten turns each per run,
  so that the machine's load bursts (which move this row most) hit both.

--tls: the publish and subscribe rows over TLS instead (certificates made
by scripts/make-certs.sh in a temporary directory; one ternd serves both,
telling TLS from plaintext by the first byte, and one redis-server has a
plaintext and a TLS port): tern plaintext, tern over TLS and their ratio,
and redis-py over TLS (``ssl=True``; redis-benchmark ``--tls`` as its
publisher). Over TLS the subscribe row's C publisher connects with TLS too.

Each cell is the median of --runs runs, the tern and redis runs interleaved.
Besides the rates, each client's CPU time per message (process time of the
measured process; for request/reply, requester + responder per round trip):
on a shared machine the rates move with the other processes' load, the CPU
per message much less. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
ROOT = HERE.parents[2]
PY = "/usr/bin/python3"


# --- roles: each runs in its own process and prints one number ---------------

def _ca() -> str | None:
    """The test CA when this role runs over TLS (--tls sets it)."""
    return os.environ.get("TERN_BENCH_CA") or None


async def _tern_connect(port: int) -> Any:
    import tern
    ca = _ca()
    if ca:
        return await tern.connect(f"tls://localhost:{port}", tls_ca_file=ca)
    return await tern.connect(f"127.0.0.1:{port}")


def _redis(port: int) -> Any:
    import redis.asyncio as redis
    ca = _ca()
    if ca:
        return redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=ca)
    return redis.Redis(port=port)


async def tern_pub(port: int, n: int, size: int) -> tuple[float, float]:
    nc = await _tern_connect(port)
    data = b"x" * size
    pub = nc.publish
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(n):
        await pub("bench.pub", data)
    await nc.flush(timeout=None)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await nc.close()
    return n / dt, cpu / n * 1e6


async def redis_pub(port: int, n: int, size: int, pipelined: bool) -> tuple[float, float]:
    r = _redis(port)
    await r.ping()
    data = b"x" * size
    t0 = time.perf_counter()
    c0 = time.process_time()
    if pipelined:
        for i in range(0, n, 1000):
            p = r.pipeline(transaction=False)
            for _ in range(min(1000, n - i)):
                p.publish("bench.pub", data)
            await p.execute()
    else:
        pub = r.publish
        for _ in range(n):
            await pub("bench.pub", data)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await r.close()
    return n / dt, cpu / n * 1e6


async def tern_sub(port: int, n: int, size: int, cli: str) -> tuple[float, float]:
    nc = await _tern_connect(port)
    sub = await nc.subscribe("bench.sub")
    ca = _ca()
    # (tern bench takes host:port; --tls-ca alone makes it TLS)
    target = ["-s", f"localhost:{port}", "--tls-ca", ca] if ca else \
        ["-s", f"127.0.0.1:{port}"]
    proc = await asyncio.create_subprocess_exec(
        cli, "bench", *target, "--pub", "1", "--sub", "0", "-n", str(n),
        "--size", str(size), "--subject", "bench.sub",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    got = 0
    t0 = c0 = 0.0
    async for _ in sub:
        got += 1
        if got == 1:
            t0 = time.perf_counter()
            c0 = time.process_time()
        if got == n:
            break
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await proc.wait()
    await nc.close()
    return (n - 1) / dt, cpu / (n - 1) * 1e6


async def redis_sub(port: int, n: int, size: int) -> tuple[float, float]:
    r = _redis(port)
    ps = r.pubsub()
    await ps.subscribe("bench.sub")
    await ps.get_message(timeout=5)  # the subscribe confirmation
    ca = _ca()
    tls = ["--tls", "--cacert", ca, "-h", "localhost"] if ca else []
    proc = await asyncio.create_subprocess_exec(
        "redis-benchmark", *tls, "-p", str(port), "-c", "1", "-P", "100", "-n", str(n),
        "PUBLISH", "bench.sub", "x" * size,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    got = 0
    t0 = c0 = 0.0
    while got < n:
        m = await ps.get_message(timeout=30)
        if m is None:
            raise RuntimeError(f"redis subscriber stalled at {got}")
        if m["type"] != "message":
            continue
        got += 1
        if got == 1:
            t0 = time.perf_counter()
            c0 = time.process_time()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await proc.wait()
    await ps.close()
    await r.close()
    return (n - 1) / dt, cpu / (n - 1) * 1e6


async def tern_responder(port: int) -> None:
    """Answers until stdin closes, then prints the CPU seconds it used."""
    import tern
    nc = await tern.connect(f"127.0.0.1:{port}")
    await nc.reply("bench.req", lambda m: m.data)
    await nc.flush()
    c0 = time.process_time()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(f"{time.process_time() - c0:.6f}", flush=True)
    await nc.close()


async def tern_requester(port: int) -> tuple[Any, Any]:
    """(one request, close) for ternd."""
    import tern
    nc = await tern.connect(f"127.0.0.1:{port}")
    data = b"x" * 16

    async def one() -> None:
        await nc.request("bench.req", data, timeout=30)

    return one, nc.close


async def redis_responder(port: int) -> None:
    import redis.asyncio as redis
    r = redis.Redis(port=port)
    ps = r.pubsub()
    await ps.subscribe("bench.req")
    await ps.get_message(timeout=5)

    async def serve() -> None:
        while True:
            m = await ps.get_message(timeout=None)
            if m is None or m["type"] != "message":
                continue
            inbox, _, body = m["data"].partition(b"|")
            await r.publish(inbox, body)

    t = asyncio.create_task(serve())
    c0 = time.process_time()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(f"{time.process_time() - c0:.6f}", flush=True)
    t.cancel()


async def redis_requester(port: int) -> tuple[Any, Any]:
    """(one request, close) for redis: PUBLISH to the service with our
    channel in the message, then wait for the reply on it."""
    import redis.asyncio as redis
    r = redis.Redis(port=port)
    ps = r.pubsub()
    inbox = f"inbox.{os.getpid()}"
    await ps.subscribe(inbox)
    await ps.get_message(timeout=5)
    msg = inbox.encode() + b"|" + b"x" * 16

    async def one() -> None:
        if await r.publish("bench.req", msg) == 0:
            raise RuntimeError("no responders")
        while True:
            m = await ps.get_message(timeout=30)
            if m is None:
                raise RuntimeError("no reply")
            if m["type"] == "message":
                return

    async def close() -> None:
        await ps.close()
        await r.close()

    return one, close


async def requester(kind: str, port: int) -> None:
    """Serves the driver: each line on stdin is a number of sequential
    requests to make; answers "round-trips/s cpu-us-per-request"."""
    one, close = await (tern_requester if kind == "tern" else redis_requester)(port)
    await one()  # warm: the reply path is live
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        k = int(line)
        t0 = time.perf_counter()
        c0 = time.process_time()
        for _ in range(k):
            await one()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        print(f"{k / dt:.1f} {cpu / k * 1e6:.3f}", flush=True)
    await close()


def role_main(argv: list[str]) -> None:
    role, port, *rest = argv
    p = int(port)
    coro = {
        "tern-pub": lambda: tern_pub(p, int(rest[0]), int(rest[1])),
        "redis-pub": lambda: redis_pub(p, int(rest[0]), int(rest[1]), False),
        "redis-pub-pipe": lambda: redis_pub(p, int(rest[0]), int(rest[1]), True),
        "tern-sub": lambda: tern_sub(p, int(rest[0]), int(rest[1]), rest[2]),
        "redis-sub": lambda: redis_sub(p, int(rest[0]), int(rest[1])),
        "tern-responder": lambda: tern_responder(p),
        "tern-requester": lambda: requester("tern", p),
        "redis-responder": lambda: redis_responder(p),
        "redis-requester": lambda: requester("redis", p),
    }[role]()
    r = asyncio.run(coro)
    if r is not None:
        print(f"{r[0]:.1f} {r[1]:.3f}", flush=True)


# --- driver -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role(*args: object, ca: str | None = None) -> tuple[float, float]:
    """Runs a role (over TLS with the CA ca); (msgs/s, client CPU
    microseconds per message)."""
    env = dict(os.environ)
    env.pop("TERN_BENCH_CA", None)
    if ca:
        env["TERN_BENCH_CA"] = ca
    out = subprocess.run([PY, __file__, "--role", *map(str, args)], check=True,
                         capture_output=True, text=True, timeout=600, env=env)
    rate, cpu = out.stdout.split()[-2:]
    return float(rate), float(cpu)


class ReqPair:
    """A responder and a requester process of one kind, kept for the whole
    row, so that tern and redis can alternate in short turns: a burst of
    load from the rest of the machine then hits both sides alike."""

    def __init__(self, kind: str, port: int) -> None:
        self.resp = subprocess.Popen([PY, __file__, "--role", f"{kind}-responder", str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.resp.stdout is not None
        assert self.resp.stdout.readline().strip() == "ready"
        self.req = subprocess.Popen([PY, __file__, "--role", f"{kind}-requester", str(port)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.served = 1  # the warm-up request

    def turn(self, k: int) -> tuple[float, float]:
        """k requests: (round trips/s, requester CPU us per request)."""
        assert self.req.stdin is not None and self.req.stdout is not None
        self.req.stdin.write(f"{k}\n")
        self.req.stdin.flush()
        rate, cpu = self.req.stdout.readline().split()
        self.served += k
        return float(rate), float(cpu)

    def close(self) -> float:
        """Ends both; the responder's CPU us per request."""
        assert self.req.stdin is not None and self.resp.stdin is not None
        assert self.resp.stdout is not None
        self.req.stdin.close()
        self.req.wait(60)
        self.resp.stdin.close()
        cpu = float(self.resp.stdout.readline())
        self.resp.wait(60)
        return cpu / self.served * 1e6


def req_row(tport: int, rport: int, runs: int, reqs: int) -> tuple[list, list]:
    """Each run: 10 alternating turns of reqs/10 requests per side; a run's
    rate is its requests over its time. CPU: requester + responder."""
    t, r = ReqPair("tern", tport), ReqPair("redis", rport)
    tt, rr = [], []
    try:
        for _ in range(runs):
            k = max(1, reqs // 10)
            ts, rs = [], []
            for _ in range(10):
                ts.append(t.turn(k))
                rs.append(r.turn(k))
            tt.append((10 * k / sum(k / x[0] for x in ts), statistics.mean(x[1] for x in ts)))
            rr.append((10 * k / sum(k / x[0] for x in rs), statistics.mean(x[1] for x in rs)))
    finally:
        tcpu, rcpu = t.close(), r.close()
    return ([(x, c + tcpu) for x, c in tt], [(x, c + rcpu) for x, c in rr])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        role_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--msgs", type=int, default=200000)
    ap.add_argument("--reqs", type=int, default=5000)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--rows", default="pub,sub,req",
                    help="which rows: pub, sub, req (comma-separated)")
    ap.add_argument("--tls", action="store_true",
                    help="publish and subscribe over TLS vs plaintext (and redis-py over TLS)")
    a = ap.parse_args()
    ternd = os.path.join(a.build, "bin", "ternd")
    cli = os.path.join(a.build, "bin", "tern")
    for exe in (ternd, cli):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe} not built")
    for exe in ("redis-server", "redis-benchmark"):
        if shutil.which(exe) is None:
            sys.exit(f"bench: {exe} missing (client/python/bench/run.sh installs it)")

    tmp = tempfile.mkdtemp(prefix="tern-pybench.")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        tls_args: list[str] = []
        rtls_args: list[str] = []
        ca = ""
        rtport = 0
        if a.tls:
            certs = os.path.join(tmp, "certs")
            subprocess.run(["sh", str(ROOT / "scripts" / "make-certs.sh"), certs], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ca = os.path.join(certs, "ca.pem")
            pem, key = os.path.join(certs, "server.pem"), os.path.join(certs, "server.key")
            tls_args = ["--tls-cert", pem, "--tls-key", key]
            rtport = free_port()
            rtls_args = ["--tls-port", str(rtport), "--tls-cert-file", pem, "--tls-key-file", key,
                         "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        tport = free_port()
        procs.append(subprocess.Popen([ternd, "--host", "127.0.0.1", "--port", str(tport),
                                       "--http-port", "0", "--log-level", "error", *tls_args]))
        rport = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--client-output-buffer-limit",
             "pubsub 0 0 0", *rtls_args], stdout=subprocess.DEVNULL))
        for port in (tport, rport) + ((rtport,) if rtport else ()):
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.01)

        if a.tls:
            tls_table(a, tport, rtport, ca, cli)
            return
        rows: list = []
        for size in (16, 1024) if "pub" in a.rows else ():
            rows.append((f"publish {size} B (msgs/s)",
                         lambda s=size: role("tern-pub", tport, a.msgs, s),
                         lambda s=size: role("redis-pub", rport, a.msgs // 10, s),
                         lambda s=size: role("redis-pub-pipe", rport, a.msgs, s)))
        for size in (16, 1024) if "sub" in a.rows else ():
            rows.append((f"subscribe {size} B (msgs/s)",
                         lambda s=size: role("tern-sub", tport, a.msgs, s, cli),
                         lambda s=size: role("redis-sub", rport, a.msgs, s),
                         None))
        if "req" in a.rows:
            rows.append(("request/reply (round trips/s)", None, None, None))

        print(f"runs={a.runs} msgs={a.msgs} reqs={a.reqs}; median of each cell", file=sys.stderr)
        table = []
        for name, t_fn, r_fn, rp_fn in rows:
            t, r, rp = [], [], []
            if t_fn is None:
                t, r = req_row(tport, rport, a.runs, a.reqs)
            for _ in range(a.runs if t_fn is not None else 0):
                t.append(t_fn())  # interleaved, so a noisy moment hits both
                r.append(r_fn())
                if rp_fn is not None:
                    rp.append(rp_fn()[0])
            tm = statistics.median(x[0] for x in t)
            rm = statistics.median(x[0] for x in r)
            tc = statistics.median(x[1] for x in t)
            rc = statistics.median(x[1] for x in r)
            rpm = f"{statistics.median(rp):,.0f}" if rp else "-"
            table.append(f"| {name} | {tm:,.0f} | {rm:,.0f} | **{tm / rm:.1f}x** | "
                         f"{tc:.2f} | {rc:.2f} | {rc / tc:.1f}x | {rpm} |")
            print(f"{name}: tern {[round(x[0]) for x in t]} redis-py {[round(x[0]) for x in r]}"
                  + (f" pipelined {[round(x) for x in rp]}" if rp else ""), file=sys.stderr)
            print(f"{name} CPU us: tern {[round(x[1], 1) for x in t]} "
                  f"redis-py {[round(x[1], 1) for x in r]}", file=sys.stderr)
        print("| row | tern (Python) | redis-py asyncio | ratio | tern CPU us/msg "
              "| redis-py CPU us/msg | CPU ratio | redis-py pipelined |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(table))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def tls_table(a: argparse.Namespace, tport: int, rtport: int, ca: str, cli: str) -> None:
    """--tls: publish and subscribe, tern plaintext vs TLS vs redis-py TLS."""
    rows: list = []
    for size in (16, 1024) if "pub" in a.rows else ():
        rows.append((f"publish {size} B (msgs/s)",
                     lambda s=size, c=None: role("tern-pub", tport, a.msgs, s, ca=c),
                     lambda s=size: role("redis-pub-pipe", rtport, a.msgs, s, ca=ca)))
    for size in (16, 1024) if "sub" in a.rows else ():
        rows.append((f"subscribe {size} B (msgs/s)",
                     lambda s=size, c=None: role("tern-sub", tport, a.msgs, s, cli, ca=c),
                     lambda s=size: role("redis-sub", rtport, a.msgs, s, ca=ca)))
    print(f"runs={a.runs} msgs={a.msgs}; median of each cell; TLS", file=sys.stderr)
    table = []
    for name, t_fn, r_fn in rows:
        plain, tls, red = [], [], []
        for _ in range(a.runs):  # interleaved, so a noisy moment hits all three
            plain.append(t_fn())
            tls.append(t_fn(c=ca))
            red.append(r_fn())
        pm, tm, rm = (statistics.median(x[0] for x in v) for v in (plain, tls, red))
        pc, tc = (statistics.median(x[1] for x in v) for v in (plain, tls))
        table.append(f"| {name} | {pm:,.0f} | {tm:,.0f} | {tm / pm:.2f} | {pc:.2f} | {tc:.2f} "
                     f"| {rm:,.0f} | **{tm / rm:.1f}x** |")
        print(f"{name}: tern plain {[round(x[0]) for x in plain]} TLS {[round(x[0]) for x in tls]}"
              f" redis-py TLS {[round(x[0]) for x in red]}", file=sys.stderr)
    print("| row | tern plaintext | tern TLS | TLS/plaintext | plaintext CPU us/msg "
          "| TLS CPU us/msg | redis-py TLS (publish pipelined) | tern TLS / redis-py TLS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
