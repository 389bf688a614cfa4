"""Pure parts of the POP3 client, and the streaming dot-unstuffer fed in every chunking."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from mailbag.errors import NetworkError, ProtocolError
from mailbag.protocols.pop3 import apop_digest, parse_capa, parse_reply
from mailbag.protocols.stream import LineStream
from mailbag.protocols.transport import Endpoint, Security


@pytest.mark.parametrize(
    ("line", "ok", "text", "code"),
    [
        (b"+OK Dovecot ready.\r\n", True, "Dovecot ready.", None),
        (b"+OK\r\n", True, "", None),
        (b"-ERR [IN-USE] Mailbox locked\r\n", False, "[IN-USE] Mailbox locked", "IN-USE"),
        (b"-ERR [SYS/TEMP] try later\r\n", False, "[SYS/TEMP] try later", "SYS/TEMP"),
        (b"-ERR [AUTH] Authentication failed.\r\n", False, "[AUTH] Authentication failed.", "AUTH"),
    ],
)
def test_replies(line: bytes, ok: bool, text: str, code: str | None) -> None:
    r = parse_reply(line)
    assert (r.ok, r.text, r.code) == (ok, text, code)


@pytest.mark.parametrize("line", [b"* OK IMAP\r\n", b"220 smtp\r\n", b"OK\r\n"])
def test_not_pop3(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(line)


def test_capa() -> None:
    caps = parse_capa(["TOP", "UIDL", "SASL PLAIN LOGIN", "PIPELINING", "expire 30", "STLS"])
    assert caps["SASL"] == ["PLAIN", "LOGIN"] and caps["EXPIRE"] == ["30"]
    assert {"TOP", "UIDL", "PIPELINING", "STLS"} <= set(caps)


def test_apop_digest_rfc1939_example() -> None:
    assert (
        apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf")
        == "c4c9334bac560ecc979e58001b3e22fb"
    )


def _feed(chunks: list[bytes]) -> LineStream:
    a, b = socket.socketpair()

    def writer() -> None:
        for c in chunks:
            b.sendall(c)
        b.close()

    threading.Thread(target=writer, daemon=True).start()
    return LineStream(a, Endpoint("test", 1, Security.NONE), "pop3")


BODY_CASES = [
    (b"Subject: a\r\n\r\nhello\r\n.\r\n", b"Subject: a\r\n\r\nhello\r\n"),
    (b"..leading\r\n...two\r\n.\r\n", b".leading\r\n..two\r\n"),
    (b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
    (b".\r\n", b""),
    (b"mid.dot\r\nx.\r\n.\r\n", b"mid.dot\r\nx.\r\n"),
    (b"unix\n..dot\n.\n", b"unix\n.dot\n"),
]


@pytest.mark.parametrize(("wire", "body"), BODY_CASES)
@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_dot_unstuffing_across_any_chunking(wire: bytes, body: bytes, step: int) -> None:
    trailer = b"+OK next\r\n"
    data = wire + trailer
    stream = _feed([data[i : i + step] for i in range(0, len(data), step)])
    sink = io.BytesIO()
    assert stream.read_dot_terminated(sink) == len(body)
    assert sink.getvalue() == body
    assert stream.readline() == trailer  # nothing after the end marker was eaten
    stream.close()


def test_connection_closed_mid_body_is_network_error() -> None:
    stream = _feed([b"partial message\r\nno end"])
    with pytest.raises(NetworkError) as err:
        stream.read_dot_terminated(io.BytesIO())
    assert err.value.fields["cause"] == "dropped"
    stream.close()


def test_large_body_memory_stays_bounded() -> None:
    import tracemalloc

    line = b"x" * 998 + b"\r\n"
    chunks = [line * 1000] * 20 + [b".\r\n"]  # 20 MB
    stream = _feed(chunks)
    tracemalloc.start()
    size = stream.read_dot_terminated(None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size == 20 * 1000 * 1000
    assert peak < 3 * 1024 * 1024
    stream.close()
