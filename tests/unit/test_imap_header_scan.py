"""The header answer scanner (`parser.scan_header_answers`, for the header digests of
messages without a Message-ID after a UIDVALIDITY change), tested with plain bytes:
what it decodes equals what the general parser gives, and it stops exactly before any
answer it does not know or whose literal is not all there (the client then reads that
one with the general parser)."""

from __future__ import annotations

import pytest

from mailbag.protocols.imap.parser import Untagged, parse_fetch, parse_raw, scan_header_answers


def answer(seq: int, uid: int, head: bytes) -> bytes:
    return b"* %d FETCH (UID %d BODY[HEADER] {%d}\r\n%s)\r\n" % (seq, uid, len(head), head)


def general(raw: bytes) -> tuple[int | None, object]:
    u = parse_raw(raw)
    assert isinstance(u, Untagged) and u.name == "FETCH"
    r = parse_fetch(u)
    return r.uid, r.bodies.get("BODY[HEADER]")


PLAIN = [
    answer(1, 1, b"From: a@x\r\nSubject: one\r\n\r\n"),
    answer(2, 4294967295, b"\r\n"),  # a message starting with an empty line
    answer(3, 9, b"Subject: no empty line, no line end"),  # (all of it is the header)
    answer(4, 12, b"Subject: a)\r\n* 5 FETCH (UID 1 BODY[HEADER] {2}\r\n\r\n)\r\n\r\n"),
    answer(5, 13, b"Subject: caf\xe9 \xff\x00\r\n\r\n"),
    answer(6, 14, b""),
]


@pytest.mark.parametrize("raw", PLAIN)
def test_plain_answers_decode_as_the_general_parser_does(raw: bytes) -> None:
    found, used = scan_header_answers(raw)
    assert used == len(raw)
    assert found == [general(raw)]


def test_a_run_of_answers_and_where_it_stops() -> None:
    answers = [
        answer(i, 100 + i, b"Subject: %d\r\nX: %s\r\n\r\n" % (i, b"y" * i)) for i in range(1, 201)
    ]
    data = b"".join(answers)
    found, used = scan_header_answers(data)
    assert used == len(data)
    assert found == [general(a) for a in answers]
    # a literal cut off by the end of what was read: stops before that answer
    for cut in (1, 2, 3, len(answers[-1]) - 1):
        found, used = scan_header_answers(data[:-cut])
        assert used == len(data) - len(answers[-1]) and len(found) == 199


@pytest.mark.parametrize(
    "other",
    [
        b"* 7 FETCH (FLAGS (\\Seen) UID 7)\r\n",  # a flag change meanwhile
        b"* 7 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER] {5}\r\nA\r\n\r\n)\r\n",  # another shape
        b"* 7 FETCH (UID 7 BODY[HEADER] {5}\r\nA\r\n\r\n FLAGS (\\Seen))\r\n",  # more after it
        b"* 7 FETCH (UID 7 BODY[HEADER] {4}\r\nA\r\n\r\n)\r\n",  # a length that says otherwise
        b"* 3 EXPUNGE\r\n",
        b"M4 OK Fetch completed.\r\n",
    ],
)
def test_any_other_answer_is_left_to_the_general_parser(other: bytes) -> None:
    first = answer(1, 5, b"Subject: x\r\n\r\n")
    found, used = scan_header_answers(first + other + answer(2, 6, b"\r\n"))
    assert used == len(first) and found == [general(first)]
