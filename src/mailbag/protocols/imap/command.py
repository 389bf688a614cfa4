"""Building IMAP command arguments: atoms, quoted strings, literals, mailbox names. Pure."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from mailbag.protocols.imap.mutf7 import encode_mailbox
from mailbag.protocols.imap.parser import UidSet, format_sequence_set
from mailbag.record import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, TypeAlias


class Literal(NamedTuple):
    """Data sent as an IMAP literal: bytes, or an open binary file read in chunks."""

    data: bytes | IO[bytes]
    size: int
    secret: bool = False

    @classmethod
    def of(cls, data: bytes | IO[bytes], *, secret: bool = False) -> Literal:
        if isinstance(data, bytes):
            return cls(data, len(data), secret)
        try:
            size = os.fstat(data.fileno()).st_size - data.tell()
        except (OSError, AttributeError, ValueError):
            here = data.tell()
            size = data.seek(0, os.SEEK_END) - here
            data.seek(here)
        return cls(data, size, secret)


Piece: TypeAlias = "bytes | Literal"

_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x21)) | {0x7F}


def is_atom(raw: bytes) -> bool:
    return bool(raw) and not any(c in _ATOM_SPECIALS or c > 0x7E for c in raw)


def astring(value: str | bytes) -> Piece:
    """The cheapest correct encoding: atom, quoted string, or literal (8-bit, CR/LF, long)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if is_atom(raw):
        return raw
    if len(raw) < 1000 and all(0x20 <= c <= 0x7E for c in raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return Literal.of(raw)


def secret_astring(value: str) -> Piece:
    """Like `astring`, but a literal is marked secret (passwords)."""
    piece = astring(value)
    if isinstance(piece, Literal):
        return Literal(piece.data, piece.size, secret=True)
    return piece


def mailbox(name: str, utf8: bool = False) -> Piece:
    """A mailbox name as an argument (modified UTF-7 unless UTF8=ACCEPT is enabled)."""
    if name.upper() == "INBOX":
        return b"INBOX"
    raw = name.encode("utf-8") if utf8 else encode_mailbox(name)
    if is_atom(raw):
        return raw
    return astring(raw)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(f.encode("ascii") for f in flags) + b")"


def item_list(items: str | Sequence[str]) -> bytes:
    if isinstance(items, str):
        text = items.strip()
        return text.encode("ascii") if text.startswith("(") else b"(" + text.encode("ascii") + b")"
    return b"(" + " ".join(items).encode("ascii") + b")"


def uid_set(uids: str | UidSet | Iterable[int]) -> bytes:
    if isinstance(uids, str):
        return uids.encode("ascii")
    if isinstance(uids, UidSet):
        return format_sequence_set(uids).encode("ascii")
    text = format_sequence_set(list(uids))
    if not text:
        raise ValueError("empty UID set")
    return text.encode("ascii")
