"""The codec against protocol/PROTOCOL.md's hex, and the hand-written PUB
and MSG fast paths against msgpack."""

from __future__ import annotations

import random
import struct

import msgpack
import pytest

from tern import protocol as P
from tern.errors import InvalidTopicError, ProtocolError


def hx(s: str) -> bytes:
    return bytes.fromhex(s)


HELLO_HEX = """00 00 00 69 92 01 87 a5 70 72 6f 74 6f 01 a6 73 65 72 76 65 72 ab 74 65 72 6e
64 2f 30 2e 31 2e 30 a9 73 65 72 76 65 72 5f 69 64 a2 6e 31 ab 6d 61 78 5f 70
61 79 6c 6f 61 64 ce 00 10 00 00 a9 6d 61 78 5f 66 72 61 6d 65 ce 00 11 00 00
ad 61 75 74 68 5f 72 65 71 75 69 72 65 64 c2 ac 68 65 61 72 74 62 65 61 74 5f
6d 73 cd 75 30"""


def test_encoders_match_protocol_md() -> None:
    assert P.encode_connect(name="app", echo=False) == hx(
        "00 00 00 19 92 02 83 a5 70 72 6f 74 6f 01 a4 6e 61 6d 65 a3 61 70 70 a4 65 63"
        "68 6f c2")
    assert P.encode_connect() == hx("00 00 00 0a 92 02 81 a5 70 72 6f 74 6f 01")
    assert P.encode_pub("a.b", b"hi") == hx("00 00 00 0a 93 03 a3 61 2e 62 c4 02 68 69")
    assert P.encode_pub("a.b", b"hi", reply="r", headers={"k": "v"}, ack=7) == hx(
        "00 00 00 25 94 03 a3 61 2e 62 c4 02 68 69 83 a5 72 65 70 6c 79 a1 72 a7 68 65"
        "61 64 65 72 73 81 a1 6b a1 76 a3 61 63 6b 07")
    assert P.encode_sub(1, "a.*") == hx("00 00 00 07 93 04 01 a3 61 2e 2a")
    assert P.encode_sub(1, "a.*", queue="q", overflow="drop_oldest") == hx(
        "00 00 00 25 94 04 01 a3 61 2e 2a 82 a5 71 75 65 75 65 a1 71 a8 6f 76 65 72 66"
        "6c 6f 77 ab 64 72 6f 70 5f 6f 6c 64 65 73 74")
    assert P.encode_unsub(1) == hx("00 00 00 03 92 05 01")
    assert P.encode_unsub(1, 10) == hx("00 00 00 04 93 05 01 0a")
    assert P.PING_FRAME == hx("00 00 00 02 91 07")
    assert P.PONG_FRAME == hx("00 00 00 02 91 08")
    # The fast path writes the same bytes as the general encoder.
    pre = P.topic_prefix(P.check_topic("a.b"))
    assert P.pub_head(pre, 2) + b"hi" == P.encode_pub("a.b", b"hi")


def decode_all(data: bytes, max_frame: int = P.DEFAULT_MAX_FRAME) -> list[list]:
    out: list[list] = []
    d = P.Decoder(lambda *m: out.append(["MSG", *m]), lambda f: out.append(f), max_frame)
    d.feed(data)
    assert d.buffered() == 0
    return out


def test_decoder_matches_protocol_md() -> None:
    frames = {
        HELLO_HEX: [1, {"proto": 1, "server": "ternd/0.1.0", "server_id": "n1",
                        "max_payload": 1048576, "max_frame": 1114112, "auth_required": False,
                        "heartbeat_ms": 30000}],
        "00 00 00 0b 94 06 01 a3 61 2e 62 c4 02 68 69":
            ["MSG", 1, "a.b", b"hi", None, None, False, 11],
        "00 00 00 16 95 06 01 a3 61 2e 62 c4 02 68 69 81 a8 72 65 74 61 69 6e 65 64 c3":
            ["MSG", 1, "a.b", b"hi", None, None, True, 22],
        "00 00 00 02 91 07": [7],
        "00 00 00 02 91 08": [8],
        "00 00 00 02 91 09": [9],
        "00 00 00 11 93 0a 04 ad 69 6e 76 61 6c 69 64 20 74 6f 70 69 63": [10, 4, "invalid topic"],
        "00 00 00 04 93 0b 07 02": [11, 7, 2],
        "00 00 00 06 93 0c 01 cd 01 2c": [12, 1, 300],
        "00 00 00 0b 92 0d a8 73 68 75 74 64 6f 77 6e": [13, "shutdown"],
    }
    for h, want in frames.items():
        assert decode_all(hx(h)) == [want], h
    # All of them in one stream, fed one byte at a time.
    stream = b"".join(hx(h) for h in frames)
    out: list[list] = []
    d = P.Decoder(lambda *m: out.append(["MSG", *m]), lambda f: out.append(f))
    for i in range(len(stream)):
        d.feed(stream[i:i + 1])
    assert out == list(frames.values())


def msg_frame(sid: int, topic: str, payload: bytes, opts: dict | None = None) -> bytes:
    arr = [6, sid, topic, payload] + ([opts] if opts is not None else [])
    body = msgpack.packb(arr, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def test_msg_fast_path_against_msgpack() -> None:
    rng = random.Random(15)
    sids = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    sizes = [0, 1, 31, 255, 256, 65535, 65536, 70000]
    topics = ["a", "a.b", "x" * 31, "y" * 32, "z" * 255, "w" * 256, "é.ü", "t" * 1024]
    frames, want = [], []
    for i in range(400):
        sid = rng.choice(sids)
        topic = rng.choice(topics)
        pl = rng.randbytes(rng.choice(sizes))
        opts = None
        if i % 3 == 0:
            opts = {"reply": "r.x", "headers": {"k": "v", "é": "ü"}, "retained": bool(i % 2)}
        elif i % 3 == 1:
            opts = {"future": [1, 2]}  # unknown keys are ignored
        f = msg_frame(sid, topic, pl, opts)
        frames.append(f)
        o = opts or {}
        want.append(["MSG", sid, topic, pl, o.get("reply"), o.get("headers"),
                     o.get("retained") is True, len(f) - 4])
    assert decode_all(b"".join(frames)) == want
    # A MSG with an element after the options map (forward compatibility)
    # and sid/topic in non-smallest forms go through msgpack and agree.
    odd = b"\x95\x06\xcd\x00\x05\xd9\x03a.b\xc5\x00\x02hi\x80"
    assert decode_all(struct.pack(">I", len(odd)) + odd) == [
        ["MSG", 5, "a.b", b"hi", None, None, False, len(odd)]]
    extra = msgpack.packb([6, 1, "a", b"x", {"retained": True}, "later"], use_bin_type=True)
    assert decode_all(struct.pack(">I", len(extra)) + extra) == [
        ["MSG", 1, "a", b"x", None, None, True, len(extra)]]


def test_request_msg_and_puback_fast_paths_against_msgpack() -> None:
    # A request as the responder gets it: {reply: str} alone, at every str
    # form (fixstr and str8 take the fast path, str16 msgpack), with the
    # reply's bytes decoded the same either way.
    for n in [0, 1, 5, 31, 32, 255, 256, 70000]:
        reply = ("é" + "r" * n)[:max(n, 1)] if n else ""
        f = msg_frame(3, "svc.a", b"q", {"reply": reply})
        assert decode_all(f) == [["MSG", 3, "svc.a", b"q", reply, None, False, len(f) - 4]], n
        # An element after the map still goes through msgpack.
        body = msgpack.packb([6, 3, "svc.a", b"q", {"reply": reply}, 1], use_bin_type=True)
        assert decode_all(struct.pack(">I", len(body)) + body) == [
            ["MSG", 3, "svc.a", b"q", reply, None, False, len(body)]], n
    for bad in [b"\xa2\xff\xfe", b"\xd9\x02\xff\xfe"]:  # invalid UTF-8 in the reply
        body = b"\x95\x06\x01\xa1a\xc4\x00\x81\xa5reply" + bad
        with pytest.raises(ProtocolError):
            decode_all(struct.pack(">I", len(body)) + body)
    for body in [b"\x95\x06\x01\xa1a\xc4\x00\x81\xa5reply\xa3ab",  # str shorter than said
                 b"\x95\x06\x01\xa1a\xc4\x00\x81\xa5reply\x01"]:  # reply not a str
        with pytest.raises(ProtocolError):
            decode_all(struct.pack(">I", len(body)) + body)
    # PUBACK [11, ack, receivers] at every uint form of the ack id, with
    # and without on_puback (which gets the same numbers).
    for ack in [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32]:
        for recv in [0, 1, 127, 128, 70000]:
            body = msgpack.packb([11, ack, recv])
            frame = struct.pack(">I", len(body)) + body
            assert decode_all(frame) == [[11, ack, recv]]
            out: list[list] = []
            d = P.Decoder(lambda *m: out.append(["MSG", *m]), lambda f: out.append(f))
            d.on_puback = lambda a, r: out.append(["ack", a, r])  # type: ignore[func-returns-value]
            d.feed(frame + frame)
            fast = ack < 2**32 and recv < 128  # the forms the fast path reads
            assert out == [["ack", ack, recv] if fast else [11, ack, recv]] * 2


def test_request_frame_against_encode_pub() -> None:
    for topic in ["a", "x" * 31, "x" * 32, "é.b", "x" * 300]:
        head = P.request_head(P.topic_prefix(P.check_topic(topic)))
        for n in [0, 16, 255, 256, 70000]:
            for reply in ["_INBOX.ab.0", "r" * 31, "r" * 32, "é" * 200, "r" * 300]:
                for ack in [0, 127, 128, 255, 256, 65536, 2**32]:
                    pl = b"p" * n
                    assert P.request_frame(head, pl, reply.encode(), ack) == P.encode_pub(
                        topic, pl, reply=reply, ack=ack), (topic, n, reply, ack)


def test_reply_frame_against_encode_pub() -> None:
    for topic in ["a", "x" * 31, "x" * 32, "é.b", "x" * 300, "_INBOX.0123456789abcdef.12"]:
        for n in [0, 16, 255, 256, 65536, 70000]:
            pl = b"p" * n
            assert P.reply_frame(topic.encode(), pl) == P.encode_pub(topic, pl), (topic, n)


def test_pub_fast_path_against_msgpack() -> None:
    for topic in ["a", "a.b", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "é.b"]:
        pre = P.topic_prefix(P.check_topic(topic))
        for n in [0, 1, 15, 16, 255, 256, 1024, 65535, 65536, 1 << 20]:
            body = msgpack.packb([3, topic, b"\0" * n], use_bin_type=True)
            assert P.pub_head(pre, n) + b"\0" * n == struct.pack(">I", len(body)) + body


@pytest.mark.parametrize("frame,why", [
    (b"\x00\x00\x00\x00", "frame length 0"),
    (b"\xff\xff\xff\xff", "above max_frame"),
    (b"\x00\x00\x00\x0a\x94\x06\x01\xa3a.b\xa2hi", "payload must be bin"),
    (b"\x00\x00\x00\x02\x91\x63", "unknown frame type 99"),
    (b"\x00\x00\x00\x02\x91\x00", "positive integer"),
    (b"\x00\x00\x00\x02\x91\xff", "positive integer"),
    (b"\x00\x00\x00\x01\xc0", "non-empty array"),
    (b"\x00\x00\x00\x0b\x94\x06\x01\xa3a\xffb\xc4\x02hi", "UTF-8"),
    (b"\x00\x00\x00\x07\xdd\x93\x85\x85\x85\x85\x85", "malformed"),
    (b"\x00\x00\x00\x03\x92\x01\x80", "HELLO proto"),
    (b"\x00\x00\x00\x03\x92\x0b\x01", "two unsigned"),
    (b"\x00\x00\x00\x04\x93\x0a\x04\x01", "ERR message must be str"),
    (b"\x00\x00\x00\x06\x93\x03\xa1a\xc4\x00", "not sent by a server"),
    (b"\x00\x00\x00\x03\x91\x07\x07", "bytes after"),
    (b"\x00\x00\x00\x0c\x95\x06\x01\xa3a.b\xc4\x02hi\x07", "options must be a map"),
])
def test_malformed_frames_raise(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode_all(frame)


def test_length_above_max_frame_needs_no_body() -> None:
    d = P.Decoder(lambda *a: None, lambda f: None, max_frame=100)
    with pytest.raises(ProtocolError, match="above max_frame"):
        d.feed(b"\x00\x00\x00\x65")


def test_topics() -> None:
    for ok in ["a", "a.b", "é.x", "$SYS.x", "a.$b"]:
        P.check_topic(ok)
    for ok in ["a.*", "a.>", ">", "*.x.*", "$SYS.>"]:
        P.check_topic(ok, wildcards=True)
    for bad in ["", "a..b", ".a", "a.", "a b", "a\tb", "a\x7fb", "a.*", "a.>", "x" * 1025]:
        with pytest.raises(InvalidTopicError):
            P.check_topic(bad)
    for bad in ["a*", "a.>.b", ">b", "a.b*"]:
        with pytest.raises(InvalidTopicError):
            P.check_topic(bad, wildcards=True)


def test_decoder_any_split_and_stop_resume() -> None:
    """Random splits of a stream of MSG and control frames (frames completed
    from the head of the next read), with a handler that stops the decoder
    now and then: the same frames, in order."""
    rng = random.Random(7)
    frames = []
    for i in range(3000):
        if i % 5 == 0:
            frames.append(P.PONG_FRAME)
        else:
            frames.append(msg_frame(i, "t.%d" % (i % 13), rng.randbytes(rng.choice([0, 5, 300, 5000]))))
    stream = b"".join(frames)
    want = decode_all(stream)
    got: list[list] = []

    def on_msg(*m) -> bool:
        got.append(["MSG", *m])
        return rng.random() < 0.05

    def on_frame(f) -> bool:
        got.append(f)
        return rng.random() < 0.05

    d = P.Decoder(on_msg, on_frame)
    i = 0
    while i < len(stream):
        k = rng.choice([1, 3, 7, 100, 4096, 65536])
        d.feed(stream[i:i + k])
        i += k
        while d.stopped and rng.random() < 0.7:
            d.resume()
    while d.stopped or d.buffered():
        before = d.buffered()
        d.resume()
        if not d.stopped and d.buffered() == before:
            break
    assert d.buffered() == 0
    assert got == want
