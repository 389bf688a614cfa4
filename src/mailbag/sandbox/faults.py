"""Small misbehaving servers on loopback, for testing how clients explain failures.

The real sandbox servers behave; these do not, on purpose: a TLS server with a
bad certificate, a port that accepts connections and then never says a word,
and a scripted plain-text server (e.g. one that does not offer STARTTLS).
Each listens on 127.0.0.1 on a free port, serves connections in a thread and
stops when its `with` block ends. Nothing here talks to the internet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from mailbag.sandbox.certs import SandboxCerts

#: answers one client line (without CRLF); None closes the connection
Responder = Callable[[bytes], bytes | None]


class FaultServer:
    """Base: a listening socket on 127.0.0.1 and a thread that serves each connection."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: list[socket.socket] = []
        self.connections = 0

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # the listener may be gone already
            # wake accept() up
            socket.create_connection((self.host, self.port), timeout=1).close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        for c in self._clients:
            c.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._stop.is_set():
                conn.close()
                return
            self.connections += 1
            self._clients.append(conn)
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            self.serve(conn)
        except (OSError, ssl.SSLError):
            pass  # the client went away or refused our certificate: that is the test
        finally:
            conn.close()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class SilentServer(FaultServer):
    """Accepts connections and never sends a byte (a stuck or firewalled service)."""

    def serve(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue


class ScriptedServer(FaultServer):
    """Plain text: sends `greeting`, then answers each line through `respond`."""

    def __init__(self, greeting: bytes, respond: Responder) -> None:
        super().__init__()
        self.greeting = greeting
        self.respond = respond
        self.received: list[bytes] = []

    def serve(self, conn: socket.socket) -> None:
        conn.sendall(self.greeting)
        buf = b""
        while True:
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            self.received.append(line)
            answer = self.respond(line)
            if answer is None:
                return
            conn.sendall(answer)


class TLSServer(FaultServer):
    """Implicit TLS with the given certificate, then `greeting`, then silence until close."""

    def __init__(
        self, cert_file: Path, key_file: Path, greeting: bytes = b"* OK ready\r\n"
    ) -> None:
        super().__init__()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.greeting = greeting

    def serve(self, conn: socket.socket) -> None:
        with self.context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(self.greeting)
            while tls.recv(4096):
                pass


def make_self_signed_cert(directory: Path, name: str = "localhost") -> SandboxCerts:
    """A certificate that signs itself (no CA vouches for it), as many home servers use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "self-signed.pem"
    key_file = directory / "self-signed.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    # the certificate is its own CA: passing it as --ca-file is how a user trusts it
    return SandboxCerts(ca_file=cert_file, cert_file=cert_file, key_file=key_file)
