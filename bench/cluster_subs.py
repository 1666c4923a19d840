#!/usr/bin/python3
"""Holds N subscriptions (subjects i.0 .. i.N-1) on one connection to a
tern or NATS server until stdin closes; prints "ready" once the server has
answered a PING after the last SUB. Used by bench/run-cluster.sh to time how
long a new node of a cluster takes to learn that interest.

    cluster_subs.py tern|nats PORT N
"""
import socket
import struct
import sys

import msgpack


def tern_frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def read_until(sock, pred):
    buf = b""
    while not pred(buf):
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("cluster_subs: the server closed the connection")
        buf += chunk
    return buf


def tern(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    out = [tern_frame([2, {"proto": 1}])]
    for i in range(n):
        out.append(tern_frame([4, i + 1, "i.%d" % i]))
    out.append(tern_frame([7]))
    s.sendall(b"".join(out))
    # HELLO, OK, then PONG ([8]) last: 00 00 00 02 91 08
    read_until(s, lambda b: b.endswith(b"\x00\x00\x00\x02\x91\x08"))
    return s


def nats(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    read_until(s, lambda b: b"\r\n" in b)
    out = [b'CONNECT {"verbose":false,"pedantic":false}\r\n']
    for i in range(n):
        out.append(b"SUB i.%d %d\r\n" % (i, i + 1))
    out.append(b"PING\r\n")
    s.sendall(b"".join(out))
    read_until(s, lambda b: b.endswith(b"PONG\r\n"))
    return s


def main():
    kind, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = tern(port, n) if kind == "tern" else nats(port, n)
    print("ready", flush=True)
    sys.stdin.read()
    s.close()


if __name__ == "__main__":
    main()
