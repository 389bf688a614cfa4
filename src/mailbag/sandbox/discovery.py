"""A DNS server and an HTTPS file server on loopback, for testing settings discovery.

`LocalDns` answers A/AAAA/SRV/MX queries over UDP from a table (NXDOMAIN for
names it does not know); `LocalHttps` serves fixed documents by path over TLS
with the sandbox's certificates and records every request it got (so tests can
check what was, and was not, sent). Both listen on 127.0.0.1 on free ports and
stop when their `with` block ends. Nothing here talks to the internet.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from mailbag.sandbox.certs import SandboxCerts


class LocalDns:
    """`records` maps (name, type) to record texts, e.g.
    `("_imaps._tcp.example.test", "SRV"): ["0 1 993 imap.example.test."]`."""

    def __init__(self, records: Mapping[tuple[str, str], list[str]] | None = None) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        for (name, rdtype), values in (records or {}).items():
            self.add(name, rdtype, *values)
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.host = "127.0.0.1"
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="local-dns")

    def add(self, name: str, rdtype: str, *values: str) -> None:
        key = (name.lower().rstrip("."), rdtype.upper())
        self.records.setdefault(key, []).extend(values)

    def _answer(self, wire: bytes) -> bytes:
        import dns.message
        import dns.rcode
        import dns.rrset

        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        values = self.records.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values)
            )
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        wire_out: bytes = response.to_wire()
        return wire_out

    def _serve(self) -> None:
        import dns.exception

        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._sock.sendto(self._answer(data), peer)
            except (dns.exception.DNSException, IndexError, OSError):
                continue  # a malformed query gets no answer, as from a real server

    def __enter__(self) -> LocalDns:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


class LocalHttps:
    """Serves `documents` (path without query -> bytes) over HTTPS; 404 for anything else.

    `requests` records (Host header, full path with query) of every request.
    """

    def __init__(
        self,
        certs: SandboxCerts,
        documents: Mapping[str, bytes] | None = None,
        *,
        tls: bool = True,
    ) -> None:
        self.documents: dict[str, bytes] = dict(documents or {})
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.headers.get("Host", ""), self.path))
                body = owner.documents.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certs.cert_file), str(certs.key_file))
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> LocalHttps:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


def client_config_xml(
    domain: str,
    servers: list[tuple[str, str, int, str]],
    *,
    username: str = "%EMAILADDRESS%",
    extra: str = "",
) -> bytes:
    """A clientConfig v1.1 document: servers are (type, hostname, port, socketType)."""
    parts = []
    for kind, host, port, socket_type in servers:
        tag = "outgoingServer" if kind == "smtp" else "incomingServer"
        parts.append(
            f'<{tag} type="{kind}"><hostname>{host}</hostname><port>{port}</port>'
            f"<socketType>{socket_type}</socketType><username>{username}</username>"
            f"<authentication>password-cleartext</authentication></{tag}>"
        )
    return (
        f'<?xml version="1.0"?>\n<clientConfig version="1.1"><emailProvider id="{domain}">'
        f"<domain>{domain}</domain><displayName>{domain} mail</displayName>"
        + "".join(parts)
        + extra
        + "</emailProvider></clientConfig>"
    ).encode()


__all__ = ["LocalDns", "LocalHttps", "client_config_xml"]
