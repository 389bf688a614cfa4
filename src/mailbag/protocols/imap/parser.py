"""IMAP response parser: bytes in, typed values out. Pure: no sockets, no clocks.

A response arrives as text lines and literals. The client (which owns the
socket) reads a line; when it ends with a literal announcement `{n}` it reads
the `n` bytes (into memory, or streamed to a sink for message bodies) and then
the next line. It hands the parser `parts` (the lines without CRLF, each but the
last ending in `{n}`) and `literals` (one value per announcement: `bytes` or a
`StreamedLiteral`). `parse_raw()` does the same from one byte string, for tests.

Values: `Atom` (a str) for atoms and numbers, `bytes` for quoted strings and
literals, `None` for NIL, `list` for parenthesised lists, `StreamedLiteral` for
a literal that went to a sink. Typed views (`FetchResult`, `MailboxInfo`, ...)
are built from those by the `parse_*` functions.

It must never allocate what a server announces: sizes are the client's business.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator, Sequence

from mailbag.errors import ProtocolError
from mailbag.protocols.imap.mutf7 import decode_mailbox
from mailbag.record import NamedTuple, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    # (at run time loaded by the functions that make dates: a sync with nothing to do,
    # `sync.quick`, reads none and loads no sqlite3, which would load it)
    import datetime as dt
    from typing import IO, TypeAlias


class Atom(str):
    """An unquoted IMAP atom (also numbers and flags), as opposed to a string."""

    __slots__ = ()


class StreamedLiteral(Record):
    """A literal the client copied to a sink instead of keeping it in memory."""

    __slots__ = ("sink", "size")
    size: int
    sink: IO[bytes] | None

    def __init__(self, size: int, sink: IO[bytes] | None) -> None:
        self.size = size
        self.sink = sink


Value: TypeAlias = "bytes | Atom | StreamedLiteral | list[Value] | None"

_ATOM = re.compile(rb"[^ ()\[{\x00-\x1f\x7f]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"')

#: a literal announced at the end of a line ("~{n}" is a literal8, RFC 3516), and a
#: quoted string's escapes: compiled when first needed (`literal_at_end`, `_unescape`),
#: which a sync where nothing changed never is (~0.7M instructions of its start-up)
_LITERAL_AT_END: re.Pattern[bytes] | None = None
_UNESCAPE: re.Pattern[bytes] | None = None


def _literal_pattern() -> re.Pattern[bytes]:
    global _LITERAL_AT_END
    if _LITERAL_AT_END is None:  # (two threads may both compile it: the same pattern)
        _LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}$")
    return _LITERAL_AT_END


def literal_at_end(line: bytes) -> re.Match[bytes] | None:
    """The literal announced at the end of `line` (`{n}`, `{n+}`, `~{n}`), if any. Most
    lines end otherwise and are not searched (`$` also matches before a final newline)."""
    if not line.endswith((b"}", b"}\n")):
        return None
    return _literal_pattern().search(line)


def _unescape(raw: bytes) -> bytes:
    """A quoted string's content without its backslash escapes."""
    global _UNESCAPE
    if b"\\" not in raw:
        return raw
    if _UNESCAPE is None:
        _UNESCAPE = re.compile(rb"\\(.)")
    return _UNESCAPE.sub(rb"\1", raw)


class ParseError(ProtocolError):
    """A response that does not follow the IMAP grammar."""


# --- responses ---------------------------------------------------------------------


class StatusResponse(Record):
    """OK / NO / BAD / PREAUTH / BYE, tagged or untagged, with its response code."""

    __slots__ = ("code", "code_args", "kind", "tag", "text")
    tag: str | None
    kind: str
    code: str | None
    code_args: list[Value]
    text: str

    def __init__(
        self,
        tag: str | None,
        kind: str,
        code: str | None = None,
        code_args: list[Value] | None = None,
        text: str = "",
    ) -> None:
        self.tag = tag
        self.kind = kind
        self.code = code
        self.code_args = [] if code_args is None else code_args
        self.text = text

    @property
    def ok(self) -> bool:
        return self.kind == "OK"

    def code_number(self) -> int | None:
        if self.code_args and isinstance(self.code_args[0], Atom):
            return to_int(self.code_args[0])
        return None

    def describe(self) -> str:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.kind} {code}{self.text}".strip()


class Untagged(Record):
    """`* [n] NAME values...`; `status` is set for OK/NO/BAD/PREAUTH/BYE."""

    __slots__ = ("fetch", "name", "number", "status", "values")
    _hidden = ("fetch",)
    name: str
    number: int | None
    values: list[Value]
    status: StatusResponse | None
    #: a FETCH already decoded by the fast path (see `_fast_fetch`); not in repr or ==
    fetch: FetchResult | None

    def __init__(
        self,
        name: str,
        number: int | None = None,
        values: list[Value] | None = None,
        status: StatusResponse | None = None,
        fetch: FetchResult | None = None,
    ) -> None:
        self.name = name
        self.number = number
        self.values = [] if values is None else values
        self.status = status
        self.fetch = fetch


class Continuation(Record):
    """`+ text` (base64 challenge for AUTHENTICATE, go-ahead for literals)."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        self.text = text


Response: TypeAlias = "StatusResponse | Untagged | Continuation"

STATUS_KINDS = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})


# --- the lexer -----------------------------------------------------------------------


class _Lexer:
    """Walks the lines of one response; a literal announcement at the end of a line
    is replaced by the literal's value and the lexer continues on the next line."""

    def __init__(self, parts: Sequence[bytes], literals: Sequence[Value]) -> None:
        self.parts = parts
        self.literals = literals
        self.index = 0
        self.cur = parts[0] if parts else b""
        self.pos = 0

    def error(self, what: str) -> ParseError:
        line = b" ".join(self.parts)[:200]
        return ParseError(
            f"cannot parse the IMAP server's response ({what}): {line!r}",
            hint="the server sent something mailbag does not understand; "
            "run with --trace FILE and report it",
            cause="parse",
        )

    def at_end(self) -> bool:
        return self.pos >= len(self.cur) and self.index >= len(self.parts) - 1

    def peek(self) -> int:
        return self.cur[self.pos] if self.pos < len(self.cur) else -1

    def skip_spaces(self) -> None:
        while self.pos < len(self.cur) and self.cur[self.pos] == 0x20:
            self.pos += 1

    def rest_of_line(self) -> bytes:
        text = self.cur[self.pos :]
        self.pos = len(self.cur)
        return text

    def value(self) -> Value:
        self.skip_spaces()
        c = self.peek()
        if c == -1:
            raise self.error("value expected")
        if c == 0x28:  # (
            self.pos += 1
            items: list[Value] = []
            while True:
                self.skip_spaces()
                c = self.peek()
                if c == 0x29:  # )
                    self.pos += 1
                    return items
                if c == -1:
                    raise self.error("unclosed list")
                items.append(self.value())
        if c == 0x22:  # "
            return self.quoted()
        if c == 0x7B or c == 0x7E:  # { or ~{ (literal8)
            m = _literal_pattern().match(self.cur, self.pos)
            if m and m.end() == len(self.cur):
                return self.literal()
        return self.atom()

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.cur, self.pos)
        if m is None:
            raise self.error("unterminated quoted string")
        self.pos = m.end()
        raw = m.group(1)
        return _unescape(raw)

    def literal(self) -> Value:
        if self.index >= len(self.literals):
            raise self.error("literal announced but missing")
        value = self.literals[self.index]
        self.index += 1
        self.cur = self.parts[self.index] if self.index < len(self.parts) else b""
        self.pos = 0
        return value

    def atom(self) -> Value:
        cur = self.cur
        start = self.pos
        m = _ATOM.match(cur, start)
        i = m.end() if m else start
        if i < len(cur) and cur[i] == 0x5B:  # [ section ] inside an atom: BODY[HEADER.FIELDS (TO)]
            close = cur.find(b"]", i)
            if close < 0:
                raise self.error("unclosed [")
            i = close + 1
            if i < len(cur) and cur[i] == 0x3C:  # <origin>
                gt = cur.find(b">", i)
                if gt < 0:
                    raise self.error("unclosed <")
                i = gt + 1
        if i == start:
            raise self.error(f"unexpected {chr(cur[i])!r}")
        self.pos = i
        text = cur[start:i].decode("latin-1")
        if len(text) == 3 and text.upper() == "NIL":
            return None
        return Atom(text)


# --- entry points ----------------------------------------------------------------------


def split_raw(raw: bytes) -> tuple[list[bytes], list[Value]]:
    """Cut one complete response (CRLF line ends, literals inline) into parts and literals."""
    parts: list[bytes] = []
    literals: list[Value] = []
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        line = raw[pos:] if eol < 0 else raw[pos:eol]
        parts.append(line)
        m = literal_at_end(line)
        if eol < 0 or m is None:
            return parts, literals
        size = int(m.group(1))
        start = eol + 2
        literals.append(raw[start : start + size])
        pos = start + size


def parse_raw(raw: bytes) -> Response:
    """Parse one complete response given as bytes (CRLF line ends, literals inline)."""
    parts, literals = split_raw(raw)
    return parse_response(parts, literals)


def parse_response(parts: Sequence[bytes], literals: Sequence[Value] = ()) -> Response:
    if len(parts) == 1:
        fast = _fast_fetch(parts[0])
        if fast is not None:
            return fast
    elif len(parts) == 2 and parts[1] == b")" and len(literals) == 1:
        # a message body as the last item: what a download reads 20,000 times
        fast = _fast_fetch(parts[0], literals[0])
        if fast is not None:
            return fast
    lx = _Lexer(parts, literals)
    first = lx.cur
    if first.startswith(b"+"):
        return Continuation(first[1:].strip().decode("utf-8", "replace"))
    sp = first.find(b" ")
    if sp <= 0:
        raise lx.error("no tag")
    tag = first[:sp].decode("latin-1")
    lx.pos = sp + 1
    word = _word(lx)
    if tag == "*":
        number = None
        if word.isdigit():
            number = int(word)
            word = _word(lx)
        name = word.upper()
        if name in STATUS_KINDS and number is None:
            status = _resp_text(lx, None, name)
            return Untagged(name, None, [], status)
        return Untagged(name, number, _values(lx))
    kind = word.upper()
    if kind not in STATUS_KINDS:
        raise lx.error(f"unknown tagged response {kind!r}")
    return _resp_text(lx, tag, kind)


_TOKEN = re.compile(
    rb"( *(?:(\()|(\))|(\"((?:[^\"\\\r\n]|\\.)*)\")|(~?\{\d+\+?\}$)"
    rb"|([^ ()\[{\"\x00-\x1f\x7f]+(?:\[[^\]]*\](?:<[^>]*>)?)?)))"
)


def _values(lx: _Lexer) -> list[Value]:
    """The rest of the response as values. The hot loop of every FETCH listing: each
    line is cut into tokens by one `findall` (no per-character Python work)."""
    top: list[Value] = []
    stack: list[list[Value]] = []
    current = top
    while True:
        cur, pos = lx.cur, lx.pos
        tokens = _TOKEN.findall(cur, pos)
        consumed = pos + sum(len(t[0]) for t in tokens)
        if consumed != len(cur) and cur[consumed:].strip(b" "):
            lx.pos = consumed
            raise lx.error("unexpected character")
        literal = False
        for _, opener, closer, quoted, inner, lit, atom in tokens:
            if atom:
                text = atom.decode("latin-1")
                current.append(None if len(text) == 3 and text.upper() == "NIL" else Atom(text))
            elif opener:
                new: list[Value] = []
                current.append(new)
                stack.append(current)
                current = new
            elif closer:
                if not stack:
                    raise lx.error("unbalanced )")
                current = stack.pop()
            elif quoted:
                current.append(_unescape(inner))
            elif lit:
                literal = True
        if not literal:
            if stack:
                raise lx.error("unclosed list")
            lx.pos = len(cur)
            return top
        lx.pos = len(cur)
        current.append(lx.literal())


#: `_fast_fetch`'s patterns (a FETCH line's start, one item, a body item whose literal ends
#: the line: `BODY[] {1234}`), compiled when the first FETCH line comes (`_fast_patterns`):
#: ~0.8 ms, and a sync where nothing changed reads none
_FAST: tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes]] | None = None
_NO_LITERAL = object()


def _fast_patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes]]:
    global _FAST
    if _FAST is None:  # (two threads may both compile them: the same patterns)
        _FAST = (
            re.compile(rb"\* (\d+) FETCH \("),
            re.compile(
                rb"(?:(UID|RFC822\.SIZE) (\d+)|(FLAGS) \(([^()\"{}\x00-\x1f]*)\)"
                rb"|(MODSEQ) \((\d+)\)|(INTERNALDATE) \"([^\"\\\x00-\x1f]*)\")( |\)$)",
                re.IGNORECASE,
            ),
            re.compile(
                rb"((?:BODY|BINARY)\[[^\]\x00-\x1f]*\](?:<\d+>)?|RFC822(?:\.TEXT|\.HEADER)?)"
                rb" ~?\{\d+\+?\}$",
                re.IGNORECASE,
            ),
        )
    return _FAST


def _fast_fetch(line: bytes, literal: object = _NO_LITERAL) -> Untagged | None:
    """The common FETCH lines decoded with one regex per item; anything else takes the
    general path. These are flag listings (`UID`, `FLAGS`, `MODSEQ`, `RFC822.SIZE`)
    and downloads (those plus `INTERNALDATE` and a body literal at the end, given as
    `literal`): most of what a sync reads, so this is where parsing time goes."""
    if b" FETCH (" not in line:
        return None  # (what the first pattern needs: no FETCH line, nothing compiled)
    fast_head, fast_item, fast_body = _FAST or _fast_patterns()
    head = fast_head.match(line)
    if head is None:
        return None
    seq = int(head.group(1))
    fetch = FetchResult(seq=seq)
    items: list[Value] = []
    pos = head.end()
    match = fast_item.match
    while True:
        m = match(line, pos)
        if m is None:
            if literal is _NO_LITERAL or not isinstance(literal, (bytes, StreamedLiteral)):
                return None
            body = fast_body.match(line, pos)
            if body is None:
                return None
            key = body.group(1).decode("latin-1")
            fetch.bodies[key.upper()] = literal
            items += [Atom(key), literal]
            return Untagged("FETCH", seq, [items], None, fetch)
        name, number, flags_name, flags, modseq_name, modseq, date_name, date, end = m.groups()
        if flags_name is not None:
            fetch.flags = tuple(flags.decode("latin-1").split())
            items += [Atom(flags_name.decode("ascii")), [Atom(f) for f in fetch.flags]]
        elif modseq_name is not None:
            fetch.modseq = int(modseq)
            items += [Atom(modseq_name.decode("ascii")), [Atom(modseq.decode("ascii"))]]
        elif date_name is not None:
            if date:
                try:
                    fetch.internaldate = parse_internaldate(date.decode("latin-1"))
                except ProtocolError:
                    return None  # the general path reports it
            items += [Atom(date_name.decode("ascii")), date]
        else:
            key = name.decode("ascii")
            if key.upper() == "UID":
                fetch.uid = int(number)
            else:
                fetch.size = int(number)
            items += [Atom(key), Atom(number.decode("ascii"))]
        pos = m.end()
        if end == b")":
            if literal is not _NO_LITERAL:
                return None  # the literal was not at the end: not ours to decode
            return Untagged("FETCH", seq, [items], None, fetch)


# --- flag listings: a scanner over whole buffered lines ------------------------------------

# A folder read without CONDSTORE is one `UID FETCH 1:* (FLAGS)`: one line per message,
# `* 12 FETCH (UID 345 FLAGS (\Seen $Label1))` (a few servers put FLAGS first). Read
# response by response (a `bytes` per line, `parse_response`, an `Untagged` and a
# `FetchResult` per message) 20,000 of them took 172 ms of a 0.44 s no-op re-sync, where
# mbsync's whole run took 0.13 s; Dovecot sends them in ~25 ms. So these lines, and only
# these, are cut by two regex passes over everything buffered (`scan_flag_lines`: ~2 ms
# for 20,000); any other line (literals, MODSEQ, EXISTS, EXPUNGE, the tagged answer,
# odd spacing, garbage) stops the scan and goes to `parse_response`.
_FLAGS_TEXT = rb"[^\x00-\x1f\x7f()\"{}\[\]%*]*"


def _flag_line(group: bytes) -> bytes:
    """The pattern of a flag line, its UID and flags in groups opened by `group`."""
    uid, flags = group + rb"\d{1,10})", group + _FLAGS_TEXT + b")"
    return (
        rb"\* \d+ FETCH \((?:UID " + uid + rb" FLAGS \(" + flags + rb"\)"
        rb"|FLAGS \(" + flags + rb"\) UID " + uid + rb")\)\r\n"
    )


@functools.cache
def _flag_line_patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(a flag line; the flag lines at the start, whose end is where the first other line
    starts, in one pass without captures: ~2.5 ms for 20,000 lines, where looking for
    the first line that is not one, `^(?!...)` tried at each line, took ~6 ms),
    compiled on first use (~1 ms): a sync that reads no whole folder needs neither."""
    return (
        re.compile(_flag_line(b"(")),
        re.compile(rb"(?:" + _flag_line(b"(?:") + rb")*+"),
    )


#: what a flag listing yields per message: (UID, flags)
UidFlags: TypeAlias = "tuple[int, tuple[str, ...]]"


class FlagTexts(dict[bytes, tuple[str, ...]]):
    """Flag tuples by their text on the wire, made on first sight: a folder has few
    distinct ones, so the same tuple objects (and interned words) are shared."""

    __slots__ = ()

    def __missing__(self, text: bytes) -> tuple[str, ...]:
        flags = self[text] = tuple(sys.intern(w) for w in text.decode("latin-1").split())
        return flags


def scan_flag_lines(data: bytes, known: FlagTexts) -> tuple[list[int], list[tuple[str, ...]], int]:
    """UIDs and flags (side by side) of the plain flag lines at the start of `data`
    (whole lines, CRLF), and how many bytes they take: the scan stops at the first
    other line, which the caller gives to `parse_response`. `known` holds the flag
    tuples seen so far (the caller bounds it). What is decoded here equals what
    `parse_response` and `parse_fetch` give for the same lines. Columns, not pairs:
    a whole buffer is decoded in C loops (`map`), with no Python step per line."""
    flag_line, flag_lines = _flag_line_patterns()
    lines = flag_lines.match(data)  # (always matches, maybe nothing)
    end = lines.end() if lines is not None else 0
    hits = flag_line.findall(data, 0, end) if end else []
    if not hits:
        return [], [], 0
    uid_a, flags_a, flags_b, uid_b = zip(*hits, strict=True)
    if not any(uid_b):  # every line with the UID first, as Dovecot sends them
        uids, texts = list(map(int, uid_a)), flags_a
    elif not any(uid_a):  # every line with the FLAGS first
        uids, texts = list(map(int, uid_b)), flags_b
    else:
        uids = [int(a or b) for a, b in zip(uid_a, uid_b, strict=True)]
        texts = tuple(fa if ua else fb for ua, fa, fb in zip(uid_a, flags_a, flags_b, strict=True))
    return uids, list(map(known.__getitem__, texts)), end


# --- identities: flags, size and Message-ID of every message, for pairing ---------------

# After a UIDVALIDITY change every message of a folder is paired again by Message-ID and
# size: `UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`, one
# answer per message with a short literal, `* 7 FETCH (UID 9 FLAGS (\Seen) RFC822.SIZE
# 3570 BODY[HEADER.FIELDS (MESSAGE-ID)] {37}` CRLF, the header block, `)` CRLF. Read
# response by response (two lines, a literal, an `Untagged` and a `FetchResult` each)
# that was two thirds of the client's time for a 100,000 message folder; these answers,
# in exactly this shape, are cut here as the flag lines are, and anything else goes to
# `parse_response`.


@functools.cache
def _identity_head() -> re.Pattern[bytes]:
    """The line that starts an identity answer (compiled on first use: only a re-pair
    reads them)."""
    return re.compile(
        rb"\* \d+ FETCH \(UID (\d{1,10}) FLAGS \((" + _FLAGS_TEXT + rb")\) RFC822\.SIZE (\d{1,12}) "
        rb"BODY\[HEADER\.FIELDS \(MESSAGE-ID\)\] \{(\d{1,6})\}\r\n"
    )


#: what an identity listing yields per message: (UID, flags, size, the header block)
UidIdentity: TypeAlias = "tuple[int, tuple[str, ...], int, bytes]"


def scan_identity_lines(
    data: bytes, known: dict[bytes, tuple[str, ...]], most: int = -1, at: int = 0
) -> tuple[list[UidIdentity], int]:
    """(UID, flags, size, header block) of the plain identity answers in `data` from
    `at` (at most `most` of them: -1, all), and how many bytes they take (as
    `scan_flag_lines`): the scan stops at the first other answer, or one whose literal
    is not all in `data`. What is decoded here equals what `parse_response` and
    `parse_fetch` give for the same answer."""
    out: list[UidIdentity] = []
    append = out.append
    match = _identity_head().match
    pos = at
    while len(out) != most and (m := match(data, pos)) is not None:
        start = m.end()
        end = start + int(m.group(4))
        if data[end : end + 3] != b")\r\n":
            break  # (cut off here, or more after the literal: the general reader's)
        text = m.group(2)
        flags = known.get(text)
        if flags is None:
            flags = known[text] = tuple(sys.intern(w) for w in text.decode("latin-1").split())
        append((int(m.group(1)), flags, int(m.group(3)), data[start:end]))
        pos = end + 3
    return out, pos - at


# The same answers, when the header block is the usual one line, `Message-ID: <...>`
# CRLF CRLF, or two when folded before the "<" (as Python's email package folds a long
# one), or the empty block of a message without one (else 5% of a folder without
# Message-IDs cut the runs to ~20 answers), are cut a run at a time in C, as the flag
# lines are (one pass for the run's extent, one `findall`), and given as the bytes on
# the wire, side by side (`IdentityRun`): pairing again compares whole runs with the
# index's rows as strings (`sync.keep`), with no Python step per message. The
# Message-ID's characters are printable ASCII but for "<" and ">" inside: for those, the
# text between the brackets is what `store.envelope.message_id_of` gives.


def _identity_answer(group: bytes) -> bytes:
    """The pattern of a usual identity answer, its parts in groups opened by `group`:
    UID, flags, size, the literal's length, the literal, the Message-ID."""
    uid, size, length = (group + rb"\d{1,%d})" % n for n in (10, 12, 4))
    flags = group + _FLAGS_TEXT + b")"
    message_id = group + rb"<[!-;=?-~]{1,1998}>)"
    # (or no header line at all, the usual answer for a message without one: its
    # Message-ID is then empty, as `message_id_of` gives it)
    head = group + rb"(?:(?i:message-id):[ \t]*(?:\r\n[ \t]+)?" + message_id + rb"[ \t]*\r\n)?\r\n)"
    return (
        rb"\* \d+ FETCH \(UID "
        + uid
        + rb" FLAGS \("
        + flags
        + rb"\) RFC822\.SIZE "
        + size
        + rb" BODY\[HEADER\.FIELDS \(MESSAGE-ID\)\] \{"
        + length
        + rb"\}\r\n"
        + head
        + rb"\)\r\n"
    )


@functools.cache
def _identity_run_patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(a usual identity answer; the run of them at a place, without captures)."""
    return (
        re.compile(_identity_answer(b"(")),
        re.compile(rb"(?:" + _identity_answer(b"(?:") + rb")*+"),
    )


class IdentityRun(NamedTuple):
    """Usual identity answers in a row, as their bytes on the wire, side by side: UIDs
    and sizes (digits), flags (as between the parentheses), Message-IDs (with their
    brackets; empty for an answer without one)."""

    uids: Sequence[bytes]
    flags: Sequence[bytes]
    sizes: Sequence[bytes]
    message_ids: Sequence[bytes]


#: what an identity listing read by runs yields: a run, or an answer of another shape
IdentityItem: TypeAlias = "IdentityRun | UidIdentity"


def scan_identity_runs(
    data: bytes, known: dict[bytes, tuple[str, ...]]
) -> tuple[list[IdentityItem], int]:
    """The identity answers at the start of `data`, in order: runs of usual ones as
    `IdentityRun`s, any other as `scan_identity_lines` gives it; and how many bytes
    they take (as `scan_identity_lines`: the scan stops at the first other answer)."""
    one, run = _identity_run_patterns()
    out: list[IdentityItem] = []
    pos = 0
    while True:
        m = run.match(data, pos)
        end = m.end() if m is not None else pos
        if end > pos:
            uids, flags, sizes, lengths, literals, ids = zip(
                *one.findall(data, pos, end), strict=True
            )
            if list(map(int, lengths)) != list(map(len, literals)):
                # (a literal whose length says otherwise: answer by answer, as before)
                found, used = scan_identity_lines(data, known, at=pos)
                out.extend(found)
                return out, pos + used
            out.append(IdentityRun(uids, flags, sizes, ids))
            pos = end
        found, used = scan_identity_lines(data, known, 1, pos)
        if not found:
            return out, pos
        out.extend(found)
        pos += used


# --- header blocks: `UID FETCH uids (UID BODY.PEEK[HEADER])` -------------------------------
# Pairing messages without a Message-ID again asks for their header blocks, one answer
# each, `* 7 FETCH (UID 9 BODY[HEADER] {312}` CRLF, the block, `)` CRLF: cut here a
# buffer at a time (no `Untagged` or `FetchResult` per answer), anything else goes to
# `parse_response`.


@functools.cache
def _header_answer() -> re.Pattern[bytes]:
    return re.compile(rb"\* \d+ FETCH \(UID (\d{1,10}) BODY\[HEADER\] \{(\d{1,9})\}\r\n")


def scan_header_answers(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(UID, header block) of the plain header answers at the start of `data`, and how
    many bytes they take (as `scan_flag_lines`): the scan stops at the first other
    answer, or one whose literal is not all in `data`. What is decoded here equals what
    `parse_response` and `parse_fetch` give for the same answer."""
    out: list[tuple[int, bytes]] = []
    match = _header_answer().match
    pos = 0
    while (m := match(data, pos)) is not None:
        start = m.end()
        end = start + int(m.group(2))
        if data[end : end + 3] != b")\r\n":
            break  # (cut off here, or more after the literal: the general reader's)
        out.append((int(m.group(1)), data[start:end]))
        pos = end + 3
    return out, pos


def _word(lx: _Lexer) -> str:
    lx.skip_spaces()
    start = lx.pos
    end = lx.cur.find(b" ", start)
    if end < 0:
        end = len(lx.cur)
    lx.pos = end
    return lx.cur[start:end].decode("latin-1")


def _resp_text(lx: _Lexer, tag: str | None, kind: str) -> StatusResponse:
    lx.skip_spaces()
    rest = lx.rest_of_line()
    code: str | None = None
    args: list[Value] = []
    if rest.startswith(b"["):
        close = _code_end(rest)
        if close < 0:
            # some servers forget the "]"; keep the text rather than fail
            return StatusResponse(tag, kind, None, [], rest.decode("utf-8", "replace"))
        inner = rest[1:close]
        rest = rest[close + 1 :].lstrip(b" ")
        name, _, arg_text = inner.partition(b" ")
        code = name.decode("latin-1").upper()
        if arg_text:
            sub = _Lexer([arg_text], [])
            while True:
                sub.skip_spaces()
                if sub.peek() == -1:
                    break
                args.append(sub.value())
    return StatusResponse(tag, kind, code, args, rest.decode("utf-8", "replace"))


def _code_end(text: bytes) -> int:
    depth = 0
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted:
            if c == 0x5C:
                i += 1
            elif c == 0x22:
                quoted = False
        elif c == 0x22:
            quoted = True
        elif c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
        elif c == 0x5D and depth <= 0:
            return i
        i += 1
    return -1


# --- value helpers -------------------------------------------------------------------------


def to_int(value: Value) -> int | None:
    if isinstance(value, (str, bytes)) and value.isdigit():
        return int(value)
    return None


def to_text(value: Value) -> str | None:
    """A string value as text (UTF-8, bad bytes replaced); None for NIL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    raise ProtocolError(f"expected a string, got {value!r}", cause="parse")


def to_bytes(value: Value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1")
    raise ProtocolError(f"expected a string, got {value!r}", cause="parse")


def to_list(value: Value) -> list[Value]:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    raise ProtocolError(f"expected a list, got {value!r}", cause="parse")


def flag_tuple(value: Value) -> tuple[str, ...]:
    return tuple(str(v) for v in to_list(value) if isinstance(v, (str, bytes)) and v != b"")


# --- sequence sets -------------------------------------------------------------------------


class UidSet:
    """A set of UIDs kept as ranges, so `1:4294967295` costs nothing."""

    def __init__(self, ranges: Sequence[tuple[int, int]] = ()) -> None:
        self.ranges: list[tuple[int, int]] = [(min(a, b), max(a, b)) for a, b in ranges]

    @classmethod
    def parse(cls, text: str) -> UidSet:
        ranges = []
        if text:
            for piece in text.split(","):
                a, sep, b = piece.partition(":")
                if not a.isdigit() or (sep and not b.isdigit()):
                    raise ProtocolError(f"bad sequence set {text!r}", cause="parse")
                ranges.append((int(a), int(b) if sep else int(a)))
        return cls(ranges)

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and any(a <= uid <= b for a, b in self.ranges)

    def __iter__(self) -> Iterator[int]:
        for a, b in self.ranges:
            yield from range(a, b + 1)

    def __len__(self) -> int:
        return sum(b - a + 1 for a, b in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and sorted(set(self)) == sorted(set(other))

    def __repr__(self) -> str:
        return f"UidSet({format_sequence_set(self)!r})"


def format_sequence_set(uids: UidSet | Sequence[int] | Iterator[int]) -> str:
    """`[1,2,3,7]` -> `1:3,7` (sorted, duplicates dropped)."""
    if isinstance(uids, UidSet):
        return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in sorted(uids.ranges))
    ordered = sorted(set(uids))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


# --- CAPABILITY ------------------------------------------------------------------------------


def parse_capabilities(values: Sequence[Value]) -> frozenset[str]:
    return frozenset(str(v).upper() for v in values if isinstance(v, str))


# --- FETCH -----------------------------------------------------------------------------------


class Address(NamedTuple):
    """One address of an ENVELOPE (RFC 3501 address structure)."""

    name: str | None
    mailbox: str | None
    host: str | None

    @property
    def email(self) -> str:
        if self.mailbox and self.host:
            return f"{self.mailbox}@{self.host}"
        return self.mailbox or ""


class Envelope(NamedTuple):
    """The ENVELOPE of a message, as the server parsed its header."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


BodyValue: TypeAlias = "bytes | StreamedLiteral | None"


class FetchResult(Record):
    """One `* n FETCH (...)` response. `bodies` is keyed by the item name as the server
    sent it, upper-cased: `BODY[]`, `BODY[HEADER.FIELDS (FROM TO)]`, `BODY[]<0>`, ..."""

    __slots__ = (
        "bodies",
        "bodystructure",
        "emailid",
        "envelope",
        "flags",
        "internaldate",
        "modseq",
        "other",
        "seq",
        "size",
        "threadid",
        "uid",
        "x_gm_labels",
        "x_gm_msgid",
        "x_gm_thrid",
    )
    seq: int
    uid: int | None
    flags: tuple[str, ...] | None
    size: int | None
    internaldate: dt.datetime | None
    modseq: int | None
    envelope: Envelope | None
    bodystructure: Value
    bodies: dict[str, BodyValue]
    x_gm_msgid: int | None
    x_gm_thrid: int | None
    x_gm_labels: tuple[str, ...] | None
    emailid: str | None
    threadid: str | None
    other: dict[str, Value]

    def __init__(
        self,
        seq: int,
        uid: int | None = None,
        flags: tuple[str, ...] | None = None,
        size: int | None = None,
        internaldate: dt.datetime | None = None,
        modseq: int | None = None,
        envelope: Envelope | None = None,
        bodystructure: Value = None,
        bodies: dict[str, BodyValue] | None = None,
        x_gm_msgid: int | None = None,
        x_gm_thrid: int | None = None,
        x_gm_labels: tuple[str, ...] | None = None,
        emailid: str | None = None,
        threadid: str | None = None,
        other: dict[str, Value] | None = None,
    ) -> None:
        self.seq = seq
        self.uid = uid
        self.flags = flags
        self.size = size
        self.internaldate = internaldate
        self.modseq = modseq
        self.envelope = envelope
        self.bodystructure = bodystructure
        self.bodies = {} if bodies is None else bodies
        self.x_gm_msgid = x_gm_msgid
        self.x_gm_thrid = x_gm_thrid
        self.x_gm_labels = x_gm_labels
        self.emailid = emailid
        self.threadid = threadid
        self.other = {} if other is None else other

    @property
    def body(self) -> BodyValue:
        """The whole message (BODY[] / BODY.PEEK[] / RFC822 / BINARY[])."""
        for key in ("BODY[]", "RFC822", "BINARY[]"):
            if key in self.bodies:
                return self.bodies[key]
        return None


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}


@functools.cache
def _date_time() -> re.Pattern[str]:
    """An INTERNALDATE (compiled on first use: a sync that downloads nothing reads none)."""
    return re.compile(
        r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$"
    )


def parse_internaldate(text: str) -> dt.datetime:
    """`17-Jul-1996 02:44:25 -0700` -> aware datetime (month names are not localised)."""
    m = _date_time().match(text)
    if not m or m.group(2).upper() not in _MONTHS:
        raise ProtocolError(f"bad INTERNALDATE {text!r}", cause="parse")
    import datetime as dt

    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    tz = _zone(sign, oh, om)
    return dt.datetime(int(year), _MONTHS[mon.upper()], int(day), int(hh), int(mm), int(ss), 0, tz)


@functools.lru_cache(maxsize=64)
def _zone(sign: str, oh: str, om: str) -> dt.timezone:
    import datetime as dt

    offset = dt.timedelta(hours=int(oh), minutes=int(om))
    return dt.timezone(-offset if sign == "-" else offset)


def format_internaldate(when: dt.datetime) -> str:
    """Aware datetime -> `"17-Jul-1996 02:44:25 -0700"` (quoted, for APPEND)."""
    import datetime as dt

    if when.tzinfo is None:
        when = when.astimezone()
    offset = when.utcoffset() or dt.timedelta(0)
    total = int(offset.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    total = abs(total)
    months = list(_MONTHS)
    zone = f"{sign}{total // 60:02d}{total % 60:02d}"
    return (
        f'"{when.day:02d}-{months[when.month - 1].title()}-{when.year:04d} '
        f'{when.hour:02d}:{when.minute:02d}:{when.second:02d} {zone}"'
    )


def _addresses(value: Value) -> tuple[Address, ...]:
    out = []
    for item in to_list(value):
        parts = to_list(item)
        if len(parts) != 4:
            raise ProtocolError(f"bad address in ENVELOPE: {item!r}", cause="parse")
        out.append(Address(to_text(parts[0]), to_text(parts[2]), to_text(parts[3])))
    return tuple(out)


def parse_envelope(value: Value) -> Envelope:
    f = to_list(value)
    if len(f) < 10:
        raise ProtocolError(f"ENVELOPE has {len(f)} fields, 10 expected", cause="parse")
    return Envelope(
        date=to_text(f[0]),
        subject=to_text(f[1]),
        from_=_addresses(f[2]),
        sender=_addresses(f[3]),
        reply_to=_addresses(f[4]),
        to=_addresses(f[5]),
        cc=_addresses(f[6]),
        bcc=_addresses(f[7]),
        in_reply_to=to_text(f[8]),
        message_id=to_text(f[9]),
    )


_BODY_ITEMS = ("BODY[", "BINARY[", "RFC822", "BINARY.SIZE[")


def parse_fetch(u: Untagged) -> FetchResult:
    if u.fetch is not None:
        return u.fetch
    if u.number is None or not u.values:
        raise ProtocolError("FETCH response without a sequence number or items", cause="parse")
    items = to_list(u.values[0])
    if len(items) % 2:
        raise ProtocolError(f"FETCH items do not pair up: {items!r}"[:300], cause="parse")
    r = FetchResult(seq=u.number)
    for i in range(0, len(items), 2):
        key_value, value = items[i], items[i + 1]
        if not isinstance(key_value, str):
            raise ProtocolError(f"bad FETCH item name {key_value!r}", cause="parse")
        key = key_value.upper()
        if key == "UID":
            r.uid = to_int(value)
        elif key == "FLAGS":
            r.flags = flag_tuple(value)
        elif key == "RFC822.SIZE":
            r.size = to_int(value)
        elif key == "INTERNALDATE":
            text = to_text(value)
            r.internaldate = parse_internaldate(text) if text else None
        elif key == "MODSEQ":
            r.modseq = to_int(to_list(value)[0]) if value else None
        elif key == "ENVELOPE":
            r.envelope = parse_envelope(value)
        elif key in ("BODYSTRUCTURE", "BODY"):
            r.bodystructure = value
        elif key == "X-GM-MSGID":
            r.x_gm_msgid = to_int(value)
        elif key == "X-GM-THRID":
            r.x_gm_thrid = to_int(value)
        elif key == "X-GM-LABELS":
            r.x_gm_labels = tuple(to_text(v) or "" for v in to_list(value))
        elif key == "EMAILID":
            r.emailid = to_text(to_list(value)[0]) if value else None
        elif key == "THREADID":
            r.threadid = to_text(to_list(value)[0]) if value else None
        elif key.startswith(_BODY_ITEMS):
            if value is not None and not isinstance(value, (bytes, StreamedLiteral)):
                if isinstance(value, str):
                    value = value.encode("latin-1")
                else:
                    raise ProtocolError(f"bad {key} value", cause="parse")
            r.bodies[key] = value
        else:
            r.other[key] = value
    return r


# --- LIST / STATUS / SEARCH / ESEARCH / VANISHED -------------------------------------------

SPECIAL_USE = ("\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK", "\\SENT", "\\TRASH")


class MailboxInfo(NamedTuple):
    """One LIST/LSUB line. `name` is decoded; `raw_name` is what goes back on the wire."""

    name: str
    raw_name: bytes
    delimiter: str | None
    flags: tuple[str, ...]

    @property
    def special_use(self) -> str | None:
        """`\\Sent`, `\\Drafts`, ... (RFC 6154), as the server spelled it."""
        for f in self.flags:
            if f.upper() in SPECIAL_USE:
                return f
        return None

    @property
    def selectable(self) -> bool:
        upper = {f.upper() for f in self.flags}
        return not ({"\\NOSELECT", "\\NONEXISTENT"} & upper)


def decode_name(raw: bytes, utf8: bool = False) -> str:
    """Mailbox name from the wire; falls back to the raw text when the encoding is broken."""
    if utf8:
        return raw.decode("utf-8", "replace")
    try:
        return decode_mailbox(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def parse_list(u: Untagged, utf8: bool = False) -> MailboxInfo:
    if len(u.values) < 3:
        raise ProtocolError(f"short {u.name} response", cause="parse")
    flags = flag_tuple(u.values[0])
    delim = to_text(u.values[1])
    raw = to_bytes(u.values[2]) or b""
    if not isinstance(u.values[2], (bytes, str)):
        raise ProtocolError(f"bad mailbox name in {u.name}", cause="parse")
    return MailboxInfo(decode_name(raw, utf8), raw, delim, flags)


class MailboxStatus(NamedTuple):
    """What STATUS (or LIST-STATUS) says about a mailbox."""

    name: str
    messages: int | None = None
    recent: int | None = None
    uidnext: int | None = None
    uidvalidity: int | None = None
    unseen: int | None = None
    highestmodseq: int | None = None
    size: int | None = None


def parse_status(u: Untagged, utf8: bool = False) -> MailboxStatus:
    if len(u.values) < 2:
        raise ProtocolError("short STATUS response", cause="parse")
    raw = to_bytes(u.values[0]) or b""
    items = to_list(u.values[1])
    found: dict[str, int | None] = {}
    for i in range(0, len(items) - 1, 2):
        found[str(items[i]).upper()] = to_int(items[i + 1])
    return MailboxStatus(
        name=decode_name(raw, utf8),
        messages=found.get("MESSAGES"),
        recent=found.get("RECENT"),
        uidnext=found.get("UIDNEXT"),
        uidvalidity=found.get("UIDVALIDITY"),
        unseen=found.get("UNSEEN"),
        highestmodseq=found.get("HIGHESTMODSEQ"),
        size=found.get("SIZE"),
    )


class SearchResult(Record):
    """SEARCH or ESEARCH, one shape. `uids` is a UidSet (ranges)."""

    __slots__ = ("count", "max", "min", "modseq", "tag", "uids")
    uids: UidSet
    modseq: int | None
    count: int | None
    min: int | None
    max: int | None
    tag: str | None

    def __init__(
        self,
        uids: UidSet,
        modseq: int | None = None,
        count: int | None = None,
        min: int | None = None,
        max: int | None = None,
        tag: str | None = None,
    ) -> None:
        self.uids = uids
        self.modseq = modseq
        self.count = count
        self.min = min
        self.max = max
        self.tag = tag


def parse_search(u: Untagged) -> SearchResult:
    # runs of consecutive numbers become one range (a whole mailbox is usually one)
    ranges: list[tuple[int, int]] = []
    count = 0
    modseq = None
    for v in u.values:
        if isinstance(v, list):  # (MODSEQ n), RFC 7162
            if len(v) == 2 and str(v[0]).upper() == "MODSEQ":
                modseq = to_int(v[1])
            continue
        n = to_int(v)
        if n is None:
            raise ProtocolError(f"bad SEARCH result {v!r}", cause="parse")
        count += 1
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return SearchResult(UidSet(ranges), modseq, count)


def parse_esearch(u: Untagged) -> SearchResult:
    values = list(u.values)
    res = SearchResult(UidSet())
    if values and isinstance(values[0], list):
        corr = values.pop(0)
        if isinstance(corr, list) and len(corr) == 2 and str(corr[0]).upper() == "TAG":
            res.tag = to_text(corr[1])
    if values and str(values[0]).upper() == "UID":
        values.pop(0)
    for i in range(0, len(values) - 1, 2):
        key = str(values[i]).upper()
        val = values[i + 1]
        if key == "ALL":
            res.uids = UidSet.parse(str(val))
        elif key == "COUNT":
            res.count = to_int(val)
        elif key == "MIN":
            res.min = to_int(val)
        elif key == "MAX":
            res.max = to_int(val)
        elif key == "MODSEQ":
            res.modseq = to_int(val)
    if res.count is None and res.uids:
        res.count = len(res.uids)
    return res


def parse_vanished(u: Untagged) -> tuple[bool, UidSet]:
    """`* VANISHED (EARLIER) 1:5,9` -> (earlier, UIDs)."""
    values = list(u.values)
    earlier = False
    if values and isinstance(values[0], list):
        earlier = any(str(v).upper() == "EARLIER" for v in values[0])
        values.pop(0)
    if not values or not isinstance(values[0], str):
        raise ProtocolError("VANISHED without UIDs", cause="parse")
    return earlier, UidSet.parse(str(values[0]))


def parse_copyuid(status: StatusResponse) -> tuple[int, UidSet, UidSet] | None:
    """[COPYUID uidvalidity source-uids dest-uids] (RFC 4315)."""
    if status.code != "COPYUID" or len(status.code_args) < 3:
        return None
    validity = to_int(status.code_args[0])
    if validity is None:
        return None
    return validity, UidSet.parse(str(status.code_args[1])), UidSet.parse(str(status.code_args[2]))


def parse_appenduid(status: StatusResponse) -> tuple[int, UidSet] | None:
    """[APPENDUID uidvalidity uid(s)] (RFC 4315; a set after MULTIAPPEND)."""
    if status.code != "APPENDUID" or len(status.code_args) < 2:
        return None
    validity = to_int(status.code_args[0])
    if validity is None:
        return None
    return validity, UidSet.parse(str(status.code_args[1]))
