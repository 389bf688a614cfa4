"""Account test diagnoses below the protocol layer, against real local servers.

Unknown host, connection refused, a server that never answers, certificates
that are self-signed, expired or for another name, and SSL/TLS chosen for a
port that speaks plain text first. The outgoing side points at a closed port
here, so these tests need no protocol client; the full chains are tested in
test_diagnose_account.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from mailbag.config.model import Account, Protocol, Server, SmtpServer
from mailbag.diagnose import StepResult, StepStatus, TestReport, test_account
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.sandbox.certs import make_expired_cert
from mailbag.sandbox.faults import SilentServer, TLSServer, make_self_signed_cert


def closed_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def account(
    *,
    host: str = "localhost",
    port: int,
    security: Security = Security.SSL,
    protocol: Protocol = Protocol.IMAP,
    smtp_host: str = "localhost",
    smtp_port: int | None = None,
    smtp_security: Security = Security.STARTTLS,
    ca_file: Path | None = None,
) -> Account:
    return Account(
        name="diag",
        email="alice@sandbox.test",
        protocol=protocol,
        incoming=Server(host, port, security, "alice@sandbox.test"),
        smtp=SmtpServer(smtp_host, smtp_port or closed_port(), smtp_security, "alice@sandbox.test"),
        ca_file=ca_file,
    )


def run(acct: Account, timeout: float = 1.0) -> tuple[TestReport, list[StepResult]]:
    streamed: list[StepResult] = []

    def no_secret(which: str) -> str:
        raise AssertionError("no step may ask for the password before login")

    report = test_account(acct, secret=no_secret, on_step=streamed.append, timeout=timeout)
    return report, streamed


def statuses(report: TestReport) -> dict[str, str]:
    return {s.name: s.status.value for s in report.steps}


def test_unknown_host() -> None:
    report, streamed = run(account(host="no-such-server.invalid", port=993))
    assert not report.ok
    dns = report.step("dns")
    assert dns.status is StepStatus.FAILED
    assert "no-such-server.invalid" in dns.detail
    assert dns.hint is not None and "typos" in dns.hint
    for later in ("connect", "tls", "capabilities", "login", "inbox"):
        assert report.step(later).status is StepStatus.SKIPPED
    assert report.step("connect").detail == "skipped because 'dns' failed"
    # every step was streamed, in the order of the report
    assert [s.name for s in streamed] == [s.name for s in report.steps]


def test_connection_refused_names_port_and_usual_settings() -> None:
    port = closed_port()
    report, _ = run(account(host="localhost", port=port))
    assert report.step("dns").status is StepStatus.OK
    assert "127.0.0.1" in report.step("dns").detail
    connect = report.step("connect")
    assert connect.status is StepStatus.FAILED
    assert f"{port}" in connect.detail and "refused" in connect.detail
    assert connect.hint is not None and "993 with SSL/TLS or port 143 with STARTTLS" in connect.hint
    assert report.step("tls").status is StepStatus.SKIPPED
    # the outgoing side runs regardless of the incoming side, and fails on its own
    assert report.step("smtp-connect").status is StepStatus.FAILED
    smtp_hint = report.step("smtp-connect").hint
    assert smtp_hint is not None and "465" in smtp_hint
    assert statuses(report)["send"] == "skipped"
    assert statuses(report)["receive"] == "skipped"


def test_timeout_on_a_port_that_never_answers() -> None:
    with SilentServer() as silent:
        start = time.monotonic()
        report, _ = run(account(host="127.0.0.1", port=silent.port), timeout=1.0)
        took = time.monotonic() - start
    assert report.step("connect").status is StepStatus.OK
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "never answered" in tls.detail or "no greeting" in tls.detail
    assert tls.hint is not None and "within 1 s" in tls.hint
    assert took < 8, "a 1 s timeout must not make the test take long"


def test_self_signed_certificate(tmp_path: Path) -> None:
    certs = make_self_signed_cert(tmp_path)
    with TLSServer(certs.cert_file, certs.key_file) as server:
        report, _ = run(account(port=server.port))
        tls = report.step("tls")
        assert tls.status is StepStatus.FAILED
        assert "self-signed" in tls.detail
        assert tls.hint is not None and "--ca-file" in tls.hint
        assert report.step("capabilities").status is StepStatus.SKIPPED


def test_expired_certificate(tmp_path: Path) -> None:
    certs = make_expired_cert(tmp_path)
    with TLSServer(certs.cert_file, certs.key_file) as server:
        # trusted CA, so the only problem left is the date
        report, _ = run(account(port=server.port, ca_file=certs.ca_file))
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "expired" in tls.detail
    assert tls.hint is not None and "renew" in tls.hint


def test_untrusted_ca_offers_ca_file(tmp_path: Path, sandbox: Sandbox) -> None:
    report, _ = run(account(port=sandbox.ports.imaps, ca_file=None))
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "not signed by a trusted authority" in tls.detail
    assert tls.hint is not None and "--ca-file" in tls.hint
    assert "ignore" not in tls.hint.lower()


def test_wrong_host_certificate(sandbox: Sandbox) -> None:
    report, _ = run(account(host="127.0.0.1", port=sandbox.ports.imaps, ca_file=sandbox.ca_file))
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "not valid for the name '127.0.0.1'" in tls.detail
    assert "it was issued for: localhost" in tls.detail
    assert tls.hint is not None and "set the server name to 'localhost'" in tls.hint


@pytest.mark.parametrize(
    ("protocol", "port_of", "right_port"),
    [
        (Protocol.IMAP, lambda sb: sb.ports.imap, 993),
        (Protocol.POP3, lambda sb: sb.ports.pop3, 995),
    ],
)
def test_ssl_chosen_on_a_starttls_port(
    sandbox: Sandbox, protocol: Protocol, port_of: object, right_port: int
) -> None:
    port = port_of(sandbox)  # type: ignore[operator]
    report, _ = run(account(port=port, protocol=protocol, ca_file=sandbox.ca_file))
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "speaks plain text first" in tls.detail and "STARTTLS port" in tls.detail
    assert tls.hint is not None
    assert f"set the security to STARTTLS for port {port}" in tls.hint
    assert f"use port {right_port}" in tls.hint


def test_smtp_ssl_chosen_on_the_starttls_port(sandbox: Sandbox) -> None:
    acct = account(
        port=closed_port(),
        smtp_port=sandbox.smtp_port,
        smtp_security=Security.SSL,
        ca_file=sandbox.ca_file,
    )
    report, _ = run(acct)
    tls = report.step("smtp-tls")
    assert tls.status is StepStatus.FAILED
    assert "SMTP greeting" in tls.detail
    assert tls.hint is not None and "STARTTLS" in tls.hint and "465" in tls.hint
