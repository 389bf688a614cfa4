"""The identity listing scanners (`parser.scan_identity_lines`, `scan_identity_runs`, for
pairing again after a UIDVALIDITY change), tested with plain bytes: what they decode
equals what the general parser gives, and they stop exactly before any answer they do
not know or whose literal is not all there (the client then reads that one with the
general parser)."""

from __future__ import annotations

import random

import pytest

from mailbag.protocols.imap.parser import (
    IdentityRun,
    Untagged,
    parse_fetch,
    parse_raw,
    scan_identity_lines,
    scan_identity_runs,
)
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


# --- runs of the usual answers (`scan_identity_runs`) ----------------------------------


def _flat(items: list[object]) -> list[tuple[int, tuple[str, ...], int, str]]:
    """Runs and single answers as (UID, flags, size, Message-ID), for comparing."""
    out: list[tuple[int, tuple[str, ...], int, str]] = []
    for item in items:
        if isinstance(item, IdentityRun):
            for u, f, s, m in zip(item.uids, item.flags, item.sizes, item.message_ids, strict=True):
                out.append((int(u), tuple(f.decode().split()), int(s), m.decode()))
        else:
            uid, flags, size, head = item  # type: ignore[misc]
            out.append((uid, flags, size, message_id_of(head)))
    return out


def test_runs_give_what_the_answer_by_answer_scan_gives() -> None:
    rng = random.Random(8)
    heads = [
        b"Message-ID: <%d@x>\r\n\r\n",
        b"message-id: <%d.a.b@example.org>\r\n\r\n",
        b"Message-Id: <%d@x>\r\n\r\n",
        b"\r\n",  # none
        b"Message-ID:\r\n <%d@folded>\r\n\r\n",
        b"Message-ID:\r\n\t<%d@folded.tab>  \r\n\r\n",
        b"Message-ID:<%d@no-space>\r\n\r\n",
        b"Message-ID: <%d@x>\r\n <continued@x>\r\n\r\n",
        b"Message-ID: <a<%d@x>\r\n\r\n",  # a "<" inside
        b"Message-ID:  <%d@two-spaces>\r\n\r\n",
    ]
    answers = []
    for i in range(1, 400):
        head = rng.choice(heads[:3] * 6 + heads)
        head = head % i if b"%d" in head else head
        answers.append(answer(i, 10 + i, rng.choice([b"", b"\\Seen", b"\\Seen $x"]), i, head))
    data = b"".join(answers)
    found, used = scan_identity_runs(data, {})
    assert used == len(data)
    assert any(isinstance(f, IdentityRun) and len(f.uids) > 3 for f in found)
    assert any(not isinstance(f, IdentityRun) for f in found)
    by_one, _ = scan_identity_lines(data, {})
    assert _flat(found) == _flat(by_one)  # type: ignore[arg-type]
    # cut anywhere: what is given is a beginning of the same, and ends where it says
    for cut in rng.sample(range(1, len(data)), 60):
        part, used = scan_identity_runs(data[:cut], {})
        flat = _flat(part)  # type: ignore[arg-type]
        assert flat == _flat(by_one)[: len(flat)]  # type: ignore[arg-type]
        assert data[:used] == b"".join(answers[: len(flat)])


def test_a_run_whose_literal_length_says_otherwise_is_read_answer_by_answer() -> None:
    # the literal announced longer than the usual block: that block's ")\r\n" and the
    # next answer are inside the literal, as the general parser reads it
    good = answer(1, 1, b"", 3, b"Message-ID: <x@y>\r\n\r\n")
    inner = answer(3, 3, b"", 3, b"Message-ID: <z@y>\r\n\r\n")
    head = b"Message-ID: <w@y>\r\n\r\n)\r\n" + inner[:-3]
    odd = answer(2, 2, b"", 3, head)
    data = good + odd + good
    found, used = scan_identity_runs(data, {})
    by_one, used_one = scan_identity_lines(data, {})
    assert used == used_one == len(data)
    want = [(*general(a)[:3], message_id_of(general(a)[3])) for a in (good, odd, good)]  # type: ignore[arg-type]
    assert _flat(found) == _flat(by_one) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "other",
    [
        b"* 3 FETCH (UID 9 FLAGS (\\Seen))\r\n",
        b"* 4 EXISTS\r\n",
        b"A12 OK Fetch completed.\r\n",
        b"* 3 FETCH (UID 9 FLAGS () RFC822.SIZE 5 " + HEAD + b" {2}\r\n\r\n MODSEQ (4))\r\n",
    ],
)
def test_runs_stop_where_the_general_parser_takes_over(other: bytes) -> None:
    first = b"".join(answer(i, i, b"\\Seen", 3, b"Message-ID: <%d@y>\r\n\r\n" % i) for i in (1, 2))
    found, used = scan_identity_runs(first + other + first, {})
    assert used == len(first)
    assert len(found) == 1 and isinstance(found[0], IdentityRun)
    assert found[0].uids == (b"1", b"2") and found[0].message_ids == (b"<1@y>", b"<2@y>")


def test_answers_without_a_message_id_stay_in_the_run() -> None:
    # the usual answer for a message without one (an empty header block) does not cut
    # the run: its Message-ID is empty there, as `message_id_of` gives it
    heads = [b"Message-ID: <1@y>\r\n\r\n", b"\r\n", b"Message-ID: <3@y>\r\n\r\n", b"\r\n"]
    data = b"".join(answer(i, i, b"\\Seen", 10 + i, h) for i, h in enumerate(heads, 1))
    found, used = scan_identity_runs(data, {})
    assert used == len(data)
    assert found == [
        IdentityRun(
            (b"1", b"2", b"3", b"4"),
            (b"\\Seen",) * 4,
            (b"11", b"12", b"13", b"14"),
            (b"<1@y>", b"", b"<3@y>", b""),
        )
    ]
    assert [message_id_of(h) for h in heads] == ["<1@y>", "", "<3@y>", ""]
