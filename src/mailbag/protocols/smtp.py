"""SMTP submission client (RFC 5321, 3207 STARTTLS, 4954 AUTH, 6531 SMTPUTF8, 1870 SIZE).

Our own small client rather than `smtplib`: every connection must go through
`transport.py` (verified TLS, explained errors) and `stream.LineStream` (which
refuses bytes injected before the TLS handshake); the outbox needs a hook right
before the final "." of DATA to record that the message may now be delivered;
bodies are streamed from files with dot-stuffing in bounded chunks; and every
reply is kept whole (code, enhanced code, text) so the account test can
translate providers' refusals.

Step by step: `connect()` (greeting), `ehlo()`, `starttls()` (missing STARTTLS
is a TLSError, never a downgrade; EHLO is re-issued after TLS), `login()` /
`authenticate()` (never before TLS), then `mail()`, `rcpt()`, `data()` which
return replies without raising on refusals, or `send()` which does the whole
transaction and reports per recipient. It never prints and never retries.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from mailbag.errors import AuthError, NetworkError, ProtocolError, TLSError
from mailbag.protocols import sasl
from mailbag.protocols.stream import LineStream, StreamClient
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Endpoint, Security, open_stream

PROTO = "smtp"
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")
_SEND_CHUNK = 64 * 1024


class ReplyCode:
    """How a reply code reads (RFC 5321 4.2.1): 2xx/3xx go on, 4xx try later, 5xx never."""

    code: int

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(frozen=True)
class SmtpReply(ReplyCode):
    """One (possibly multi-line) reply: `250 2.1.5 OK` -> code 250, enhanced "2.1.5"."""

    code: int
    lines: tuple[str, ...]

    @property
    def enhanced(self) -> str | None:
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        return m.group(1) if m else None

    @property
    def text(self) -> str:
        """The reply text without the enhanced code, lines joined by a space."""
        parts = list(self.lines)
        if parts and self.enhanced:
            parts[0] = _ENHANCED.sub("", parts[0], count=1)
        return " ".join(p.strip() for p in parts if p.strip())

    def fields(self) -> dict[str, object]:
        return {
            "smtp_code": self.code,
            "smtp_enhanced": self.enhanced,
            "smtp_text": self.text,
            "server_text": str(self),
        }

    def __str__(self) -> str:
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"{self.code}{enhanced} {self.text}".strip()


def parse_reply_line(line: bytes) -> tuple[int, bool, str]:
    """`250-SIZE 100` -> (250, more lines follow, "SIZE 100"). Pure."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    if len(text) < 3 or not text[:3].isdigit() or (len(text) > 3 and text[3] not in " -"):
        raise ProtocolError(
            f"not an SMTP reply: {text[:80]!r}",
            hint="check the port: is this an SMTP submission port (465 SSL, 587 STARTTLS)?",
            cause="not-smtp",
        )
    return int(text[:3]), len(text) > 3 and text[3] == "-", text[4:]


def parse_ehlo(reply: SmtpReply) -> dict[str, str]:
    """EHLO reply -> {KEYWORD: params}; `AUTH=PLAIN` (old style) counts as AUTH. Pure."""
    ext: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if not keyword:
            continue
        key = keyword.upper()
        if key.startswith("AUTH="):
            key, params = "AUTH", (key[5:] + " " + params).strip()
        if key in ext and key == "AUTH":
            ext[key] = (ext[key] + " " + params).strip()
        else:
            ext[key] = params
    return ext


def dot_stuffed(source: bytes | IO[bytes]) -> Iterator[bytes]:
    """The DATA payload: CRLF line ends, leading dots doubled, ending in CRLF "." CRLF.
    Reads files in bounded pieces (a long line is cut, never held whole). Pure for bytes."""
    reader: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    at_line_start = True
    ends_with_crlf = True
    out = bytearray()
    while True:
        piece = reader.readline(_SEND_CHUNK)
        if not piece:
            break
        if at_line_start and piece.startswith(b"."):
            out += b"."
        if piece.endswith(b"\n") and not piece.endswith(b"\r\n"):
            piece = piece[:-1] + b"\r\n"
        out += piece
        at_line_start = piece.endswith(b"\n")
        ends_with_crlf = piece.endswith(b"\r\n")
        if len(out) >= _SEND_CHUNK:
            yield bytes(out)
            out.clear()
    if not ends_with_crlf:
        out += b"\r\n"
    out += b".\r\n"
    yield bytes(out)


@dataclass
class SendResult:
    """The outcome of one transaction. `ok` only when every recipient was accepted."""

    accepted: dict[str, SmtpReply] = field(default_factory=dict)
    rejected: dict[str, SmtpReply] = field(default_factory=dict)
    reply: SmtpReply | None = None  # the server's answer to the end of DATA

    @property
    def ok(self) -> bool:
        return bool(self.accepted) and not self.rejected and bool(self.reply and self.reply.ok)

    @property
    def partial(self) -> bool:
        return bool(self.accepted) and bool(self.rejected)


class SmtpClient(StreamClient):
    """One SMTP connection.

    >>> s = SmtpClient(endpoint, transcript)
    >>> s.connect(); s.ehlo()
    >>> s.starttls()                 # Security.STARTTLS only
    >>> s.login(user, password)
    >>> result = s.send(sender, [rcpt], message_bytes)
    >>> s.quit()
    """

    def __init__(
        self,
        endpoint: Endpoint,
        transcript: Transcript = NO_TRACE,
        *,
        local_hostname: str | None = None,
    ) -> None:
        super().__init__(endpoint, transcript)
        self.local_hostname = local_hostname
        self.greeting: SmtpReply | None = None
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self.authenticated = False

    # --- connection ------------------------------------------------------------------

    def _start(self) -> None:
        self.connect()
        self.ehlo()
        if self.endpoint.security is Security.STARTTLS:
            self.starttls()

    def connect(self, sock: socket.socket | None = None) -> SmtpReply:
        """Open the connection (or adopt `sock`, already TLS for Security.SSL) and read
        the greeting; anything but 220 is an error quoting the server."""
        if sock is None:
            sock = open_stream(self.endpoint)
        self._stream = LineStream(sock, self.endpoint, PROTO)
        reply = self.read_reply()
        self.greeting = reply
        if reply.code != 220:
            self.close()
            error = NetworkError if reply.code == 421 else ProtocolError
            raise self._error(
                error,
                f"{self._where()} refused the connection: {reply}",
                hint="the server may be busy or blocking this address; try again later",
                cause="greeting",
                **reply.fields(),
            )
        return reply

    def ehlo(self, name: str | None = None) -> SmtpReply:
        """EHLO (HELO if the server does not speak ESMTP); extensions are re-read."""
        host = name or self.local_hostname or self._default_name()
        reply = self.command(f"EHLO {host}")
        if reply.code == 250:
            self.esmtp = True
            self.extensions = parse_ehlo(reply)
            return reply
        reply = self.command(f"HELO {host}")
        if reply.code != 250:
            raise self._refusal("EHLO/HELO", reply)
        self.esmtp = False
        self.extensions = {}
        return reply

    def has(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    @property
    def size_limit(self) -> int | None:
        value = self.extensions.get("SIZE", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def auth_mechanisms(self) -> set[str]:
        return {m.upper() for m in self.extensions.get("AUTH", "").split()}

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.extensions

    @property
    def eight_bit_mime(self) -> bool:
        return "8BITMIME" in self.extensions

    def starttls(self) -> SmtpReply:
        """Upgrade to TLS and EHLO again. No STARTTLS offered or accepted: TLSError."""
        if self.is_tls:
            raise TLSError("the connection is already encrypted", cause="already-tls")
        if not self.extensions:
            self.ehlo()
        if "STARTTLS" not in self.extensions:
            raise self._fail(
                TLSError,
                f"{self._where()} does not offer STARTTLS; refusing to send anything "
                "without encryption",
                hint="use implicit TLS (port 465) if the provider offers it; someone may "
                "also be stripping STARTTLS from the connection",
                cause="starttls-missing",
            )
        reply = self.command("STARTTLS")
        if reply.code != 220:
            raise self._fail(
                TLSError,
                f"{self._where()} refused STARTTLS: {reply}",
                hint="the server cannot encrypt this connection; use implicit TLS (port 465)",
                cause="starttls-refused",
                **reply.fields(),
            )
        self.stream.start_tls()
        # what the server said before TLS is not trustworthy: ask again (RFC 3207)
        self.extensions = {}
        self.ehlo()
        return reply

    def login(self, username: str, password: str) -> SmtpReply:
        """Password login with the best mechanism offered (PLAIN, then LOGIN)."""
        mech = sasl.choose(self.auth_mechanisms, sasl.PASSWORD_MECHANISMS)
        if mech is None:
            self._require_tls()
            raise self._error(
                AuthError,
                f"{self._where()} offers no password login "
                f"(AUTH {' '.join(sorted(self.auth_mechanisms)) or 'not offered'})",
                hint="the server may need OAuth2, or login only after STARTTLS",
                cause="no-mechanism",
            )
        if mech is sasl.Mechanism.PLAIN:
            return self.authenticate("PLAIN", [sasl.plain(username, password)])
        return self.authenticate("LOGIN", list(sasl.login_responses(username, password)))

    def authenticate(self, mechanism: str, responses: bytes | Sequence[bytes]) -> SmtpReply:
        """AUTH with an initial response (the first of `responses`, except for LOGIN);
        later 334 challenges get the next responses. XOAUTH2 error challenges are
        answered with an empty line and reported in the AuthError."""
        self._require_tls()
        queue = [responses] if isinstance(responses, bytes) else list(responses)
        mech = mechanism.upper()
        if queue and mech != "LOGIN":
            first = base64.b64encode(queue.pop(0)).decode("ascii") or "="
            reply = self.command(f"AUTH {mech} {first}")  # the transcript redacts it
        else:
            reply = self.command(f"AUTH {mech}")
        challenges: list[str] = []
        while reply.code == 334:
            if queue:
                reply = self.command(base64.b64encode(queue.pop(0)).decode("ascii"), secret=True)
            else:
                challenges.append(_b64_text(reply.text))
                reply = self.command("")
        if reply.code != 235:
            raise self._error(
                AuthError,
                f"{self._where()} refused the login: {reply}",
                hint="check the user name and password (an app password or OAuth2 may be "
                "required by the provider)",
                cause="auth-failed",
                mechanism=mech,
                challenges=challenges,
                **reply.fields(),
            )
        self.authenticated = True
        return reply

    # --- the transaction ------------------------------------------------------------------

    def mail(
        self,
        sender: str,
        *,
        size: int | None = None,
        smtputf8: bool = False,
        eight_bit: bool = False,
    ) -> SmtpReply:
        """MAIL FROM with SIZE/BODY/SMTPUTF8 parameters where offered. Does not raise on
        a refusal: look at the reply."""
        return self.command(self._mail_line(sender, size, smtputf8, eight_bit))

    def rcpt(self, recipient: str) -> SmtpReply:
        return self.command(f"RCPT TO:<{_addr(recipient)}>")

    def data(
        self, message: bytes | IO[bytes], *, before_end: Callable[[], None] | None = None
    ) -> tuple[SmtpReply, SmtpReply | None]:
        """DATA: returns (reply to DATA, reply to the end of data or None if DATA was
        refused). `before_end` runs right before the final "." leaves; a NetworkError
        after that point carries `after_end=True` (the message may have been delivered)."""
        start = self.command("DATA")
        if start.code != 354:
            return start, None
        stream = self.stream
        pieces = dot_stuffed(message)
        pending = next(pieces)
        for piece in pieces:
            stream.send(pending)
            pending = piece
        # `pending` ends with the final "." CRLF, which waits for `before_end`
        if len(pending) > 3:
            stream.send(pending[:-3])
        self.transcript.sent(PROTO, b"<message data>")
        if before_end is not None:
            before_end()
        try:
            self._send_line(b".")
            end = self.read_reply()
        except NetworkError as exc:
            exc.fields["after_end"] = True
            raise
        return start, end

    def send(
        self,
        mail_from: str,
        recipients: Iterable[str],
        message: bytes | IO[bytes],
        *,
        before_end: Callable[[], None] | None = None,
    ) -> SendResult:
        """The whole transaction. Raises ProtocolError (with the reply's fields) when the
        message is too big for SIZE, needs SMTPUTF8 the server lacks, MAIL FROM is
        refused, no recipient is accepted, or DATA is refused. A partial acceptance is
        returned with `ok` False and the refusals in `rejected`."""
        rcpts = list(recipients)
        size = len(message) if isinstance(message, bytes) else _remaining(message)
        limit = self.size_limit
        if limit is not None and size > limit:
            raise self._error(
                ProtocolError,
                f"the message is {size:,} bytes; {self._where()} accepts at most {limit:,}",
                hint="remove or shrink attachments (share large files by link instead)",
                cause="too-big",
                size=size,
                limit=limit,
            )
        needs_utf8 = any(not a.isascii() for a in [mail_from, *rcpts])
        if needs_utf8 and not self.smtputf8:
            raise self._error(
                ProtocolError,
                f"an address is not ASCII and {self._where()} does not offer SMTPUTF8",
                hint="use an ASCII address (or another server) for that recipient",
                cause="no-smtputf8",
            )
        eight_bit = _has_8bit(message)
        result = SendResult()
        if "PIPELINING" in self.extensions:
            replies = self._pipelined(
                [self._mail_line(mail_from, size, needs_utf8, eight_bit)]
                + [f"RCPT TO:<{_addr(r)}>" for r in rcpts]
            )
            mail_reply, rcpt_replies = replies[0], replies[1:]
        else:
            mail_reply = self.mail(mail_from, size=size, smtputf8=needs_utf8, eight_bit=eight_bit)
            rcpt_replies = [self.rcpt(r) for r in rcpts] if mail_reply.ok else []
        if not mail_reply.ok:
            self.rset_quietly()
            raise self._refusal("MAIL FROM", mail_reply)
        for rcpt, reply in zip(rcpts, rcpt_replies, strict=True):
            (result.accepted if reply.ok else result.rejected)[rcpt] = reply
        if not result.accepted:
            self.rset_quietly()
            first = next(iter(result.rejected.values()))
            raise self._refusal(
                "every recipient", first, rejected={k: str(v) for k, v in result.rejected.items()}
            )
        start, end = self.data(message, before_end=before_end)
        if end is None:
            self.rset_quietly()
            raise self._refusal("DATA", start)
        if not end.ok:
            raise self._refusal("the message", end)
        result.reply = end
        return result

    def _mail_line(self, sender: str, size: int | None, smtputf8: bool, eight_bit: bool) -> str:
        params = []
        if size is not None and "SIZE" in self.extensions:
            params.append(f"SIZE={size}")
        if eight_bit and self.eight_bit_mime:
            params.append("BODY=8BITMIME")
        if smtputf8 and self.smtputf8:
            params.append("SMTPUTF8")
        return " ".join([f"MAIL FROM:<{_addr(sender)}>", *params])

    def _pipelined(self, lines: Sequence[str]) -> list[SmtpReply]:
        """RFC 2920: send the group, then read one reply per command."""
        data = b""
        for line in lines:
            raw = line.encode("utf-8")
            self.transcript.sent(PROTO, raw)
            data += raw + b"\r\n"
        self.stream.send(data)
        return [self.read_reply() for _ in lines]

    def rset(self) -> SmtpReply:
        return self.command("RSET")

    def rset_quietly(self) -> None:
        # the transaction is over either way; the caller reports the refusal
        with contextlib.suppress(NetworkError):
            self.rset()

    def noop(self) -> SmtpReply:
        return self.command("NOOP")

    def quit(self) -> None:
        if self._stream is None:
            return
        try:
            self.command("QUIT")
        except NetworkError:
            pass  # the server may close first
        finally:
            self.close()

    def goodbye(self) -> None:
        self.quit()

    # --- wire ------------------------------------------------------------------------------

    def command(self, line: str, *, secret: bool = False) -> SmtpReply:
        self._send_line(line.encode("utf-8"), secret=secret)
        return self.read_reply()

    def read_reply(self) -> SmtpReply:
        lines: list[str] = []
        code = None
        while True:
            raw = self.stream.readline(64 * 1024)
            self.transcript.received(PROTO, raw)
            this, more, text = parse_reply_line(raw)
            if code is not None and this != code:
                raise ProtocolError(
                    f"{self._where()} mixed reply codes {code} and {this} in one reply",
                    cause="parse",
                )
            code = this
            lines.append(text)
            if not more:
                return SmtpReply(code, tuple(lines))
            if len(lines) > 1000:
                raise ProtocolError(f"{self._where()} sent an endless reply", cause="parse")

    def _send_line(self, data: bytes, *, secret: bool = False) -> None:
        self.transcript.sent(PROTO, data, secret=secret)
        self.stream.send(data + b"\r\n")

    def _refusal(self, what: str, reply: SmtpReply, **extra: object) -> ProtocolError:
        kind = "temporarily refused" if reply.transient else "refused"
        return self._error(
            ProtocolError,
            f"{self._where()} {kind} {what}: {reply}",
            hint="try again later" if reply.transient else None,
            cause="refused",
            transient=reply.transient,
            **reply.fields(),
            **extra,
        )

    def _default_name(self) -> str:
        # an address literal: valid everywhere, and tells the server nothing new
        try:
            addr = self.stream.sock.getsockname()[0]
        except OSError:
            return "[127.0.0.1]"
        return f"[IPv6:{addr}]" if ":" in addr else f"[{addr}]"


def _addr(address: str) -> str:
    a = address.strip().strip("<>")
    if any(c in a for c in "\r\n<>") or any(ord(c) < 0x20 for c in a):
        raise ProtocolError(f"invalid address {address!r}", cause="bad-address")
    return a


def _remaining(f: IO[bytes]) -> int:
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    return end - here


def _has_8bit(message: bytes | IO[bytes]) -> bool:
    if isinstance(message, bytes):
        return not message.isascii()
    here = message.tell()
    try:
        while chunk := message.read(_SEND_CHUNK):
            if not chunk.isascii():
                return True
        return False
    finally:
        message.seek(here)


def _b64_text(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except ValueError:
        return text
