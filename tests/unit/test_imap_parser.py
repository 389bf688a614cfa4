"""The pure IMAP response parser, tested with tables of byte strings."""

from __future__ import annotations

import datetime as dt

import pytest

from mailbag.errors import ProtocolError
from mailbag.protocols.imap import command as cmd
from mailbag.protocols.imap.mutf7 import decode_mailbox, encode_mailbox
from mailbag.protocols.imap.parser import (
    Atom,
    Continuation,
    StatusResponse,
    UidSet,
    Untagged,
    format_internaldate,
    format_sequence_set,
    parse_appenduid,
    parse_capabilities,
    parse_copyuid,
    parse_esearch,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_raw,
    parse_search,
    parse_status,
    parse_vanished,
    split_raw,
)


def untagged(raw: bytes) -> Untagged:
    r = parse_raw(raw)
    assert isinstance(r, Untagged), r
    return r


def status(raw: bytes) -> StatusResponse:
    r = parse_raw(raw)
    if isinstance(r, Untagged):
        assert r.status is not None
        return r.status
    assert isinstance(r, StatusResponse), r
    return r


# --- status responses and codes -----------------------------------------------------

STATUS_CASES = [
    (b"* OK IMAP4rev1 ready", None, "OK", None, [], "IMAP4rev1 ready"),
    (b"* PREAUTH welcome", None, "PREAUTH", None, [], "welcome"),
    (b"* BYE Logging out", None, "BYE", None, [], "Logging out"),
    (b"a1 OK done", "a1", "OK", None, [], "done"),
    (b"a2 NO [AUTHENTICATIONFAILED] bad pass", "a2", "NO", "AUTHENTICATIONFAILED", [], "bad pass"),
    (b"a3 BAD Error in IMAP command", "a3", "BAD", None, [], "Error in IMAP command"),
    (
        b"* OK [UIDVALIDITY 3857529045] UIDs valid",
        None,
        "OK",
        "UIDVALIDITY",
        ["3857529045"],
        "UIDs valid",
    ),
    (b"* OK [UIDNEXT 4392] Predicted", None, "OK", "UIDNEXT", ["4392"], "Predicted"),
    (b"* OK [HIGHESTMODSEQ 715194045007]", None, "OK", "HIGHESTMODSEQ", ["715194045007"], ""),
    (
        b"a OK [APPENDUID 38505 3955] APPEND done",
        "a",
        "OK",
        "APPENDUID",
        ["38505", "3955"],
        "APPEND done",
    ),
    (
        b"a OK [COPYUID 38505 304,319:320 3956:3958] Done",
        "a",
        "OK",
        "COPYUID",
        ["38505", "304,319:320", "3956:3958"],
        "Done",
    ),
    (b"* OK [CLOSED] Previous mailbox closed", None, "OK", "CLOSED", [], "Previous mailbox closed"),
    (
        b"* OK [ALERT] System shutdown in 10 minutes",
        None,
        "OK",
        "ALERT",
        [],
        "System shutdown in 10 minutes",
    ),
    (b"a OK [READ-WRITE] SELECT completed", "a", "OK", "READ-WRITE", [], "SELECT completed"),
    (
        b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited",
        None,
        "OK",
        "PERMANENTFLAGS",
        [["\\Deleted", "\\Seen", "\\*"]],
        "Limited",
    ),
    (b'* NO [BADCHARSET (UTF-8 "X Y")] no', None, "NO", "BADCHARSET", [["UTF-8", b"X Y"]], "no"),
    (
        b"a OK [MODIFIED 7,9] Conditional STORE failed",
        "a",
        "OK",
        "MODIFIED",
        ["7,9"],
        "Conditional STORE failed",
    ),
    # a server that forgets the closing bracket: text kept, no crash
    (b"a NO [OOPS no bracket", "a", "NO", None, [], "[OOPS no bracket"),
]


@pytest.mark.parametrize(("raw", "tag", "kind", "code", "args", "text"), STATUS_CASES)
def test_status_responses(
    raw: bytes, tag: str | None, kind: str, code: str | None, args: list[object], text: str
) -> None:
    s = status(raw)
    assert (s.tag, s.kind, s.code, s.code_args, s.text) == (tag, kind, code, args, text)


def test_capability_in_greeting_and_untagged() -> None:
    s = status(b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS STARTTLS AUTH=PLAIN] ready")
    assert parse_capabilities(s.code_args) == {
        "IMAP4REV1",
        "SASL-IR",
        "LOGIN-REFERRALS",
        "STARTTLS",
        "AUTH=PLAIN",
    }
    u = untagged(b"* CAPABILITY IMAP4rev1 LITERAL+ CONDSTORE QRESYNC Compress=Deflate ID")
    assert u.name == "CAPABILITY"
    assert "COMPRESS=DEFLATE" in parse_capabilities(u.values)


def test_continuation() -> None:
    assert parse_raw(b"+ Ready for literal data") == Continuation("Ready for literal data")
    assert parse_raw(b"+") == Continuation("")
    assert parse_raw(b"+ eyJzdGF0dXMiOiI0MDEifQ==") == Continuation("eyJzdGF0dXMiOiI0MDEifQ==")


@pytest.mark.parametrize(
    ("raw", "name", "number", "values"),
    [
        (b"* 23 EXISTS", "EXISTS", 23, []),
        (b"* 0 RECENT", "RECENT", 0, []),
        (b"* 5 EXPUNGE", "EXPUNGE", 5, []),
        (
            b"* FLAGS (\\Answered \\Flagged $Forwarded)",
            "FLAGS",
            None,
            [["\\Answered", "\\Flagged", "$Forwarded"]],
        ),
        (b"* ENABLED QRESYNC", "ENABLED", None, ["QRESYNC"]),
        (b'* ID ("name" "Dovecot")', "ID", None, [[b"name", b"Dovecot"]]),
        (b"* SEARCH", "SEARCH", None, []),
        (b'* LIST () "/" {5}\r\nmy "x', "LIST", None, [[], b"/", b'my "x']),
    ],
)
def test_untagged_generic(raw: bytes, name: str, number: int | None, values: list[object]) -> None:
    u = untagged(raw)
    assert (u.name, u.number, u.values) == (name, number, values)


def test_atoms_are_atoms_strings_are_bytes_nil_is_none() -> None:
    u = untagged(b'* X atom "quoted \\"x\\" \\\\" NIL "NIL" {3}\r\nNIL ()')
    assert u.values == ["atom", b'quoted "x" \\', None, b"NIL", b"NIL", []]
    assert isinstance(u.values[0], Atom)
    assert not isinstance(u.values[3], Atom)


@pytest.mark.parametrize(
    "raw",
    [
        b'* X "unterminated',
        b"* X (unclosed list",
        b"* X {3}",  # literal announced, none given
        b"noTagOnly",
    ],
)
def test_malformed_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_raw(raw)


def test_literal_bigger_than_data_in_split_is_not_allocated() -> None:
    # split_raw slices what is there; nothing is ever allocated from the announced size
    parts, lits = split_raw(b"* 1 FETCH (BODY[] {4294967295}\r\nshort)")
    assert lits == [b"short)"]
    assert parts[0].endswith(b"{4294967295}")


# --- FETCH ---------------------------------------------------------------------------

ENVELOPE = (
    b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
    b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
)


def test_fetch_full_set_of_items() -> None:
    raw = (
        b"* 12 FETCH (UID 4827 FLAGS (\\Seen $Label1) RFC822.SIZE 44827 "
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" MODSEQ (624140003) '
        b"X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888 "
        b'X-GM-LABELS ("\\\\Inbox" work) EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9) '
        b"ENVELOPE " + ENVELOPE + b" BODY[] {12}\r\nHello\r\nWorld"
        b" BODY[HEADER.FIELDS (FROM TO)] {8}\r\nFrom: x\n"
        b' BODY[]<0> "abc")'
    )
    f = parse_fetch(untagged(raw))
    assert f.seq == 12
    assert f.uid == 4827
    assert f.flags == ("\\Seen", "$Label1")
    assert f.size == 44827
    assert f.internaldate == dt.datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(-dt.timedelta(hours=7))
    )
    assert f.modseq == 624140003
    assert f.x_gm_msgid == 1278455344230334865
    assert f.x_gm_thrid == 1266894439832287888
    assert f.x_gm_labels == ("\\Inbox", "work")
    assert f.emailid == "M6d99ac3275bb4e"
    assert f.threadid == "T64b478a75b7ea9"
    assert f.body == b"Hello\r\nWorld"
    assert f.bodies["BODY[HEADER.FIELDS (FROM TO)]"] == b"From: x\n"
    assert f.bodies["BODY[]<0>"] == b"abc"
    env = f.envelope
    assert env is not None
    assert env.subject == "IMAP4rev1 WG mtg summary and minutes"
    assert env.from_[0].name == "Terry Gray"
    assert env.from_[0].email == "gray@cac.washington.edu"
    assert [a.email for a in env.cc] == ["minutes@CNRI.Reston.VA.US", "KLENSIN@MIT.EDU"]
    assert env.bcc == ()
    assert env.in_reply_to is None
    assert env.message_id == "<B27397-0100000@cac.washington.edu>"


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        (b"* 1 FETCH (FLAGS ())", lambda f: f.flags == () and f.uid is None),
        (b"* 1 FETCH (UID 9 BODY[] NIL)", lambda f: f.body is None and "BODY[]" in f.bodies),
        (b'* 1 FETCH (UID 9 BODY[] "")', lambda f: f.body == b""),
        (b"* 2 FETCH (UID 10 RFC822 {2}\r\nhi)", lambda f: f.body == b"hi"),
        (b"* 2 FETCH (uid 10 flags (\\Seen))", lambda f: f.uid == 10 and f.flags == ("\\Seen",)),
        (
            b'* 3 FETCH (UID 11 BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL '
            b'NIL "7BIT" 3028 92))',
            lambda f: isinstance(f.bodystructure, list),
        ),
        (
            b'* 4 FETCH (UID 1 INTERNALDATE " 7-Feb-2026 10:00:00 +0100")',
            lambda f: f.internaldate is not None and f.internaldate.day == 7,
        ),
        (b"* 5 FETCH (UID 1 X-UNKNOWN (a b))", lambda f: f.other["X-UNKNOWN"] == ["a", "b"]),
    ],
)
def test_fetch_variants(raw: bytes, check: object) -> None:
    assert callable(check)
    assert check(parse_fetch(untagged(raw)))


def test_fetch_odd_items_is_an_error() -> None:
    with pytest.raises(ProtocolError):
        parse_fetch(untagged(b"* 1 FETCH (UID)"))


# --- LIST / STATUS / SEARCH / ESEARCH / VANISHED ----------------------------------------

LIST_CASES = [
    (b'* LIST (\\HasNoChildren) "/" INBOX', "INBOX", "/", ("\\HasNoChildren",), None),
    (
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"',
        "Sent Items",
        "/",
        ("\\HasNoChildren", "\\Sent"),
        "\\Sent",
    ),
    (b'* LIST (\\Noselect) "." "[Gmail]"', "[Gmail]", ".", ("\\Noselect",), None),
    (
        b'* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"',
        "[Gmail]/All Mail",
        "/",
        ("\\All", "\\HasNoChildren"),
        "\\All",
    ),
    (b"* LIST () NIL Flat", "Flat", None, (), None),
    (b'* LIST () "/" "Entw&APw-rfe"', "Entwürfe", "/", (), None),
    (b'* LIST () "/" "&ZeVnLIqe-"', "日本語", "/", (), None),
    (b'* LSUB () "/" "A&-B"', "A&B", "/", (), None),
    (b'* LIST () "/" {9}\r\nWith "Qs', 'With "Qs', "/", (), None),
    # broken modified UTF-7: shown raw rather than failing the whole listing
    (b'* LIST () "/" "bad&AAA"', "bad&AAA", "/", (), None),
]


@pytest.mark.parametrize(("raw", "name", "delim", "flags", "special"), LIST_CASES)
def test_list(
    raw: bytes, name: str, delim: str | None, flags: tuple[str, ...], special: str | None
) -> None:
    info = parse_list(untagged(raw))
    assert (info.name, info.delimiter, info.flags, info.special_use) == (
        name,
        delim,
        flags,
        special,
    )


def test_list_noselect() -> None:
    assert not parse_list(untagged(b'* LIST (\\Noselect) "/" x')).selectable
    assert parse_list(untagged(b'* LIST () "/" x')).selectable


def test_status() -> None:
    s = parse_status(
        untagged(
            b'* STATUS "Entw&APw-rfe" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 7 '
            b"UNSEEN 3 HIGHESTMODSEQ 90 RECENT 0)"
        )
    )
    assert (s.name, s.messages, s.uidnext, s.uidvalidity, s.unseen, s.highestmodseq, s.recent) == (
        "Entwürfe",
        231,
        44292,
        7,
        3,
        90,
        0,
    )


@pytest.mark.parametrize(
    ("raw", "uids", "modseq"),
    [
        (b"* SEARCH 2 3 6", [2, 3, 6], None),
        (b"* SEARCH", [], None),
        (b"* SEARCH 2 5 (MODSEQ 917162500)", [2, 5], 917162500),
        (b"* SEARCH 1 2 3 4 9 10 12", [1, 2, 3, 4, 9, 10, 12], None),
        (b"* SEARCH 7 3 4 4", [7, 3, 4, 4], None),  # as the server said it
    ],
)
def test_search(raw: bytes, uids: list[int], modseq: int | None) -> None:
    r = parse_search(untagged(raw))
    assert list(r.uids) == uids
    assert r.modseq == modseq
    assert r.count == len(uids)


def test_a_search_of_consecutive_uids_is_kept_as_ranges() -> None:
    raw = b"* SEARCH " + b" ".join(str(n).encode() for n in [*range(1, 50001), 50003])
    assert parse_search(untagged(raw)).uids.ranges == [(1, 50000), (50003, 50003)]


@pytest.mark.parametrize(
    ("raw", "tag", "uids", "count", "mn", "mx", "modseq"),
    [
        (b'* ESEARCH (TAG "A282") UID MIN 2 COUNT 3', "A282", [], 3, 2, None, None),
        (b'* ESEARCH (TAG "a") UID ALL 1:3,7 MODSEQ 5', "a", [1, 2, 3, 7], 4, None, None, 5),
        (b'* ESEARCH (TAG "a") UID', "a", [], None, None, None, None),
        (b"* ESEARCH UID MAX 9 ALL 9", None, [9], 1, None, 9, None),
    ],
)
def test_esearch(
    raw: bytes,
    tag: str | None,
    uids: list[int],
    count: int | None,
    mn: int | None,
    mx: int | None,
    modseq: int | None,
) -> None:
    r = parse_esearch(untagged(raw))
    assert (r.tag, list(r.uids), r.count, r.min, r.max, r.modseq) == (
        tag,
        uids,
        count,
        mn,
        mx,
        modseq,
    )


def test_vanished() -> None:
    assert parse_vanished(untagged(b"* VANISHED (EARLIER) 41,43:45")) == (
        True,
        UidSet([(41, 41), (43, 45)]),
    )
    earlier, uids = parse_vanished(untagged(b"* VANISHED 405"))
    assert not earlier and list(uids) == [405]
    # a huge range is ranges, never a list of four billion numbers
    _, big = parse_vanished(untagged(b"* VANISHED (EARLIER) 1:4294967295"))
    assert len(big) == 4294967295 and 77 in big and 0 not in big


def test_appenduid_copyuid() -> None:
    assert parse_appenduid(status(b"a OK [APPENDUID 38505 3955] done")) == (
        38505,
        UidSet([(3955, 3955)]),
    )
    assert parse_appenduid(status(b"a OK done")) is None
    got = parse_copyuid(status(b"a OK [COPYUID 38505 304,319:320 3956:3958] Done"))
    assert got is not None
    assert list(got[1]) == [304, 319, 320] and list(got[2]) == [3956, 3957, 3958]


# --- small formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("A&B", b"A&-B"),
        ("日本語", b"&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Tést&Ünïcode", b"T&AOk-st&-&ANw-n&AO8-code"),
        ("😀 emoji", b"&2D3eAA- emoji"),
    ],
)
def test_modified_utf7_both_ways(name: str, wire: bytes) -> None:
    assert encode_mailbox(name) == wire
    assert decode_mailbox(wire) == name


@pytest.mark.parametrize("bad", [b"&Jjo", b"&!!-", b"caf\xc3\xa9"])
def test_modified_utf7_rejects_broken(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_mailbox(bad)


def test_internaldate_round_trip() -> None:
    when = dt.datetime(2026, 3, 5, 9, 8, 7, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    text = format_internaldate(when)
    assert text == '"05-Mar-2026 09:08:07 +0530"'
    assert parse_internaldate(text.strip('"')) == when
    with pytest.raises(ProtocolError):
        parse_internaldate("31-Foo-2026 00:00:00 +0000")


@pytest.mark.parametrize(
    ("uids", "text"),
    [([1, 2, 3, 7], "1:3,7"), ([5], "5"), ([9, 8, 8, 1], "1,8:9"), ([], "")],
)
def test_sequence_sets(uids: list[int], text: str) -> None:
    assert format_sequence_set(uids) == text
    assert sorted(set(uids)) == list(UidSet.parse(text))


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("alice", b"alice"),
        ("alice@example.org", b"alice@example.org"),
        ("with space", b'"with space"'),
        ('q"uo\\te', b'"q\\"uo\\\\te"'),
        ("", b'""'),
    ],
)
def test_astring(value: str, wire: bytes) -> None:
    assert cmd.astring(value) == wire


def test_astring_literal_for_8bit_and_crlf() -> None:
    for value in ("pässword", "a\r\nb"):
        piece = cmd.astring(value)
        assert isinstance(piece, cmd.Literal)
        assert piece.data == value.encode()
    assert cmd.mailbox("Entwürfe") == b"Entw&APw-rfe"
    assert cmd.mailbox("Sent Items") == b'"Sent Items"'
    assert cmd.mailbox("inbox") == b"INBOX"


def test_literal8_binary_fetch() -> None:
    f = parse_fetch(untagged(b"* 3 FETCH (UID 8 BINARY[] ~{5}\r\na\x00b\x00c)"))
    assert f.uid == 8 and f.body == b"a\x00b\x00c"


@pytest.mark.parametrize(
    "raw",
    [b"* 1 FETCH (UID 1))", b"* 1 FETCH (UID \x01)", b'* 1 FETCH (UID 1 X "a\r'],
)
def test_fetch_garbage_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_raw(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"* 7 FETCH (UID 42 MODSEQ (99) FLAGS (\\Seen $Label))",
        b"* 7 FETCH (FLAGS () UID 42)",
        b"* 7 FETCH (uid 42 rfc822.size 1234)",
        b'* 7 FETCH (UID 42 FLAGS (\\Seen) INTERNALDATE "01-Jan-2026 00:00:00 +0000")',
        b'* 7 FETCH (UID 42 FLAGS (\\Seen "odd"))',
    ],
)
def test_fast_and_general_fetch_paths_agree(raw: bytes) -> None:
    """Flag listings take a regex fast path; it must give what the general parser gives."""
    from mailbag.protocols.imap.parser import _Lexer, _values

    lx = _Lexer([raw], [])
    lx.pos = raw.index(b"(")
    general_values = _values(lx)
    fast = untagged(raw)
    assert fast.values == general_values
    assert parse_fetch(fast) == parse_fetch(Untagged("FETCH", 7, general_values))


@pytest.mark.parametrize(
    "line",
    [
        b'* 3 FETCH (UID 42 FLAGS (\\Seen) INTERNALDATE "01-Jan-2026 10:00:00 -0700" '
        b"MODSEQ (5) BODY[] {11}",
        b"* 3 FETCH (UID 42 BODY[HEADER.FIELDS (MESSAGE-ID)] {11}",
        b"* 3 FETCH (UID 42 FLAGS () body[]<0> {11}",
        b'* 3 FETCH (UID 42 INTERNALDATE "" RFC822 {11}',
        b'* 3 FETCH (UID 42 INTERNALDATE "1-Jan-2026 10:00:00 +0100" BINARY[1] ~{11}',
    ],
)
def test_fast_and_general_paths_agree_on_bodies(line: bytes) -> None:
    """Downloads (a body literal ending the line) take the fast path too."""
    from mailbag.protocols.imap.parser import _fast_fetch, _Lexer, _values, parse_response

    body = b"hello world"
    lx = _Lexer([line, b")"], [body])
    lx.pos = line.index(b"(")
    general_values = _values(lx)
    assert _fast_fetch(line, body) is not None
    fast = parse_response([line, b")"], [body])
    assert isinstance(fast, Untagged) and fast.fetch is not None
    assert fast.values == general_values
    assert parse_fetch(fast) == parse_fetch(Untagged("FETCH", 3, general_values))


@pytest.mark.parametrize(
    "line, rest",
    [
        (b"* 3 FETCH (BODY[] {11}", b" UID 42)"),  # the body is not the last item
        (b'* 3 FETCH (UID 42 INTERNALDATE "bad date" BODY[] {11}', b")"),
        (b"* 3 FETCH (UID 42 X-OTHER 1 BODY[] {11}", b")"),
    ],
)
def test_bodies_the_fast_path_leaves_to_the_general_one(line: bytes, rest: bytes) -> None:
    from mailbag.protocols.imap.parser import _fast_fetch, parse_response

    if rest == b")":
        assert _fast_fetch(line, b"hello world") is None
    u = parse_response([line, rest], [b"hello world"])
    assert isinstance(u, Untagged) and u.fetch is None
    if b"bad date" in line:
        with pytest.raises(ProtocolError, match="INTERNALDATE"):
            parse_fetch(u)
    else:
        r = parse_fetch(u)
        assert r.bodies["BODY[]"] == b"hello world"
        assert r.uid == 42 or r.other
