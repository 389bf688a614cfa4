"""A buffered byte stream over a connected socket, shared by the IMAP, POP3 and SMTP clients.

It reads lines with a length limit and copies fixed-size payloads (literals,
message bodies) to a sink in bounded chunks, so memory never depends on what a
server announces. It knows what it has buffered, which is what STARTTLS needs:
bytes that arrived before the TLS handshake must never be read as if they came
through TLS. Socket errors become `NetworkError` (`cause="dropped"` or
`"timeout"`). It also carries the optional DEFLATE layer (IMAP COMPRESS).

It never interprets the protocol and never disables certificate checks (the
TLS upgrade itself is `transport.wrap_tls`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import zlib
from types import TracebackType

from mailbag.errors import MailbagError, NetworkError, ProtocolError, TLSError
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Endpoint, Security, wrap_tls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Self, TypeVar

    _E = TypeVar("_E", bound=MailbagError)

#: how much one recv() asks for; also the unit in which payloads are copied
CHUNK = 256 * 1024
#: longest protocol line we accept (a SEARCH answer for 200,000 UIDs is ~1.4 MB)
MAX_LINE = 64 * 1024 * 1024


class LineStream:
    """Owns a socket; `readline`, `read_into`, `read_bytes`, `send`."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint, proto: str) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.proto = proto
        self._buf = bytearray()
        self._pos = 0
        # received into one reused buffer: recv(n) allocates n bytes for every call and
        # then shrinks them (for 256 KB an mmap, mremap and munmap each time; on a
        # download that was a quarter of the CPU)
        self._recv_view = memoryview(bytearray(CHUNK))
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    # --- state ---------------------------------------------------------------------

    @property
    def is_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def buffered(self) -> int:
        """Bytes received but not consumed yet."""
        return len(self._buf) - self._pos

    def start_tls(self) -> None:
        """Upgrade to TLS (STARTTLS). Refuses if anything arrived after the server's go-ahead:
        those bytes came in plain text and could be an injected response."""
        if self.buffered():
            extra = bytes(self._buf[self._pos : self._pos + 80])
            self.close()
            raise _tls_injection(self.endpoint, self.proto, extra)
        self._buf = bytearray()
        self._pos = 0
        self.sock = wrap_tls(self.sock, self.endpoint)

    def start_deflate(self) -> None:
        """Switch both directions to raw DEFLATE (RFC 4978)."""
        self._inflate = zlib.decompressobj(-15)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        if self.buffered():
            # anything already buffered was compressed too
            rest = bytes(self._buf[self._pos :])
            self._buf = bytearray(self._inflate.decompress(rest))
            self._pos = 0

    # --- I/O -----------------------------------------------------------------------

    def _fill(self) -> None:
        """Receive at least one more byte into the buffer (or raise)."""
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > CHUNK:
            del self._buf[: self._pos]
            self._pos = 0
        while True:
            try:
                n = self.sock.recv_into(self._recv_view, CHUNK)
            except TimeoutError as exc:
                raise self._error("timed out waiting for the server", "timeout") from exc
            except ssl.SSLError as exc:
                raise self._error(f"TLS error: {exc.reason or exc}", "dropped") from exc
            except OSError as exc:
                raise self._error(f"connection lost: {exc.strerror or exc}", "dropped") from exc
            if not n:
                raise self._error("the server closed the connection", "dropped")
            self.bytes_in += n
            data: bytes | memoryview = self._recv_view[:n]
            if self._inflate is not None:
                data = self._inflate.decompress(data)
                if not data:
                    continue
            self._buf += data
            return

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """One line including its CRLF/LF."""
        scan = self._pos
        while True:
            nl = self._buf.find(b"\n", scan)
            if nl >= 0:
                line = bytes(self._buf[self._pos : nl + 1])
                self._pos = nl + 1
                return line
            pending = len(self._buf) - self._pos
            if pending > limit:
                raise ProtocolError(
                    f"the {self.proto.upper()} server sent a line longer than {limit} bytes",
                    hint="the server is misbehaving; try again later or report it",
                    host=self.endpoint.host,
                    cause="line-too-long",
                )
            self._fill()  # may compact the buffer, so rescan from a relative offset
            scan = self._pos + pending

    def buffered_lines(self, limit: int = 64 * 1024) -> bytes:
        """The whole lines (up to the last LF, within `limit` bytes) received and not
        consumed yet, without consuming them (see `skip`); b"" when there is none.
        Never reads from the socket: for scanning many short lines at once."""
        end = self._buf.rfind(b"\n", self._pos, self._pos + limit)
        return b"" if end < 0 else bytes(self._buf[self._pos : end + 1])

    def receive(self) -> None:
        """Receive more into the buffer (at least one byte; waits for it)."""
        self._fill()

    def skip(self, n: int) -> None:
        """Consume the first `n` bytes of what `buffered_lines` returned."""
        if n > len(self._buf) - self._pos:
            raise ValueError("skipping more than is buffered")
        self._pos += n

    def read_into(self, sink: IO[bytes] | None, size: int) -> None:
        """Copy exactly `size` bytes to `sink` (or discard them) in bounded chunks."""
        remaining = size
        while remaining > 0:
            if self._pos >= len(self._buf):
                self._fill()
            take = min(remaining, len(self._buf) - self._pos, CHUNK)
            if sink is not None:
                sink.write(memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            remaining -= take

    def read_bytes(self, size: int, limit: int) -> bytes:
        """Read `size` bytes into memory, refusing sizes over `limit` before reading any."""
        if size > limit:
            raise ProtocolError(
                f"the {self.proto.upper()} server announced {size} bytes where at most "
                f"{limit} are expected",
                hint="the server is misbehaving; try again later or report it",
                host=self.endpoint.host,
                cause="literal-too-large",
            )
        out = bytearray()
        remaining = size
        while remaining > 0:
            if self._pos >= len(self._buf):
                self._fill()
            take = min(remaining, len(self._buf) - self._pos)
            out += self._buf[self._pos : self._pos + take]
            self._pos += take
            remaining -= take
        return bytes(out)

    def read_dot_terminated(self, sink: IO[bytes] | None) -> int:
        """Copy a POP3/SMTP-style multi-line body to `sink` until the line "." CRLF,
        removing dot-stuffing; returns the bytes written. Works on whole buffers, not
        line by line, and holds at most one receive buffer whatever the line lengths."""
        written = 0
        at_line_start = True
        while True:
            if self._pos >= len(self._buf):
                self._fill()
            buf = self._buf
            if at_line_start and buf[self._pos] == 0x2E:  # "." at the start of a line
                while len(self._buf) - self._pos < 3:
                    if self._buf[self._pos + 1 : self._pos + 2] == b"\n":
                        break
                    self._fill()
                buf = self._buf
                nxt = buf[self._pos + 1 : self._pos + 3]
                if nxt == b"\r\n" or nxt[:1] == b"\n":
                    self._pos += 3 if nxt == b"\r\n" else 2
                    return written
                self._pos += 1  # a stuffed dot: drop it, keep the rest of the line
                at_line_start = False
                continue
            hit = buf.find(b"\n.", self._pos)
            end = len(buf) if hit < 0 else hit + 1
            if sink is not None:
                sink.write(memoryview(buf)[self._pos : end])
            written += end - self._pos
            self._pos = end
            at_line_start = buf[end - 1] == 0x0A
            if self._pos > CHUNK:
                del self._buf[: self._pos]
                self._pos = 0

    def wait_readable(self, timeout: float) -> bool:
        """Whether data is (or becomes, within `timeout` seconds) available to read."""
        if self.buffered():
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        except (OSError, ValueError) as exc:
            raise self._error(f"connection lost: {exc}", "dropped") from exc
        return bool(ready)

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise self._error("timed out sending to the server", "timeout") from exc
        except OSError as exc:
            raise self._error(f"connection lost: {exc.strerror or exc}", "dropped") from exc
        self.bytes_out += len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closing a dead socket; nothing to report
            self.sock.close()

    def _error(self, what: str, cause: str) -> NetworkError:
        ep = self.endpoint
        hint = (
            "the connection was interrupted; run the command again"
            if cause == "dropped"
            else "the server is slow or unreachable; try again later"
        )
        return NetworkError(
            f"{self.proto.upper()} connection to {ep.host}:{ep.port}: {what}",
            hint=hint,
            host=ep.host,
            port=ep.port,
            cause=cause,
        )


def _tls_injection(endpoint: Endpoint, proto: str, extra: bytes) -> NetworkError:
    from mailbag.errors import TLSError

    return TLSError(
        f"{endpoint.host}:{endpoint.port} sent data after agreeing to start TLS "
        f"({extra[:40]!r}); refusing the connection",
        hint="someone may be tampering with the connection (STARTTLS injection); "
        "use implicit TLS (SSL) if the provider offers it",
        host=endpoint.host,
        port=endpoint.port,
        cause="starttls-injection",
        proto=proto,
    )


class StreamClient:
    """What the IMAP, POP3 and SMTP clients share: an endpoint and the stream they own,
    the connect-upgrade-login sequence, and the refusal to send credentials in clear."""

    endpoint: Endpoint
    _stream: LineStream | None
    #: the server's greeting once read (each protocol has its own reply type)
    greeting: object | None
    #: how this protocol upgrades a plain connection, for the no-TLS hint
    _upgrade_hint = "call starttls() first (security 'starttls') or use implicit TLS"

    def __init__(self, endpoint: Endpoint, transcript: Transcript = NO_TRACE) -> None:
        self.endpoint = endpoint
        self.transcript = transcript
        self._stream = None

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        username: str | None,
        password: str | None,
        transcript: Transcript = NO_TRACE,
    ) -> Self:
        """Connect, upgrade with STARTTLS when the endpoint says so, and log in when
        credentials are given; the connection is closed again if any step fails."""
        client = cls(endpoint, transcript)
        try:
            client._start()
            if username is not None and password is not None:
                client.login(username, password)
        except BaseException:
            client.close()
            raise
        return client

    def _start(self) -> None:
        """Connect, read the greeting and upgrade to TLS when the endpoint says so."""
        raise NotImplementedError

    def login(self, username: str, password: str) -> object:
        raise NotImplementedError

    def _require_tls(self) -> None:
        if self.endpoint.security is not Security.NONE and not self.is_tls:
            raise self._error(
                TLSError,
                f"refusing to send credentials to {self._where()} without TLS",
                hint=self._upgrade_hint,
                cause="no-tls",
            )

    def _where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def _error(
        self, kind: type[_E], message: str, *, hint: str | None = None, **fields: object
    ) -> _E:
        """An error of `kind` about this server, its host and port filled in."""
        return kind(message, hint=hint, host=self.endpoint.host, port=self.endpoint.port, **fields)

    def _fail(
        self, kind: type[_E], message: str, *, hint: str | None = None, **fields: object
    ) -> _E:
        """`_error` for a session that must not be used any further (a refused greeting
        or upgrade): the connection is dropped first."""
        self.close()
        return self._error(kind, message, hint=hint, **fields)

    @property
    def stream(self) -> LineStream:
        if self._stream is None:
            raise self._error(
                NetworkError,
                f"not connected to {self._where()}",
                cause="closed",
            )
        return self._stream

    @property
    def is_tls(self) -> bool:
        return self._stream is not None and self._stream.is_tls

    def close(self) -> None:
        """Drop the connection without a goodbye."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def goodbye(self) -> None:
        """The protocol's polite end (LOGOUT, QUIT); subclasses say which."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if t is None:
            self.goodbye()
        else:
            self.close()
