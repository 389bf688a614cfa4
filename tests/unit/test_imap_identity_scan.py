"""The identity listing scanner (`parser.scan_identity_lines`, for pairing again after a
UIDVALIDITY change), tested with plain bytes: what it decodes equals what the general
parser gives, and it stops exactly before any answer it does not know or whose literal
is not all there (the client then reads that one with the general parser)."""

from __future__ import annotations

import random

import pytest

from mailbag.protocols.imap.parser import Untagged, parse_fetch, parse_raw, scan_identity_lines
from mailbag.store.envelope import envelope_from_bytes, message_id_of

HEAD = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


def answer(seq: int, uid: int, flags: bytes, size: int, head: bytes) -> bytes:
    return b"* %d FETCH (UID %d FLAGS (%s) RFC822.SIZE %d %s {%d}\r\n%s)\r\n" % (
        seq,
        uid,
        flags,
        size,
        HEAD,
        len(head),
        head,
    )


def general(raw: bytes) -> tuple[int | None, tuple[str, ...] | None, int | None, object]:
    u = parse_raw(raw)
    assert isinstance(u, Untagged) and u.name == "FETCH"
    r = parse_fetch(u)
    return r.uid, r.flags, r.size, r.bodies.get(HEAD.decode())


PLAIN = [
    answer(1, 1, b"\\Seen", 3570, b"Message-ID: <bench-0@example.org>\r\n\r\n"),
    answer(2, 9, b"", 10, b"\r\n"),  # no Message-ID header: an empty block
    answer(3, 4294967295, b"\\Seen \\Flagged $Label1", 99, b"Message-Id:\r\n <folded@x>\r\n\r\n"),
    answer(4, 12, b"\\Recent", 1, b"Message-ID: <a)\r\n* 5 FETCH (UID 1 FLAGS ())@x>\r\n\r\n"),
    answer(5, 13, b"caf\xe9", 7, b"Message-ID: <\xff\x00@x>\r\n\r\n"),
]


@pytest.mark.parametrize("raw", PLAIN)
def test_plain_answers_decode_as_the_general_parser_does(raw: bytes) -> None:
    found, used = scan_identity_lines(raw, {})
    assert used == len(raw)
    assert [(u, f, s, h) for u, f, s, h in found] == [general(raw)]


def test_a_whole_listing_and_where_it_stops() -> None:
    rng = random.Random(5)
    answers = [
        answer(i, 100 + i, rng.choice([b"", b"\\Seen"]), i, b"Message-ID: <%d@x>\r\n\r\n" % i)
        for i in range(1, 301)
    ]
    data = b"".join(answers)
    known: dict[bytes, tuple[str, ...]] = {}
    found, used = scan_identity_lines(data, known)
    assert used == len(data) and [f[0] for f in found] == list(range(101, 401))
    assert all(message_id_of(f[3]) == f"<{f[0] - 100}@x>" for f in found)
    # a literal cut off by the end of what was read: stops before that answer
    for cut in (1, len(answers[-1]) - 1, len(answers[-1]) - 3):
        found, used = scan_identity_lines(data[:-cut], {})
        assert used == len(data) - len(answers[-1]) and len(found) == 299


@pytest.mark.parametrize(
    "other",
    [
        b"* 3 FETCH (UID 9 FLAGS (\\Seen))\r\n",  # a flag change another client made
        b"* 4 EXISTS\r\n",
        b"A12 OK Fetch completed.\r\n",
        b'* 3 FETCH (UID 9 FLAGS () RFC822.SIZE 5 BODY[HEADER.FIELDS ("MESSAGE-ID")] {2}\r\n'
        b"\r\n)\r\n",  # the field name quoted, as some servers echo it
        b"* 3 FETCH (FLAGS () UID 9 RFC822.SIZE 5 " + HEAD + b" {2}\r\n\r\n)\r\n",
        b"* 3 FETCH (UID 9 FLAGS () RFC822.SIZE 5 " + HEAD + b" {2}\r\n\r\n MODSEQ (4))\r\n",
        b"* 3 FETCH (UID 9 FLAGS () RFC822.SIZE 5 " + HEAD + b" {3}\r\n\r\n)\r\n",  # too long
    ],
)
def test_any_other_answer_is_left_to_the_general_parser(other: bytes) -> None:
    first = answer(1, 1, b"\\Seen", 3, b"Message-ID: <x@y>\r\n\r\n")
    found, used = scan_identity_lines(first + other + first, {})
    assert used == len(first) and len(found) == 1


def test_the_message_id_read_quickly_is_the_envelope_s() -> None:
    rng = random.Random(3)
    parts = [b"Message-ID:", b"message-id:", b"Message-Id :", b" ", b"\t", b"<a@b>", b"x"]
    parts += [b"\r\n", b"\n", b"\r\n ", b"\r\n\r\n", b"X-Y: z", b"=?utf-8?q?x?=", b"\x00"]
    for _ in range(20_000):
        data = b"".join(rng.choice(parts) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.5:
            data = b"Message-ID:" + data
        assert message_id_of(data) == envelope_from_bytes(data).message_id, data
