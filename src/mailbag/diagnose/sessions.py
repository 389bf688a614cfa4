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
from typing import Protocol

from mailbag.config.model import AuthMethod
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

    def login(self, username: str, secret: str, method: AuthMethod) -> str:
        """Log in; returns the mechanism used. Raises AuthError with the server's reply."""
        ...

    def close(self) -> None: ...


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
    raise NotImplementedError(f"{protocol} client has not landed yet")


def open_outgoing(
    sock: socket.socket, endpoint: Endpoint, transcript: Transcript
) -> OutgoingSession:
    raise NotImplementedError("SMTP client has not landed yet")
