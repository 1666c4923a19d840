"""The tern wire protocol, version 1: frame encoding and decoding.

A frame is a 4-byte big-endian length, then exactly one msgpack array whose
first element is the frame type (protocol/PROTOCOL.md in the tern tree is the
byte-level reference). This module does no I/O: the connection feeds the
bytes it reads to a :class:`Decoder` and writes what the ``encode_*``
functions return.

The two frames that carry messages have hand-written fast paths, checked
against msgpack by the tests: :func:`pub_head` builds the part of a PUB frame
that precedes the payload without going through msgpack, and the decoder
reads a MSG frame's sid, topic and payload directly, handing anything
unusual (an options map, an unexpected encoding) to msgpack.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack

from .errors import InvalidTopicError, ProtocolError

__all__ = [
    "HELLO", "CONNECT", "PUB", "SUB", "UNSUB", "MSG", "PING", "PONG", "OK",
    "ERR", "PUBACK", "DROPPED", "GOAWAY",
    "PING_FRAME", "PONG_FRAME", "DEFAULT_MAX_PAYLOAD", "DEFAULT_MAX_FRAME",
    "encode", "encode_connect", "encode_pub", "encode_sub", "encode_unsub",
    "pub_head", "topic_prefix", "check_topic", "Decoder", "Headers",
]

HELLO, CONNECT, PUB, SUB, UNSUB, MSG = 1, 2, 3, 4, 5, 6
PING, PONG, OK, ERR, PUBACK, DROPPED, GOAWAY = 7, 8, 9, 10, 11, 12, 13

DEFAULT_MAX_PAYLOAD = 1 << 20
DEFAULT_MAX_FRAME = DEFAULT_MAX_PAYLOAD + 64 * 1024
MAX_TOPIC = 1024

PING_FRAME = b"\x00\x00\x00\x02\x91\x07"
PONG_FRAME = b"\x00\x00\x00\x02\x91\x08"

#: Headers as given to publish: a mapping, or (key, value) pairs when a key
#: repeats (headers are multi-valued on the wire).
Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_U32 = struct.Struct(">I")
_pack_u32 = _U32.pack
_unpack_u32 = _U32.unpack_from
_BAD_TOPIC_BYTE = re.compile(r"[\x00-\x20\x7f]")
_OVERFLOW = ("block", "drop_oldest", "drop_newest", "disconnect")


_PACKER = msgpack.Packer(use_bin_type=True)


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def encode(obj: list[Any]) -> bytes:
    """A whole frame: length prefix + the msgpack array ``obj``."""
    body = _packb(obj)
    return _pack_u32(len(body)) + body


# --- topics ---------------------------------------------------------------


def check_topic(topic: str, wildcards: bool = False, what: str = "topic") -> bytes:
    """Validates a topic (``wildcards`` False) or a pattern (True) as the
    broker does and returns its UTF-8 bytes; raises InvalidTopicError."""
    if not isinstance(topic, str):
        raise InvalidTopicError(f"{what} must be str, not {type(topic).__name__}")
    try:
        raw = topic.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTopicError(f"{what} {topic!r} is not valid UTF-8") from None
    if not raw or len(raw) > MAX_TOPIC:
        raise InvalidTopicError(f"{what} must be 1..{MAX_TOPIC} bytes")
    if _BAD_TOPIC_BYTE.search(topic):
        raise InvalidTopicError(f"{what} {topic!r} holds whitespace or a control character")
    tokens = topic.split(".")
    last = len(tokens) - 1
    for i, tok in enumerate(tokens):
        if not tok:
            raise InvalidTopicError(f"{what} {topic!r} has an empty token")
        if tok == "*" or tok == ">":
            if not wildcards:
                raise InvalidTopicError(f"{what} {topic!r} may not hold wildcards")
            if tok == ">" and i != last:
                raise InvalidTopicError(f"{what} {topic!r}: '>' may only be the last token")
        elif "*" in tok or ">" in tok:
            raise InvalidTopicError(f"{what} {topic!r}: wildcards must be whole tokens")
    return raw


def _str_head(n: int) -> bytes:
    if n < 32:
        return bytes((0xA0 | n,))
    if n < 256:
        return bytes((0xD9, n))
    if n < 65536:
        return b"\xda" + n.to_bytes(2, "big")
    return b"\xdb" + n.to_bytes(4, "big")


def topic_prefix(raw_topic: bytes) -> bytes:
    """``93 03`` + the topic as a msgpack str: what every options-less PUB to
    that topic starts with after its length prefix."""
    return b"\x93\x03" + _str_head(len(raw_topic)) + raw_topic


_BIN8 = [b"\xc4" + bytes((i,)) for i in range(256)]
_FIXSTR = [bytes((0xA0 | i,)) for i in range(32)]


def bin_head(n: int) -> bytes:
    """The msgpack bin header for a payload of n bytes (smallest form)."""
    if n < 256:
        return _BIN8[n]
    if n < 65536:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def pub_head(prefix: bytes, payload_len: int) -> bytes:
    """Everything of an options-less PUB frame before the payload bytes:
    length prefix, ``prefix`` (from :func:`topic_prefix`), bin header."""
    bh = _BIN8[payload_len] if payload_len < 256 else bin_head(payload_len)
    return _pack_u32(len(prefix) + len(bh) + payload_len) + prefix + bh


# --- encoders -------------------------------------------------------------


def encode_connect(
    name: str | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    echo: bool = True,
    verbose: bool = False,
) -> bytes:
    """CONNECT ``[2, opts]``: proto always, strings when set, echo only when
    false, verbose only when true (as libtern encodes it)."""
    opts: dict[str, Any] = {"proto": 1}
    if name is not None:
        opts["name"] = name
    if user is not None:
        opts["user"] = user
    if password is not None:
        opts["pass"] = password
    if token is not None:
        opts["token"] = token
    if not echo:
        opts["echo"] = False
    if verbose:
        opts["verbose"] = True
    return encode([CONNECT, opts])


def _pack_headers(packer: msgpack.Packer, headers: Headers) -> bytes:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    out = [packer.pack_map_header(len(pairs))]
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("header keys and values must be str")
        out.append(packer.pack(k))
        out.append(packer.pack(v))
    return b"".join(out)


def encode_pub(
    topic: str,
    payload: bytes,
    *,
    reply: str | None = None,
    headers: Headers | None = None,
    ack: int | None = None,
    retain: bool = False,
    ttl_ms: int = 0,
) -> bytes:
    """PUB ``[3, topic, payload, opts?]``; opts keys in libtern's order
    (reply, headers, ack, retain, ttl_ms), left out when empty. The topic is
    not validated here."""
    packer = _PACKER
    parts: list[bytes] = []
    n = 0
    if reply is not None:
        parts += [packer.pack("reply"), packer.pack(reply)]
        n += 1
    if headers is not None:
        parts += [packer.pack("headers"), _pack_headers(packer, headers)]
        n += 1
    if ack is not None:
        parts += [packer.pack("ack"), packer.pack(ack)]
        n += 1
    if retain:
        parts += [packer.pack("retain"), packer.pack(True)]
        n += 1
    if ttl_ms:
        parts += [packer.pack("ttl_ms"), packer.pack(ttl_ms)]
        n += 1
    body = [b"\x94\x03" if n else b"\x93\x03", packer.pack(topic), packer.pack(bytes(payload))]
    if n:
        body.append(packer.pack_map_header(n))
        body += parts
    b = b"".join(body)
    return _pack_u32(len(b)) + b


def _uint(n: int) -> bytes:
    """An unsigned integer in its smallest msgpack form."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0xCC, n))
    if n < 0x10000:
        return b"\xcd" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\xce" + n.to_bytes(4, "big")
    return b"\xcf" + n.to_bytes(8, "big")


def reply_frame(topic: bytes, payload: bytes) -> bytes:
    """An options-less PUB ``[3, topic, payload]`` of a reply, in one join:
    topic is the reply topic's UTF-8 bytes (unchecked: the broker checked
    it when it came in a MSG); the same bytes as encode_pub."""
    t, n = len(topic), len(payload)
    th = _FIXSTR[t] if t < 32 else _str_head(t)
    bh = _BIN8[n] if n < 256 else bin_head(n)
    return b"".join((_pack_u32(2 + len(th) + t + len(bh) + n), b"\x93\x03", th, topic, bh,
                     payload))


def request_head(prefix: bytes) -> bytes:
    """What a request PUB to a topic starts with after its length prefix:
    ``94 03`` + the topic, from the topic's :func:`topic_prefix`."""
    return b"\x94" + prefix[1:]


def request_frame(head: bytes, payload: bytes, reply: bytes, ack: int) -> bytes:
    """PUB ``[3, topic, payload, {reply, ack}]`` by hand (a request), with
    head from :func:`request_head` and the reply topic's UTF-8 bytes; the
    same bytes as encode_pub."""
    n = len(reply)
    body = b"".join((head, _BIN8[len(payload)] if len(payload) < 256 else bin_head(len(payload)),
                     payload, b"\x82\xa5reply", _FIXSTR[n] if n < 32 else _str_head(n), reply,
                     b"\xa3ack", bytes((ack,)) if ack < 0x80 else _uint(ack)))
    return _pack_u32(len(body)) + body


def encode_sub(
    sid: int,
    pattern: str,
    *,
    queue: str | None = None,
    max_msgs: int = 0,
    max_bytes: int = 0,
    overflow: str | None = None,
) -> bytes:
    """SUB ``[4, sid, pattern, opts?]``."""
    opts: dict[str, Any] = {}
    if queue is not None:
        opts["queue"] = queue
    if max_msgs:
        opts["max_msgs"] = max_msgs
    if max_bytes:
        opts["max_bytes"] = max_bytes
    if overflow is not None:
        if overflow not in _OVERFLOW:
            raise ValueError(f"policy must be one of {', '.join(_OVERFLOW)}")
        opts["overflow"] = overflow
    return encode([SUB, sid, pattern, opts] if opts else [SUB, sid, pattern])


def encode_unsub(sid: int, max_msgs: int | None = None) -> bytes:
    """UNSUB ``[5, sid, max_msgs?]``."""
    return encode([UNSUB, sid] if max_msgs is None else [UNSUB, sid, max_msgs])


# --- decoder --------------------------------------------------------------


def _is_uint(v: Any) -> bool:
    return type(v) is int and v >= 0


def _check_str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise ProtocolError(f"{what} must be str")
    return v


def check_msg_opts(opts: Any) -> tuple[str | None, dict[str, str] | None, bool]:
    """(reply, headers, retained) from a MSG options map (nil = absent)."""
    if opts is None:
        return None, None, False
    if type(opts) is not dict:
        raise ProtocolError("MSG options must be a map")
    reply = opts.get("reply")
    if reply is not None:
        _check_str(reply, "MSG reply")
    headers = opts.get("headers")
    if headers is not None:
        if type(headers) is not dict:
            raise ProtocolError("MSG headers must be a map")
        for k, v in headers.items():
            if type(k) is not str or type(v) is not str:
                raise ProtocolError("MSG header keys and values must be str")
    retained = opts.get("retained")
    if retained is not None and type(retained) is not bool:
        raise ProtocolError("MSG retained must be a bool")
    return reply, headers, retained is True


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except UnicodeDecodeError:
        raise ProtocolError("invalid UTF-8 in a str") from None
    except msgpack.ExtraData:
        raise ProtocolError("bytes after the frame's array") from None
    except (ValueError, msgpack.UnpackException) as e:
        raise ProtocolError(f"malformed msgpack: {e}") from None


def decode_frame(body: bytes) -> list[Any]:
    """Decodes and checks one frame body (without its length prefix) the
    slow, general way; MSG options are returned as a checked tuple
    (reply, headers, retained) in place of the map. Raises ProtocolError."""
    f = _unpack(body)
    if type(f) is not list or not f:
        raise ProtocolError("a frame must be a non-empty array")
    t = f[0]
    if not _is_uint(t) or t == 0:
        raise ProtocolError("frame type must be a positive integer")
    n = len(f)
    if t == MSG:
        if n < 4:
            raise ProtocolError("MSG needs sid, topic and payload")
        if not _is_uint(f[1]):
            raise ProtocolError("MSG sid must be an unsigned integer")
        _check_str(f[2], "MSG topic")
        if type(f[3]) is not bytes:
            raise ProtocolError("MSG payload must be bin")
        return [MSG, f[1], f[2], f[3], check_msg_opts(f[4] if n > 4 else None)]
    if t in (PING, PONG, OK):
        return [t]
    if t == HELLO:
        if n < 2 or type(f[1]) is not dict:
            raise ProtocolError("HELLO needs an info map")
        info = f[1]
        if not _is_uint(info.get("proto")):
            raise ProtocolError("HELLO proto missing or not an unsigned integer")
        for k in ("max_payload", "max_frame", "heartbeat_ms"):
            if k in info and info[k] is not None and not _is_uint(info[k]):
                raise ProtocolError(f"HELLO {k} must be an unsigned integer")
        return [HELLO, info]
    if t == ERR:
        if n < 3 or not _is_uint(f[1]):
            raise ProtocolError("ERR needs a code and a message")
        return [ERR, f[1], _check_str(f[2], "ERR message")]
    if t in (PUBACK, DROPPED):
        if n < 3 or not _is_uint(f[1]) or not _is_uint(f[2]):
            raise ProtocolError(f"frame type {t} needs two unsigned integers")
        return [t, f[1], f[2]]
    if t == GOAWAY:
        if n < 2:
            raise ProtocolError("GOAWAY needs a reason")
        return [GOAWAY, _check_str(f[1], "GOAWAY reason")]
    if t in (CONNECT, PUB, SUB, UNSUB):
        raise ProtocolError(f"frame type {t} is not sent by a server")
    raise ProtocolError(f"unknown frame type {t}")


# A message handler: (sid, topic, payload, reply, headers, retained, size)
# -> True to stop decoding (the decoder keeps the rest until resume()).
MsgHandler = Callable[[int, str, bytes, "str | None", "dict[str, str] | None", bool, int], Any]
FrameHandler = Callable[[list[Any]], Any]


class Decoder:
    """Splits a byte stream into frames and hands them on.

    ``feed(data)`` decodes every whole frame in the stream: MSG frames go to
    ``on_msg(sid, topic, payload, reply, headers, retained, size)``, every
    other frame to ``on_frame([type, ...])`` (checked by
    :func:`decode_frame`). A handler that returns a true value stops the
    decoding after its frame; the rest stays buffered until ``resume()``.
    A length prefix of 0 or above ``max_frame`` raises ProtocolError at once,
    without waiting for the body; so does any malformed frame.
    """

    __slots__ = ("max_frame", "_buf", "_pos", "_on_msg", "_on_frame", "_topics", "stopped",
                 "on_puback")

    def __init__(self, on_msg: MsgHandler, on_frame: FrameHandler,
                 max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        #: When set, ``on_puback(ack, receivers)`` gets the PUBACKs in the
        #: forms the broker writes instead of on_frame (a request's hot path).
        self.on_puback: Callable[[int, int], bool] | None = None
        self._buf = b""  # received bytes; the undecoded ones start at _pos
        self._pos = 0
        self._on_msg = on_msg
        self._on_frame = on_frame
        self._topics: dict[bytes, str] = {}
        self.stopped = False

    def buffered(self) -> int:
        """Bytes received but not decoded yet."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Adds data and decodes what it can (unless stopped).

        A read usually ends inside a frame. Rather than copying the whole
        next read behind that unfinished frame, the frame is completed from
        the head of the new read and decoded alone, and the rest of the read
        is decoded where it lies."""
        data = bytes(data)
        buf, pos = self._buf, self._pos
        rest = len(buf) - pos
        if rest == 0:
            self._buf, self._pos = data, 0
        elif rest >= 4 and not self.stopped:
            flen = _unpack_u32(buf, pos)[0]
            need = 4 + flen - rest
            if 0 < flen <= self.max_frame and 0 < need < len(data):
                self._buf, self._pos = buf[pos:] + data[:need], 0
                self._run()
                if self.stopped:
                    self._buf = self._buf[self._pos:] + data[need:]
                    self._pos = 0
                    return
                self._buf, self._pos = data, need
            else:
                self._buf, self._pos = buf[pos:] + data, 0
        else:
            self._buf, self._pos = buf[pos:] + data, 0
        if not self.stopped:
            self._run()

    def resume(self) -> None:
        """Continues after a handler stopped the decoding."""
        self.stopped = False
        self._run()

    def _run(self) -> None:
        data = self._buf
        n = len(data)
        pos = self._pos
        max_frame = self.max_frame
        on_msg = self._on_msg
        topics = self._topics
        try:
            while n - pos >= 4:
                flen = _unpack_u32(data, pos)[0]
                if flen == 0 or flen > max_frame:
                    raise ProtocolError(
                        "frame length 0" if flen == 0 else
                        f"frame length {flen} above max_frame {max_frame}")
                p = pos + 4
                end = p + flen
                if end > n:
                    break
                pos = end
                # MSG fast path: [6, sid, topic, payload] in the forms the
                # broker writes; anything else goes to msgpack below.
                if flen > 4 and data[p + 1] == 6 and (data[p] == 0x94 or data[p] == 0x95):
                    try:
                        q = p + 2
                        b = data[q]
                        if b < 0x80:
                            sid = b
                            q += 1
                        elif b == 0xCC:
                            sid = data[q + 1]
                            q += 2
                        elif b == 0xCD:
                            sid = (data[q + 1] << 8) | data[q + 2]
                            q += 3
                        elif b == 0xCE:
                            sid = _unpack_u32(data, q + 1)[0]
                            q += 5
                        elif b == 0xCF:
                            sid = int.from_bytes(data[q + 1:q + 9], "big")
                            q += 9
                        else:
                            raise IndexError
                        b = data[q]
                        if 0xA0 <= b <= 0xBF:
                            tl = b & 0x1F
                            q += 1
                        elif b == 0xD9:
                            tl = data[q + 1]
                            q += 2
                        elif b == 0xDA:
                            tl = (data[q + 1] << 8) | data[q + 2]
                            q += 3
                        else:
                            raise IndexError
                        traw = data[q:q + tl]
                        q += tl
                        b = data[q]
                        if b == 0xC4:
                            pl = data[q + 1]
                            q += 2
                        elif b == 0xC5:
                            pl = (data[q + 1] << 8) | data[q + 2]
                            q += 3
                        elif b == 0xC6:
                            pl = _unpack_u32(data, q + 1)[0]
                            q += 5
                        else:
                            raise IndexError
                        q += pl
                        if q > end or (q != end and data[p] == 0x94):
                            raise IndexError
                    except IndexError:
                        pass
                    else:
                        topic = topics.get(traw)
                        if topic is None:
                            if len(traw) != tl:
                                raise ProtocolError("truncated MSG topic")
                            try:
                                topic = traw.decode("utf-8")
                            except UnicodeDecodeError:
                                raise ProtocolError("MSG topic is not valid UTF-8") from None
                            if len(topics) >= 4096:
                                topics.clear()
                            topics[traw] = topic
                        if q == end:
                            stop = on_msg(sid, topic, data[q - pl:q], None, None, False, flen)
                        elif data.startswith(b"\x81\xa5reply", q) and (
                                (0xA0 <= data[q + 7] <= 0xBF
                                 and q + 8 + (data[q + 7] & 0x1F) == end and (r0 := q + 8))
                                or (data[q + 7] == 0xD9 and q + 9 + data[q + 8] == end
                                    and (r0 := q + 9))):
                            # A request: {reply: str}, its only option.
                            try:
                                reply = data[r0:end].decode("utf-8")
                            except UnicodeDecodeError:
                                raise ProtocolError("invalid UTF-8 in a str") from None
                            stop = on_msg(sid, topic, data[q - pl:q], reply, None, False, flen)
                        else:
                            reply, headers, retained = check_msg_opts(_unpack(data[q:end]))
                            stop = on_msg(sid, topic, data[q - pl:q], reply, headers,
                                          retained, flen)
                        if stop:
                            self.stopped = True
                            break
                        continue
                if 4 <= flen <= 8 and data[p + 1] == 11 and data[p] == 0x93 and self.on_puback:
                    b = data[p + 2]
                    if flen == 4 and b < 0x80 and data[p + 3] < 0x80:
                        stop = self.on_puback(b, data[p + 3])
                    elif flen == 5 and b == 0xCC and data[p + 4] < 0x80:
                        stop = self.on_puback(data[p + 3], data[p + 4])
                    elif flen == 6 and b == 0xCD and data[p + 5] < 0x80:
                        stop = self.on_puback((data[p + 3] << 8) | data[p + 4], data[p + 5])
                    elif flen == 8 and b == 0xCE and data[p + 7] < 0x80:
                        stop = self.on_puback(_unpack_u32(data, p + 3)[0], data[p + 7])
                    else:
                        stop = self._on_frame(decode_frame(data[p:end]))
                    if stop:
                        self.stopped = True
                        break
                    continue
                if flen == 2 and data[p] == 0x91 and 7 <= data[p + 1] <= 9:
                    f = [data[p + 1]]  # PING, PONG, OK
                elif (flen == 4 and data[p] == 0x93 and data[p + 1] == 11
                      and data[p + 2] < 0x80 and data[p + 3] < 0x80):
                    f = [11, data[p + 2], data[p + 3]]  # PUBACK with small numbers
                elif (flen == 5 and data[p] == 0x93 and data[p + 1] == 11
                      and data[p + 2] == 0xCC and data[p + 4] < 0x80):
                    f = [11, data[p + 3], data[p + 4]]
                elif (flen == 6 and data[p] == 0x93 and data[p + 1] == 11
                      and data[p + 2] == 0xCD and data[p + 5] < 0x80):
                    f = [11, (data[p + 3] << 8) | data[p + 4], data[p + 5]]
                elif (flen == 8 and data[p] == 0x93 and data[p + 1] == 11
                      and data[p + 2] == 0xCE and data[p + 7] < 0x80):
                    f = [11, _unpack_u32(data, p + 3)[0], data[p + 7]]
                else:
                    f = decode_frame(data[p:end])
                if f[0] == MSG:
                    r, h, ret = f[4]
                    stop = on_msg(f[1], f[2], f[3], r, h, ret, flen)
                else:
                    stop = self._on_frame(f)
                if stop:
                    self.stopped = True
                    break
        finally:
            self._pos = pos
