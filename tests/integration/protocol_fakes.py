"""Tiny scripted servers on 127.0.0.1 that misbehave on purpose (STARTTLS stripping,
response injection, absurd literals). Real sockets and real TLS; one connection each."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType


class Peer:
    """The server side of one connection, for scripts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self.file = sock.makefile("rb")
        self.received: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        line = self.file.readline()
        self.received.append(line)
        return line

    def start_tls(self, cert_file: Path, key_file: Path) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        self.file.close()
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class FakeServer:
    """Runs `script(peer)` for the first connection on a free loopback port."""

    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port: int = self.listener.getsockname()[1]
        self.peer: Peer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.settimeout(10)
        self.peer = Peer(conn)
        try:
            self.script(self.peer)
        except (OSError, ssl.SSLError) as exc:  # the client hanging up is expected
            self.error = exc
        finally:
            self.peer.close()

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


def preauth_imap_server(handle: Callable[[Peer, bytes, bytes], None]) -> FakeServer:
    """An IMAP server (PREAUTH, without LITERAL+): `handle(peer, tag, rest_of_line)` for
    each command but LOGOUT."""

    def script(peer: Peer) -> None:
        peer.send(b"* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n")
        while True:
            line = peer.readline()
            if not line:
                return
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            if rest.upper() == b"LOGOUT":
                peer.send(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
                return
            handle(peer, tag, rest)

    return FakeServer(script)


def lines_until(peer: Peer, stop: bytes) -> Iterator[bytes]:
    while True:
        line = peer.readline()
        if not line:
            return
        yield line
        if stop in line.upper():
            return
