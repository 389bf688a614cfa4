"""POP3 client (RFC 1939, 2449 CAPA/PIPELINING, 2595 STLS, 5034 SASL).

Our own small client rather than `poplib`: poplib reads every message into a
list of lines in memory and cannot pipeline. Here RETR and TOP stream to a sink
with dot-unstuffing in bounded buffers, `retr_many` keeps a window of RETRs in
flight when the server offers PIPELINING, and the connection goes through
`transport.py` with the STARTTLS rules of FIELD-NOTES (STLS missing from CAPA
when it was configured is a TLSError, never a downgrade; bytes sent before the
handshake are refused; CAPA is asked again after TLS).

Deletions: DELE only marks; the server removes messages when QUIT succeeds.
`quit()` says whether it did, and a dropped connection never counts as a
commit. It never prints and never retries.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import re
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from mailbag.errors import AuthError, NetworkError, ProtocolError, TLSError
from mailbag.protocols import sasl
from mailbag.protocols.stream import LineStream, StreamClient
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Endpoint, Security, open_stream

PROTO = "pop3"
_TIMESTAMP = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_RESP_CODE = re.compile(r"^\[([A-Z0-9/-]+)\]\s*")
_MAX_LISTING_LINE = 1024


@dataclass(frozen=True)
class PopReply:
    ok: bool
    text: str

    @property
    def code(self) -> str | None:
        """RFC 2449/3206 response code: IN-USE, LOGIN-DELAY, SYS/TEMP, SYS/PERM, AUTH."""
        m = _RESP_CODE.match(self.text)
        return m.group(1) if m else None

    def fields(self) -> dict[str, object]:
        return {"server_text": self.text, "pop_code": self.code}

    def __str__(self) -> str:
        return ("+OK " if self.ok else "-ERR ") + self.text


def parse_reply(line: bytes) -> PopReply:
    """`+OK 2 320` / `-ERR [IN-USE] locked` -> PopReply. Pure."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    if text.startswith("+OK"):
        return PopReply(True, text[3:].strip())
    if text.startswith("-ERR"):
        return PopReply(False, text[4:].strip())
    raise ProtocolError(
        f"not a POP3 reply: {text[:80]!r}",
        hint="check the port: is this a POP3 port (995 SSL, 110 STARTTLS)?",
        cause="not-pop3",
    )


def parse_capa(lines: Iterable[str]) -> dict[str, list[str]]:
    """CAPA lines -> {TAG: [args]}. Pure."""
    caps: dict[str, list[str]] = {}
    for line in lines:
        words = line.split()
        if words:
            caps[words[0].upper()] = words[1:]
    return caps


def apop_digest(timestamp: str, password: str) -> str:
    """RFC 1939 APOP: MD5 over the greeting's timestamp and the shared secret (the
    protocol fixes MD5; it is an old scheme, used only when chosen)."""
    return hashlib.md5((timestamp + password).encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass
class RetrResult:
    """One message of `retr_many`: `error` is the server's -ERR text, else `size` bytes
    went to `sink`."""

    msgnum: int
    size: int = 0
    sink: IO[bytes] | None = None
    error: str | None = None


class Pop3Client(StreamClient):
    """One POP3 connection.

    >>> p = Pop3Client(endpoint, transcript)
    >>> p.connect()
    >>> p.stls()                    # Security.STARTTLS only
    >>> p.login(user, password)
    >>> uids = p.uidl(); sizes = p.list_all()
    >>> for r in p.retr_many(uids, lambda n: open(...)): ...
    >>> committed = p.quit()
    """

    def __init__(self, endpoint: Endpoint, transcript: Transcript = NO_TRACE) -> None:
        super().__init__(endpoint, transcript)
        self.greeting: PopReply | None = None
        self._caps: dict[str, list[str]] | None = None
        self.authenticated = False

    # --- connection ------------------------------------------------------------------

    _upgrade_hint = "call stls() first (security 'starttls') or use POP3 over SSL"

    def _start(self) -> None:
        self.connect()
        if self.endpoint.security is Security.STARTTLS:
            self.stls()

    def connect(self, sock: socket.socket | None = None) -> PopReply:
        """Open the connection (or adopt a connected socket, already TLS for Security.SSL)
        and read the greeting."""
        if sock is None:
            sock = open_stream(self.endpoint)
        self._stream = LineStream(sock, self.endpoint, PROTO)
        reply = self._reply()
        self.greeting = reply
        if not reply.ok:
            raise self._fail(
                NetworkError,
                f"{self._where()} refused the connection: {reply.text}",
                hint="the server may be busy, or POP may be turned off for this account",
                cause="refused-by-server",
                **reply.fields(),
            )
        return reply

    @property
    def apop_timestamp(self) -> str | None:
        if self.greeting is None:
            return None
        m = _TIMESTAMP.search(self.greeting.text)
        return m.group(0) if m else None

    @property
    def capabilities(self) -> dict[str, list[str]]:
        if self._caps is None:
            self.capa()
        assert self._caps is not None
        return self._caps

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def capa(self) -> dict[str, list[str]]:
        """CAPA; a server without it (-ERR) has no extensions as far as we know."""
        reply = self.command("CAPA")
        if not reply.ok:
            self._caps = {}
            return self._caps
        self._caps = parse_capa(self._listing())
        return self._caps

    def stls(self) -> None:
        """Upgrade with STLS; missing from CAPA or refused is a TLSError."""
        if self.is_tls:
            raise TLSError("the connection is already encrypted", cause="already-tls")
        if "STLS" not in self.capabilities:
            raise self._fail(
                TLSError,
                f"{self._where()} does not offer STLS; refusing to log in without encryption",
                hint="use POP3 over SSL (port 995) if the provider offers it; someone may "
                "also be stripping STLS from the connection",
                cause="starttls-missing",
            )
        reply = self.command("STLS")
        if not reply.ok:
            raise self._fail(
                TLSError,
                f"{self._where()} refused STLS: {reply.text}",
                hint="use POP3 over SSL (port 995)",
                cause="starttls-refused",
                **reply.fields(),
            )
        self.stream.start_tls()
        self._caps = None
        self.capa()

    # --- authentication ---------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """SASL PLAIN when offered, else USER/PASS."""
        mechs = {m.upper() for m in self.capabilities.get("SASL", [])}
        if "PLAIN" in mechs:
            self.authenticate("PLAIN", sasl.plain(username, password))
        else:
            self.user_pass(username, password)

    def user_pass(self, username: str, password: str) -> None:
        self._require_tls()
        reply = self.command(f"USER {_arg(username)}")
        if reply.ok:
            reply = self.command(f"PASS {password}", secret=True)
        self._after_auth(reply, "USER/PASS")

    def apop(self, username: str, password: str) -> None:
        """APOP (RFC 1939) with the greeting's timestamp; ProtocolError if there is none."""
        self._require_tls()
        stamp = self.apop_timestamp
        if stamp is None:
            raise ProtocolError(
                f"{self._where()} does not offer APOP (no timestamp in its greeting)",
                cause="no-apop",
            )
        reply = self.command(f"APOP {_arg(username)} {apop_digest(stamp, password)}")
        self._after_auth(reply, "APOP")

    def authenticate(self, mechanism: str, responses: bytes | Sequence[bytes]) -> None:
        """AUTH (RFC 5034) with an initial response; later challenges get the next ones."""
        self._require_tls()
        queue = [responses] if isinstance(responses, bytes) else list(responses)
        mech = mechanism.upper()
        if queue and mech != "LOGIN":
            first = base64.b64encode(queue.pop(0)).decode("ascii") or "="
            line = self._exchange(f"AUTH {mech} {first}")
        else:
            line = self._exchange(f"AUTH {mech}")
        challenges: list[str] = []
        while line.startswith(b"+ ") or line.rstrip(b"\r\n") == b"+":
            text = line[2:].strip().decode("ascii", "replace")
            if queue:
                payload = base64.b64encode(queue.pop(0)).decode("ascii")
                line = self._exchange(payload, secret=True)
            else:
                challenges.append(_b64_text(text))
                line = self._exchange("*")  # cancel: the server answers -ERR
        self._after_auth(parse_reply(line), f"AUTH {mech}", challenges)

    def _after_auth(self, reply: PopReply, what: str, challenges: Sequence[str] = ()) -> None:
        if not reply.ok:
            raise self._error(
                AuthError,
                f"{self._where()} refused the login: {reply.text}",
                hint="check the user name and password; some providers also need POP to be "
                "turned on in the web settings, or an app password",
                command=what,
                challenges=list(challenges),
                **reply.fields(),
            )
        self.authenticated = True
        self._caps = None  # CAPA may differ after login (RFC 2449)

    # --- transaction state ----------------------------------------------------------------

    def stat(self) -> tuple[int, int]:
        """(message count, total size)."""
        reply = self._ok(self.command("STAT"), "STAT")
        count, size = _two_ints(reply.text, "STAT")
        return count, size

    def list_all(self) -> dict[int, int]:
        """message number -> size."""
        self._ok(self.command("LIST"), "LIST")
        return {n: v for n, v in (_two_ints(ln, "LIST") for ln in self._listing())}

    def list_one(self, msgnum: int) -> int:
        reply = self._ok(self.command(f"LIST {msgnum}"), f"LIST {msgnum}")
        return _two_ints(reply.text, "LIST")[1]

    def uidl(self) -> dict[int, str]:
        """message number -> unique id (RFC 1939 section 7)."""
        self._ok(self.command("UIDL"), "UIDL")
        out: dict[int, str] = {}
        for ln in self._listing():
            num, _, uid = ln.strip().partition(" ")
            if not num.isdigit() or not uid:
                raise ProtocolError(f"bad UIDL line {ln!r}", cause="parse")
            out[int(num)] = uid.strip()
        return out

    def uidl_one(self, msgnum: int) -> str:
        reply = self._ok(self.command(f"UIDL {msgnum}"), f"UIDL {msgnum}")
        _, _, uid = reply.text.partition(" ")
        if not uid:
            raise ProtocolError(f"bad UIDL reply {reply.text!r}", cause="parse")
        return uid.strip()

    def top(self, msgnum: int, lines: int = 0, sink: IO[bytes] | None = None) -> bytes | int:
        """TOP: the headers (and `lines` body lines). Returns bytes, or the size written
        when a sink is given."""
        self._ok(self.command(f"TOP {msgnum} {lines}"), f"TOP {msgnum}")
        return self._body(sink)

    def retr(self, msgnum: int, sink: IO[bytes] | None = None) -> bytes | int:
        """RETR: the whole message, exactly as stored (dot-unstuffed). Returns bytes, or
        the size written when a sink is given."""
        self._ok(self.command(f"RETR {msgnum}"), f"RETR {msgnum}")
        return self._body(sink)

    def retr_many(
        self,
        msgnums: Iterable[int],
        sink_factory: Callable[[int], IO[bytes]],
        *,
        window: int = 16,
    ) -> Iterator[RetrResult]:
        """RETR several messages, keeping `window` requests in flight when the server
        offers PIPELINING (one at a time otherwise). `sink_factory(n)` is called when
        message n starts arriving; a NetworkError mid-message leaves that sink partial
        (the caller discards it)."""
        width = max(1, window) if "PIPELINING" in self.capabilities else 1
        todo = iter(msgnums)
        inflight: deque[int] = deque()
        try:
            while True:
                batch: list[int] = []
                while len(inflight) + len(batch) < width:
                    n = next(todo, None)
                    if n is None:
                        break
                    batch.append(n)
                if batch:
                    data = b""
                    for n in batch:
                        line = f"RETR {n}".encode("ascii")
                        self.transcript.sent(PROTO, line)
                        data += line + b"\r\n"
                    self.stream.send(data)
                    inflight.extend(batch)
                if not inflight:
                    return
                n = inflight[0]
                reply = self._reply()
                if not reply.ok:
                    inflight.popleft()
                    yield RetrResult(n, error=reply.text)
                    continue
                sink = sink_factory(n)
                size = self.stream.read_dot_terminated(sink)
                inflight.popleft()
                self.transcript.received(PROTO, b"<%d bytes>" % size)
                yield RetrResult(n, size, sink)
        except GeneratorExit:
            # the caller stopped early: read the answers still coming, discarding them
            for _ in inflight:
                if self._reply().ok:
                    self.stream.read_dot_terminated(None)
            raise

    def dele(self, msgnum: int) -> None:
        """Mark for deletion; nothing is removed unless `quit()` returns True."""
        self._ok(self.command(f"DELE {msgnum}"), f"DELE {msgnum}")

    def rset(self) -> None:
        self._ok(self.command("RSET"), "RSET")

    def noop(self) -> None:
        self._ok(self.command("NOOP"), "NOOP")

    def quit(self) -> bool:
        """QUIT and close. True only when the server answered +OK, which is when it
        commits deletions; a connection that is gone commits nothing."""
        if self._stream is None:
            return False
        try:
            reply = self.command("QUIT")
        except NetworkError:
            return False
        finally:
            self.close()
        return reply.ok

    def goodbye(self) -> None:
        self.quit()

    # --- wire ------------------------------------------------------------------------------

    def command(self, line: str, *, secret: bool = False) -> PopReply:
        return parse_reply(self._exchange(line, secret=secret))

    def _exchange(self, line: str, *, secret: bool = False) -> bytes:
        data = line.encode("utf-8")
        self.transcript.sent(PROTO, data, secret=secret)
        self.stream.send(data + b"\r\n")
        raw = self.stream.readline(64 * 1024)
        self.transcript.received(PROTO, raw)
        return raw

    def _reply(self) -> PopReply:
        raw = self.stream.readline(64 * 1024)
        self.transcript.received(PROTO, raw)
        return parse_reply(raw)

    def _listing(self) -> list[str]:
        """A multi-line answer of short lines (CAPA, LIST, UIDL), bounded per line."""
        out: list[str] = []
        while True:
            raw = self.stream.readline(_MAX_LISTING_LINE)
            self.transcript.received(PROTO, raw)
            line = raw.rstrip(b"\r\n")
            if line == b".":
                return out
            if line.startswith(b".."):
                line = line[1:]
            out.append(line.decode("utf-8", "replace"))

    def _body(self, sink: IO[bytes] | None) -> bytes | int:
        if sink is not None:
            size = self.stream.read_dot_terminated(sink)
            self.transcript.received(PROTO, b"<%d bytes>" % size)
            return size
        buf = io.BytesIO()
        size = self.stream.read_dot_terminated(buf)
        self.transcript.received(PROTO, b"<%d bytes>" % size)
        return buf.getvalue()

    def _ok(self, reply: PopReply, what: str) -> PopReply:
        if not reply.ok:
            raise self._error(
                ProtocolError,
                f"{self._where()} refused {what}: {reply.text}",
                hint=_hint(reply),
                command=what,
                **reply.fields(),
            )
        return reply


def _arg(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ProtocolError("user names may not contain line breaks", cause="bad-argument")
    return value


def _two_ints(text: str, what: str) -> tuple[int, int]:
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ProtocolError(f"bad {what} answer {text!r}", cause="parse")
    return int(parts[0]), int(parts[1])


def _hint(reply: PopReply) -> str | None:
    return {
        "IN-USE": "another program is connected to this mailbox; close it and try again",
        "LOGIN-DELAY": "the provider limits how often POP may log in; try again later",
        "SYS/TEMP": "the server has a temporary problem; try again later",
    }.get(reply.code or "")


def _b64_text(text: str) -> str:
    with contextlib.suppress(ValueError):
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    return text
