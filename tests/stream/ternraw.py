"""A small synchronous tern client for the stream tests: raw frames over a
socket (protocol/PROTOCOL.md), the stream API (section 8) and a ternd
started on a temporary data directory. Debian's python3-msgpack only."""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import msgpack

PUB, SUB, UNSUB, MSG, PING, PONG, OK, ERR, PUBACK = 3, 4, 5, 6, 7, 8, 9, 10, 11
RECV_S = 10.0


class Broker:
    """ternd on ephemeral ports with --data-dir; restartable on the same
    directory."""

    def __init__(self, data_dir=None, extra=(), env=None):
        self.ternd = os.environ.get("TERND", "build/broker/ternd")
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="tern-streams-")
        self.extra = list(extra)
        self.env = env
        self.proc = None
        self.port = self.http_port = 0
        self.start()

    def start(self, port=0):
        r, w = os.pipe()
        args = [self.ternd, "--port", str(port), "--http-port", "-1",
                "--ready-fd", str(w), "--data-dir", self.data_dir,
                "--log-level", "warn",
                # one event loop unless the run asks for more (the suite's
                # _w4 registration: 4); extra comes later and wins
                "--workers", os.environ.get("TERND_TEST_WORKERS") or "1",
                ] + self.extra
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, pass_fds=(w,), env=self.env,
                                     stderr=self.log)
        os.close(w)
        line = b""
        ready, _, _ = select.select([r], [], [], 30)
        if ready:
            line = os.read(r, 64)
        os.close(r)
        if not line:
            self.proc.wait()
            raise RuntimeError("ternd did not start: " + self.log_text())
        ports = line.split()
        self.port, self.http_port = int(ports[0]), int(ports[1])
        # Several workers: the streams live on worker 0 and connections go
        # round-robin, so a first idle connection takes worker 0 and the
        # test's own clients publish, ask and acknowledge from the others.
        self.first = None
        if int(os.environ.get("TERND_TEST_WORKERS") or "1") > 1:
            self.first = socket.create_connection(("127.0.0.1", self.port),
                                                  10)

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def check_log(self):
        """Sanitizer reports (an ASan build) fail the test."""
        text = self.log_text()
        self.log.close()
        for bad in ("Sanitizer", "runtime error:"):
            assert bad not in text, "ternd reported:\n" + text

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.check_log()

    def stop(self):
        if getattr(self, "first", None) is not None:
            self.first.close()
            self.first = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                return
            self.check_log()

    def restart(self):
        self.stop()
        self.start(self.port)

    def close(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def http(self, path):
        s = socket.create_connection(("127.0.0.1", self.http_port), 10)
        s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode()


class Client:
    def __init__(self, port, user=None, password=None, echo=True):
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sid = 0
        self.inbox_n = 0
        self.queued = []
        self.sids = {}
        f = self.recv()
        assert f[0] == 1, f
        opts = {"proto": 1}
        if user:
            opts["user"], opts["pass"] = user, password
        if not echo:
            opts["echo"] = False
        self.send([2, opts])
        f = self.recv()
        assert f[0] == OK, f

    def close(self):
        self.sock.close()

    def __del__(self):
        if hasattr(self, "sock"):
            self.sock.close()

    def send(self, arr):
        b = msgpack.packb(arr, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(b)) + b)

    def recv(self, timeout=RECV_S):
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f = msgpack.unpackb(self.buf[4:4 + n], raw=False)
                    self.buf = self.buf[4 + n:]
                    if f[0] == PING:
                        self.send([PONG])
                        continue
                    return f
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            b = self.sock.recv(1 << 20)
            if not b:
                return None
            self.buf += b

    def next(self, timeout=RECV_S, want=None):
        """The next frame (of type want), queued ones first."""
        for i, f in enumerate(self.queued):
            if want is None or f[0] == want:
                return self.queued.pop(i)
        end = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.0, end - time.monotonic()))
            if f is None or want is None or f[0] == want:
                return f
            self.queued.append(f)

    def barrier(self):
        self.send([PING])
        while True:
            f = self.recv()
            assert f is not None, "no PONG"
            if f[0] == PONG:
                return
            self.queued.append(f)

    def sub(self, pattern, queue=None, **opts):
        self.sid += 1
        o = dict(opts)
        if queue:
            o["queue"] = queue
        self.send([SUB, self.sid, pattern] + ([o] if o else []))
        self.barrier()
        return self.sid

    def pub(self, topic, payload=b"", reply=None, headers=None):
        o = {}
        if reply:
            o["reply"] = reply
        if headers:
            o["headers"] = headers
        self.send([PUB, topic, payload] + ([o] if o else []))

    def inbox(self):
        self.inbox_n += 1
        name = "_INBOX.t%d.%d" % (os.getpid(), self.inbox_n)
        sid = self.sub(name)
        return name, sid

    def msg(self, sid=None, timeout=RECV_S):
        """The next MSG (for sid); fails on an ERR."""
        end = time.monotonic() + timeout
        for i, f in enumerate(self.queued):
            if f[0] == MSG and (sid is None or f[1] == sid):
                return self.queued.pop(i)
        while True:
            f = self.recv(max(0.0, end - time.monotonic()))
            if f is None:
                return None
            if f[0] == MSG and (sid is None or f[1] == sid):
                return f
            self.queued.append(f)

    def request(self, topic, body=None, timeout=RECV_S):
        name, sid = self.inbox()
        payload = msgpack.packb(body) if body is not None else b""
        self.pub(topic, payload, reply=name)
        f = self.msg(sid, timeout)
        self.send([UNSUB, sid])
        if f is None:
            errs = [q for q in self.queued if q[0] == ERR]
            raise AssertionError("no answer to %s (%s)" % (topic, errs))
        return msgpack.unpackb(f[3], raw=False)

    # -- the stream API --
    def stream_create(self, name, **cfg):
        return self.request("$TS.API.STREAM.CREATE." + name, cfg)

    def stream_info(self, name):
        return self.request("$TS.API.STREAM.INFO." + name)

    def consumer_create(self, stream, durable=None, **cfg):
        t = "$TS.API.CONSUMER.CREATE." + stream + ("." + durable if durable else "")
        return self.request(t, cfg)

    def fetch(self, stream, consumer, batch, expires_ms=2000, no_wait=False):
        """Up to batch messages: list of (topic, payload, ack topic, headers)."""
        name, sid = self.inbox()
        body = {"batch": batch, "expires_ms": expires_ms}
        if no_wait:
            body["no_wait"] = True
        self.pub("$TS.API.CONSUMER.NEXT.%s.%s" % (stream, consumer),
                 msgpack.packb(body), reply=name)
        out = []
        while len(out) < batch:
            f = self.msg(sid, expires_ms / 1000.0 + RECV_S)
            assert f is not None, "pull request not ended"
            opts = f[4] if len(f) > 4 else {}
            hdrs = opts.get("headers") or {}
            if "Tern-Status" in hdrs:
                break
            if f[2] == name:  # the API's own answer: an error
                raise AssertionError(msgpack.unpackb(f[3], raw=False))
            out.append((f[2], f[3], opts.get("reply"), hdrs))
        self.send([UNSUB, sid])
        return out

    def publish_acked(self, topic, payload, msgid=None, timeout=RECV_S):
        name, sid = self.inbox()
        self.pub(topic, payload, reply=name,
                 headers={"Tern-Msg-Id": msgid} if msgid else None)
        f = self.msg(sid, timeout)
        self.send([UNSUB, sid])
        assert f is not None, "no stream ack"
        return msgpack.unpackb(f[3], raw=False)


def ack_seq(ack_topic):
    """(deliveries, stream seq) of a $TS.ACK topic."""
    t = ack_topic.split(".")
    return int(t[4]), int(t[5])
