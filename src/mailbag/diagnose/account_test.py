"""`test_account`: the "Test Account Settings" button, done properly.

Runs the incoming chain (dns, connect, tls, capabilities, login, inbox), the
outgoing chain (the same with `smtp-` names: EHLO, STARTTLS, AUTH), then sends
a test message to the account's own address and waits (bounded) for it to
arrive, removing it afterwards. Each step is timed and streamed through
`on_step`; a failed step carries the exact problem and a fix, and the steps
that depended on it are reported as skipped. Secrets are fetched only for the
login steps and never appear in a detail, a hint or a transcript.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from mailbag.config.model import Account, AuthMethod, Server
from mailbag.config.secrets import Which
from mailbag.diagnose import causes, netcheck, providers
from mailbag.diagnose.sessions import (
    IncomingSession,
    OutgoingSession,
    Session,
    open_incoming,
    open_outgoing,
)
from mailbag.diagnose.steps import Done, StepFailed, StepResult, StepRunner, TestReport
from mailbag.errors import MailbagError, NetworkError, ProtocolError, TLSError
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Endpoint, Security

#: which: "incoming" | "smtp" -> the password
SecretGetter = Callable[[Which], str]

INCOMING_STEPS = ("dns", "connect", "tls", "capabilities", "login", "inbox")
OUTGOING_STEPS = ("smtp-dns", "smtp-connect", "smtp-tls", "smtp-capabilities", "smtp-login")
ROUND_TRIP_STEPS = ("send", "receive")
ALL_STEPS = INCOMING_STEPS + OUTGOING_STEPS + ROUND_TRIP_STEPS


def _default_secret(account: Account) -> SecretGetter:
    """The configured password (OAuth2 servers need none: `mailbag.auth` signs in)."""

    def get(which: Which) -> str:
        from mailbag.config.secrets import get_secret

        return get_secret(account, which)

    return get


def _password(server: Server, get_secret: SecretGetter, which: Which) -> str | None:
    """The password to log in with; None for OAuth2 (the stored sign-in is used)."""
    return None if server.auth is AuthMethod.OAUTH2 else get_secret(which)


@dataclass
class _Side:
    """The state of one chain (incoming or outgoing) while it runs."""

    prefix: str
    protocol: str  # imap | pop3 | smtp
    server: Server
    endpoint: Endpoint
    sock: socket.socket | None = None
    session: Session | None = None

    def name(self, step: str) -> str:
        return self.prefix + step

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def test_account(
    account: Account,
    *,
    secret: SecretGetter | None = None,
    send: bool = True,
    on_step: Callable[[StepResult], None] | None = None,
    timeout: float = 20.0,
    receive_timeout: float = 60.0,
    transcript: Transcript | None = None,
) -> TestReport:
    """Test every setting of `account` against its servers; never raises for a failed step.

    `secret(which)` returns the password for "incoming" or "smtp"; by default it
    reads the account's configured secret source. OAuth2 servers never ask it: they
    log in with the account's stored sign-in (`mailbag.auth`, refreshed and retried
    once when a server refuses a token). `send=False`
    stops before the test message round trip.
    """
    get_secret = secret or _default_secret(account)
    trace = transcript or NO_TRACE
    incoming = _Side(
        "",
        account.protocol.value,
        account.incoming,
        account.incoming.endpoint(account.ca_file, timeout),
    )
    outgoing = _Side(
        "smtp-",
        "smtp",
        account.smtp,
        account.smtp.endpoint(account.ca_file, timeout),
    )
    explain_in = _explainer(account, incoming)
    explain_out = _explainer(account, outgoing)
    run = StepRunner(
        on_step=on_step,
        explain=lambda step, exc: (
            explain_out(step, exc)
            if step in OUTGOING_STEPS or step == "send"
            else explain_in(step, exc)
        ),
    )
    facts: dict[str, object] = {}
    try:
        _connect_chain(run, incoming, trace)
        run.run(
            "login",
            lambda: _login(account, incoming, get_secret, "incoming"),
            needs=["capabilities"],
        )
        run.run("inbox", lambda: _inbox(incoming), needs=["login"])
        incoming.close()

        _connect_chain(run, outgoing, trace)
        send_needs = ["smtp-capabilities"]
        if account.smtp.requires_auth:
            run.run(
                "smtp-login",
                lambda: _login(account, outgoing, get_secret, "smtp"),
                needs=["smtp-capabilities"],
            )
            send_needs.append("smtp-login")
        else:
            run.skip(
                "smtp-login",
                "not attempted: the account is set to send without logging in",
            )
        if not send:
            for name in ROUND_TRIP_STEPS:
                run.skip(name, "not requested (--no-send)")
        else:
            run.run(
                "send",
                lambda: _send_test_message(account, outgoing, facts),
                needs=send_needs,
            )
            outgoing.close()
            run.run(
                "receive",
                lambda: _receive(account, incoming, get_secret, trace, facts, receive_timeout),
                needs=["send", "inbox"],
            )
    finally:
        incoming.close()
        outgoing.close()
    saves = facts.get("server_saves_sent")
    rtt = facts.get("round_trip_ms")
    return TestReport(
        account=account.name,
        steps=tuple(run.results),
        server_saves_sent=saves if isinstance(saves, bool) else None,
        round_trip_ms=float(rtt) if isinstance(rtt, (int, float)) else None,
    )


test_account.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _explainer(account: Account, side: _Side) -> Callable[[str, MailbagError], str | None]:
    """The hint table, primed with what it needs to know about one side."""
    url = (
        providers.enable_settings_url(account.email, side.endpoint.host, side.protocol)
        if side.protocol != "smtp"
        else None
    )
    ctx = causes.Context(
        protocol=side.protocol,
        host=side.endpoint.host,
        port=side.endpoint.port,
        security=side.endpoint.security.value,
        timeout=side.endpoint.timeout,
        enable_url=url,
        account=account.name,
    )
    return lambda step, exc: causes.explain(step, exc, ctx)


# --- the connection chain (both sides) -------------------------------------------------


def _connect_chain(run: StepRunner, side: _Side, trace: Transcript) -> None:
    n = side.name
    ep = side.endpoint
    run.run(n("dns"), lambda: netcheck.resolve(ep.host, ep.port).describe())
    run.run(n("connect"), lambda: _connect(side), needs=[n("dns")])
    run.run(n("tls"), lambda: _tls(side, trace), needs=[n("connect")])
    run.run(n("capabilities"), lambda: _capabilities(side), needs=[n("tls")])


def _connect(side: _Side) -> Done:
    side.sock = netcheck.connect(side.endpoint)
    return Done(f"connected to {netcheck.peer(side.sock)}")


def _open(side: _Side, sock: socket.socket, trace: Transcript) -> Session:
    try:
        if side.protocol == "smtp":
            return open_outgoing(sock, side.endpoint, trace)
        return open_incoming(side.protocol, sock, side.endpoint, trace)
    except BaseException:
        sock.close()
        raise


def _tls(side: _Side, trace: Transcript) -> Done:
    assert side.sock is not None
    sock, side.sock = side.sock, None  # from here the session (or the handshake) owns it
    ep = side.endpoint
    if ep.security is Security.SSL:
        tls = netcheck.handshake(sock, ep, side.protocol)
        side.session = _open(side, tls, trace)
        _greet(side.session, side)
        return Done(netcheck.describe_tls(tls))
    session = _greet_plain(side, sock, trace)
    if ep.security is Security.NONE:
        return Done(
            "not encrypted: security is 'none', so passwords and mail cross the network "
            "in plain text",
            hint="use SSL/TLS or STARTTLS if the server offers it",
        )
    session.capabilities()
    if not session.offers_starttls():
        raise TLSError(
            f"{ep.host}:{ep.port} does not offer STARTTLS; mailbag will not continue "
            "without encryption",
            host=ep.host,
            port=ep.port,
            cause="starttls-missing",
        )
    tls = session.starttls()
    return Done(f"STARTTLS: {netcheck.describe_tls(tls)}")


def _greet(session: Session, side: _Side) -> str:
    """Read the greeting; a greeting the client cannot understand may be another
    protocol's (the IMAP setting pointing at the SMTP port): say which."""
    try:
        return session.greet()
    except ProtocolError as exc:
        other = netcheck.wrong_service(side.endpoint, side.protocol)
        if other is not None:
            raise other from exc
        raise


#: how long to wait for a plain-text greeting before asking whether the port wants TLS
FIRST_GREETING_WAIT = 3.0


def _greet_plain(side: _Side, sock: socket.socket, trace: Transcript) -> Session:
    """Read the plain greeting (STARTTLS or none). A server on an implicit-TLS port
    waits for our handshake and never greets: after a short wait, probe for that."""
    ep = side.endpoint
    first_wait = min(ep.timeout, FIRST_GREETING_WAIT)
    sock.settimeout(first_wait)
    side.session = session = _open(side, sock, trace)
    try:
        _greet(session, side)
    except NetworkError as exc:
        if exc.fields.get("cause") != "timeout":
            raise
        session.close(polite=False)
        side.session = None
        better = netcheck.probe_tls(ep, side.protocol)
        if better is not None:
            raise better from exc
        if first_wait >= ep.timeout:
            raise NetworkError(
                f"{ep.host}:{ep.port} accepted the connection but sent no greeting "
                f"within {ep.timeout:g} s",
                host=ep.host,
                port=ep.port,
                cause="timeout",
            ) from exc
        # a slow greeter (some servers pause on purpose): try again with the full timeout
        sock = netcheck.connect(ep)
        side.session = session = _open(side, sock, trace)
        try:
            _greet(session, side)
        except NetworkError as again:
            if again.fields.get("cause") == "timeout":
                raise NetworkError(
                    f"{ep.host}:{ep.port} accepted the connection but sent no greeting "
                    f"within {ep.timeout:g} s",
                    host=ep.host,
                    port=ep.port,
                    cause="timeout",
                ) from again
            raise
    sock.settimeout(ep.timeout)
    return session


def _capabilities(side: _Side) -> Done:
    assert side.session is not None
    caps = side.session.capabilities()
    mechs = side.session.login_mechanisms()
    shown = " ".join(caps[:16]) + (" …" if len(caps) > 16 else "")
    login = ", ".join(mechs) if mechs else "none offered"
    return Done(f"{shown}; login methods: {login}")


def _login(account: Account, side: _Side, get_secret: SecretGetter, which: Which) -> Done:
    assert side.session is not None
    server = side.server
    mechanism = side.session.login(account, _password(server, get_secret, which))
    return Done(f"logged in as {server.username} ({mechanism})")


def _inbox(side: _Side) -> Done:
    session = side.session
    assert session is not None
    return Done(_incoming(session).inbox())


def _incoming(session: Session) -> IncomingSession:
    assert hasattr(session, "inbox")
    return session  # type: ignore[return-value]


def _outgoing(session: Session) -> OutgoingSession:
    assert hasattr(session, "send")
    return session  # type: ignore[return-value]


# --- the round trip ----------------------------------------------------------------------


def build_test_message(account: Account) -> tuple[str, bytes]:
    """A small, clearly labelled message from and to the account's own address."""
    domain = account.email.rpartition("@")[2]
    token = uuid.uuid4().hex[:16]
    message_id = f"<mailbag-test.{token}@{domain}>"
    msg = EmailMessage()
    msg["From"] = account.email
    msg["To"] = account.email
    msg["Subject"] = "mailbag account test"
    msg["Date"] = format_datetime(dt.datetime.now().astimezone())
    msg["Message-ID"] = message_id
    msg["X-Mailbag-Test"] = token
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        "This message was sent by `mailbag account test` to check that sending and\n"
        "receiving work for this account. mailbag removes it again once it arrives;\n"
        "if you can see it, the removal did not happen and you may delete it.\n"
    )
    return message_id, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _send_test_message(account: Account, side: _Side, facts: dict[str, object]) -> Done:
    assert side.session is not None
    message_id, data = build_test_message(account)
    reply = _outgoing(side.session).send(account.email, [account.email], data)
    facts["message_id"] = message_id
    facts["sent_at"] = time.monotonic()
    return Done(f"test message {message_id} to {account.email} accepted: {reply}")


#: how often the receive step looks for the test message (seconds, growing)
POLL_INTERVALS = (0.2, 0.3, 0.5, 1.0, 2.0)


def _reopen(
    account: Account, side: _Side, get_secret: SecretGetter, trace: Transcript
) -> IncomingSession:
    """A fresh logged-in incoming session (the chain already proved each step works)."""
    ep = side.endpoint
    sock = netcheck.connect(ep)
    if ep.security is Security.SSL:
        sock = netcheck.handshake(sock, ep, side.protocol)
    try:
        session = open_incoming(side.protocol, sock, ep, trace)
    except BaseException:
        sock.close()
        raise
    try:
        session.greet()
        if ep.security is Security.STARTTLS:
            session.capabilities()
            session.starttls()
        session.capabilities()
        session.login(account, _password(account.incoming, get_secret, "incoming"))
    except BaseException:
        session.close()
        raise
    return session


def _receive(
    account: Account,
    side: _Side,
    get_secret: SecretGetter,
    trace: Transcript,
    facts: dict[str, object],
    receive_timeout: float,
) -> Done:
    message_id = str(facts["message_id"])
    sent_at = float(facts["sent_at"])  # type: ignore[arg-type]
    deadline = sent_at + receive_timeout
    session = _reopen(account, side, get_secret, trace)
    try:
        polls = 0
        while True:
            found = session.find_message(message_id)
            if found is not None:
                break
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"the test message did not arrive in INBOX within {receive_timeout:g} s "
                    "(the outgoing server had accepted it)",
                    hint="look for it in the spam folder or in filters that move or forward "
                    "mail; the incoming and outgoing servers may belong to different mailboxes "
                    "(check the email address and both user names)",
                    cause="not-arrived",
                )
            time.sleep(POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)])
            polls += 1
            if not session.refreshes:
                session.close()
                session = _reopen(account, side, get_secret, trace)
        rtt_ms = round((time.monotonic() - sent_at) * 1000.0, 1)
        facts["round_trip_ms"] = rtt_ms
        removed = session.remove_message(found)
        saved = session.find_in_sent(message_id)
        facts["server_saves_sent"] = saved
    finally:
        session.close()
    took = f"{rtt_ms:.0f} ms" if rtt_ms < 1000 else f"{rtt_ms / 1000:.1f} s"
    parts = [f"arrived in INBOX after {took}"]
    parts.append("removed again" if removed else "could not be removed: delete it by hand")
    if saved is True:
        parts.append(
            "the server filed a copy in Sent by itself (removed too), "
            "so mailbag will not save sent mail twice"
        )
    elif saved is False:
        parts.append(
            "the server did not file a copy in Sent: mailbag will save sent mail there itself"
        )
    else:
        parts.append(
            "whether the server files sent mail cannot be seen over " + side.protocol.upper()
        )
    return Done("; ".join(parts))
