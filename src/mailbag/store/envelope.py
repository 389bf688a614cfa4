"""Envelope fields for the index, from a message's header block only.

Reads at most `MAX_HEADER_BYTES` of the start of the file, parses the header
with the stdlib (compat32: it is fast and never raises on bad input), decodes
RFC 2047 words, and bounds every field. It never reads the body, and the text
it returns is for display and search: never put it into an outgoing header
without checking it (decoded words can contain CR/LF).
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

__all__ = ["MAX_HEADER_BYTES", "Envelope", "envelope_from_bytes", "envelope_from_file"]

MAX_HEADER_BYTES = 256 * 1024
_MAX_FIELD = 2000  # characters kept per text field
_MAX_REFS = 8000


@dataclass(frozen=True)
class Envelope:
    message_id: str = ""
    subject: str = ""
    from_addr: str = ""
    to_addrs: str = ""
    cc_addrs: str = ""
    date: float | None = None  # seconds since the epoch, from the Date header
    in_reply_to: str = ""
    references: str = ""
    has_attachments: bool = False


def _decode(value: object, limit: int = _MAX_FIELD) -> str:
    if value is None:
        return ""
    raw = str(value)[: limit * 4]
    try:
        text = str(email.header.make_header(email.header.decode_header(raw)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        text = raw
    # folding whitespace and stray control characters are not part of the value
    text = " ".join(text.replace("\x00", "").split())
    return text[:limit]


def _msgid(value: object) -> str:
    text = " ".join(str(value or "").split())
    start = text.find("<")
    end = text.find(">", start + 1)
    if start >= 0 and end > start:
        return text[start : end + 1][:_MAX_FIELD]
    return text[:_MAX_FIELD]


def _date(value: object) -> float | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return when.timestamp()  # no zone given: read as local time
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _headers(msg: Message) -> Envelope:
    ctype = str(msg.get("Content-Type", "")).lower()
    has_att = ctype.startswith("multipart/mixed") or (
        not ctype.startswith(("multipart/", "text/")) and bool(ctype)
    )
    return Envelope(
        message_id=_msgid(msg.get("Message-ID")),
        subject=_decode(msg.get("Subject")),
        from_addr=_decode(msg.get("From")),
        to_addrs=_decode(msg.get("To")),
        cc_addrs=_decode(msg.get("Cc")),
        date=_date(msg.get("Date")),
        in_reply_to=_msgid(msg.get("In-Reply-To")),
        references=" ".join(str(msg.get("References", "")).split())[:_MAX_REFS],
        has_attachments=has_att,
    )


def envelope_from_bytes(data: bytes) -> Envelope:
    """Parse the header block at the start of `data` (anything after it is ignored)."""
    head = data[:MAX_HEADER_BYTES]
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    if end >= 0:
        head = head[: end + 2]
    msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    return _headers(msg)


def envelope_from_file(path: Path) -> Envelope:
    with path.open("rb") as f:
        return envelope_from_bytes(f.read(MAX_HEADER_BYTES))
