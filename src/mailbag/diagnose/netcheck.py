"""The network half of the account test: name lookup, TCP connect, TLS, and probes.

Everything goes through `protocols.transport` (certificates are always
verified; nothing here can turn that off). When the security setting looks
wrong for the port (SSL/TLS chosen for a port that speaks plain text first, or
STARTTLS chosen for a port that wants TLS from the first byte), a second,
short connection probes the other mode so the failure can say which setting is
right instead of only that something failed. Probes never send credentials.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass

from mailbag.errors import NetworkError, TLSError
from mailbag.protocols.transport import (
    Endpoint,
    Security,
    connect_tcp,
    make_tls_context,
    wrap_tls,
)

#: what each protocol's server says first, in plain text
GREETINGS: dict[str, tuple[bytes, ...]] = {
    "imap": (b"* OK", b"* PREAUTH", b"* BYE"),
    "pop3": (b"+OK", b"-ERR"),
    "smtp": (b"220", b"421", b"554"),
}
PROTO_NAMES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
#: probes are a second opinion; they must not make a failing test much slower
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Resolved:
    host: str
    addresses: tuple[str, ...]

    def describe(self) -> str:
        shown = ", ".join(self.addresses[:4])
        more = f" (+{len(self.addresses) - 4} more)" if len(self.addresses) > 4 else ""
        return f"{self.host} is {shown}{more}"


def resolve(host: str, port: int) -> Resolved:
    """Look the host name up the way the connection will (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NetworkError(
            f"cannot resolve host name {host!r}: {exc.strerror}",
            host=host,
            port=port,
            cause="dns",
        ) from exc
    addresses: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in addresses:
            addresses.append(addr)
    return Resolved(host, tuple(addresses))


def connect(endpoint: Endpoint) -> socket.socket:
    return connect_tcp(endpoint)


def peer(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "?"
    return f"{name[0]}:{name[1]}"


def describe_tls(sock: ssl.SSLSocket) -> str:
    """'TLSv1.3, certificate for localhost by X, valid until 2027-01-01'."""
    version = sock.version() or "TLS"
    cert = sock.getpeercert() or {}
    subject = _rdn(cert.get("subject", ()), "commonName")
    issuer = _rdn(cert.get("issuer", ()), "organizationName") or _rdn(
        cert.get("issuer", ()), "commonName"
    )
    san = cert.get("subjectAltName", ())
    names = [str(p[1]) for p in san if isinstance(p, tuple) and p[0] == "DNS"]
    who = subject or (names[0] if names else "?")
    parts = [f"{version}, certificate for {who}"]
    if issuer:
        parts.append(f"issued by {issuer}")
    not_after = cert.get("notAfter")
    if isinstance(not_after, str):
        expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC)
        parts.append(f"valid until {expires:%Y-%m-%d}")
    return ", ".join(parts) + " (verified)"


def _rdn(rdns: object, key: str) -> str:
    if not isinstance(rdns, tuple):
        return ""
    for rdn in rdns:
        for pair in rdn:
            if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == key:
                return str(pair[1])
    return ""


def handshake(sock: socket.socket, endpoint: Endpoint, protocol: str) -> ssl.SSLSocket:
    """Implicit TLS on a connected socket; on 'not TLS' probe whether the port wants STARTTLS."""
    try:
        return wrap_tls(sock, endpoint)
    except TLSError as exc:
        cause = exc.fields.get("cause")
        if cause == "hostname-mismatch":
            names = certificate_names(endpoint)
            if names:
                raise TLSError(
                    f"{exc.message} (it was issued for: {', '.join(names)})",
                    hint=f"set the server name to {names[0]!r} (the name the certificate "
                    "was issued for), not an alias or IP address",
                    **exc.fields,
                ) from exc
        if cause in ("not-tls", "handshake-closed", "handshake-timeout", "handshake"):
            better = probe_plaintext(endpoint, protocol)
            if better is not None:
                raise better from exc
            if cause == "handshake-timeout":
                # neither TLS nor a plain greeting: the service is stuck or filtered
                raise NetworkError(
                    f"{endpoint.host}:{endpoint.port} accepted the connection but never "
                    f"answered within {endpoint.timeout:g} s (no TLS handshake, no greeting)",
                    host=endpoint.host,
                    port=endpoint.port,
                    cause="timeout",
                ) from exc
        raise


def certificate_names(endpoint: Endpoint) -> list[str]:
    """The DNS names an implicit-TLS server's certificate was issued for.

    The chain is still verified (system roots or the account's CA file); only
    the name check is left out, because the names are what we want to read.
    Nothing is sent over this connection.
    """
    ctx = make_tls_context(endpoint.ca_file)
    ctx.check_hostname = False
    probe = endpoint._replace(timeout=min(endpoint.timeout, PROBE_TIMEOUT))
    try:
        sock = connect_tcp(probe)
    except NetworkError:
        return []
    try:
        with ctx.wrap_socket(sock, server_hostname=endpoint.host) as tls:
            cert = tls.getpeercert() or {}
    except (ssl.SSLError, OSError):
        sock.close()
        return []
    san = cert.get("subjectAltName", ())
    names = [str(p[1]) for p in san if isinstance(p, tuple) and p[0] in ("DNS", "IP Address")]
    if not names:
        cn = _rdn(cert.get("subject", ()), "commonName")
        names = [cn] if cn else []
    return names


def probe_plaintext(endpoint: Endpoint, protocol: str) -> TLSError | None:
    """Does the port greet in plain text? Then SSL/TLS is the wrong setting: say so."""
    greeting = read_greeting(endpoint, protocol)
    if greeting is None:
        return None
    name = PROTO_NAMES.get(protocol, protocol)
    return TLSError(
        f"{endpoint.host}:{endpoint.port} speaks plain text first ({name} greeting "
        f"{_quote(greeting)}): it is a STARTTLS port, but the account is set to SSL/TLS",
        hint=f"set the security to STARTTLS for port {endpoint.port} "
        f"(or keep SSL/TLS and use port {_ssl_port(protocol)})",
        host=endpoint.host,
        port=endpoint.port,
        cause="wrong-mode-ssl",
        right_security="starttls",
    )


def read_greeting(endpoint: Endpoint, protocol: str) -> str | None:
    """The first line a server sends on a fresh plain connection, if it is `protocol`'s."""
    probe = endpoint._replace(security=Security.NONE, timeout=min(endpoint.timeout, PROBE_TIMEOUT))
    try:
        sock = connect_tcp(probe)
    except NetworkError:
        return None
    try:
        data = _recv_line(sock)
    except OSError:
        return None
    finally:
        sock.close()
    if any(data.startswith(g) for g in GREETINGS.get(protocol, ())):
        return data.decode("ascii", "replace").strip()
    return None


def identify_service(endpoint: Endpoint) -> str | None:
    """Which protocol (imap/pop3/smtp) greets on this port, read the way the
    account's security setting says (TLS verified as usual); None if unclear."""
    probe = endpoint._replace(timeout=min(endpoint.timeout, PROBE_TIMEOUT))
    try:
        sock = connect_tcp(probe)
        if probe.security is Security.SSL:
            sock = wrap_tls(sock, probe)
    except NetworkError:
        return None
    try:
        line = _recv_line(sock)
    except OSError:
        return None
    finally:
        sock.close()
    for protocol, greetings in GREETINGS.items():
        if any(line.startswith(g) for g in greetings):
            return protocol
    return None


def wrong_service(endpoint: Endpoint, protocol: str) -> NetworkError | None:
    """'this port speaks SMTP, not IMAP' when the greeting was another protocol's."""
    other = identify_service(endpoint)
    if other is None or other == protocol:
        return None
    mine, theirs = PROTO_NAMES[protocol], PROTO_NAMES[other]
    return NetworkError(
        f"{endpoint.host}:{endpoint.port} is a {theirs} server, not {mine}",
        hint=f"check the port: {mine} normally uses {_ssl_port(protocol)} with SSL/TLS "
        f"or {_starttls_port(protocol)} with STARTTLS",
        host=endpoint.host,
        port=endpoint.port,
        cause="wrong-service",
        found=other,
    )


def _recv_line(sock: socket.socket, limit: int = 1024) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = sock.recv(limit)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def probe_tls(endpoint: Endpoint, protocol: str) -> TLSError | None:
    """Does the port speak TLS from the first byte? Then STARTTLS is the wrong setting."""
    probe = endpoint._replace(security=Security.SSL, timeout=min(endpoint.timeout, PROBE_TIMEOUT))
    try:
        sock = connect_tcp(probe)
    except NetworkError:
        return None
    speaks_tls = False
    try:
        wrap_tls(sock, probe).close()
        speaks_tls = True
    except TLSError as exc:
        # a certificate complaint still proves the port speaks TLS
        speaks_tls = exc.fields.get("cause") in (
            "hostname-mismatch",
            "expired",
            "untrusted",
            "certificate",
        )
    if not speaks_tls:
        return None
    return TLSError(
        f"{endpoint.host}:{endpoint.port} expects TLS from the first byte (SSL/TLS), "
        "but the account is set to STARTTLS, so the server never greeted",
        hint=f"set the security to SSL/TLS for port {endpoint.port} "
        f"(or keep STARTTLS and use port {_starttls_port(protocol)})",
        host=endpoint.host,
        port=endpoint.port,
        cause="wrong-mode-starttls",
        right_security="ssl",
    )


def _ssl_port(protocol: str) -> int:
    return {"imap": 993, "pop3": 995, "smtp": 465}.get(protocol, 993)


def _starttls_port(protocol: str) -> int:
    return {"imap": 143, "pop3": 110, "smtp": 587}.get(protocol, 143)


def _quote(text: str, limit: int = 60) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f'"{text}"'
