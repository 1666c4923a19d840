"""Durable streams against a real ternd with a temporary data directory
(issue 19; protocol/PROTOCOL.md section 8)."""
import json
import os
import subprocess
import tempfile
import time

import msgpack
import pytest

from ternraw import Broker, Client, ack_seq, ERR, MSG


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.close()


def test_stream_api_create_info_list_update_delete(broker):
    c = Client(broker.port)
    r = c.stream_create("ORDERS", topics=["orders.>"], max_msgs=100)
    assert r["stream"]["config"]["name"] == "ORDERS"
    assert r["stream"]["config"]["topics"] == ["orders.>"]
    assert r["stream"]["config"]["sync"] == "always"
    # The same definition again is not an error; another one is.
    r = c.stream_create("ORDERS", topics=["orders.>"], max_msgs=100)
    assert "stream" in r
    r = c.stream_create("ORDERS", topics=["orders.>"], max_msgs=5)
    assert r["error"]["code"] == 409
    # Overlapping topics are refused.
    r = c.stream_create("OTHER", topics=["orders.eu.*"])
    assert r["error"]["code"] == 409
    assert c.stream_create("bad.name", topics=["x"])["error"]["code"] == 400
    assert c.stream_create("NOTOPIC")["error"]["code"] == 400
    r = c.request("$TS.API.STREAM.UPDATE.ORDERS", {"max_msgs": 7})
    assert r["stream"]["config"]["max_msgs"] == 7
    c.stream_create("LOGS", topics=["logs.*"], sync="never")
    r = c.request("$TS.API.STREAM.LIST")
    assert sorted(s["config"]["name"] for s in r["streams"]) == ["LOGS", "ORDERS"]
    assert c.request("$TS.API.STREAM.DELETE.LOGS") == {"ok": True}
    assert c.stream_info("LOGS")["error"]["code"] == 404
    assert c.request("$TS.API.STREAM.FROB.X")["error"]["code"] == 400
    # Monitoring shows it.
    st, body = broker.http("/streamz")
    assert st == 200
    z = json.loads(body)
    assert [s["name"] for s in z["streams"]] == ["ORDERS"]
    st, body = broker.http("/metrics")
    assert 'tern_stream_messages{stream="ORDERS"} 0' in body


def test_persisted_publish_acks_in_order_and_dedup(broker):
    c = Client(broker.port)
    c.stream_create("S", topics=["s.>"])
    inbox, sid = c.inbox()
    for i in range(200):
        c.pub("s.x", b"m%d" % i, reply=inbox)
    seqs = []
    for i in range(200):
        f = c.msg(sid)
        assert f is not None
        a = msgpack.unpackb(f[3], raw=False)
        assert a["stream"] == "S"
        seqs.append(a["seq"])
    assert seqs == list(range(1, 201))
    a = c.publish_acked("s.y", b"once", msgid="id-1")
    b = c.publish_acked("s.y", b"once", msgid="id-1")
    assert b["seq"] == a["seq"] and b.get("duplicate") is True
    assert c.stream_info("S")["stream"]["state"]["msgs"] == 201
    # The window survives a restart.
    broker.restart()
    c = Client(broker.port)
    b = c.publish_acked("s.y", b"once", msgid="id-1")
    assert b["seq"] == a["seq"] and b.get("duplicate") is True
    assert c.stream_info("S")["stream"]["state"]["msgs"] == 201


def test_messages_and_durable_consumer_survive_restart(broker):
    c = Client(broker.port)
    c.stream_create("R", topics=["r.*"])
    for i in range(50):
        c.publish_acked("r.a", b"%d" % i)
    c.consumer_create("R", "work")
    got = c.fetch("R", "work", 20)
    assert [int(p) for _, p, _, _ in got] == list(range(20))
    for _, _, ack, _ in got[:10]:
        c.pub(ack, b"")
    c.barrier()
    broker.restart()
    c = Client(broker.port)
    assert c.stream_info("R")["stream"]["state"]["msgs"] == 50
    # The 10 unacked ones are pending (redelivered after ack_wait); the
    # consumer goes on from 21.
    info = c.request("$TS.API.CONSUMER.INFO.R.work")["consumer"]
    assert info["ack_floor"] == 10
    assert info["next_seq"] == 21
    got = c.fetch("R", "work", 30)
    assert [int(p) for _, p, _, _ in got] == list(range(20, 50))


def test_ack_nak_term_redelivery_and_max_deliver(broker):
    c = Client(broker.port)
    adv = c.sub("$SYS.stream.consumer.max_deliveries")
    c.stream_create("A", topics=["a.>"])
    for i in range(3):
        c.publish_acked("a.x", b"%d" % i)
    c.consumer_create("A", "w", ack_wait_ms=300, max_deliver=2)
    got = c.fetch("A", "w", 3)
    assert len(got) == 3
    c.pub(got[0][2], b"+ACK")
    c.pub(got[1][2], b"-NAK")
    c.pub(got[2][2], b"+TERM")
    c.barrier()
    again = c.fetch("A", "w", 1)
    assert again[0][1] == b"1"
    assert ack_seq(again[0][2]) == (2, 2)
    # Not acked: after ack_wait it has had its 2 deliveries: dropped with
    # an advisory.
    f = c.msg(adv, 10)
    assert f is not None
    a = json.loads(f[3])
    assert a["stream"] == "A" and a["consumer"] == "w" and a["stream_seq"] == 2
    assert c.fetch("A", "w", 1, expires_ms=300) == []
    info = c.request("$TS.API.CONSUMER.INFO.A.w")["consumer"]
    assert info["ack_pending"] == 0 and info["max_deliver_hits"] == 1


def test_redelivery_after_consumer_dies_without_acking(broker):
    a = Client(broker.port)
    a.stream_create("D", topics=["d.>"])
    for i in range(5):
        a.publish_acked("d.x", b"%d" % i)
    a.consumer_create("D", "jobs", ack_wait_ms=200)
    got = a.fetch("D", "jobs", 5)
    assert len(got) == 5
    a.close()  # dies holding five unacked messages
    b = Client(broker.port)
    got = b.fetch("D", "jobs", 5, expires_ms=5000)
    assert sorted(p for _, p, _, _ in got) == [b"0", b"1", b"2", b"3", b"4"]
    assert all(ack_seq(ack)[0] == 2 for _, _, ack, _ in got)


def test_deliver_policies(broker):
    c = Client(broker.port)
    c.stream_create("P", topics=["p.*"])
    for i in range(10):
        c.publish_acked("p.a" if i % 2 else "p.b", b"%d" % i)
    c.consumer_create("P", "all")
    c.consumer_create("P", "last", deliver="last")
    c.consumer_create("P", "new", deliver="new")
    c.consumer_create("P", "seq", deliver="by_seq", opt_start_seq=8)
    c.consumer_create("P", "flt", filter="p.b")
    assert [p for _, p, _, _ in c.fetch("P", "all", 10)] == [b"%d" % i for i in range(10)]
    assert [p for _, p, _, _ in c.fetch("P", "last", 5, 300)] == [b"9"]
    assert c.fetch("P", "new", 5, 300) == []
    assert [p for _, p, _, _ in c.fetch("P", "seq", 5, 300)] == [b"7", b"8", b"9"]
    assert [p for _, p, _, _ in c.fetch("P", "flt", 10, 300)] == [b"0", b"2", b"4", b"6", b"8"]
    c.publish_acked("p.a", b"late")
    assert [p for _, p, _, _ in c.fetch("P", "new", 1)] == [b"late"]
    # by_time: from now on.
    t = int(time.time() * 1000) + 1
    time.sleep(0.01)
    c.publish_acked("p.a", b"after")
    c.consumer_create("P", "tm", deliver="by_time", opt_start_time_ms=t)
    assert [p for _, p, _, _ in c.fetch("P", "tm", 5, 300)] == [b"after"]
    # Ephemeral.
    r = c.consumer_create("P", deliver="all")
    name = r["consumer"]["name"]
    assert name.startswith("eph-") and r["consumer"]["durable"] is False
    assert len(c.fetch("P", name, 12)) == 12
    # no_wait ends at once.
    c.consumer_create("P", "new2", deliver="new")
    assert c.fetch("P", "new2", 5, expires_ms=60000, no_wait=True) == []


def test_shared_pull_consumer_gives_each_message_once(broker):
    c1, c2 = Client(broker.port), Client(broker.port)
    c1.stream_create("Q", topics=["q.>"])
    for i in range(100):
        c1.pub("q.x", b"%d" % i)
    c1.publish_acked("q.x", b"end")
    c1.consumer_create("Q", "shared")
    c2.consumer_create("Q", "shared")
    seen = []
    while True:
        a = c1.fetch("Q", "shared", 7, 300)
        b = c2.fetch("Q", "shared", 7, 300)
        for cl, got in ((c1, a), (c2, b)):
            for _, p, ack, _ in got:
                seen.append(p)
                cl.pub(ack, b"")
        if not a and not b:
            break
    assert len(seen) == 101 and len(set(seen)) == 101


def test_push_consumer_queue_group_and_block_pacing(broker):
    c = Client(broker.port)
    c.stream_create("U", topics=["u.>"])
    for i in range(300):
        c.pub("u.x", b"%d" % i)
    c.publish_acked("u.x", b"last")
    w1, w2 = Client(broker.port), Client(broker.port)
    s1 = w1.sub("deliver.u", queue="g", max_msgs=10, overflow="block")
    s2 = w2.sub("deliver.u", queue="g", max_msgs=10, overflow="block")
    c.consumer_create("U", "pusher", push="deliver.u", ack="none")
    got = {1: [], 2: []}
    for cl, sid, k in ((w1, s1, 1), (w2, s2, 2)):
        pass
    deadline = time.monotonic() + 30
    while len(got[1]) + len(got[2]) < 301 and time.monotonic() < deadline:
        for cl, sid, k in ((w1, s1, 1), (w2, s2, 2)):
            f = cl.msg(sid, 0.05)
            if f is not None:
                got[k].append(f[3])
    allp = got[1] + got[2]
    assert len(allp) == 301 and len(set(allp)) == 301
    assert got[1] and got[2]


def test_push_consumer_does_not_outrun_a_blocked_subscriber(broker):
    c = Client(broker.port)
    c.stream_create("B", topics=["b.>"])
    for i in range(2000):
        c.pub("b.x", b"x" * 100)
    c.publish_acked("b.x", b"end")
    slow = Client(broker.port)
    slow.sub("deliver.b", max_msgs=50, overflow="block")
    # The subscriber reads nothing: the consumer must stop near its
    # queue's limit instead of reading the whole log into memory.
    c.consumer_create("B", "p", push="deliver.b", ack="none")
    c.barrier()
    time.sleep(0.3)
    c.barrier()
    info = c.request("$TS.API.CONSUMER.INFO.B.p")["consumer"]
    assert info["delivered"] < 1000, info
    # Reading drains it all.
    n = 0
    while n < 2001:
        f = slow.msg(None, 10)
        assert f is not None, n
        n += 1


def test_limits(broker):
    c = Client(broker.port)
    full = c.sub("$SYS.stream.full")
    c.stream_create("OLD", topics=["old.*"], max_msgs=10)
    for i in range(25):
        c.publish_acked("old.a", b"%d" % i)
    st = c.stream_info("OLD")["stream"]["state"]
    assert st["msgs"] == 10 and st["first_seq"] == 16 and st["last_seq"] == 25
    c.stream_create("NEW", topics=["new.*"], max_msgs=3, discard="new")
    for i in range(3):
        assert "seq" in c.publish_acked("new.a", b"%d" % i)
    r = c.publish_acked("new.a", b"no")
    assert r["error"]["code"] == 507 and "full" in r["error"]["message"]
    f = c.msg(full, 10)
    assert f is not None and json.loads(f[3])["stream"] == "NEW"
    # Without a reply: ERR 13, the connection goes on.
    c.pub("new.a", b"no")
    f = c.next(want=ERR)
    assert f[1] == 13 and "NEW" in f[2]
    c.stream_create("LV", topics=["lv.*"], max_msgs_per_topic=1)
    for t in ("lv.a", "lv.b", "lv.a", "lv.a"):
        c.publish_acked(t, t.encode())
    assert c.stream_info("LV")["stream"]["state"]["msgs"] == 2
    c.stream_create("BY", topics=["by.*"], max_bytes=2000)
    for i in range(100):
        c.publish_acked("by.a", b"x" * 100)
    assert c.stream_info("BY")["stream"]["state"]["bytes"] <= 2000


def test_permissions_protect_the_api():
    hashed = subprocess.run(
        [os.environ.get("TERND", "build/broker/ternd"), "--hash-password"],
        input=b"pw\n", capture_output=True, check=True).stdout.decode().strip()
    d = tempfile.mkdtemp(prefix="tern-streams-conf-")
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("[user admin]\npassword = %s\npublish = >, $TS.API.>\n"
                "subscribe = >\n\n[user app]\npassword = %s\npublish = >\n"
                "subscribe = >\n" % (hashed, hashed))
    b = Broker(extra=["--config", conf])
    try:
        admin = Client(b.port, "admin", "pw")
        assert "stream" in admin.stream_create("X", topics=["x.>"])
        app = Client(b.port, "app", "pw")
        name, sid = app.inbox()
        app.pub("$TS.API.STREAM.DELETE.X", b"", reply=name)
        f = app.next(want=ERR)
        assert f[1] == 3
        assert "stream" in admin.stream_info("X")
    finally:
        b.close()


def test_streams_declared_in_the_config_file():
    d = tempfile.mkdtemp(prefix="tern-streams-conf-")
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("[stream EVENTS]\ntopics = ev.>, audit.*\nmax_msgs = 5\n"
                "sync = interval\nsync_interval_ms = 50\n")
    ternd = os.environ.get("TERND", "build/broker/ternd")
    out = subprocess.run([ternd, "--check-config", conf], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert b"[stream EVENTS]" in out.stdout and b"ev.>, audit.*" in out.stdout
    with open(conf + ".bad", "w") as f:
        f.write("[stream EVENTS]\nmax_msgs = lots\n")
    out = subprocess.run([ternd, "--check-config", conf + ".bad"],
                         capture_output=True)
    assert out.returncode == 2 and b"max_msgs" in out.stderr
    with open(conf + ".empty", "w") as f:
        f.write("[stream EMPTY]\nmax_msgs = 1\n")
    out = subprocess.run([ternd, "--check-config", conf + ".empty"],
                         capture_output=True)
    assert out.returncode == 2 and b"no topics" in out.stderr
    b = Broker(extra=["--config", conf])
    try:
        c = Client(b.port)
        r = c.stream_info("EVENTS")["stream"]
        assert r["config"]["topics"] == ["ev.>", "audit.*"]
        assert r["config"]["sync"] == "interval"
        for i in range(8):
            assert "seq" in c.publish_acked("ev.x", b"%d" % i)
        assert c.stream_info("EVENTS")["stream"]["state"]["msgs"] == 5
    finally:
        b.close()


def test_data_dir_from_the_environment():
    d = tempfile.mkdtemp(prefix="tern-streams-env-")
    env = dict(os.environ, TERN_DATA_DIR=d)
    ternd = os.environ.get("TERND", "build/broker/ternd")
    out = subprocess.run([ternd, "--check-config", "/dev/null"], env=env,
                         capture_output=True)
    assert out.returncode == 0
    assert ("data_dir = %s" % d).encode() in out.stdout


def test_streams_off_without_a_data_dir():
    d = tempfile.mkdtemp()
    b = Broker(data_dir=d)
    b.stop()
    b.data_dir = ""  # --data-dir "": streams off
    b.start()
    try:
        c = Client(b.port)
        name, sid = c.inbox()
        c.pub("$TS.API.STREAM.LIST", b"", reply=name)
        f = c.next(want=ERR)
        assert f[1] == 3
    finally:
        b.stop()


def test_disk_full_refuses_publishes_and_corrupts_nothing():
    d = tempfile.mkdtemp(prefix="tern-streams-tmpfs-")
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", d],
                       capture_output=True)
    if m.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a small tmpfs (needs root): %s"
                    % m.stderr.decode().strip())
    try:
        b = Broker(data_dir=d)
        try:
            c = Client(b.port)
            assert "stream" in c.stream_create("FULL", topics=["full.>"])
            stored = []
            refused = None
            for i in range(20000):
                r = c.publish_acked("full.x", b"%06d" % i + b"x" * 1000)
                if "error" in r:
                    refused = r
                    break
                stored.append(r["seq"])
            assert refused is not None, "never refused on a 4 MiB disk"
            assert refused["error"]["code"] == 507
            assert "disk full" in refused["error"]["message"]
            # Without a reply: ERR 13, and the connection goes on.
            c.pub("full.x", b"y" * 1000)
            f = c.next(want=ERR)
            assert f[1] == 13 and "disk full" in f[2]
            c.barrier()
            assert c.stream_info("FULL")["stream"]["state"]["msgs"] == len(stored)
            # Room again: a purge frees the segments, publishes go on.
            assert c.request("$TS.API.STREAM.PURGE.FULL")["purged"] == len(stored)
            r = c.publish_acked("full.x", b"after")
            assert r.get("seq") == stored[-1] + 1, r
            b.restart()
            c = Client(b.port)
            st = c.stream_info("FULL")["stream"]["state"]
            assert st["msgs"] == 1 and st["last_seq"] == stored[-1] + 1
        finally:
            b.stop()
    finally:
        subprocess.run(["umount", d])
        os.rmdir(d)


def test_retained_messages_survive_restart_with_their_ttl(broker):
    c = Client(broker.port)
    def retain(topic, payload, ttl_ms=0):
        o = {"retain": True}
        if ttl_ms:
            o["ttl_ms"] = ttl_ms
        c.send([3, topic, payload, o])
    retain("ret.keep", b"kept")
    retain("ret.long", b"long", ttl_ms=3600000)
    retain("ret.short", b"short", ttl_ms=300)
    retain("ret.gone", b"gone")
    retain("ret.gone", b"")  # deleted
    retain("ret.keep", b"kept2")  # replaced
    c.barrier()
    time.sleep(0.4)
    broker.restart()
    c = Client(broker.port)
    sid = c.sub("ret.*")
    got = {}
    while True:
        f = c.msg(sid, 1.0)
        if f is None:
            break
        assert f[4]["retained"] is True
        got[f[2]] = f[3]
    assert got == {"ret.keep": b"kept2", "ret.long": b"long"}


def test_cli_stream_pub_consume(broker):
    tern = os.environ.get("TERN", "build/bin/tern")
    srv = ["-s", "127.0.0.1:%d" % broker.port]

    def run(*args, check=True):
        r = subprocess.run([tern] + srv + list(args), capture_output=True,
                           timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    r = run("stream", "add", "CLI", "--topics", "cli.*,other.>",
            "--max-msgs", "50", "--sync", "interval")
    assert b"name=CLI" in r.stdout and b"sync=interval" in r.stdout
    r = run("pub", "--stream-ack", "cli.a", "one")
    assert r.stdout == b"stored as sequence 1\n"
    run("pub", "--stream-ack", "--msg-id", "k", "cli.a", "two")
    r = run("pub", "--stream-ack", "--msg-id", "k", "cli.a", "two")
    assert r.stdout == b"stored as sequence 2 (duplicate)\n"
    r = run("pub", "--stream-ack", "nowhere.a", "x", check=False)
    assert r.returncode == 1 and b"no stream captures" in r.stderr
    assert b"name=CLI" in run("stream", "ls").stdout
    assert b"msgs=2" in run("stream", "info", "CLI").stdout
    r = run("consume", "CLI", "--durable", "d", "--pull", "1")
    assert r.stdout == b"one\ntwo\n"
    # Not acked: after the ack wait they come again; with --ack, once.
    r = run("consume", "CLI", "--pull", "5", "--ack", "--durable", "e")
    assert r.stdout == b"one\ntwo\n"
    assert run("consume", "CLI", "--durable", "e").stdout == b""
    run("stream", "rm", "CLI")
    r = run("stream", "info", "CLI", check=False)
    assert r.returncode == 1 and b"not found" in r.stderr
