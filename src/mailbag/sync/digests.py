"""Digests of messages, made alike from a Maildir file and from the server's answer, for
pairing messages without a Message-ID again after a UIDVALIDITY change (`repair`).

A message's header block is its bytes up to and including the first empty line
(CRLF CRLF); a message that starts with an empty line has the empty line alone as its
header, one without any has all of it. That is what Dovecot answers to
`BODY.PEEK[HEADER]` (checked against it for each case), and the file here holds the
server's `BODY[]` byte for byte (the store writes what it received), so the two
digests agree.

Both sides are hashed with every bare LF made CRLF (`_Crlf`), as IMAP gives a message:
a file written here by another program with bare LF line ends (or uploaded so: the
server stores and counts it with CRLF) then has the server copy's digests, and
`measure` gives the size the server reports for it. For a file with CRLF line ends
(any the store wrote) that changes nothing.

Files are read in bounded chunks and answers streamed through the hash: memory does
not grow with a message or a header block, however large. Nothing here writes. Loaded
only when a planner has such messages to compare (`sync.imap._Digests`).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import hashlib

    from _typeshed import ReadableBuffer

    from mailbag.protocols.imap.client import ImapClient, Pending
    from mailbag.protocols.imap.parser import FetchResult

__all__ = ["Ahead", "digest_file", "fetch_digests", "head_digest", "measure_file"]

_CHUNK = 64 * 1024
#: the first read of a file for its header block: most are well under 1 KB
_FIRST = 4 * 1024
_END = b"\r\n\r\n"


def _hasher() -> hashlib.blake2b:
    # 128 bits: pairs are also of one size, and a collision takes an adversary who
    # sends both messages (who could as well send one twice). Imported here: hashlib
    # costs ~2 ms, and most syncs never hash
    import hashlib

    return hashlib.blake2b(digest_size=16)


class _Crlf:
    """Chunks of a message with every bare LF (one not after a CR) made CRLF, as an
    IMAP server gives a message stored with bare LFs; chunks without one pass as they
    are (counted in C, not copied)."""

    __slots__ = ("cr",)

    def __init__(self) -> None:
        self.cr = False  # the last chunk ended with a CR

    def __call__(self, chunk: bytes) -> bytes:
        after_cr = self.cr and chunk[:1] == b"\n"
        if chunk:
            self.cr = chunk[-1:] == b"\r"
        lf = chunk.count(b"\n")
        if not lf or lf == chunk.count(b"\r\n") + after_cr:
            return chunk
        out = chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return out[1:] if after_cr else out  # (its CR came with the chunk before)


def _normal(chunks: Iterable[bytes]) -> Iterator[bytes]:
    return map(_Crlf(), chunks)


class _Head:
    """The header block's digest, fed chunk by chunk (`feed` is True once it ended)."""

    __slots__ = ("done", "h", "tail")

    def __init__(self) -> None:
        self.h = _hasher()
        # what came last, not hashed again (the end may span two chunks); at first an
        # empty line before the message, so that one starting with an empty line ends
        # there
        self.tail = b"\r\n"
        self.done = False

    def feed(self, chunk: bytes) -> bool:
        seen = self.tail + chunk
        end = seen.find(_END)
        if end >= 0:
            self.h.update(seen[len(self.tail) : end + len(_END)])
            self.done = True
            return True
        self.h.update(chunk)
        self.tail = seen[1 - len(_END) :]
        return False


def head_digest(chunks: Iterable[bytes]) -> bytes:
    """The digest of the header block of the message given in `chunks` (bare LFs as
    CRLF; read no further than the block's end)."""
    head = _Head()
    for chunk in _normal(chunks):
        if head.feed(chunk):
            break
    return head.h.digest()


def _chunks_of(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def digest_file(path: str | Path, whole: bool) -> bytes | None:
    """The digest of the message in `path`: of its header block, or of all of it when
    `whole` (bare LFs as CRLF); None when the file is gone."""
    try:
        # (a bare descriptor: a buffered file object costs ~3 us more a file, and these
        # come by the thousand after a UIDVALIDITY change)
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        h = _hasher()
        if not whole:
            # The usual case, as `head_digest` finds it but without its generators
            # and without counting line ends beyond the header block (~3x faster for
            # a small message): the block ends at the first CRLF CRLF, and has no
            # bare LF before it (else that may end it sooner, as CRLF). A header block
            # is usually well under `_FIRST`; a longer one goes on from where this read
            # stopped
            chunk = os.read(fd, _FIRST)
            if chunk[:2] == b"\r\n":
                h.update(b"\r\n")
                return h.digest()
            end = chunk.find(_END)
            head = chunk[: end + len(_END)] if end >= 0 else b""
            if head and head.count(b"\n") == head.count(b"\r\n"):
                h.update(head)
                return h.digest()
            rest = iter(lambda: os.read(fd, _CHUNK), b"")
            return head_digest(itertools.chain((chunk,), rest))
        crlf = _Crlf()
        while chunk := os.read(fd, _CHUNK):
            h.update(crlf(chunk))
        return h.digest()
    finally:
        os.close(fd)


def measure_file(path: str | Path) -> tuple[int, bytes] | None:
    """The size the server gives for the message in `path` (bare LFs counted as CRLF)
    and the digest of its header block, in one reading; None when the file is gone."""
    head = _Head()
    size = 0
    try:
        with open(path, "rb") as f:
            crlf = _Crlf()
            while chunk := crlf(f.read(_CHUNK)):
                size += len(chunk)
                if not head.done:
                    head.feed(chunk)
    except FileNotFoundError:
        return None
    return size, head.h.digest()


class _HashSink(io.BytesIO):
    """Where a streamed answer goes: into a hash, not memory (`ImapClient` writes each
    literal to the sink its `body_sink` returns)."""

    def __init__(self) -> None:
        super().__init__()
        self.hash = _hasher()
        self.crlf = _Crlf()  # (a server that gives bare LFs: hashed as the file here)

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        self.hash.update(self.crlf(chunk))
        return len(chunk)


#: UIDs asked for in one command (several are in flight at once)
_UIDS_PER_COMMAND = 500
#: what is asked of the server for a header digest, and the name of its answer
_HEADER = ("BODY.PEEK[HEADER]", "BODY[HEADER]")


def fetch_digests(
    client: ImapClient, uids: Iterable[int], whole: bool
) -> Iterator[tuple[int, bytes]]:
    """(UID, digest) of the server's copies of `uids` in the folder selected on `client`
    (no command in flight): of BODY[HEADER], or BODY[] when `whole`, hashed as they
    arrive. Several UID sets in flight: one round trip for the usual few; `uids` is
    taken a command's worth at a time, as commands are sent."""
    item, answer = ("BODY.PEEK[]", "BODY[]") if whole else _HEADER
    source = iter(uids)
    chunks = iter(lambda: list(itertools.islice(source, _UIDS_PER_COMMAND)), [])
    return _digests_of(client.uid_fetch_many(chunks, ["UID", item], body_sink=_sink), answer)


def _sink(seq: int, name: str, size: int) -> _HashSink:
    return _HashSink()


def _digests_of(answers: Iterable[FetchResult], answer: str) -> Iterator[tuple[int, bytes]]:
    for r in answers:
        got = r.bodies.get(answer)
        if r.uid is not None and got is not None:
            digest = _digest_of(got)
            if digest is not None:
                yield r.uid, digest


def _digest_of(got: object) -> bytes | None:
    """The digest of an answer's literal: hashed as it came (`_HashSink`), or given as
    bytes (cut from the receive buffer, or a quoted string as a server may send a short
    one)."""
    from mailbag.protocols.imap.parser import StreamedLiteral

    if isinstance(got, StreamedLiteral):
        assert isinstance(got.sink, _HashSink)
        return got.sink.hash.digest()
    if isinstance(got, bytes):
        h = _hasher()
        h.update(_Crlf()(got))
        return h.digest()
    return None


#: header digests asked for ahead (`Ahead`) at most, in commands of this many UIDs
_AHEAD_MAX = 2048
_AHEAD_PER_COMMAND = 128


class Ahead:
    """Header digests of server messages asked for ahead, while the answers to an
    earlier command are still coming (the identity listing after a UIDVALIDITY
    change): the server reads those headers as soon as it has listed the folder, while
    the listing is compared and the files here are hashed, instead of after (`take`
    then finds them waiting). At most `_AHEAD_MAX` (what waits in `take`'s dict, and
    the commands in flight, stay small); the rest is asked for as before.

    Each UID is asked for as the listing gives it (`add`), in commands of a few; nothing
    else may be sent on the connection until `take` has read their answers (or the
    connection is closed). Dovecot may answer them while the listing is still coming,
    among its answers: the listing's reader gives those to `found` (kept, not asked for
    again after)."""

    def __init__(self, client: ImapClient) -> None:
        self.client = client
        self.uids: list[int] = []
        self.asked = 0
        self.sent: list[Pending] = []
        self.wanted: set[int] = set()  # (sent)
        self.early: dict[int, bytes] = {}  # (answered among the listing's answers)

    def add(self, uid: int) -> None:
        if self.asked >= _AHEAD_MAX:
            return
        self.uids.append(uid)
        self.asked += 1
        if len(self.uids) >= _AHEAD_PER_COMMAND:
            self.send()

    def send(self) -> None:
        """Send what `add` has gathered."""
        if self.uids:
            self.sent.append(self.client.submit_uid_fetch(self.uids, ["UID", _HEADER[0]]))
            self.wanted.update(self.uids)
            self.uids = []

    def found(self, answer: FetchResult) -> None:
        """An answer that came among another command's (the listing's): kept when it is
        a header block asked for here."""
        head = answer.bodies.get(_HEADER[1])
        if head is not None and answer.uid in self.wanted:
            digest = _digest_of(head)
            if digest is not None:
                self.early.setdefault(answer.uid, digest)

    def take(self) -> dict[int, bytes]:
        """The digests asked for (UID -> digest; a message expunged meanwhile left out),
        read now: every answer sent is read (then the connection is free again)."""
        self.send()
        got, self.early = self.early, {}
        sent, self.sent = self.sent, []
        for p in sent:
            with self.client.header_answers(p, body_sink=_sink) as answers:
                for batch in answers.batches():
                    for uid, head in batch:
                        digest = _digest_of(head)
                        if digest is not None:
                            got.setdefault(uid, digest)
        return got
