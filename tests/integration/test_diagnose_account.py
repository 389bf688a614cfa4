"""The whole account test against the real sandbox: every chain, the round trip,
and the diagnoses that need a protocol conversation (login, STARTTLS, SMTP policy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbag.config.model import Account, AuthMethod, Protocol, Server, SmtpServer
from mailbag.diagnose import ALL_STEPS, StepResult, StepStatus, TestReport, test_account
from mailbag.protocols.trace import Transcript
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.sandbox.faults import ScriptedServer

USERS = {"dina": "dina-pass-7Qx!", "eve": "eve-pass-9Zt#", "finn": "finn-pass-3Kp%"}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """A sandbox of this module's own: the round trips put mail in and take it out,
    and some tests flip SMTP policies."""
    with Sandbox(users=USERS) as box:
        yield box


@pytest.fixture(autouse=True)
def _reset_policy(sb: Sandbox) -> Iterator[None]:
    yield
    policy = sb.smtp_policy
    policy.reject_data = None
    policy.auth_error = None
    policy.save_sent = False
    policy.relay = False


def make_account(
    sb: Sandbox,
    user: str = "dina",
    *,
    protocol: Protocol = Protocol.IMAP,
    host: str = "localhost",
    port: int | None = None,
    security: Security = Security.SSL,
    smtp_port: int | None = None,
    smtp_security: Security = Security.STARTTLS,
    email: str | None = None,
    requires_auth: bool = True,
) -> Account:
    if port is None:
        port = {
            (Protocol.IMAP, Security.SSL): sb.ports.imaps,
            (Protocol.IMAP, Security.STARTTLS): sb.ports.imap,
            (Protocol.POP3, Security.SSL): sb.ports.pop3s,
            (Protocol.POP3, Security.STARTTLS): sb.ports.pop3,
        }[(protocol, security)]
    if smtp_port is None:
        smtp_port = sb.smtps_port if smtp_security is Security.SSL else sb.smtp_port
    login = sb.address(user)
    return Account(
        name=f"{user}-test",
        email=email or login,
        protocol=protocol,
        incoming=Server(host, port, security, login),
        smtp=SmtpServer("localhost", smtp_port, smtp_security, login, requires_auth=requires_auth),
        ca_file=sb.ca_file,
    )


def run(
    sb: Sandbox,
    acct: Account,
    *,
    send: bool = True,
    password: str | None = None,
    trace: Transcript | None = None,
) -> tuple[TestReport, list[StepResult]]:
    streamed: list[StepResult] = []
    user = acct.incoming.username.split("@")[0]
    secret = password if password is not None else sb.password(user)
    report = test_account(
        acct,
        secret=lambda which: secret,
        send=send,
        on_step=streamed.append,
        timeout=5.0,
        receive_timeout=15.0,
        transcript=trace,
    )
    assert [s.name for s in streamed] == [s.name for s in report.steps]
    return report, streamed


def failed_steps(report: TestReport) -> list[str]:
    return [s.name for s in report.failures]


def inbox_count(sb: Sandbox, user: str, folder: str = "INBOX") -> int:
    with sb.control(user) as imap:
        return len(imap.uids(folder))


# --- everything right -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "security", "smtp_security"),
    [
        (Protocol.IMAP, Security.SSL, Security.STARTTLS),
        (Protocol.IMAP, Security.STARTTLS, Security.SSL),
    ],
)
def test_all_steps_pass_without_sending(
    sb: Sandbox, protocol: Protocol, security: Security, smtp_security: Security
) -> None:
    acct = make_account(sb, protocol=protocol, security=security, smtp_security=smtp_security)
    report, _ = run(sb, acct, send=False)
    assert report.ok, report.to_json()
    assert [s.name for s in report.steps] == list(ALL_STEPS)
    by = {s.name: s for s in report.steps}
    assert by["send"].status is StepStatus.SKIPPED and "--no-send" in by["send"].detail
    assert by["receive"].status is StepStatus.SKIPPED
    assert "verified" in by["tls"].detail and "localhost" in by["tls"].detail
    if security is Security.STARTTLS:
        assert by["tls"].detail.startswith("STARTTLS")
    assert "IMAP4REV1" in by["capabilities"].detail.upper()
    assert "logged in as dina@sandbox.test" in by["login"].detail
    assert "INBOX opened" in by["inbox"].detail
    assert "AUTH" in by["smtp-capabilities"].detail.upper()
    assert "logged in" in by["smtp-login"].detail
    for s in report.steps:
        if s.status is StepStatus.OK:
            assert s.ms >= 0


def test_round_trip_imap_removes_the_message_and_learns_sent_policy(sb: Sandbox) -> None:
    before = inbox_count(sb, "eve")
    report, _ = run(sb, make_account(sb, "eve"))
    assert report.ok, report.to_json()
    receive = report.step("receive")
    assert "arrived in INBOX after" in receive.detail and "removed again" in receive.detail
    assert report.round_trip_ms is not None and report.round_trip_ms > 0
    assert report.server_saves_sent is False
    assert "did not file a copy in Sent" in receive.detail
    assert inbox_count(sb, "eve") == before

    sb.smtp_policy.save_sent = True
    report, _ = run(sb, make_account(sb, "eve"))
    assert report.ok, report.to_json()
    assert report.server_saves_sent is True
    assert "filed a copy in Sent" in report.step("receive").detail
    assert inbox_count(sb, "eve") == before
    assert inbox_count(sb, "eve", "Sent") == 0, "the server's Sent copy is removed too"


# --- login ---------------------------------------------------------------------------------


def test_wrong_password_and_secrets_never_leak(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    # its own Dovecot: after a failed login Dovecot slows down every login from the same
    # address for a while (auth penalty), which would slow the other tests down
    sb = fresh_sandbox
    wrong = "Wr0ng-Secret-Value"
    trace_file = tmp_path / "trace.txt"
    trace = Transcript(trace_file)
    report, streamed = run(sb, make_account(sb, "alice"), password=wrong, trace=trace)
    trace.close()
    login = report.step("login")
    assert login.status is StepStatus.FAILED
    assert "AUTHENTICATIONFAILED" in login.detail or "Authentication failed" in login.detail
    assert login.hint is not None and "password" in login.hint
    assert report.step("inbox").status is StepStatus.SKIPPED
    assert report.step("smtp-login").status is StepStatus.FAILED
    assert report.step("send").status is StepStatus.SKIPPED
    text = json.dumps(report.to_json()) + repr(streamed) + trace_file.read_text()
    assert wrong not in text
    assert "LOGIN" in trace_file.read_text() or "AUTH" in trace_file.read_text()


def test_starttls_chosen_on_the_ssl_port(sb: Sandbox) -> None:
    acct = make_account(sb, security=Security.STARTTLS, port=sb.ports.imaps)
    report, _ = run(sb, acct, send=False)
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "expects TLS from the first byte" in tls.detail
    assert tls.hint is not None
    assert f"set the security to SSL/TLS for port {sb.ports.imaps}" in tls.hint
    assert "143" in tls.hint
    assert report.step("login").status is StepStatus.SKIPPED


def test_smtp_starttls_chosen_on_the_ssl_port(sb: Sandbox) -> None:
    acct = make_account(sb, smtp_security=Security.STARTTLS, smtp_port=sb.smtps_port)
    report, _ = run(sb, acct, send=False)
    tls = report.step("smtp-tls")
    assert tls.status is StepStatus.FAILED
    assert "expects TLS from the first byte" in tls.detail
    assert tls.hint is not None and "SSL/TLS" in tls.hint and "587" in tls.hint
    assert report.step("login").status is StepStatus.OK


def _imap_without_starttls(line: bytes) -> bytes | None:
    tag, _, rest = line.partition(b" ")
    verb = rest.split(b" ")[0].upper()
    if verb == b"CAPABILITY":
        return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n"
    if verb == b"LOGOUT":
        return b"* BYE bye\r\n" + tag + b" OK done\r\n"
    return tag + b" BAD not here\r\n"


def test_starttls_not_offered_is_a_failure_not_a_downgrade(sb: Sandbox) -> None:
    with ScriptedServer(b"* OK fake IMAP ready\r\n", _imap_without_starttls) as fake:
        acct = make_account(sb, host="127.0.0.1", port=fake.port, security=Security.STARTTLS)
        report, _ = run(sb, acct, send=False)
        received = list(fake.received)
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "does not offer STARTTLS" in tls.detail
    assert tls.hint is not None and "993" in tls.hint
    assert report.step("login").status is StepStatus.SKIPPED
    assert not any(b"LOGIN" in r.upper() or b"AUTHENTICATE" in r.upper() for r in received)


def _pop3_without_stls(line: bytes) -> bytes | None:
    verb = line.split(b" ")[0].upper()
    if verb == b"CAPA":
        return b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n"
    if verb == b"QUIT":
        return b"+OK bye\r\n"
    return b"-ERR not here\r\n"


def test_pop3_stls_not_offered(sb: Sandbox) -> None:
    with ScriptedServer(b"+OK fake POP3 ready\r\n", _pop3_without_stls) as fake:
        acct = make_account(
            sb, protocol=Protocol.POP3, host="127.0.0.1", port=fake.port, security=Security.STARTTLS
        )
        report, _ = run(sb, acct, send=False)
        received = list(fake.received)
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "does not offer STARTTLS" in tls.detail
    assert tls.hint is not None and "995" in tls.hint
    assert not any(r.upper().startswith((b"USER", b"PASS", b"AUTH")) for r in received)


def _smtp_without_starttls(line: bytes) -> bytes | None:
    verb = line.split(b" ")[0].upper()
    if verb == b"EHLO":
        return b"250-fake.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
    if verb == b"QUIT":
        return b"221 bye\r\n"
    return b"502 5.5.1 not implemented\r\n"


def test_smtp_starttls_not_offered(sb: Sandbox) -> None:
    with ScriptedServer(b"220 fake ESMTP\r\n", _smtp_without_starttls) as fake:
        acct = make_account(sb, smtp_port=fake.port)
        acct = Account(
            name=acct.name,
            email=acct.email,
            protocol=acct.protocol,
            incoming=acct.incoming,
            smtp=SmtpServer("127.0.0.1", fake.port, Security.STARTTLS, acct.smtp.username),
            ca_file=acct.ca_file,
        )
        report, _ = run(sb, acct, send=False)
        received = list(fake.received)
    tls = report.step("smtp-tls")
    assert tls.status is StepStatus.FAILED
    assert "does not offer STARTTLS" in tls.detail
    assert tls.hint is not None and "465" in tls.hint
    assert not any(r.upper().startswith(b"AUTH") for r in received)


# --- SMTP policy -----------------------------------------------------------------------------


def test_provider_reply_is_translated(sb: Sandbox) -> None:
    sb.smtp_policy.auth_error = (
        "535 5.7.139 Authentication unsuccessful, "
        "SmtpClientAuthentication is disabled for the Tenant"
    )
    report, _ = run(sb, make_account(sb), send=True)
    login = report.step("smtp-login")
    assert login.status is StepStatus.FAILED
    assert "SmtpClientAuthentication is disabled" in login.detail
    assert login.hint is not None and "OAuth2" in login.hint
    assert report.step("send").status is StepStatus.SKIPPED
    assert report.step("login").status is StepStatus.OK


def test_smtp_requiring_authentication(sb: Sandbox) -> None:
    report, _ = run(sb, make_account(sb, requires_auth=False))
    assert report.step("smtp-login").status is StepStatus.SKIPPED
    send = report.step("send")
    assert send.status is StepStatus.FAILED
    assert "530" in send.detail
    assert send.hint is not None and "requires authentication" in send.hint
    assert report.step("receive").status is StepStatus.SKIPPED


def test_relay_denied(sb: Sandbox) -> None:
    # the address is at another provider, but the outgoing server is the sandbox's
    report, _ = run(sb, make_account(sb, email="dina@elsewhere.example"))
    send = report.step("send")
    assert send.status is StepStatus.FAILED
    assert "Relay access denied" in send.detail
    assert send.hint is not None and "own provider's SMTP server" in send.hint


def test_message_rejected_quotes_the_server(sb: Sandbox) -> None:
    sb.smtp_policy.reject_data = "554 5.7.1 Message rejected as spam by Sandbox-Filter"
    before = inbox_count(sb, "dina")
    report, _ = run(sb, make_account(sb))
    send = report.step("send")
    assert send.status is StepStatus.FAILED
    assert "554 5.7.1 Message rejected as spam by Sandbox-Filter" in send.detail
    assert send.hint is not None and "reply" in send.hint
    assert report.step("receive").status is StepStatus.SKIPPED
    assert inbox_count(sb, "dina") == before


# --- POP3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_pop3_round_trip(sb: Sandbox, security: Security) -> None:
    before = inbox_count(sb, "finn")
    report, _ = run(sb, make_account(sb, "finn", protocol=Protocol.POP3, security=security))
    assert report.ok, report.to_json()
    assert "message" in report.step("inbox").detail
    receive = report.step("receive")
    assert "arrived in INBOX" in receive.detail and "removed again" in receive.detail
    assert report.server_saves_sent is None
    assert inbox_count(sb, "finn") == before


def test_pop3_service_not_available() -> None:
    with Sandbox(users={"gus": "gus-pass"}, services={"imap", "lmtp", "smtp"}) as box:
        acct = make_account(box, "gus", protocol=Protocol.POP3)
        report, _ = run(box, acct, send=False)
    connect = report.step("connect")
    assert connect.status is StepStatus.FAILED
    assert "refused" in connect.detail
    assert connect.hint is not None and "POP access is enabled" in connect.hint


def test_oauth2_without_offered_mechanism(sb: Sandbox) -> None:
    acct = make_account(sb)
    acct = Account(
        name=acct.name,
        email=acct.email,
        protocol=acct.protocol,
        incoming=Server(
            "localhost", sb.ports.imaps, Security.SSL, acct.incoming.username, AuthMethod.OAUTH2
        ),
        smtp=acct.smtp,
        ca_file=acct.ca_file,
    )
    report, _ = run(sb, acct, send=False)
    login = report.step("login")
    assert login.status is StepStatus.FAILED
    assert "offers no OAuth2 login" in login.detail
    assert login.hint is not None and "--auth" in login.hint


def test_wrong_host_certificate_after_starttls(sb: Sandbox) -> None:
    acct = make_account(sb, host="127.0.0.1", security=Security.STARTTLS)
    report, _ = run(sb, acct, send=False)
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    assert "not valid for the name '127.0.0.1'" in tls.detail
    assert tls.hint is not None and "server name" in tls.hint
    assert report.step("login").status is StepStatus.SKIPPED


@pytest.mark.parametrize(
    ("protocol", "security", "port_of", "found"),
    [
        (Protocol.IMAP, Security.STARTTLS, lambda sb: sb.smtp_port, "SMTP"),
        (Protocol.POP3, Security.SSL, lambda sb: sb.ports.imaps, "IMAP"),
        (Protocol.IMAP, Security.SSL, lambda sb: sb.ports.pop3s, "POP3"),
    ],
)
def test_port_of_another_service(
    sb: Sandbox, protocol: Protocol, security: Security, port_of: Any, found: str
) -> None:
    port = port_of(sb)
    acct = make_account(sb, protocol=protocol, security=security, port=port)
    report, _ = run(sb, acct, send=False)
    tls = report.step("tls")
    assert tls.status is StepStatus.FAILED
    mine = "IMAP" if protocol is Protocol.IMAP else "POP3"
    assert tls.detail == f"localhost:{port} is a {found} server, not {mine}"
    assert tls.hint is not None and "check the port" in tls.hint
