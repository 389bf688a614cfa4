"""The sandbox is real: verified TLS both ways, wrong names refused, mail flows
from SMTP submission through LMTP into Dovecot, readable over IMAP and POP3.

These use the stdlib clients on purpose (an independent check of the servers);
mailbag's own clients have their own tests.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from mailbag.errors import TLSError
from mailbag.protocols.transport import Endpoint, Security, connect_tcp, open_stream, wrap_tls
from mailbag.sandbox import Sandbox


def _ctx(sb: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sb.ca_file))


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def _imap_login(sock: socket.socket, tag: str, user: str, password: str) -> bytes:
    sock.sendall(f'{tag} LOGIN "{user}" "{password}"\r\n'.encode())
    while not (line := _read_line(sock)).startswith(tag.encode() + b" "):
        assert line, "connection closed"
    return line


def test_imaps_login_with_verified_certificate(sandbox: Sandbox) -> None:
    ep = Endpoint("localhost", sandbox.ports.imaps, Security.SSL, sandbox.ca_file, timeout=5)
    sock = open_stream(ep)
    try:
        assert _read_line(sock).startswith(b"* OK")
        line = _imap_login(sock, "a1", sandbox.address("alice"), sandbox.password("alice"))
        assert line.startswith(b"a1 OK"), line
    finally:
        sock.close()


def test_imap_starttls_login_with_verified_certificate(sandbox: Sandbox) -> None:
    ep = Endpoint("localhost", sandbox.ports.imap, Security.STARTTLS, sandbox.ca_file, timeout=5)
    sock = connect_tcp(ep)
    try:
        greeting = _read_line(sock)
        # Dovecot counts loopback as secure, so it does not say LOGINDISABLED here;
        # the client must upgrade anyway because the account says STARTTLS
        assert b"STARTTLS" in greeting
        sock.sendall(b"a1 STARTTLS\r\n")
        assert _read_line(sock).startswith(b"a1 OK")
        tls = wrap_tls(sock, ep)
        line = _imap_login(tls, "a2", sandbox.address("bob"), sandbox.password("bob"))
        assert line.startswith(b"a2 OK"), line
        tls.close()
    finally:
        sock.close()


def test_stdlib_clients_verify_sandbox_certificates(sandbox: Sandbox) -> None:
    imap = imaplib.IMAP4("localhost", sandbox.ports.imap)
    imap.starttls(ssl_context=_ctx(sandbox))
    imap.login(sandbox.address("carol"), sandbox.password("carol"))
    imap.logout()
    pop = poplib.POP3("localhost", sandbox.ports.pop3, timeout=5)
    pop.stls(context=_ctx(sandbox))
    pop.user(sandbox.address("carol"))
    pop.pass_(sandbox.password("carol"))
    pop.quit()


def test_certificate_for_another_name_is_refused(sandbox: Sandbox) -> None:
    # the sandbox certificate names only "localhost"
    ep = Endpoint("127.0.0.1", sandbox.ports.imaps, Security.SSL, sandbox.ca_file, timeout=5)
    with pytest.raises(TLSError) as info:
        open_stream(ep)
    assert info.value.fields["cause"] == "hostname-mismatch"
    assert "127.0.0.1" in info.value.message


def test_unknown_ca_is_refused(sandbox: Sandbox) -> None:
    # the system roots do not include the per-run CA
    ep = Endpoint("localhost", sandbox.ports.imaps, Security.SSL, None, timeout=5)
    with pytest.raises(TLSError) as info:
        open_stream(ep)
    assert info.value.fields["cause"] == "untrusted"
    assert info.value.hint and "--ca-file" in info.value.hint


def test_ssl_on_a_starttls_port_is_explained(sandbox: Sandbox) -> None:
    ep = Endpoint("localhost", sandbox.ports.imap, Security.SSL, sandbox.ca_file, timeout=5)
    with pytest.raises(TLSError) as info:
        open_stream(ep)
    assert info.value.fields["cause"] == "not-tls"
    assert info.value.hint and "starttls" in info.value.hint.lower()


def _wait_for_subject(sb: Sandbox, user: str, subject: str, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sb.control(user) as imap:
            for body in imap.fetch_bodies("INBOX").values():
                if f"Subject: {subject}".encode() in body:
                    return body
        time.sleep(0.1)
    raise AssertionError(f"{subject!r} did not arrive for {user}")


@pytest.mark.parametrize("implicit_tls", [False, True])
def test_submitted_mail_reaches_inbox_over_imap_and_pop3(
    sandbox: Sandbox, implicit_tls: bool
) -> None:
    subject = f"sandbox round trip {implicit_tls} {time.time_ns()}"
    message = (
        f"From: {sandbox.address('bob')}\r\nTo: {sandbox.address('carol')}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{time.time_ns()}@sandbox.test>\r\n\r\n"
        "Hello Carol.\r\n"
    ).encode()
    if implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            "localhost", sandbox.smtps_port, context=_ctx(sandbox), timeout=10
        )
    else:
        smtp = smtplib.SMTP("localhost", sandbox.smtp_port, timeout=10)
        smtp.starttls(context=_ctx(sandbox))
    with smtp:
        smtp.login(sandbox.address("bob"), sandbox.password("bob"))
        refused = smtp.sendmail(sandbox.address("bob"), [sandbox.address("carol")], message)
    assert refused == {}
    body = _wait_for_subject(sandbox, "carol", subject)
    assert body.endswith(message)  # LMTP only prepends trace headers

    pop = poplib.POP3_SSL("localhost", sandbox.ports.pop3s, context=_ctx(sandbox), timeout=10)
    try:
        pop.user(sandbox.address("carol"))
        pop.pass_(sandbox.password("carol"))
        count, _ = pop.stat()
        found = [b"\r\n".join(pop.retr(i + 1)[1]) for i in range(count)]
    finally:
        pop.quit()
    assert any(subject.encode() in m for m in found)


def test_smtp_requires_tls_then_auth_before_mail(sandbox: Sandbox) -> None:
    with smtplib.SMTP("localhost", sandbox.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # AUTH is offered only after STARTTLS
        code, _ = smtp.mail(sandbox.address("bob"))
        assert code == 530
    with smtplib.SMTP("localhost", sandbox.smtp_port, timeout=10) as smtp:
        smtp.starttls(context=_ctx(sandbox))
        smtp.ehlo()
        assert smtp.has_extn("size") and smtp.has_extn("auth")
        code, _ = smtp.mail(sandbox.address("bob"))
        assert code == 530  # authentication required


def test_smtp_wrong_password_and_relay_denied(sandbox: Sandbox) -> None:
    ctx = _ctx(sandbox)
    with smtplib.SMTP_SSL("localhost", sandbox.smtps_port, context=ctx, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            smtp.login(sandbox.address("bob"), "wrong")
        assert info.value.smtp_code == 535
    with smtplib.SMTP_SSL("localhost", sandbox.smtps_port, context=ctx, timeout=10) as smtp:
        smtp.login(sandbox.address("bob"), sandbox.password("bob"))
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail(sandbox.address("bob"), ["someone@example.org"], b"Subject: x\r\n\r\nx")
        code, text = refused.value.recipients["someone@example.org"]
        assert code == 554 and b"Relay access denied" in text


def test_service_switch_turns_pop3_off() -> None:
    with Sandbox(services={"imap", "lmtp", "smtp"}) as sb:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sb.ports.pop3s), timeout=2).close()
        socket.create_connection(("127.0.0.1", sb.ports.imaps), timeout=2).close()


def test_state_helpers_change_the_server(fresh_sandbox: Sandbox) -> None:
    sb = fresh_sandbox
    uids = sb.fill("alice", 6, "Projects", seed=3)
    assert uids == [1, 2, 3, 4, 5, 6]
    with sb.control("alice") as imap:
        imap.store("Projects", [1, 2], "+FLAGS", ["\\Flagged"])
        imap.expunge("Projects", [3])
        imap.move("Projects", [4], "Archive")
        assert imap.uids("Projects") == [1, 2, 5, 6]
        assert "\\Flagged" in imap.flags("Projects")[1]
        imap.rename("Projects", "Old Projects")
        assert "Old Projects" in imap.mailboxes()
        imap.select("Old Projects")
        before = imap.imap.response("UIDVALIDITY")[1][0]
    new = sb.reset_uidvalidity("alice", "Old Projects")
    with sb.control("alice") as imap:
        imap.select("Old Projects")
        after = imap.imap.response("UIDVALIDITY")[1][0]
    assert before != after and int(after) == new


def test_restart_and_dropped_connections(fresh_sandbox: Sandbox) -> None:
    sb = fresh_sandbox
    imap = sb.control("bob")
    sb.drop_connections("bob")
    try:
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            deadline = time.monotonic() + 30  # (not a count of tries: a loaded machine)
            while time.monotonic() < deadline:
                imap.imap.noop()
                time.sleep(0.05)
    finally:
        imap.imap.shutdown()
    sb.restart_dovecot()
    with sb.control("bob") as again:
        assert again.uids("INBOX") == []


def test_a_port_taken_meanwhile_is_replaced_at_start() -> None:
    # another process grabs the IMAPS port between choosing it and Dovecot binding it
    sb = Sandbox(services={"imap", "lmtp"})
    # bound, not listening: Dovecot's bind fails (a listening squatter would also
    # answer the readiness probe, which only checks that the port accepts)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", sb.ports.imaps))
    try:
        taken = sb.ports.imaps
        with sb:
            assert sb.ports.imaps != taken
            with sb.control("alice") as imap:
                assert imap.uids("INBOX") == []
    finally:
        squatter.close()


def test_dovecot_stops_when_its_starter_is_killed(tmp_path: Path) -> None:
    """A test run killed by a timeout or SIGKILL skips clean-up: its Dovecot must not
    stay behind holding ports."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "from mailbag.sandbox import Sandbox\n"
        f"sb = Sandbox({str(tmp_path)!r}, services={{'imap'}}).start()\n"
        "print(sb.dovecot._proc.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == -9, child.stderr
    pid = int(child.stdout.split()[0])
    deadline = time.monotonic() + 30  # Dovecot takes a few seconds to wind down
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    raise AssertionError(f"Dovecot {pid} outlived the process that started it")


def test_the_smtp_server_moves_to_other_ports_when_a_picked_one_was_taken(
    tmp_path: Path,
) -> None:
    # another process bound one of the ports `free_ports` picked before the server did
    import smtplib
    import socket

    from mailbag.sandbox.certs import make_certs
    from mailbag.sandbox.smtpd import SmtpServer

    server = SmtpServer(make_certs(tmp_path), {"alice": "pw"}, "sandbox.test", lmtp_port=1)
    taken = server.submission_port
    with socket.create_server(("127.0.0.1", taken)):
        server.start()
        try:
            assert server.submission_port != taken
            with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=10) as smtp:
                code, reply = smtp.ehlo()
                assert code == 250 and b"STARTTLS" in reply
        finally:
            server.stop()
    assert not server.running
