"""The POP3 client against the real Dovecot POP3 service and fake misbehaving servers."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
from protocol_fakes import FakeServer, Peer

from mailbag.errors import AuthError, NetworkError, ProtocolError, TLSError
from mailbag.protocols.pop3 import Pop3Client
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def pop_sb() -> Iterator[Sandbox]:
    """POP3 sees only INBOX: these tests get their own servers so that other tests'
    INBOX mail and these tests' deletions never meet."""
    with Sandbox(services={"imap", "pop3", "lmtp"}) as sb:
        sb.fill("alice", 40, seed=5)
        yield sb


def pop3s(sb: Sandbox) -> Endpoint:
    return Endpoint("localhost", sb.ports.pop3s, Security.SSL, sb.ca_file, timeout=20)


def stls(sb: Sandbox) -> Endpoint:
    return Endpoint("localhost", sb.ports.pop3, Security.STARTTLS, sb.ca_file, timeout=20)


def imap_uid(uidl: str) -> int:
    # the sandbox's pop3_uidl_format is %08Xu%08Xv: the IMAP UID in hex, then UIDVALIDITY
    return int(uidl[:8], 16)


def test_stls_then_login_and_listings(pop_sb: Sandbox) -> None:
    p = Pop3Client(stls(pop_sb))
    p.connect()
    assert "STLS" in p.capabilities
    with pytest.raises(TLSError):
        p.user_pass(pop_sb.address("alice"), pop_sb.password("alice"))  # not before TLS
    p.stls()
    assert p.is_tls and "STLS" not in p.capabilities  # CAPA asked again after TLS
    p.login(pop_sb.address("alice"), pop_sb.password("alice"))
    count, total = p.stat()
    sizes = p.list_all()
    uidls = p.uidl()
    assert count == len(sizes) == len(uidls) >= 40
    assert total == sum(sizes.values())
    assert p.uidl_one(1) == uidls[1] and p.list_one(2) == sizes[2]
    headers = p.top(1, 0)
    assert isinstance(headers, bytes) and headers.endswith(b"\r\n\r\n")
    assert p.quit() is True


def test_retr_byte_exact_and_pipelined(pop_sb: Sandbox) -> None:
    with pop_sb.control("alice") as ctl:
        expected = ctl.fetch_bodies("INBOX")
    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    assert "PIPELINING" in p.capabilities
    uidls = p.uidl()
    one = p.retr(3)
    assert one == expected[imap_uid(uidls[3])]
    sink = io.BytesIO()
    assert p.retr(4, sink) == len(expected[imap_uid(uidls[4])])
    assert sink.getvalue() == expected[imap_uid(uidls[4])]
    results = list(p.retr_many(sorted(uidls), lambda n: io.BytesIO(), window=8))
    assert [r.msgnum for r in results] == sorted(uidls)
    for r in results:
        assert r.error is None and isinstance(r.sink, io.BytesIO)
        assert r.sink.getvalue() == expected[imap_uid(uidls[r.msgnum])]
        assert r.size == len(r.sink.getvalue())
    # a missing message in the middle of a pipelined batch is reported, the rest arrive
    mixed = list(p.retr_many([1, 9999, 2], lambda n: io.BytesIO()))
    assert [r.error is None for r in mixed] == [True, False, True]
    p.quit()


def test_dot_stuffed_lines_come_back_exact(pop_sb: Sandbox) -> None:
    mid = uuid.uuid4().hex
    message = (
        f"Message-ID: <{mid}@proto.test>\r\nSubject: dots\r\n\r\n".encode()
        + b".leading dot\r\n..two dots\r\n.\r\n. space\r\nend\r\n"
    )
    pop_sb.deliver("alice", message)
    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    last = max(p.list_all())
    got = p.retr(last)
    assert isinstance(got, bytes) and got.endswith(message)
    p.quit()


def test_dele_is_committed_only_by_quit(pop_sb: Sandbox) -> None:
    mid = uuid.uuid4().hex
    pop_sb.deliver("alice", f"Message-ID: <{mid}@proto.test>\r\n\r\nbye\r\n".encode())

    def find(p: Pop3Client) -> int | None:
        for n in sorted(p.list_all(), reverse=True):
            head = p.top(n, 0)
            assert isinstance(head, bytes)
            if mid.encode() in head:
                return n
        return None

    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    n = find(p)
    assert n is not None
    p.dele(n)
    pop_sb.drop_connections("alice")  # gone before QUIT
    # Dovecot says "-ERR [SYS/TEMP] Server shutting down." and closes: either way, no commit
    with pytest.raises((NetworkError, ProtocolError)):
        p.noop()
    assert p.quit() is False

    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    n = find(p)
    assert n is not None, "DELE without QUIT must not delete"
    p.dele(n)
    p.rset()  # undone
    p.dele(n)
    assert p.quit() is True

    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    assert find(p) is None
    with pytest.raises(ProtocolError):
        p.retr(99999)
    p.quit()


def test_sasl_plain_and_hostname_check(pop_sb: Sandbox) -> None:
    p = Pop3Client(pop3s(pop_sb))
    p.connect()
    assert "PLAIN" in p.capabilities["SASL"]
    from mailbag.protocols import sasl

    p.authenticate("PLAIN", sasl.plain(pop_sb.address("bob"), pop_sb.password("bob")))
    assert p.stat()[0] >= 0
    p.quit()
    with pytest.raises(TLSError) as err:
        Pop3Client(
            Endpoint("127.0.0.1", pop_sb.ports.pop3s, Security.SSL, pop_sb.ca_file)
        ).connect()
    assert err.value.fields["cause"] == "hostname-mismatch"


# --- misbehaving servers --------------------------------------------------------------


def _pop_until_stls(peer: Peer, capa: list[bytes]) -> bool:
    peer.send(b"+OK fake POP3 <1896.697170952@dbc.mtview.ca.us>\r\n")
    while True:
        line = peer.readline()
        if not line:
            return False
        verb = line.strip().upper()
        if verb == b"CAPA":
            peer.send(b"+OK\r\n" + b"".join(c + b"\r\n" for c in capa) + b".\r\n")
        elif verb == b"STLS":
            return True
        elif verb == b"QUIT":
            peer.send(b"+OK bye\r\n")
            return False
        else:
            peer.send(b"-ERR no\r\n")


def test_stls_stripped_from_capa_is_refused(pop_sb: Sandbox) -> None:
    with FakeServer(lambda p: _pop_until_stls(p, [b"USER", b"UIDL"])) as srv:
        c = Pop3Client(Endpoint("localhost", srv.port, Security.STARTTLS, pop_sb.ca_file))
        c.connect()
        assert c.apop_timestamp == "<1896.697170952@dbc.mtview.ca.us>"
        with pytest.raises(TLSError) as err:
            c.stls()
        assert err.value.fields["cause"] == "starttls-missing"
    assert srv.peer is not None
    assert not any(x.startswith((b"USER", b"PASS", b"AUTH")) for x in srv.peer.received)


def test_injection_after_stls_go_ahead_is_refused(pop_sb: Sandbox) -> None:
    def script(peer: Peer) -> None:
        if _pop_until_stls(peer, [b"STLS", b"USER"]):
            peer.send(b"+OK Begin TLS\r\n+OK injected\r\n")
            peer.start_tls(pop_sb.certs.cert_file, pop_sb.certs.key_file)
            peer.readline()

    with FakeServer(script) as srv:
        c = Pop3Client(Endpoint("localhost", srv.port, Security.STARTTLS, pop_sb.ca_file))
        c.connect()
        with pytest.raises(TLSError) as err:
            c.stls()
        assert err.value.fields["cause"] == "starttls-injection"


def test_apop_sends_rfc_digest() -> None:
    def script(peer: Peer) -> None:
        peer.send(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")
        line = peer.readline()
        if line == b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n":
            peer.send(b"+OK maildrop has 1 message (369 octets)\r\n")
        else:
            peer.send(b"-ERR wrong digest\r\n")
        peer.readline()

    with FakeServer(script) as srv:
        c = Pop3Client(Endpoint("127.0.0.1", srv.port, Security.NONE, None))
        c.connect()
        c.apop("mrose", "tanstaaf")
        assert c.authenticated
        c.close()


def test_retr_many_stopped_early_keeps_the_session_usable(pop_sb: Sandbox) -> None:
    p = Pop3Client.open(pop3s(pop_sb), pop_sb.address("alice"), pop_sb.password("alice"))
    gen = p.retr_many(range(1, 20), lambda n: io.BytesIO(), window=8)
    assert next(gen).msgnum == 1
    gen.close()
    assert p.stat()[0] >= 19  # the next command gets its own answer
    assert p.quit() is True


# last: Dovecot slows down logins from this address after a failure
def test_wrong_password(pop_sb: Sandbox) -> None:
    p = Pop3Client(pop3s(pop_sb))
    p.connect()
    with pytest.raises(AuthError) as err:
        p.user_pass(pop_sb.address("bob"), "wrong")
    assert "Authentication failed" in str(err.value.fields["server_text"])
    p.close()
