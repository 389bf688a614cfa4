"""Bounded parsing: header decoding, charsets, transfer encodings, hostile structure."""

from __future__ import annotations

import email
import email.policy
import time

import pytest

from hostile import corpus, deep_nesting, huge_to, many_parts
from mailbag.message.parse import (
    Limits,
    decode_base64,
    decode_bytes,
    decode_header_value,
    parse_message,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain text", "plain text"),
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        ("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "éé"),  # space between words dropped
        ("=?utf-8?b?w6k=?= x =?utf-8?b?w6k=?=", "é x é"),
        ("=?utf-8?q?a_b?=", "a b"),
        ("=?x-unknown-cs?q?caf=E9?=", "café"),  # unknown charset: cp1252 guess
        ("=?utf-8?b?w6k?=", "é"),  # missing padding
        ("=?utf-8*en?q?hi?=", "hi"),  # RFC 2231 language suffix
        ("=?utf-8?q?line=0D=0Abreak?=", "line break"),  # CVE-2024-6923: no CR/LF
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ],
)
def test_decode_header_value(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


@pytest.mark.parametrize(
    ("data", "charset", "text", "noted"),
    [
        (b"caf\xc3\xa9", "utf-8", "café", False),
        (b"caf\xe9", "iso-8859-1", "café", False),
        (b"caf\xe9", None, "café", False),  # no charset, not UTF-8: cp1252
        (b"caf\xc3\xa9", "us-ascii", "café", False),  # mislabelled UTF-8
        (b"caf\xe9", "x-bogus", "café", True),
        (b"\\x41", "unicode_escape", "\\x41", True),  # a codec, not a charset
        (b"aGk=", "base64", "aGk=", True),  # bytes-to-bytes codec refused
        (b"caf\xe9", "utf-8", "caf\ufffd", True),
        (b"caf\xc3\xa9", "iso-8859-2", "caf\u0102\u0160", False),  # valid in the label: trusted
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str, noted: bool) -> None:
    out, note = decode_bytes(data, charset)
    assert out == text
    assert (note is not None) is noted


@pytest.mark.parametrize(
    ("data", "out", "broken"),
    [
        (b"aGVsbG8=", b"hello", False),
        (b"aGVs\r\nbG8=\r\n", b"hello", False),
        (b"aGVsbG8", b"hello", False),  # padding repaired
        (b"aGVsbG8\r\n!!! junk line ###\r\n", b"hello", True),
        (b"aGVsbG8=x", b"hello", True),  # one stray character
        (b"", b"", False),
    ],
)
def test_decode_base64(data: bytes, out: bytes, broken: bool) -> None:
    assert decode_base64(data) == (out, broken)


def test_deep_nesting_is_bounded_where_the_stdlib_fails() -> None:
    raw = deep_nesting(2000)
    with pytest.raises(RecursionError):  # why the bound exists
        email.message_from_bytes(raw, policy=email.policy.default).get_body()
    start = time.process_time()
    msg = parse_message(raw)
    assert time.process_time() - start < 2
    assert any("nested deeper than 32" in n for n in msg.notices)
    assert max(p.depth for p in msg.walk()) == 32


def test_forty_thousand_parts_are_cut_quickly() -> None:
    start = time.process_time()
    msg = parse_message(many_parts(40_000))
    assert time.process_time() - start < 2
    assert msg.parts_seen == 500
    assert any("39,501 more" in n for n in msg.notices)
    assert len(msg.attachments()) == 498


def test_twenty_thousand_recipients() -> None:
    start = time.process_time()
    msg = parse_message(huge_to(20_000))
    to = msg.headers.addresses("To")
    assert time.process_time() - start < 1
    assert len(to) == 200
    assert to[0].addr == "person0@example.com"
    assert any("about 20,000 addresses" in n for n in msg.notices)
    assert msg.subject == "twenty thousand recipients"  # headers after To still read


def test_limits_are_configurable() -> None:
    msg = parse_message(many_parts(50), Limits(max_parts=10))
    assert msg.parts_seen == 10


@pytest.mark.parametrize("name", sorted(corpus()))
def test_every_corpus_message_parses_without_error(name: str) -> None:
    raw = corpus()[name]
    start = time.process_time()
    msg = parse_message(raw)
    for part in msg.walk():
        if not part.children:
            msg.text(part)
    msg.headers.addresses("From")
    msg.headers.addresses("To")
    list(msg.headers.decoded_items())
    assert msg.date is None or msg.date.tzinfo is not None
    assert time.process_time() - start < 3


@pytest.mark.parametrize(
    ("name", "subject", "sender"),
    [
        ("8bit-headers.eml", "Grüße à tous", "Jörg Müller <joerg@example.org>"),
        ("utf8-raw-headers.eml", "Größe 日本語 raw UTF-8", "Zoë Ünal <zoe@example.org>"),
        ("bad-charset.eml", "café and not base64", "Sender <sender@example.org>"),
        ("no-headers.eml", "", None),
        ("header-only.eml", "no body and no blank line", "a@example.org"),
    ],
)
def test_headers_of_broken_mail(name: str, subject: str, sender: str | None) -> None:
    msg = parse_message(corpus()[name])
    assert msg.subject == subject
    senders = msg.headers.addresses("From")
    assert (str(senders[0]) if senders else None) == sender


def test_structure_repairs() -> None:
    c = corpus()
    unclosed = parse_message(c["unclosed-multipart.eml"])
    assert [p.content_type for p in unclosed.root.children] == ["text/plain", "application/pdf"]
    assert unclosed.payload(unclosed.root.children[1])[0].startswith(b"%PDF-1.4")
    missing = parse_message(c["missing-boundary.eml"])
    assert missing.root.children and any("guessed" in n for n in missing.notices)
    not_found = parse_message(c["boundary-not-found.eml"])
    assert not_found.root.content_type == "text/plain"
    assert any("boundary not found" in n for n in not_found.notices)
    lf = parse_message(c["lf-only.eml"])
    assert lf.text(lf.root.children[0])[0] == "unix newlines"
    fwd = parse_message(c["forwarded.eml"])
    inner = fwd.root.children[1]
    assert inner.message_headers is not None
    assert inner.message_headers.decoded("Subject") == "the original"
