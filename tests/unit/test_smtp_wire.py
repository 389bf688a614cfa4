"""Pure parts of the SMTP client: replies, EHLO keywords, dot-stuffing."""

from __future__ import annotations

import io

import pytest

from mailbag.errors import ProtocolError
from mailbag.protocols.smtp import SmtpReply, dot_stuffed, parse_ehlo, parse_reply_line


@pytest.mark.parametrize(
    ("line", "code", "more", "text"),
    [
        (b"250 OK\r\n", 250, False, "OK"),
        (b"250-SIZE 52428800\r\n", 250, True, "SIZE 52428800"),
        (b"354\r\n", 354, False, ""),
        (
            b"554 5.7.1 <x@y>: Relay access denied\r\n",
            554,
            False,
            "5.7.1 <x@y>: Relay access denied",
        ),
    ],
)
def test_reply_lines(line: bytes, code: int, more: bool, text: str) -> None:
    assert parse_reply_line(line) == (code, more, text)


@pytest.mark.parametrize(
    "line", [b"HTTP/1.1 400 Bad\r\n", b"* OK IMAP\r\n", b"25\r\n", b"250x\r\n"]
)
def test_not_smtp(line: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_reply_line(line)
    assert err.value.fields["cause"] == "not-smtp"


@pytest.mark.parametrize(
    ("reply", "enhanced", "text", "ok", "transient", "permanent"),
    [
        (SmtpReply(250, ("2.1.5 OK",)), "2.1.5", "OK", True, False, False),
        (SmtpReply(451, ("4.3.0 try later",)), "4.3.0", "try later", False, True, False),
        (
            SmtpReply(
                535, ("5.7.139 Authentication unsuccessful, basic authentication is disabled.",)
            ),
            "5.7.139",
            "Authentication unsuccessful, basic authentication is disabled.",
            False,
            False,
            True,
        ),
        (
            SmtpReply(550, ("mailbox unavailable", "second line")),
            None,
            "mailbox unavailable second line",
            False,
            False,
            True,
        ),
    ],
)
def test_reply_values(
    reply: SmtpReply, enhanced: str | None, text: str, ok: bool, transient: bool, permanent: bool
) -> None:
    assert (reply.enhanced, reply.text, reply.ok, reply.transient, reply.permanent) == (
        enhanced,
        text,
        ok,
        transient,
        permanent,
    )
    assert reply.fields()["smtp_code"] == reply.code


def test_ehlo_keywords() -> None:
    reply = SmtpReply(
        250,
        (
            "mx.example.org Hello",
            "SIZE 35882577",
            "8BITMIME",
            "AUTH LOGIN PLAIN XOAUTH2",
            "AUTH=LOGIN",
            "enhancedstatuscodes",
            "PIPELINING",
            "SMTPUTF8",
            "STARTTLS",
        ),
    )
    ext = parse_ehlo(reply)
    assert ext["SIZE"] == "35882577"
    assert set(ext["AUTH"].split()) == {"LOGIN", "PLAIN", "XOAUTH2"}
    assert {"8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "SMTPUTF8", "STARTTLS"} <= set(ext)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"Subject: a\r\n\r\nbody\r\n", b"Subject: a\r\n\r\nbody\r\n.\r\n"),
        (b"a\r\n.hidden\r\n..two\r\n", b"a\r\n..hidden\r\n...two\r\n.\r\n"),
        (b".first line", b"..first line\r\n.\r\n"),
        (b"unix\nline ends\n.dot\n", b"unix\r\nline ends\r\n..dot\r\n.\r\n"),
        (b"no final newline", b"no final newline\r\n.\r\n"),
        (b"", b".\r\n"),
        (b"a.\r\n.\r\nb", b"a.\r\n..\r\nb\r\n.\r\n"),
    ],
)
def test_dot_stuffing(message: bytes, wire: bytes) -> None:
    assert b"".join(dot_stuffed(message)) == wire
    assert b"".join(dot_stuffed(io.BytesIO(message))) == wire


def test_dot_stuffing_long_lines_are_streamed_in_pieces() -> None:
    line = b"x" * 200_000 + b"\r\n.y\r\n"
    pieces = list(dot_stuffed(io.BytesIO(line)))
    assert max(len(p) for p in pieces) < 200_000
    assert b"".join(pieces) == b"x" * 200_000 + b"\r\n..y\r\n.\r\n"
