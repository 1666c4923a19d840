#!/usr/bin/python3
"""inbound_mem: memory a client can make ternd hold on the way in.

  /usr/bin/python3 bench/inbound_mem.py PID HOST PORT frames [CONNS [SIZE]]
  /usr/bin/python3 bench/inbound_mem.py PID HOST PORT subs [COUNT [PLEN]]

frames: CONNS connections (default 300) each read HELLO and, without
CONNECT, send a PUB frame of SIZE bytes but its last byte
(default 1 MiB), then stop. subs: one connection CONNECTs and sends COUNT
SUBs (default 100,000) of PLEN-byte patterns (default 1,000), then a PING.
Prints ternd's VmRSS before and after (KiB) and what the broker answered
as one JSON line. Not a test.
"""
import json
import socket
import sys
import time

PING = bytes([0, 0, 0, 2, 0x91, 0x07])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def mp_str(s):
    b = s.encode()
    if len(b) < 32:
        return bytes([0xA0 | len(b)]) + b
    if len(b) < 256:
        return bytes([0xD9, len(b)]) + b
    return bytes([0xDA]) + len(b).to_bytes(2, "big") + b


def frame(body):
    return len(body).to_bytes(4, "big") + body


def connect_frame():
    # [2, {proto: 1}]
    return frame(bytes([0x92, 0x02, 0x81]) + mp_str("proto") + bytes([1]))


def sub_frame(sid, pattern):
    # [4, sid, pattern]
    return frame(bytes([0x93, 0x04, 0xCE]) + sid.to_bytes(4, "big") +
                 mp_str(pattern))


def read_some(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1 << 16)
    except (socket.timeout, ConnectionResetError):
        return b""


def frames(pid, host, port, conns, size):
    before = rss_kib(pid)
    socks, closed = [], 0
    # [3, topic, payload]: bin32 payload of size bytes
    head = bytes([0x93, 0x03]) + mp_str("in.mem") + bytes([0xC6]) + \
        size.to_bytes(4, "big")
    total = len(head) + size
    part = total + 4 - 1  # all but the last byte
    chunk = (total.to_bytes(4, "big") + head + bytes(size))[:part]
    for _ in range(conns):
        s = socket.create_connection((host, port))
        read_some(s, 5)  # HELLO
        try:
            s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            closed += 1
        socks.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
    errs = 0
    for s in socks:
        data = read_some(s, 0.2)
        if len(data) > 5 and data[5] == 0x0A:  # ERR
            errs += 1
        s.close()
    return {"mode": "frames", "conns": conns, "frame_bytes": total,
            "rss_kib": [before, after],
            "held_kib_per_conn": round((after - before) / conns, 1),
            "answered_err": errs, "send_failed": closed}


def subs(pid, host, port, count, plen):
    before = rss_kib(pid)
    s = socket.create_connection((host, port))
    read_some(s, 5)
    s.sendall(connect_frame())
    read_some(s, 5)
    batch = []
    for i in range(count):
        p = ("s%d." % i)
        p += "x" * (plen - len(p))
        batch.append(sub_frame(i + 1, p))
        if len(batch) == 512:
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"".join(batch) + PING)
    # Read until the PONG: count the ERR frames on the way.
    buf, errs = b"", 0
    s.settimeout(120)
    while True:
        data = s.recv(1 << 16)
        if not data:
            break
        buf += data
        done = False
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + n:
                break
            body, buf = buf[4:4 + n], buf[4 + n:]
            if body[1] == 0x0A:  # ERR
                errs += 1
            if body[1] == 0x08:  # PONG
                done = True
        if done:
            break
    after = rss_kib(pid)
    s.close()
    return {"mode": "subs", "count": count, "pattern_bytes": plen,
            "rss_kib": [before, after],
            "grew_mib": round((after - before) / 1024, 1),
            "refused": errs}


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    pid, host, port, mode = int(sys.argv[1]), sys.argv[2], \
        int(sys.argv[3]), sys.argv[4]
    a = [int(x) for x in sys.argv[5:]]
    if mode == "frames":
        r = frames(pid, host, port, a[0] if a else 300,
                   a[1] if len(a) > 1 else 1 << 20)
    else:
        r = subs(pid, host, port, a[0] if a else 100000,
                 a[1] if len(a) > 1 else 1000)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
