"""The flag listing scanner (`parser.scan_flag_lines`), tested with plain bytes: what it
decodes equals what the general parser gives, and every line it does not know stops
it exactly at that line's start (the client then gives the line to the general parser)."""

from __future__ import annotations

import random

import pytest

from mailbag.errors import ProtocolError
from mailbag.protocols.imap.parser import (
    FlagTexts,
    Untagged,
    parse_fetch,
    parse_raw,
    scan_flag_lines,
)


def scan(
    data: bytes, known: FlagTexts | None = None
) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """`scan_flag_lines` as (UID, flags) pairs."""
    uids, flags, used = scan_flag_lines(data, FlagTexts() if known is None else known)
    assert len(uids) == len(flags)
    return list(zip(uids, flags, strict=True)), used


def general(line: bytes) -> tuple[int | None, tuple[str, ...] | None]:
    """(UID, flags) of one response line, by the general parser."""
    u = parse_raw(line.rstrip(b"\r\n"))
    assert isinstance(u, Untagged) and u.name == "FETCH"
    r = parse_fetch(u)
    return r.uid, r.flags


PLAIN = [
    b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n",
    b"* 2 FETCH (UID 7 FLAGS ())\r\n",
    b"* 3 FETCH (UID 4294967295 FLAGS (\\Seen \\Flagged \\Answered \\Draft \\Deleted))\r\n",
    b"* 4 FETCH (UID 12 FLAGS (\\Recent))\r\n",
    b"* 5 FETCH (UID 13 FLAGS (\\Seen \\Recent $Label1 $Forwarded Junk NonJunk))\r\n",
    b"* 6 FETCH (FLAGS (\\Seen $MDNSent) UID 14)\r\n",  # FLAGS first, as some servers send
    b"* 7 FETCH (UID 15 FLAGS ( \\Seen   \\Flagged ))\r\n",  # odd spacing inside the list
    b"* 8 FETCH (UID 0016 FLAGS (caf\xe9))\r\n",  # 8-bit keyword (read as latin-1, as there)
    b"* 9 FETCH (UID 17 FLAGS (a\\b NIL nil $nil1))\r\n",  # NIL: a keyword, as there
]


@pytest.mark.parametrize("line", PLAIN)
def test_plain_flag_lines_decode_as_the_general_parser_does(line: bytes) -> None:
    found, used = scan(line)
    assert used == len(line)
    assert found == [general(line)]


def test_a_whole_listing_with_shared_interned_tuples() -> None:
    data = b"".join(
        b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (i, 10 + i, b"\\Seen" if i % 2 else b"")
        for i in range(1, 1001)
    )
    known = FlagTexts()
    found, used = scan(data, known)
    assert used == len(data)
    assert [uid for uid, _ in found] == list(range(11, 1011))
    assert found[0][1] == ("\\Seen",) and found[1][1] == ()
    assert found[0][1] is found[2][1]  # one tuple per distinct flag text
    assert set(known) == {b"\\Seen", b""}
    # the next buffer reuses what was learnt
    again, _ = scan(b"* 9 FETCH (UID 99 FLAGS (\\Seen))\r\n", known)
    assert again[0][1] is found[0][1]


LEFT_TO_THE_GENERAL_PARSER = [
    b"* 3 EXPUNGE\r\n",
    b"* 30 EXISTS\r\n",
    b"M5 OK Fetch completed.\r\n",
    b"* OK [ALERT] hello\r\n",
    b"* 3 FETCH (UID 9 MODSEQ (12) FLAGS (\\Seen))\r\n",
    b"* 3 FETCH (UID 9 FLAGS (\\Seen) BODY[] {5}\r\n",  # a literal where none was asked for
    b"* 3 FETCH (UID 9 FLAGS (\\Seen) X-NOTE {3}\r\n",
    b'* 3 FETCH (UID 9 FLAGS (\\Seen "quoted"))\r\n',
    b"* 3 FETCH  (UID 9 FLAGS (\\Seen))\r\n",  # odd spacing outside the list
    b"* 3 FETCH (UID 9  FLAGS (\\Seen))\r\n",
    b"* 3 fetch (uid 9 flags (\\Seen))\r\n",  # lower case: legal, rare
    b"* 3 FETCH (FLAGS (\\Seen))\r\n",  # no UID (an unsolicited change)
    b"* 3 FETCH (UID 9)\r\n",  # no FLAGS
    b"* 3 FETCH (UID 9 FLAGS (\\Seen[x]))\r\n",
    b"* 3 FETCH (UID 9 FLAGS (\\Seen\tX))\r\n",
    b"* 3 FETCH (UID 99999999999 FLAGS (\\Seen))\r\n",  # more than 32 bits
    b"* 3 FETCH (UID 9 FLAGS (\\Seen))\n",  # bare LF
    b"* 3 FETCH (UID 9 FLAGS (\\Seen)\r\n",  # unclosed: garbage
    b"\xff\xfe garbage\r\n",
    b"\r\n",
]


@pytest.mark.parametrize("other", LEFT_TO_THE_GENERAL_PARSER)
def test_other_lines_stop_the_scan_exactly_there(other: bytes) -> None:
    before = b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
    after = b"* 4 FETCH (UID 4 FLAGS (\\Seen))\r\n"
    found, used = scan(before + other + after)
    assert found == [(1, ("\\Seen",)), (2, ())]
    assert used == len(before)
    # starting at the other line: nothing is taken
    assert scan(other + after) == ([], 0)


def test_a_partial_last_line_is_not_taken() -> None:
    """The client passes whole lines only; a line cut short is never half-read."""
    found, used = scan(b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FL")
    assert found == [(1, ())] and used == 28


def test_garbage_is_a_protocol_error_from_the_general_parser() -> None:
    """What the scanner refuses is the general parser's to judge: garbage is an error."""
    for line in (b"* 3 FETCH (UID 9 FLAGS (\\Seen)", b"* 3 FETCH (UID 9 FLAGS (\\Seen)))"):
        assert scan(line + b"\r\n") == ([], 0)
        with pytest.raises(ProtocolError):
            parse_raw(line)


def _random_line(rng: random.Random) -> bytes:
    words = [b"\\Seen", b"\\Flagged", b"\\Recent", b"$Label1", b"Junk", b"NIL", b"x[1]", b""]
    flags = b" " * rng.randint(0, 1) + b" ".join(
        rng.choice(words) for _ in range(rng.randint(0, 4))
    )
    uid = rng.randint(1, 2**32 - 1)
    seq = rng.randint(1, 10**6)
    if rng.random() < 0.5:
        return b"* %d FETCH (UID %d FLAGS (%s))" % (seq, uid, flags)
    return b"* %d FETCH (FLAGS (%s) UID %d)" % (seq, flags, uid)


def test_equivalence_with_the_general_parser_on_random_lines() -> None:
    rng = random.Random(4)
    taken = 0
    for _ in range(3000):
        line = _random_line(rng)
        found, used = scan(line + b"\r\n")
        if used:
            taken += 1
            assert found == [general(line)], line
        else:
            general(line)  # left alone: the general parser reads it without error
    assert taken > 1000  # most are plain


def test_both_item_orders_in_one_buffer() -> None:
    data = (
        b"* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n"
        b"* 2 FETCH (FLAGS (\\Flagged) UID 6)\r\n"
        b"* 3 FETCH (UID 7 FLAGS ())\r\n"
    )
    assert scan(data) == ([(5, ("\\Seen",)), (6, ("\\Flagged",)), (7, ())], len(data))
    flags_first = b"* 2 FETCH (FLAGS (\\Flagged) UID 6)\r\n* 3 FETCH (FLAGS () UID 9)\r\n"
    assert scan(flags_first) == ([(6, ("\\Flagged",)), (9, ())], len(flags_first))


def test_known_flag_texts_are_bounded_by_the_caller_and_refilled() -> None:
    known = FlagTexts()
    first, _ = scan(b"* 1 FETCH (UID 1 FLAGS (a b))\r\n", known)
    known.clear()
    again, _ = scan(b"* 1 FETCH (UID 2 FLAGS (a b))\r\n", known)
    assert first[0][1] == again[0][1] == ("a", "b")
