"""Connection failures users hit, each turned into an explained NetworkError."""

from __future__ import annotations

import socket
import threading

import pytest

from mailbag.errors import NetworkError, TLSError
from mailbag.protocols.transport import Endpoint, Security, make_tls_context, open_stream


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused() -> None:
    with pytest.raises(NetworkError) as info:
        open_stream(Endpoint("127.0.0.1", _closed_port(), Security.SSL, timeout=2))
    assert info.value.fields["cause"] == "refused"
    assert info.value.hint


def test_unknown_host() -> None:
    # .invalid is reserved (RFC 2606): it never resolves and never leaves the machine
    with pytest.raises(NetworkError) as info:
        open_stream(Endpoint("imap.mailbag.invalid", 993, Security.SSL, timeout=2))
    assert info.value.fields["cause"] == "dns"


def test_silent_server_times_out_during_handshake() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    t = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
    t.start()
    try:
        with pytest.raises(TLSError) as info:
            open_stream(Endpoint("localhost", port, Security.SSL, timeout=0.5))
        assert info.value.fields["cause"] == "handshake-timeout"
        assert "STARTTLS" in (info.value.hint or "")
    finally:
        t.join()
        for s in accepted:
            s.close()
        server.close()


def test_missing_ca_file_is_explained(tmp_path: object) -> None:
    with pytest.raises(TLSError) as info:
        make_tls_context(ca_file=__import__("pathlib").Path("/nonexistent/ca.pem"))
    assert "does not exist" in info.value.message


def test_context_verifies_by_default() -> None:
    import ssl

    ctx = make_tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
