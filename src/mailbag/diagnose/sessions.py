"""What the account test needs from a protocol connection, and the adapters that provide it.

The test drives one connection step by step (greeting, capabilities,
STARTTLS, login, a first command) so that each step can be timed and blamed
on its own. The wire work is done by the protocol clients in
`mailbag.protocols`; the classes here only adapt their APIs to these few
calls and translate replies into the causes the hint table knows.
"""

from __future__ import annotations

import socket
import ssl
from typing import Generic, Protocol, TypeVar

from mailbag.config.model import Account
from mailbag.errors import AuthError, MailbagError, NetworkError, ProtocolError
from mailbag.protocols.imap import ImapClient
from mailbag.protocols.pop3 import Pop3Client
from mailbag.protocols.smtp import SmtpClient
from mailbag.protocols.stream import LineStream, StreamClient
from mailbag.protocols.trace import Transcript
from mailbag.protocols.transport import Endpoint


class Session(Protocol):
    """One connection, driven a step at a time. Methods raise `MailbagError`s."""

    def greet(self) -> str:
        """Read the server's greeting; the text, for the detail line."""
        ...

    def capabilities(self) -> list[str]:
        """Ask for (again, after TLS) what the server offers."""
        ...

    def offers_starttls(self) -> bool: ...

    def starttls(self) -> ssl.SSLSocket:
        """Upgrade the connection (verifying the certificate); returns the TLS socket."""
        ...

    def login_mechanisms(self) -> list[str]:
        """The login methods on offer, for the detail line and for failures."""
        ...

    def login(self, account: Account, password: str | None) -> str:
        """Log in as `account` says, through `mailbag.auth.login` (the one login every
        command uses: OAuth2 tokens refreshed and retried once there); `password` is the
        one to try (None for OAuth2). Returns the mechanism used; AuthError on refusal."""
        ...

    def close(self, *, polite: bool = True) -> None:
        """Say goodbye (LOGOUT/QUIT) unless `polite` is False or the connection failed."""
        ...


class IncomingSession(Session, Protocol):
    def inbox(self) -> str:
        """SELECT/EXAMINE INBOX (IMAP) or STAT (POP3): a detail line with the count."""
        ...

    @property
    def refreshes(self) -> bool:
        """Whether `find_message` sees new mail without reconnecting (IMAP yes, POP3 no)."""
        ...

    def find_message(self, message_id: str) -> object | None:
        """A handle for the INBOX message with this Message-ID, if it is there now."""
        ...

    def remove_message(self, handle: object) -> bool:
        """Delete (and expunge) exactly that message; False if that cannot be done safely."""
        ...

    def find_in_sent(self, message_id: str) -> bool | None:
        """Did the server file a copy in Sent? Removes that copy. None: cannot tell."""
        ...


class OutgoingSession(Session, Protocol):
    def send(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Submit a message; the server's final reply. Raises with cause set on refusal."""
        ...


def open_incoming(
    protocol: str, sock: socket.socket, endpoint: Endpoint, transcript: Transcript
) -> IncomingSession:
    """A session over an already connected (and, for SSL, already TLS) socket."""
    if protocol == "imap":
        return ImapSession(sock, endpoint, transcript)
    return Pop3Session(sock, endpoint, transcript)


def open_outgoing(
    sock: socket.socket, endpoint: Endpoint, transcript: Transcript
) -> OutgoingSession:
    return SmtpSession(sock, endpoint, transcript)


def _mechanisms(capabilities: frozenset[str] | set[str], prefix: str) -> list[str]:
    return sorted(c[len(prefix) :] for c in capabilities if c.upper().startswith(prefix))


#: names servers give the Sent folder when they do not announce SPECIAL-USE
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "inbox.sent")


Client = TypeVar("Client", bound=StreamClient)


class _Adapter(Generic[Client]):
    """What the adapters share: the socket the test connected (the client adopts it at
    the greeting), the TLS socket after STARTTLS, and a goodbye that cannot hang."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint, client: Client) -> None:
        self._sock: socket.socket | None = sock
        self.client = client
        self.endpoint = endpoint

    def _adopt(self) -> socket.socket:
        sock, self._sock = self._sock, None
        assert sock is not None, "greeted twice"
        return sock

    def _tls_sock(self) -> ssl.SSLSocket:
        sock = self.client.stream.sock
        assert isinstance(sock, ssl.SSLSocket)
        return sock

    def close(self, *, polite: bool = True) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        live = _live_sock(self.client)
        if polite and self.client.greeting is not None and live is not None:
            _shorten_timeout(live)
            self.client.goodbye()
        else:
            self.client.close()


class ImapSession(_Adapter[ImapClient]):
    """The account test's view of an `ImapClient`."""

    refreshes = True

    def __init__(self, sock: socket.socket, endpoint: Endpoint, transcript: Transcript) -> None:
        super().__init__(sock, endpoint, ImapClient(endpoint, transcript))

    def greet(self) -> str:
        return self.client.connect(self._adopt()).text

    def capabilities(self) -> list[str]:
        return sorted(self.client.capability())

    def offers_starttls(self) -> bool:
        return "STARTTLS" in self.client.capabilities

    def starttls(self) -> ssl.SSLSocket:
        self.client.starttls()
        return self._tls_sock()

    def login_mechanisms(self) -> list[str]:
        caps = self.client.capabilities
        mechs = _mechanisms(caps, "AUTH=")
        if "LOGINDISABLED" in caps:
            mechs.append("(LOGIN command disabled)")
        return mechs

    def login(self, account: Account, password: str | None) -> str:
        from mailbag.auth.login import login_imap

        return login_imap(self.client, account, secret=password)

    def inbox(self) -> str:
        box = self.client.examine("INBOX")
        return f"INBOX opened: {box.exists} message{'s' if box.exists != 1 else ''}" + (
            f" (UIDVALIDITY {box.uidvalidity})" if box.uidvalidity else ""
        )

    def _search(self, message_id: str) -> list[int]:
        if '"' in message_id or "\\" in message_id:
            raise ValueError("unexpected characters in a generated Message-ID")
        found = self.client.uid_search(f'HEADER Message-ID "{message_id}"')
        return list(found.uids)

    def find_message(self, message_id: str) -> object | None:
        if self.client.selected != "INBOX":
            self.client.select("INBOX")
        else:
            self.client.noop()  # lets the server report new arrivals
        uids = self._search(message_id)
        return uids[0] if uids else None

    def _remove(self, uids: list[int]) -> bool:
        self.client.uid_store(uids, "+FLAGS", ["\\Deleted"])
        if "UIDPLUS" not in self.client.capabilities:
            # plain EXPUNGE would also remove mail the user flagged \Deleted: leave it flagged
            return False
        self.client.uid_expunge(uids)
        return True

    def remove_message(self, handle: object) -> bool:
        assert isinstance(handle, int)
        if self.client.selected != "INBOX":
            self.client.select("INBOX")
        return self._remove([handle])

    def find_in_sent(self, message_id: str) -> bool | None:
        folders = self.client.list_folders()
        sent = [f for f in folders if (f.special_use or "").upper() == "\\SENT"]
        if not sent:
            sent = [f for f in folders if f.name.lower() in SENT_NAMES]
        for folder in sent:
            self.client.select(folder.name)
            uids = self._search(message_id)
            if uids:
                self._remove(uids)
                return True
        return False


class Pop3Session(_Adapter[Pop3Client]):
    """The account test's view of a `Pop3Client`. POP3 sees new mail only in a new
    session, so `refreshes` is False and the test reconnects to look again."""

    refreshes = False
    #: how many of the newest messages `find_message` reads the headers of (TOP n 0)
    NEWEST = 25

    def __init__(self, sock: socket.socket, endpoint: Endpoint, transcript: Transcript) -> None:
        super().__init__(sock, endpoint, Pop3Client(endpoint, transcript))

    def greet(self) -> str:
        return str(self.client.connect(self._adopt()))

    def capabilities(self) -> list[str]:
        caps = self.client.capa()
        return sorted(
            " ".join([name, *args]) if name == "SASL" else name for name, args in caps.items()
        )

    def offers_starttls(self) -> bool:
        return self.client.has("STLS")

    def starttls(self) -> ssl.SSLSocket:
        self.client.stls()
        return self._tls_sock()

    def _sasl(self) -> list[str]:
        return sorted(m.upper() for m in self.client.capabilities.get("SASL", []))

    def login_mechanisms(self) -> list[str]:
        mechs = self._sasl()
        if "USER" in self.client.capabilities:
            mechs.append("USER/PASS")
        return mechs

    def login(self, account: Account, password: str | None) -> str:
        from mailbag.auth.login import login_pop3

        return login_pop3(self.client, account, secret=password)

    def inbox(self) -> str:
        count, size = self.client.stat()
        return f"maildrop opened: {count} message{'s' if count != 1 else ''}, {size:,} bytes"

    def find_message(self, message_id: str) -> object | None:
        from email.parser import BytesHeaderParser

        uids = self.client.uidl()
        for number in sorted(uids, reverse=True)[: self.NEWEST]:
            head = self.client.top(number, 0)
            assert isinstance(head, bytes)
            found = BytesHeaderParser().parsebytes(head).get("Message-ID", "")
            if str(found).strip() == message_id:
                return (number, uids[number])
        return None

    def remove_message(self, handle: object) -> bool:
        assert isinstance(handle, tuple)
        number, uid = handle
        # the number must still name the same message (UIDL) before DELE
        if self.client.uidl_one(number) != uid:
            return False
        self.client.dele(number)
        return self.client.quit()  # deletions take effect only on a clean QUIT

    def find_in_sent(self, message_id: str) -> bool | None:
        return None  # POP3 has no Sent folder to look at


class SmtpSession(_Adapter[SmtpClient]):
    """The account test's view of an `SmtpClient`."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint, transcript: Transcript) -> None:
        super().__init__(sock, endpoint, SmtpClient(endpoint, transcript))

    def greet(self) -> str:
        greeting = self.client.connect(self._adopt())
        self.client.ehlo()
        return str(greeting)

    def capabilities(self) -> list[str]:
        if not self.client.extensions:
            self.client.ehlo()
        return sorted(
            f"{name} {value}".strip() if name in ("AUTH", "SIZE") else name
            for name, value in self.client.extensions.items()
        )

    def offers_starttls(self) -> bool:
        return self.client.has("STARTTLS")

    def starttls(self) -> ssl.SSLSocket:
        self.client.starttls()
        return self._tls_sock()

    def login_mechanisms(self) -> list[str]:
        return sorted(self.client.auth_mechanisms)

    def login(self, account: Account, password: str | None) -> str:
        from mailbag.auth.login import login_smtp

        if not self.client.auth_mechanisms:
            raise AuthError(
                f"{self.endpoint.host}:{self.endpoint.port} offers no login (no AUTH in EHLO)",
                cause="auth-mechanism",
            )
        return login_smtp(self.client, account, secret=password)

    def send(self, sender: str, recipients: list[str], message: bytes) -> str:
        try:
            result = self.client.send(sender, recipients, message)
        except ProtocolError as exc:
            cause = smtp_refusal_cause(exc)
            if cause is not None:
                exc.fields["cause"] = cause
            raise
        return str(result.reply) if result.reply is not None else "accepted"


def smtp_refusal_cause(exc: MailbagError) -> str | None:
    """What an SMTP refusal means for the user: needs login, no relaying, or the message."""
    code = exc.fields.get("smtp_code")
    text = f"{exc.fields.get('smtp_text', '')} {exc.message}".lower()
    if code == 530 or "authentication required" in text or "must authenticate" in text:
        return "smtp-auth-required"
    if "relay" in text:
        return "relay-denied"
    if isinstance(code, int) and code >= 500 and "refused the message" in exc.message:
        return "rejected"
    if isinstance(code, int) and code >= 500 and "refused DATA" in exc.message:
        return "rejected"
    return None


#: a goodbye to a server that stopped answering must not hold the test up
GOODBYE_TIMEOUT = 2.0


def _shorten_timeout(sock: socket.socket) -> None:
    timeout = sock.gettimeout()
    if timeout is None or timeout > GOODBYE_TIMEOUT:
        sock.settimeout(GOODBYE_TIMEOUT)


class _HasStream(Protocol):
    @property
    def stream(self) -> LineStream: ...


def _live_sock(client: _HasStream) -> socket.socket | None:
    """The client's socket while it is still open (a failed handshake closes it)."""
    try:
        sock = client.stream.sock
    except NetworkError:
        return None  # the client closed the connection
    return sock if sock.fileno() != -1 else None
