"""A tiny POP3 server on loopback for behaviour Dovecot will not show: no UIDL, no
PIPELINING, no TOP, duplicate UIDLs, or a chosen UIDL per message.

Implicit TLS with the sandbox's certificates (so clients keep their normal,
verifying TLS policy), USER/PASS only, one maildrop shared by all sessions.
Deletions are committed only on QUIT, as RFC 1939 says. It is for tests: it
holds messages in memory and serves one client per thread.
"""

from __future__ import annotations

import hashlib
import itertools
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mailbag.sandbox.certs import SandboxCerts, make_certs

__all__ = ["FakePop3", "FakePopMessage"]


@dataclass
class FakePopMessage:
    data: bytes
    uidl: str = ""  # "": the server gives it a unique one when it is added


@dataclass
class _Maildrop:
    messages: list[FakePopMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakePop3:
    """`with FakePop3(root, messages, uidl=False) as srv:` then connect to localhost:srv.port."""

    host = "localhost"

    def __init__(
        self,
        root: Path,
        messages: Iterable[bytes | FakePopMessage] = (),
        *,
        user: str = "user",
        password: str = "pass",  # noqa: S107 - a test server's fixed login
        uidl: bool = True,
        top: bool = True,
        pipelining: bool = False,
        login_refusal: bytes = b"-ERR [AUTH] authentication failed",
        tls: bool = True,
        apop: bool = False,
        certs: SandboxCerts | None = None,
    ) -> None:
        self.certs = certs or make_certs(root / "tls")
        self.user = user
        self.password = password
        self.offer_uidl = uidl
        self.offer_top = top
        self.offer_pipelining = pipelining
        #: what a failed login (or every login, when `password` is "") is answered with
        self.login_refusal = login_refusal
        self.tls = tls
        #: APOP: the greeting carries a timestamp and APOP logins are accepted
        self.offer_apop = apop
        self._seq = itertools.count(1)
        self.drop = _Maildrop()
        for m in messages:
            if isinstance(m, FakePopMessage):
                self.add(m.data, m.uidl)
            else:
                self.add(m)
        #: every command line received, for assertions (PASS arguments blanked)
        self.commands: list[str] = []
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(self.certs.cert_file, self.certs.key_file)
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._serve(self.rfile, self.wfile)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self) -> tuple[socket.socket, object]:
                sock, addr = super().get_request()
                if not outer.tls:
                    return sock, addr
                return outer._ctx.wrap_socket(sock, server_side=True), addr

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_file

    def start(self) -> FakePop3:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakePop3:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def add(self, data: bytes, uidl: str = "") -> None:
        """Add a message; UIDLs stay with their message, as RFC 1939 requires."""
        with self.drop.lock:
            self.drop.messages.append(FakePopMessage(data, uidl or f"fake-{next(self._seq)}"))

    @property
    def messages(self) -> list[bytes]:
        with self.drop.lock:
            return [m.data for m in self.drop.messages]

    # --- the protocol --------------------------------------------------------------------

    def _capa(self) -> list[bytes]:
        caps = [b"USER", b"RESP-CODES"]
        if self.offer_uidl:
            caps.append(b"UIDL")
        if self.offer_top:
            caps.append(b"TOP")
        if self.offer_pipelining:
            caps.append(b"PIPELINING")
        return caps

    def _serve(self, rfile: object, wfile: object) -> None:
        import io

        assert isinstance(rfile, io.BufferedIOBase) and isinstance(wfile, io.BufferedIOBase)
        out = wfile

        def send(line: bytes) -> None:
            out.write(line + b"\r\n")
            out.flush()

        def multiline(lines: Sequence[bytes]) -> None:
            body = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
            out.write(b"+OK\r\n" + body + b".\r\n")
            out.flush()

        stamp = f"<{next(self._seq)}.{threading.get_ident()}@fake.test>"
        send(b"+OK fake POP3 ready " + (stamp.encode() if self.offer_apop else b""))
        user: str | None = None
        authed = False
        deleted: set[int] = set()
        with self.drop.lock:
            snapshot = list(self.drop.messages)
        while True:
            raw = rfile.readline(4096)
            if not raw:
                return  # dropped: nothing committed
            line = raw.rstrip(b"\r\n").decode("ascii", "replace")
            cmd, _, arg = line.partition(" ")
            cmd = cmd.upper()
            self.commands.append("PASS <redacted>" if cmd == "PASS" else line)
            if cmd == "CAPA":
                multiline(self._capa())
            elif cmd == "QUIT":
                if authed and deleted:
                    with self.drop.lock:
                        gone = {id(snapshot[i - 1]) for i in deleted}
                        self.drop.messages = [m for m in self.drop.messages if id(m) not in gone]
                send(b"+OK bye")
                return
            elif not authed:
                if cmd == "USER":
                    user = arg
                    send(b"+OK")
                elif cmd == "PASS" and self.password and (user, arg) == (self.user, self.password):
                    authed = True
                    send(b"+OK logged in")
                elif cmd == "APOP" and self.offer_apop and self.password:
                    name, _, digest = arg.partition(" ")
                    good = hashlib.md5(
                        (stamp + self.password).encode(), usedforsecurity=False
                    ).hexdigest()
                    authed = (name, digest) == (self.user, good)
                    send(b"+OK logged in" if authed else self.login_refusal)
                else:
                    send(self.login_refusal)
            else:
                self._transaction(cmd, arg, snapshot, deleted, send, multiline)

    def _transaction(
        self,
        cmd: str,
        arg: str,
        snapshot: list[FakePopMessage],
        deleted: set[int],
        send: Callable[[bytes], None],
        multiline: Callable[[Sequence[bytes]], None],
    ) -> None:
        live = [(i, m) for i, m in enumerate(snapshot, start=1) if i not in deleted]

        def pick() -> tuple[int, FakePopMessage] | None:
            try:
                n = int(arg.split()[0])
            except (ValueError, IndexError):
                return None
            if 1 <= n <= len(snapshot) and n not in deleted:
                return n, snapshot[n - 1]
            return None

        if cmd == "STAT":
            send(f"+OK {len(live)} {sum(len(m.data) for _, m in live)}".encode())
        elif cmd == "NOOP":
            send(b"+OK")
        elif cmd == "LIST" and not arg:
            multiline([f"{i} {len(m.data)}".encode() for i, m in live])
        elif cmd == "UIDL" and self.offer_uidl and not arg:
            multiline([f"{i} {m.uidl}".encode() for i, m in live])
        elif cmd in ("LIST", "UIDL", "RETR", "DELE", "TOP") and (found := pick()) is not None:
            n, m = found
            lines = m.data.split(b"\r\n")
            if lines and lines[-1] == b"":
                lines.pop()
            if cmd == "LIST":
                send(f"+OK {n} {len(m.data)}".encode())
            elif cmd == "UIDL" and self.offer_uidl:
                send(f"+OK {n} {m.uidl}".encode())
            elif cmd == "RETR":
                multiline(lines)
            elif cmd == "TOP" and self.offer_top:
                count = int(arg.split()[1]) if len(arg.split()) > 1 else 0
                end = lines.index(b"") if b"" in lines else len(lines)
                multiline(lines[: end + 1 + count])
            elif cmd == "DELE":
                deleted.add(n)
                send(b"+OK deleted")
            else:
                send(b"-ERR unknown command")
        elif cmd == "RSET":
            deleted.clear()
            send(b"+OK")
        else:
            send(b"-ERR unknown command or no such message")
