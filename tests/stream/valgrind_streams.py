"""ternd under valgrind memcheck through a stream workload (issue 19):
persisted publishes (sync always: the sync thread and its wake-ups; a
duplicate), a durable pull consumer with ack, nak and term, a push
consumer, a retained message, a compaction, a reload of the file's streams
(SIGHUP), then SIGTERM and a restart on the same data directory that reads
it all back. Every memory error or definite/indirect leak makes ternd exit
99 (--error-exitcode). Run by ctest as stream_valgrind (label valgrind),
not by the stream_integration run (the name has no test_ prefix)."""
import os
import signal
import subprocess
import tempfile
import time

from ternraw import Broker, Client

VALGRIND = [os.environ.get("TERN_VALGRIND", "/usr/bin/valgrind"), "--quiet",
            "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99"]
WAIT = 120  # ternd runs tens of times slower under valgrind


def stop_clean(b):
    b.proc.send_signal(signal.SIGTERM)
    rc = b.proc.wait(300)
    text = b.log_text()
    b.log.close()
    assert rc == 0, "ternd under valgrind exited %d:\n%s" % (rc, text)


def test_streams_clean_under_memcheck():
    d = tempfile.mkdtemp(prefix="tern-streams-vg-")
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("[stream CONF]\ntopics = conf.>\nmax_msgs = 10\n")
    env = dict(os.environ, TERN_STREAM_SEGMENT_BYTES="8192")
    b = Broker(data_dir=os.path.join(d, "data"), wrapper=VALGRIND, env=env,
               extra=["--config", conf, "--drain-timeout-ms", "1000"])
    try:
        c = Client(b.port)
        c.stream_create("VG", topics=["vg.>"])
        for i in range(20):
            assert c.publish_acked("vg.x", b"m%d" % i, timeout=WAIT)["seq"] \
                == i + 1
        assert c.publish_acked("vg.x", b"again", msgid="id-1",
                               timeout=WAIT)["seq"] == 21
        r = c.publish_acked("vg.x", b"again", msgid="id-1", timeout=WAIT)
        assert r["seq"] == 21 and r.get("duplicate")
        c.consumer_create("VG", "work", ack_wait_ms=60000)
        got = c.fetch("VG", "work", 5, expires_ms=WAIT * 1000)
        assert [m[1] for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        c.pub(got[0][2], b"")        # ack
        c.pub(got[1][2], b"-NAK")    # again
        c.pub(got[2][2], b"+TERM")   # never again
        c.pub(got[3][2], b"+WPI")
        wpi_ack = got[3][2]
        c.pub(got[4][2], b"")
        c.barrier()
        again = c.fetch("VG", "work", 1, expires_ms=WAIT * 1000)
        assert again[0][1] == b"m1"
        c.pub(again[0][2], b"")
        # A push consumer and its subscriber.
        r = Client(b.port)
        sid = r.sub("deliver.vg")
        r.barrier()
        c.consumer_create("VG", push="deliver.vg", ack="none",
                          deliver="new")
        c.publish_acked("vg.y", b"pushed", timeout=WAIT)
        m = r.msg(sid, WAIT)
        assert m is not None and m[3] == b"pushed"
        r.close()
        # A last-value stream over small segments, compacted by the timer.
        c.stream_create("LV", topics=["lv.*"], max_msgs_per_topic=1,
                        sync="never")
        c.publish_acked("lv.cold", b"c", timeout=WAIT)
        for i in range(300):
            c.pub("lv.hot", b"h" * 100)
        c.publish_acked("lv.hot", b"last", timeout=WAIT)
        # Retained, and the file's streams reloaded.
        c.send([3, "ret.a", b"kept", {"retain": True}])
        with open(conf, "w") as f:
            f.write("[stream CONF]\ntopics = conf.>\nmax_msgs = 5\n"
                    "[stream CONF2]\ntopics = conf2.>\n")
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while "stream" not in c.stream_info("CONF2"):
            assert time.monotonic() < deadline, "reload not applied"
            time.sleep(0.2)
        time.sleep(1.5)  # a compaction tick or two
        c.barrier()
        c.close()
        stop_clean(b)

        # A restart reads it all back.
        b.start(0)
        c = Client(b.port)
        assert c.stream_info("VG")["stream"]["state"]["msgs"] == 22
        assert c.stream_info("CONF")["stream"]["config"]["max_msgs"] == 5
        # m3 (+WPI) is still pending: its ack of before the restart holds.
        c.pub(wpi_ack, b"")
        c.barrier()
        got = c.fetch("VG", "work", 1, expires_ms=WAIT * 1000)
        assert got[0][1] == b"m5"
        info = c.request("$TS.API.CONSUMER.INFO.VG.work")["consumer"]
        assert info["ack_pending"] == 1, info
        rs = c.sub("ret.a")
        m = c.msg(rs, WAIT)
        assert m is not None and m[3] == b"kept"
        c.close()
        stop_clean(b)
    finally:
        if b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait()
        if not b.log.closed:
            b.log.close()
        subprocess.run(["rm", "-rf", d])
