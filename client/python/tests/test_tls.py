"""TLS against a real ternd, with certificates made by scripts/make-certs.sh
in a temporary directory: pub/sub and request/reply over TLS, mutual TLS
(good, expired, wrong-CA and no client certificate), server names, the
insecure option, plaintext against a TLS-only broker and the reverse,
reconnects, and logging in over TLS by token, password or certificate."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

import tern
from conftest import ROOT

WAIT = 30.0  # against a hang only


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", str(ROOT / "scripts" / "make-certs.sh"), str(d)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


@pytest.fixture
def tls_broker(make_broker, certs: Path):
    """ternd with TLS (server.pem by default) and the extra arguments."""

    def make(*extra: str, server: str = "server"):
        return make_broker("--tls-cert", str(certs / f"{server}.pem"),
                           "--tls-key", str(certs / f"{server}.key"), *extra)

    return make


def mtls_args(certs: Path) -> tuple[str, ...]:
    return ("--tls-required", "--tls-verify", "--tls-ca", str(certs / "ca.pem"))


def client_cert(certs: Path, name: str = "client") -> dict[str, str]:
    return {"tls_cert_file": str(certs / f"{name}.pem"),
            "tls_key_file": str(certs / f"{name}.key")}


async def tls_connect(b, certs: Path, host: str = "localhost", **kw):
    kw.setdefault("tls_ca_file", str(certs / "ca.pem"))
    kw.setdefault("reconnect", False)
    kw.setdefault("connect_timeout", WAIT)
    return await tern.connect(f"tls://{host}:{b.port}", **kw)


async def roundtrip(nc: tern.Connection, topic: str) -> None:
    async with nc.subscribe(topic) as sub:
        await nc.publish(topic, b"hello")
        m = await sub.next_msg(WAIT)
        assert (m.topic, m.data) == (topic, b"hello")


async def until(pred, what: str) -> None:
    """Waits for pred() (bounded only against a hang)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 60.0
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def tls_version(nc: tern.Connection) -> str | None:
    tr = nc._transport
    assert tr is not None
    so = tr.get_extra_info("ssl_object")
    return None if so is None else so.version()


async def test_pubsub_and_request_reply_over_tls(tls_broker, certs) -> None:
    b = tls_broker("--tls-required")
    for host in ("localhost", "127.0.0.1"):  # by name and by address (IP SAN)
        async with await tls_connect(b, certs, host) as nc:
            assert tls_version(nc) in ("TLSv1.2", "TLSv1.3")
            await roundtrip(nc, "tls.pubsub")
            nc.reply("tls.svc", lambda m: b"re:" + m.data)
            await nc.flush()
            r = await nc.request("tls.svc", b"q", timeout=WAIT)
            assert r.data == b"re:q"
            # A payload spanning many TLS records.
            big = os.urandom(200_000)
            async with nc.subscribe("tls.big") as sub:
                await nc.publish("tls.big", big)
                assert (await sub.next_msg(WAIT)).data == big


async def test_tls_flag_and_per_server_scheme(tls_broker, make_broker, certs) -> None:
    b = tls_broker("--tls-required")
    # No scheme: the tls option decides.
    async with await tern.connect(f"localhost:{b.port}", tls=True,
                                  tls_ca_file=str(certs / "ca.pem"), reconnect=False) as nc:
        await roundtrip(nc, "tls.flag")
    # A list: plaintext for one server, TLS for the other; when the first
    # goes, the reconnect makes a TLS handshake with the second.
    plain = make_broker()
    got = []
    async with await tern.connect([f"tern://127.0.0.1:{plain.port}", f"tls://localhost:{b.port}"],
                                  tls_ca_file=str(certs / "ca.pem"), reconnect_initial=0.01,
                                  on_status=lambda s, e: got.append(s)) as nc:
        assert nc.connected_server == f"127.0.0.1:{plain.port}"
        assert tls_version(nc) is None
        plain.stop()
        await until(lambda: nc.status == tern.Status.CONNECTED and len(got) >= 3,
                    "reconnected to the TLS server")
        assert nc.connected_server == f"localhost:{b.port}"
        assert tls_version(nc) in ("TLSv1.2", "TLSv1.3")
        await roundtrip(nc, "tls.list")


async def test_mutual_tls_good_expired_wrong_ca_and_none(tls_broker, certs) -> None:
    b = tls_broker(*mtls_args(certs))
    async with await tls_connect(b, certs, **client_cert(certs)) as nc:
        await roundtrip(nc, "mtls.good")
    with pytest.raises(tern.TLSError, match="certificate expired"):
        await tls_connect(b, certs, **client_cert(certs, "client-expired"))
    with pytest.raises(tern.TLSError, match="unknown ca"):
        await tls_connect(b, certs, **client_cert(certs, "client-wrongca"))
    with pytest.raises(tern.TLSError, match="certificate required"):
        await tls_connect(b, certs)


async def test_an_ssl_context_of_ones_own(tls_broker, certs) -> None:
    b = tls_broker(*mtls_args(certs))
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    async with await tern.connect(f"tls://localhost:{b.port}", tls_context=ctx,
                                  reconnect=False) as nc:
        await roundtrip(nc, "ctx.own")
    # The context's own CA is used: a context trusting another CA is refused.
    bad = ssl.create_default_context(cafile=str(certs / "wrongca.pem"))
    with pytest.raises(tern.TLSError, match="certificate verify failed"):
        await tern.connect(f"tls://localhost:{b.port}", tls_context=bad, reconnect=False)
    with pytest.raises(ValueError, match="tls_context replaces"):
        await tern.connect(f"tls://localhost:{b.port}", tls_context=ctx,
                           tls_ca_file=str(certs / "ca.pem"))


async def test_server_name_checked_by_default(tls_broker, certs, caplog) -> None:
    b = tls_broker(server="server-wrongname")
    with pytest.raises(tern.TLSError, match="certificate verify failed: Hostname mismatch"):
        await tls_connect(b, certs)
    with pytest.raises(tern.TLSError, match="IP address mismatch"):
        await tls_connect(b, certs, "127.0.0.1")
    # The name the certificate does carry.
    async with await tls_connect(b, certs, tls_server_name="wrong.example") as nc:
        await roundtrip(nc, "name.given")
    assert not [r for r in caplog.records if r.name == "tern"]
    # Or no check at all, named for what it is, and said in the log.
    with caplog.at_level(logging.WARNING, logger="tern"):
        async with await tls_connect(b, certs, tls_ca_file=None,
                                     tls_insecure_skip_verify=True) as nc:
            await roundtrip(nc, "name.skipped")
    warned = [r for r in caplog.records if r.name == "tern" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "tls_insecure_skip_verify" in warned[0].getMessage()


async def test_wrong_ca_on_the_client_side_refused(tls_broker, certs) -> None:
    b = tls_broker()
    with pytest.raises(tern.TLSError, match="certificate verify failed"):
        await tls_connect(b, certs, tls_ca_file=str(certs / "wrongca.pem"))


async def test_tls_files_that_do_not_load(certs) -> None:
    with pytest.raises(tern.TLSError, match="CA file"):
        tern.make_tls_context(ca_file=str(certs / "missing.pem"))
    with pytest.raises(tern.TLSError, match="certificate"):
        tern.make_tls_context(cert_file=str(certs / "client.pem"),
                              key_file=str(certs / "server.key"))  # not its key
    ctx = tern.make_tls_context(ca_file=str(certs / "ca.pem"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(tern.TLSError, match="CA file"):
        await tern.connect("tls://localhost:1", tls_ca_file=str(certs / "missing.pem"))


async def test_plaintext_client_on_tls_only_broker_gets_its_error(tls_broker) -> None:
    b = tls_broker("--tls-required")
    with pytest.raises(tern.ProtocolError, match="TLS required"):
        await tern.connect(b.url, reconnect=False, connect_timeout=WAIT)


async def test_tls_client_on_plaintext_broker_fails_fast(make_broker, certs) -> None:
    b = make_broker()
    with pytest.raises(tern.TLSError, match="not TLS"):
        await tls_connect(b, certs)


async def test_handshake_never_answered_ends_at_connect_timeout(certs) -> None:
    # A peer that accepts TCP (the kernel does) and never says a word.
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        port = ls.getsockname()[1]
        with pytest.raises(tern.ConnectTimeoutError):
            await tern.connect(f"tls://localhost:{port}", tls_ca_file=str(certs / "ca.pem"),
                               reconnect=False, connect_timeout=0.3)


async def test_reconnect_over_tls_after_the_broker_restarts(tls_broker, certs) -> None:
    b = tls_broker(*mtls_args(certs))
    async with await tls_connect(b, certs, reconnect=True, reconnect_initial=0.01,
                                 max_reconnect_attempts=-1, **client_cert(certs)) as nc:
        sub = nc.subscribe("rc.tls")
        await nc.flush()
        first = nc._transport
        b.restart()  # same port, same certificates: a new handshake
        await until(lambda: nc.reconnects >= 1 and nc.is_connected, "reconnected")
        assert nc._transport is not first
        assert tls_version(nc) in ("TLSv1.2", "TLSv1.3")
        await nc.flush(timeout=WAIT)  # the subscription is back
        await nc.publish("rc.tls", b"after")
        assert (await sub.next_msg(WAIT)).data == b"after"


def users_config(tmp_path: Path, body: str) -> str:
    p = tmp_path / "users.ini"
    p.write_text(body)
    return str(p)


async def test_certificate_identity_logs_in_as_its_user(tls_broker, certs, tmp_path) -> None:
    conf = users_config(tmp_path, "[user orders-service]\n"
                                  "cert_subject = CN=orders-service,O=tern-test\n"
                                  "publish = orders.>\n"
                                  "subscribe = orders.>\n")
    b = tls_broker(*mtls_args(certs), "--config", conf)
    errors: list[BaseException] = []
    async with await tls_connect(b, certs, on_error=errors.append,
                                 **client_cert(certs)) as nc:  # no user, password or token
        await roundtrip(nc, "orders.created")
        # With that user's permissions.
        await nc.publish("billing.x", b"no")
        await nc.flush(WAIT)  # the broker's ERR 3 comes before its PONG
        assert [type(e) for e in errors] == [tern.PermissionDeniedError], errors
    # A verified certificate bound to nobody still needs credentials.
    b2 = tls_broker(*mtls_args(certs), "--config", users_config(
        tmp_path, "[user other]\ncert_subject = CN=someone-else,O=tern-test\n"))
    with pytest.raises(tern.AuthError):
        await tls_connect(b2, certs, **client_cert(certs))


async def test_token_and_password_over_tls(tls_broker, certs, ternd_path, tmp_path) -> None:
    b = tls_broker("--tls-required", "--auth-token", "s3cret")
    async with await tls_connect(b, certs, token="s3cret") as nc:
        await roundtrip(nc, "auth.token")
    with pytest.raises(tern.AuthError):
        await tls_connect(b, certs, token="wrong")
    h = subprocess.run([ternd_path, "--hash-password"], input=b"pw\n", check=True,
                       capture_output=True).stdout.decode().strip()
    b2 = tls_broker("--tls-required", "--config", users_config(
        tmp_path, f"[user alice]\npassword = {h}\n"))
    async with await tls_connect(b2, certs, user="alice", password="pw") as nc:
        await roundtrip(nc, "auth.password")
    with pytest.raises(tern.AuthError):
        await tls_connect(b2, certs, user="alice", password="nope")


def test_parse_servers_schemes() -> None:
    from tern.client import parse_servers
    s = parse_servers("tls://a:1,tern://b:2,c:3,[::1]:4")
    assert [(x.host, x.port, x.tls) for x in s] == [
        ("a", 1, True), ("b", 2, False), ("c", 3, False), ("::1", 4, False)]
    s = parse_servers(["c:3", "tern://b:2", "tls://[::1]:4"], tls=True)
    assert [(x.host, x.port, x.tls) for x in s] == [("c", 3, True), ("b", 2, False),
                                                    ("::1", 4, True)]
