"""The SMTP client against the sandbox's real submission server and fake misbehaving ones."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from protocol_fakes import FakeServer, Peer

from mailbag.errors import AuthError, NetworkError, ProtocolError, TLSError
from mailbag.protocols import sasl
from mailbag.protocols.smtp import SmtpClient
from mailbag.protocols.trace import Transcript
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sandbox import Sandbox

pytestmark = pytest.mark.sandbox

SENDER = "bob"
RCPT = "alice"


def submission(sb: Sandbox) -> Endpoint:
    return Endpoint("localhost", sb.smtp_port, Security.STARTTLS, sb.ca_file, timeout=20)


def smtps(sb: Sandbox) -> Endpoint:
    return Endpoint("localhost", sb.smtps_port, Security.SSL, sb.ca_file, timeout=20)


def make_message(sb: Sandbox, body: bytes = b"Hello.\r\n") -> tuple[bytes, str]:
    mid = f"<{uuid.uuid4().hex}@proto.test>"
    msg = (
        f"From: {sb.address(SENDER)}\r\nTo: {sb.address(RCPT)}\r\nSubject: proto smtp\r\n"
        f"Message-ID: {mid}\r\n\r\n"
    ).encode() + body
    return msg, mid


def delivered(sb: Sandbox, mid: str, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        with sb.control(RCPT) as ctl:
            for data in ctl.fetch_bodies("INBOX").values():
                if mid.encode() in data:
                    return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{mid} did not arrive")
        time.sleep(0.1)


@pytest.fixture
def smtp(sandbox: Sandbox) -> Iterator[SmtpClient]:
    c = SmtpClient.open(submission(sandbox), sandbox.address(SENDER), sandbox.password(SENDER))
    yield c
    c.quit()


def test_send_over_starttls_arrives_byte_exact(sandbox: Sandbox, tmp_path: Path) -> None:
    trace = Transcript(tmp_path / "smtp.trace")
    c = SmtpClient(submission(sandbox), trace)
    assert c.connect().code == 220
    c.ehlo()
    assert "STARTTLS" in c.extensions
    assert "AUTH" not in c.extensions  # no AUTH offered before TLS
    with pytest.raises(TLSError) as err:
        c.login(sandbox.address(SENDER), sandbox.password(SENDER))
    assert err.value.fields["cause"] == "no-tls"
    c.starttls()
    assert c.is_tls and "AUTH" in c.extensions and "STARTTLS" not in c.extensions
    c.login(sandbox.address(SENDER), sandbox.password(SENDER))
    body = b"Line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
    msg, mid = make_message(sandbox, body)
    called = []
    result = c.send(
        sandbox.address(SENDER), [sandbox.address(RCPT)], msg, before_end=lambda: called.append(1)
    )
    assert result.ok and not result.partial and called == [1]
    assert result.reply is not None and result.reply.code == 250
    c.quit()
    trace.close()
    got = delivered(sandbox, mid)
    assert got.endswith(msg)  # the LMTP hop only prepends trace headers
    text = (tmp_path / "smtp.trace").read_text()
    assert "AUTH PLAIN <redacted>" in text
    assert (
        base64.b64encode(sasl.plain(sandbox.address(SENDER), sandbox.password(SENDER))).decode()
        not in text
    )


def test_implicit_tls_and_size_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    c = SmtpClient.open(smtps(sandbox), sandbox.address(SENDER), sandbox.password(SENDER))
    assert c.is_tls and c.size_limit == 50 * 1024 * 1024
    assert c.smtputf8 and c.eight_bit_mime
    big = tmp_path / "big.eml"
    with big.open("wb") as f:
        f.truncate(c.size_limit + 1)
    with big.open("rb") as f, pytest.raises(ProtocolError) as err:
        c.send(sandbox.address(SENDER), [sandbox.address(RCPT)], f)
    assert err.value.fields["cause"] == "too-big" and err.value.hint
    msg, mid = make_message(sandbox, "Grüße, 8-bit body\r\n".encode())
    assert c.send(sandbox.address(SENDER), [sandbox.address(RCPT)], msg).ok
    c.quit()
    assert delivered(sandbox, mid).endswith(msg)


def test_wrong_password_quotes_535(sandbox: Sandbox) -> None:
    c = SmtpClient(smtps(sandbox))
    c.connect()
    c.ehlo()
    with pytest.raises(AuthError) as err:
        c.login(sandbox.address(SENDER), "wrong-password")
    assert err.value.fields["smtp_code"] == 535
    assert "535" in str(err.value)
    c.quit()


def test_provider_auth_refusal_keeps_enhanced_code(sandbox: Sandbox) -> None:
    policy = sandbox.smtp_policy
    policy.auth_error = (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled"
    )
    try:
        c = SmtpClient(smtps(sandbox))
        c.connect()
        c.ehlo()
        with pytest.raises(AuthError) as err:
            c.login(sandbox.address(SENDER), sandbox.password(SENDER))
        c.quit()
    finally:
        policy.auth_error = None
    assert err.value.fields["smtp_enhanced"] == "5.7.139"
    assert "SmtpClientAuthentication is disabled" in str(err.value.fields["smtp_text"])


def test_relay_denied_is_a_per_recipient_failure(sandbox: Sandbox, smtp: SmtpClient) -> None:
    msg, mid = make_message(sandbox)
    outside = "someone@outside.example"
    result = smtp.send(sandbox.address(SENDER), [sandbox.address(RCPT), outside], msg)
    assert not result.ok and result.partial
    assert list(result.accepted) == [sandbox.address(RCPT)]
    refusal = result.rejected[outside]
    assert refusal.code == 554 and refusal.enhanced == "5.7.1" and "Relay" in refusal.text
    delivered(sandbox, mid)
    with pytest.raises(ProtocolError) as err:
        smtp.send(sandbox.address(SENDER), [outside], msg)
    assert err.value.fields["smtp_code"] == 554
    assert outside in err.value.fields["rejected"]  # type: ignore[operator]


def test_data_rejection_is_quoted(sandbox: Sandbox, smtp: SmtpClient) -> None:
    sandbox.smtp_policy.reject_data = "554 5.7.1 Message rejected as spam"
    try:
        msg, _ = make_message(sandbox)
        with pytest.raises(ProtocolError) as err:
            smtp.send(sandbox.address(SENDER), [sandbox.address(RCPT)], msg)
    finally:
        sandbox.smtp_policy.reject_data = None
    assert err.value.fields["smtp_code"] == 554
    assert err.value.fields["smtp_enhanced"] == "5.7.1"
    assert "rejected as spam" in str(err.value)


def test_step_by_step_api_returns_replies(sandbox: Sandbox, smtp: SmtpClient) -> None:
    msg, mid = make_message(sandbox)
    assert smtp.mail(sandbox.address(SENDER), size=len(msg)).ok
    assert smtp.rcpt(sandbox.address(RCPT)).ok
    assert smtp.rcpt("x@outside.example").code == 554
    start, end = smtp.data(msg)
    assert start.code == 354 and end is not None and end.ok
    delivered(sandbox, mid)


def test_stopped_server_is_refused(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.stop_service("smtp")
    with pytest.raises(NetworkError) as refused:
        SmtpClient(submission(fresh_sandbox)).connect()
    assert refused.value.fields["cause"] == "refused"


def test_connection_cut_after_final_dot_is_marked() -> None:
    def script(peer: Peer) -> None:
        peer.send(b"220 fake\r\n")
        peer.readline()
        peer.send(b"250 fake\r\n")
        peer.readline()  # MAIL
        peer.send(b"250 ok\r\n")
        peer.readline()  # RCPT
        peer.send(b"250 ok\r\n")
        peer.readline()  # DATA
        peer.send(b"354 go\r\n")
        while peer.readline() not in (b".\r\n", b""):
            pass
        peer.sock.shutdown(2)  # gone before the reply: delivered or not, nobody knows

    with FakeServer(script) as srv:
        c = SmtpClient(Endpoint("127.0.0.1", srv.port, Security.NONE, None))
        c.connect()
        c.ehlo()
        with pytest.raises(NetworkError) as err:
            c.send("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nbody\r\n")
        assert err.value.fields["cause"] == "dropped"
        assert err.value.fields["after_end"] is True
        c.close()


# --- misbehaving servers ----------------------------------------------------------------


def _smtp_until_starttls(peer: Peer, ehlo_lines: list[bytes]) -> bool:
    peer.send(b"220 fake ESMTP\r\n")
    while True:
        line = peer.readline()
        if not line:
            return False
        verb = line.strip().upper()
        if verb.startswith(b"EHLO"):
            body = [b"fake.example", *ehlo_lines]
            out = b"".join(b"250-" + x + b"\r\n" for x in body[:-1]) + b"250 " + body[-1] + b"\r\n"
            peer.send(out)
        elif verb == b"STARTTLS":
            return True
        elif verb == b"QUIT":
            peer.send(b"221 bye\r\n")
            return False
        else:
            peer.send(b"502 no\r\n")


def test_starttls_stripped_is_refused(sandbox: Sandbox) -> None:
    with FakeServer(lambda p: _smtp_until_starttls(p, [b"AUTH PLAIN", b"SIZE 1000"])) as srv:
        c = SmtpClient(Endpoint("localhost", srv.port, Security.STARTTLS, sandbox.ca_file))
        c.connect()
        with pytest.raises(TLSError) as err:
            c.starttls()
        assert err.value.fields["cause"] == "starttls-missing"
    assert srv.peer is not None
    assert not any(b"AUTH" in x or b"MAIL" in x for x in srv.peer.received)


def test_injection_after_ready_to_start_tls_is_refused(sandbox: Sandbox) -> None:
    def script(peer: Peer) -> None:
        if _smtp_until_starttls(peer, [b"STARTTLS", b"AUTH PLAIN"]):
            peer.send(b"220 Ready to start TLS\r\n250 injected\r\n")
            peer.start_tls(sandbox.certs.cert_file, sandbox.certs.key_file)
            peer.readline()

    with FakeServer(script) as srv:
        c = SmtpClient(Endpoint("localhost", srv.port, Security.STARTTLS, sandbox.ca_file))
        c.connect()
        with pytest.raises(TLSError) as err:
            c.starttls()
        assert err.value.fields["cause"] == "starttls-injection"


def test_xoauth2_failure_reports_challenge() -> None:
    challenge = base64.b64encode(b'{"status":"401","schemes":"Bearer"}')

    def auth_script(peer: Peer) -> None:
        peer.send(b"220 fake\r\n")
        peer.readline()
        peer.send(b"250-fake\r\n250 AUTH XOAUTH2\r\n")
        peer.readline()
        peer.send(b"334 " + challenge + b"\r\n")
        assert peer.readline() == b"\r\n"
        peer.send(b"535 5.7.3 Authentication unsuccessful\r\n")
        peer.readline()

    with FakeServer(auth_script) as srv:
        c = SmtpClient(Endpoint("127.0.0.1", srv.port, Security.NONE, None))
        c.connect()
        c.ehlo()
        with pytest.raises(AuthError) as err:
            c.authenticate("XOAUTH2", sasl.xoauth2("u@example.org", "tok"))
        assert err.value.fields["challenges"] == ['{"status":"401","schemes":"Bearer"}']
        assert err.value.fields["smtp_enhanced"] == "5.7.3"
        c.close()
