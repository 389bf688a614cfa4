"""Guessing: probe the usual host names and ports, reading greetings and capabilities only.

No credentials are ever sent. Implicit-TLS ports are verified like any
connection (a certificate that does not fit makes the guess untrusted); on
STARTTLS ports the probe only checks that STARTTLS is offered: the account
test does the upgrade later.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from mailbag.autoconfig.dnslookup import Dns
from mailbag.autoconfig.model import Candidate, Source
from mailbag.errors import NetworkError
from mailbag.protocols.transport import (
    Endpoint,
    Security,
    explain_certificate_error,
    make_tls_context,
)

MAX_LINE = 8192
MAX_LINES = 200


@dataclass(frozen=True)
class Probe:
    protocol: str
    host: str
    port: int  # the standard port (993, 143, ...)
    security: Security


def plan_probes(domain: str) -> list[Probe]:
    """The host/port combinations guessing tries, most wanted first."""
    hosts = {
        "imap": [f"imap.{domain}", f"mail.{domain}", domain],
        "pop3": [f"pop3.{domain}", f"pop.{domain}", f"mail.{domain}", domain],
        "smtp": [f"smtp.{domain}", f"mail.{domain}", domain],
    }
    ports = {
        "imap": [(993, Security.SSL), (143, Security.STARTTLS)],
        "pop3": [(995, Security.SSL), (110, Security.STARTTLS)],
        "smtp": [(465, Security.SSL), (587, Security.STARTTLS)],
    }
    return [
        Probe(protocol, host, port, security)
        for protocol in ("imap", "pop3", "smtp")
        for host in hosts[protocol]
        for port, security in ports[protocol]
    ]


class _Lines:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0

    def read(self) -> str:
        self.count += 1
        if self.count > MAX_LINES:
            raise OSError("too many lines")
        line = self.stream.readline(MAX_LINE)
        if not line:
            raise OSError("connection closed")
        return line.decode("utf-8", "replace").rstrip("\r\n")


@contextlib.contextmanager
def _session(sock: socket.socket) -> Iterator[tuple[_Lines, socket.socket]]:
    stream = sock.makefile("rb")
    try:
        yield _Lines(stream), sock
    finally:
        stream.close()
        sock.close()


def _capabilities(protocol: str, lines: _Lines, sock: socket.socket) -> set[str] | None:
    """Read the greeting, ask for capabilities; None if this is not that protocol."""
    greeting = lines.read()
    caps: set[str] = set()
    if protocol == "imap":
        if not greeting.upper().startswith("* OK"):
            return None
        sock.sendall(b"M1 CAPABILITY\r\n")
        while True:
            line = lines.read()
            if line.upper().startswith("* CAPABILITY"):
                caps |= {c.upper() for c in line.split()[2:]}
            if line.startswith("M1 "):
                break
        sock.sendall(b"M2 LOGOUT\r\n")
    elif protocol == "pop3":
        if not greeting.startswith("+OK"):
            return None
        sock.sendall(b"CAPA\r\n")
        if lines.read().startswith("+OK"):
            while (line := lines.read()) != ".":
                caps |= {line.split(" ", 1)[0].upper()} | {
                    f"SASL {m.upper()}" for m in line.split()[1:] if line.upper().startswith("SASL")
                }
        sock.sendall(b"QUIT\r\n")
    else:
        while greeting.startswith("220-"):
            greeting = lines.read()
        if not greeting.startswith("220"):
            return None
        sock.sendall(b"EHLO mailbag.invalid\r\n")
        while True:
            line = lines.read()
            if not line.startswith("250"):
                return caps
            caps |= {line[4:].upper()}
            caps |= {
                f"AUTH {m}" for m in line[4:].upper().split()[1:] if line[4:8].upper() == "AUTH"
            }
            if line.startswith("250 "):
                break
        sock.sendall(b"QUIT\r\n")
    return caps


def _auth_from(caps: set[str]) -> tuple[str, ...]:
    joined = " ".join(sorted(caps))
    auth = ["password"]
    if "XOAUTH2" in joined or "OAUTHBEARER" in joined:
        auth.append("oauth2")
    return tuple(auth)


def probe(
    p: Probe, dns: Dns, *, timeout: float, port_map: dict[int, int], ca_file: Path | None
) -> Candidate | None:
    """Try one host/port; a Candidate when a server of that protocol answered."""
    addrs = dns.addresses(p.host)
    if not addrs:
        return None
    port = port_map.get(p.port, p.port)
    notes = ["guessed by probing the server; not published by the provider"]
    trusted = True
    try:
        raw = socket.create_connection((addrs[0], port), timeout=timeout)
    except OSError:
        return None
    sock: socket.socket = raw
    if p.security is Security.SSL:
        try:
            sock = make_tls_context(ca_file).wrap_socket(raw, server_hostname=p.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            err = explain_certificate_error(exc, Endpoint(p.host, port, p.security, ca_file))
            notes.append(f"certificate problem: {err.message}")
            return Candidate(
                p.protocol,
                p.host,
                port,
                p.security,
                "",
                ("password",),
                Source.GUESS,
                False,
                tuple(notes),
            )
        except (ssl.SSLError, OSError):
            raw.close()
            return None
    try:
        with _session(sock) as (lines, s):
            caps = _capabilities(p.protocol, lines, s)
    except (OSError, UnicodeError):
        return None
    if caps is None:
        return None
    security = p.security
    if security is Security.STARTTLS and not ({"STARTTLS", "STLS"} & caps):
        security = Security.NONE
        notes.append("the server offers no STARTTLS here: the connection would be plaintext")
    return Candidate(
        p.protocol,
        p.host,
        port,
        security,
        "",
        _auth_from(caps),
        Source.GUESS,
        trusted,
        tuple(notes),
    )


def guess(
    domain: str,
    email: str,
    dns: Dns,
    *,
    timeout: float,
    port_map: dict[int, int],
    ca_file: Path | None,
) -> list[Candidate]:
    """Probe everything in parallel; candidates in `plan_probes` order."""
    probes = plan_probes(domain)
    results: list[Candidate | None] = [None] * len(probes)

    def run(i: int) -> None:
        try:
            results[i] = probe(probes[i], dns, timeout=timeout, port_map=port_map, ca_file=ca_file)
        except NetworkError:
            # a guessed name that does not resolve (or whose look-up timed out) is no
            # candidate; raised here it would be lost in a thread nobody joins any more
            results[i] = None

    # daemon threads (not an executor): when discovery has its answer and returns, a probe
    # still waiting on a silent port must not keep the program from exiting
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(probes))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3 * timeout + 1  # connect + handshake + reading
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out = []
    seen: set[tuple[str, str, int]] = set()
    for rank, c in enumerate(results):
        if c is None or (c.protocol, c.host, c.port) in seen:
            continue
        seen.add((c.protocol, c.host, c.port))
        out.append(replace(c, username=email, rank=rank))
    return out
