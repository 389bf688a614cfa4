"""Bounded parsing of raw message bytes.

Mail is hostile input. The stdlib parser recurses once per nesting level
(RecursionError near 1,000 levels), slows to seconds on tens of thousands of
parts, and its `policy.default` address parser takes seconds on a To header
with 20,000 addresses. So the MIME *structure* is split here with a linear
scan that enforces a maximum depth, part count and header size, and the stdlib
is used only on small, bounded pieces (Content-Type parameters and RFC 2231
file names, dates, address lists).

This module never raises on malformed mail: wrong or unknown charsets, broken
base64/quoted-printable, missing boundaries and 8-bit headers are decoded as
sensibly as possible and described in `notices`. It never touches the file
system or the network, and it never prints.
"""

from __future__ import annotations

import binascii
import codecs
import datetime as dt
import email.message
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Address",
    "Headers",
    "Limits",
    "ParsedMessage",
    "Part",
    "decode_bytes",
    "decode_header_value",
    "parse_headers",
    "parse_message",
]


@dataclass(frozen=True)
class Limits:
    """How much of a message is parsed; the rest is reported as not shown."""

    max_depth: int = 32
    max_parts: int = 500
    max_header_fields: int = 500
    max_field_bytes: int = 64 * 1024
    max_header_block: int = 4 * 1024 * 1024
    max_addresses: int = 200


DEFAULT_LIMITS = Limits()

# ---------------------------------------------------------------------------
# charsets and transfer encodings


# Codecs that are not charsets for mail text (they turn escapes into arbitrary
# characters or are not meant for it); a message naming them is decoded as if
# the charset were unknown.
_REFUSED_CODECS = {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}
_ASCII_NAMES = {"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us", "x-unknown", "unknown"}


def _text_codec(charset: str | None) -> str | None:
    """The Python codec name for a mail charset, or None when it is unusable."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if not name or name in _ASCII_NAMES or name.startswith("unknown"):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name.replace("_", "-") in _REFUSED_CODECS or not getattr(
        info, "_is_text_encoding", True
    ):
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode text bytes; returns (text, note about what went wrong or None).

    Unknown or missing charsets are tried as UTF-8, then Windows-1252 (the usual
    truth behind mislabelled mail). Never raises.
    """
    codec = _text_codec(charset)
    if codec is None:
        note = None
        if charset and charset.strip().strip("\"'").lower() not in _ASCII_NAMES:
            note = f"unknown charset {charset.strip()[:40]!r}"
        try:
            return data.decode("utf-8"), note
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
            if charset and not note:
                note = f"text was not valid {charset.strip()[:40]}, shown as Windows-1252"
            return text, note
    try:
        return data.decode(codec), None
    except UnicodeDecodeError:
        if codec != "utf_8":
            try:
                return data.decode("utf-8"), f"text was not valid {charset}, shown as UTF-8"
            except UnicodeDecodeError:
                pass
        return data.decode(codec, errors="replace"), f"invalid bytes for charset {charset}"
    except (LookupError, ValueError):  # exotic codecs that fail at decode time
        return data.decode("utf-8", errors="replace"), f"charset {charset!r} could not be used"


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64_OR_PAD = bytes(b for b in range(256) if b not in _B64_ALPHABET + b"=")
_WHITESPACE = b" \t\r\n"


def _b64_segment(clean: bytes) -> tuple[bytes, bool]:
    broken = False
    rest = len(clean) % 4
    if rest == 1:  # a lone trailing character carries no whole byte
        clean = clean[:-1]
        broken = True
    elif rest:
        clean += b"=" * (4 - rest)
    try:
        return binascii.a2b_base64(clean), broken
    except binascii.Error:  # cannot happen after cleaning; kept as a guard
        return b"", True


def decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Lenient base64: (decoded, was_broken).

    Lines with characters outside the alphabet are skipped whole (they are
    junk inserted into the stream, and decoding their letters would shift
    everything after them); padding in the middle starts a new segment (some
    mailers concatenate encoded blocks); missing padding is repaired.
    """
    kept = data.translate(None, _NOT_B64_OR_PAD)
    broken = len(data) - len(kept) != sum(data.count(c) for c in _WHITESPACE)
    if broken:
        good = []
        for line in data.splitlines():
            stripped = line.strip()
            if stripped and len(stripped.translate(None, _NOT_B64_OR_PAD)) == len(stripped):
                good.append(stripped)
        kept = b"".join(good)
    segments = [s for s in re.split(rb"=+", kept) if s]
    if len(segments) <= 1:
        out, bad = _b64_segment(segments[0] if segments else b"")
        return out, broken or bad
    return b"".join(_b64_segment(s)[0] for s in segments), True


def decode_transfer(data: bytes, cte: str) -> tuple[bytes, str | None]:
    """Undo Content-Transfer-Encoding; returns (bytes, note or None)."""
    if cte == "base64":
        out, broken = decode_base64(data)
        return out, "broken base64, decoded what could be" if broken else None
    if cte == "quoted-printable":
        return binascii.a2b_qp(data), None
    if cte in ("", "7bit", "8bit", "binary"):
        return data, None
    if cte in ("x-uuencode", "uuencode", "x-uue"):
        return _decode_uu(data), None
    return data, f"unknown transfer encoding {cte[:40]!r}, shown as is"


def _decode_uu(data: bytes) -> bytes:
    out = bytearray()
    for line in data.splitlines():
        if line.startswith(b"begin ") or line.strip() in (b"end", b"`", b""):
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            continue
    return bytes(out)


# ---------------------------------------------------------------------------
# headers

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?\s]*)\?=")


def _decode_encoded_word(charset: str, encoding: str, text: str) -> str:
    raw = text.encode("ascii", errors="replace")
    if encoding in "bB":
        data, _ = decode_base64(raw)
    else:
        data = binascii.a2b_qp(raw, header=True)
    decoded, _ = decode_bytes(data, charset.split("*", 1)[0])
    return decoded


def decode_header_value(value: str) -> str:
    """RFC 2047 encoded words decoded; whitespace between adjacent words dropped.

    Line breaks that decoded words may carry (CVE-2024-6923) become spaces.
    """
    out: list[str] = []
    pos = 0
    previous_was_word = False
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        if not (previous_was_word and not between.strip()):
            out.append(between)
        out.append(_decode_encoded_word(m[1], m[2], m[3]))
        previous_was_word = True
        pos = m.end()
    out.append(value[pos:])
    text = "".join(out)
    return re.sub(r"[\r\n]+[ \t]*", " ", text)


@dataclass(frozen=True)
class Address:
    name: str
    addr: str

    def __str__(self) -> str:
        if self.name and self.addr:
            return f"{self.name} <{self.addr}>"
        return self.name or self.addr


@dataclass
class Headers:
    """Header fields in order: (name, value) with 8-bit bytes decoded but
    encoded words kept; use `decoded()`/`addresses()` for display values."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # lower-case name -> (raw byte length, "@" count) of fields cut at max_field_bytes
    truncated: dict[str, tuple[int, int]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.fields:
            if k.lower() == lname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.fields if k.lower() == lname]

    def decoded(self, name: str) -> str:
        value = self.get(name)
        return "" if value is None else decode_header_value(value).strip()

    def addresses(self, name: str, limit: int = DEFAULT_LIMITS.max_addresses) -> list[Address]:
        values = self.get_all(name)
        if not values:
            return []
        # bound the work: repeated fields could add up to megabytes
        budget = DEFAULT_LIMITS.max_field_bytes
        bounded = []
        for v in values:
            if budget <= 0:
                break
            bounded.append(v[:budget])
            budget -= len(bounded[-1])
        found = email.utils.getaddresses(bounded)
        out: list[Address] = []
        for display, addr in found[:limit]:
            if not display and not addr:
                continue
            out.append(Address(decode_header_value(display).strip(), addr.strip()))
        return out

    def address_count(self, name: str) -> int:
        """About how many addresses the field holds, counting what was cut off."""
        cut = self.truncated.get(name.lower())
        if cut:
            return cut[1]
        return sum(v.count("@") for v in self.get_all(name))

    def decoded_items(self) -> Iterator[tuple[str, str]]:
        for k, v in self.fields:
            yield k, decode_header_value(v).strip()


_FIELD_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:", re.MULTILINE)
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def _decode_header_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # 8-bit headers without a charset: most often Windows-1252/Latin-1
        return raw.decode("cp1252", errors="replace")


def parse_headers(
    data: bytes, start: int = 0, end: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[Headers, int]:
    """Parse a header block at data[start:end]; returns (headers, body_start).

    The body starts after the first empty line, or at the first line that is
    neither a field nor a continuation (a missing separator), as the stdlib does.
    """
    end = len(data) if end is None else end
    headers = Headers()
    pos = start
    if data.startswith(b"From ", pos):  # mbox separator line
        nl = data.find(b"\n", pos, end)
        pos = end if nl < 0 else nl + 1
    current: list[bytes] | None = None
    current_len = 0
    current_ats = 0
    name = ""
    scan_limit = min(end, start + limits.max_header_block)

    def finish() -> None:
        nonlocal current
        if current is None:
            return
        if current_len > limits.max_field_bytes:
            headers.truncated[name.lower()] = (current_len, current_ats)
            headers.notices.append(
                f"the {name} header is {current_len:,} bytes; only its first "
                f"{limits.max_field_bytes // 1024} KiB is shown"
            )
        raw = b"".join(current)
        value = _decode_header_bytes(raw)
        value = re.sub(r"\r?\n([ \t])", r"\1", value).strip("\r\n")
        if len(headers.fields) < limits.max_header_fields:
            headers.fields.append((name, value.strip()))
        current = None

    while pos < end:
        if pos >= scan_limit:
            # give up reading fields; find the body by the first empty line
            headers.notices.append("the header is too large; the rest of it is not shown")
            m = _BLANK_LINE.search(data, pos, end)
            finish()
            return headers, (m.end() if m else end)
        nl = data.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        line = data[pos:line_end]
        if line in (b"\n", b"\r\n") or (line_end == end and not line.strip()):
            finish()
            pos = line_end
            break
        if line[:1] in (b" ", b"\t") and current is not None:
            if current_len < limits.max_field_bytes:
                current.append(line)
            current_len += len(line)
            current_ats += line.count(b"@")
            pos = line_end
            continue
        m = _FIELD_NAME.match(line)
        if m is None:
            finish()
            if headers.fields or current is not None:
                headers.notices.append("a header line was malformed; the body starts there")
            break
        finish()
        if len(headers.fields) >= limits.max_header_fields:
            # skip the rest of the block in one search instead of line by line
            m_end = _BLANK_LINE.search(data, pos, end)
            block_end = m_end.end() if m_end else end
            dropped_fields = len(_FIELD_START.findall(data, pos, block_end))
            headers.notices.append(f"{dropped_fields:,} more header fields are not shown")
            return headers, block_end
        name = _decode_header_bytes(line[: m.end() - 1]).strip()
        value_part = line[m.end() :]
        current = [value_part[: limits.max_field_bytes]]
        current_len = len(value_part)
        current_ats = value_part.count(b"@")
        pos = line_end
    else:
        finish()
    return headers, pos


# ---------------------------------------------------------------------------
# MIME structure


@dataclass
class Part:
    """One MIME entity. Leaf bodies are kept as offsets into the raw bytes."""

    path: str
    content_type: str
    params: dict[str, str]
    disposition: str
    filename: str | None
    cte: str
    body_start: int
    body_end: int
    depth: int
    children: list[Part] = field(default_factory=list)
    headers: Headers | None = None  # the part's own header fields
    message_headers: Headers | None = None  # for message/rfc822: the inner message's

    @property
    def maintype(self) -> str:
        return self.content_type.split("/", 1)[0]

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart" and bool(self.children)

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")

    @property
    def is_attachment(self) -> bool:
        if self.is_multipart:
            return False
        if self.disposition == "attachment":
            return True
        if self.content_type == "message/rfc822":
            return True
        if self.filename:
            return True
        return self.maintype not in ("text", "multipart")


@dataclass
class ParsedMessage:
    raw: bytes
    headers: Headers
    root: Part
    notices: list[str] = field(default_factory=list)
    parts_seen: int = 0

    def walk(self) -> Iterator[Part]:
        stack = [self.root]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children))

    def body_bytes(self, part: Part) -> bytes:
        return self.raw[part.body_start : part.body_end]

    def payload(self, part: Part) -> tuple[bytes, str | None]:
        """The decoded body of a leaf part: (bytes, note or None)."""
        return decode_transfer(self.body_bytes(part), part.cte)

    def text(self, part: Part) -> tuple[str, list[str]]:
        """A text part's content as str, with notes about any repairs."""
        data, note = self.payload(part)
        text, cnote = decode_bytes(data, part.charset)
        label = f"part {part.path}" if part.path else "the body"
        notes = [f"{label}: {n}" for n in (note, cnote) if n]
        return text, notes

    def attachments(self) -> list[Part]:
        return [p for p in self.walk() if p.is_attachment]

    @property
    def subject(self) -> str:
        return self.headers.decoded("Subject")

    @property
    def date(self) -> dt.datetime | None:
        return parse_date(self.headers.get("Date"))


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value[:200])
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _params(holder: email.message.Message, header: str) -> tuple[str, dict[str, str]]:
    """(lower-cased value, {param: value}) with RFC 2231 decoded, parsed once."""
    pairs = holder.get_params(header=header)
    if not pairs:
        return "", {}
    value = pairs[0][0].strip().lower()
    params: dict[str, str] = {}
    for key, raw in pairs[1:]:
        key = key.strip().lower()
        if key and key not in params:
            params[key] = email.utils.collapse_rfc2231_value(raw).strip()
    return value, params


def _content_info(
    headers: Headers, default_type: str
) -> tuple[str, dict[str, str], str, str | None]:
    """(content type, params, disposition, filename) using the stdlib's
    parameter parsing (RFC 2231 continuations and charsets) on bounded values."""
    holder = email.message.Message()
    ctype_raw = headers.get("Content-Type")
    disp_raw = headers.get("Content-Disposition")
    ctype = default_type
    params: dict[str, str] = {}
    if ctype_raw is not None:
        holder["Content-Type"] = ctype_raw
        value, params = _params(holder, "content-type")
        # as the stdlib does: a malformed type means text/plain
        ctype = value if value.count("/") == 1 else "text/plain"
    disposition = ""
    disp_params: dict[str, str] = {}
    if disp_raw is not None:
        holder["Content-Disposition"] = disp_raw
        disposition, disp_params = _params(holder, "content-disposition")
    filename = disp_params.get("filename") or params.get("name")
    if filename is not None:
        filename = decode_header_value(filename).strip()
    keep = {k: v for k, v in params.items() if k in ("charset", "boundary", "name")}
    return ctype, keep, disposition, filename


@dataclass
class _State:
    limits: Limits
    parts: int = 0
    omitted_parts: int = 0
    too_deep: int = 0
    notices: list[str] = field(default_factory=list)


def _guess_boundary(data: bytes, start: int, end: int) -> str | None:
    """A multipart without a boundary parameter: use a leading `--xyz` line."""
    m = re.compile(rb"[ \t\r\n]*--([ -~]{1,70}?)[ \t]*\r?\n").match(data, start, end)
    if m is None:
        return None
    return m.group(1).decode("ascii")


def _delimiters(
    data: bytes, boundary: str, start: int, end: int
) -> Iterator[tuple[int, int, bool]]:
    """(line start, end of the line incl. its newline, is the close delimiter)
    for each delimiter line of `boundary` in data[start:end].

    A plain substring search: a regex per boundary would be compiled for
    every multipart (boundaries are unique), which dominated indexing time.
    """
    needle = b"--" + boundary.encode("utf-8", errors="replace")
    pos = start
    while True:
        i = data.find(needle, pos, end)
        if i < 0:
            return
        pos = i + 1
        if i != start and data[i - 1] != 0x0A:  # not at the start of a line
            continue
        j = i + len(needle)
        close = data.startswith(b"--", j, end)
        k = j + 2 if close else j
        nl = data.find(b"\n", k, end)
        line_end = end if nl < 0 else nl
        if data[k:line_end].strip(b" \t\r"):
            continue  # "--boundaryX": another boundary that starts the same
        yield i, (end if nl < 0 else nl + 1), close
        pos = line_end


def _line_start_before(data: bytes, index: int, floor: int) -> int:
    """End of a part body: the line break before a delimiter belongs to it."""
    if index > floor and data[index - 1 : index] == b"\n":
        index -= 1
        if index > floor and data[index - 1 : index] == b"\r":
            index -= 1
    return index


def _parse_entity(
    data: bytes, start: int, end: int, path: str, depth: int, default_type: str, st: _State
) -> Part:
    st.parts += 1
    headers, body_start = parse_headers(data, start, end, st.limits)
    for n in headers.notices:
        st.notices.append(f"part {path}: {n}" if path else n)
    ctype, params, disposition, filename = _content_info(headers, default_type)
    cte = (headers.get("Content-Transfer-Encoding") or "").strip().lower()[:40]
    part = Part(
        path=path,
        content_type=ctype,
        params=params,
        disposition=disposition,
        filename=filename,
        cte=cte,
        body_start=body_start,
        body_end=end,
        depth=depth,
        headers=headers,
    )
    label = path or "the message"
    if part.maintype == "multipart":
        boundary = params.get("boundary")
        if not boundary:
            boundary = _guess_boundary(data, body_start, end)
            if boundary:
                st.notices.append(f"{label}: multipart without a boundary; guessed {boundary!r}")
        if not boundary:
            st.notices.append(f"{label}: multipart without a boundary, shown as text")
            part.content_type = "text/plain"
            return part
        if depth >= st.limits.max_depth:
            st.too_deep += 1
            return part
        _split_multipart(data, part, boundary, st)
        if not part.children:
            st.notices.append(f"{label}: boundary not found, shown as text")
            part.content_type = "text/plain"
        return part
    if ctype == "message/rfc822" and cte in ("", "7bit", "8bit", "binary"):
        if depth >= st.limits.max_depth:
            st.too_deep += 1
            return part
        if st.parts >= st.limits.max_parts:
            st.omitted_parts += 1
            return part
        child_path = f"{path}.1" if path else "1"
        # the child *is* the inner message: its header block is the message header
        child = _parse_entity(data, body_start, end, child_path, depth + 1, "text/plain", st)
        part.message_headers = child.headers
        part.children.append(child)
    return part


def _split_multipart(data: bytes, part: Part, boundary: str, st: _State) -> None:
    start, end = part.body_start, part.body_end
    sub_default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
    delimiters = _delimiters(data, boundary, start, end)
    first = next(delimiters, None)
    if first is None or first[2]:  # no delimiter, or a close delimiter right away
        return
    seg_start = first[1]
    index = 0
    closed = False

    def add(seg_end: int) -> None:
        if st.parts >= st.limits.max_parts:
            st.omitted_parts += 1
            return
        child_path = f"{part.path}.{index}" if part.path else str(index)
        part.children.append(
            _parse_entity(data, seg_start, seg_end, child_path, part.depth + 1, sub_default, st)
        )

    for line_start, line_end, close in delimiters:
        index += 1
        add(_line_start_before(data, line_start, seg_start))
        if close:
            closed = True
            break
        seg_start = line_end
    if not closed and seg_start < end:
        # missing close delimiter: the last part runs to the end
        index += 1
        add(end)


def parse_message(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse raw message bytes within `limits`. Never raises on bad mail."""
    st = _State(limits=limits)
    root = _parse_entity(raw, 0, len(raw), "", 0, "text/plain", st)
    headers = root.headers if root.headers is not None else Headers()
    notices = list(st.notices)
    if st.omitted_parts:
        notices.append(
            f"only the first {limits.max_parts} parts are shown; "
            f"{st.omitted_parts:,} more at the levels read are not shown (use --raw)"
        )
    if st.too_deep:
        notices.append(
            f"parts nested deeper than {limits.max_depth} levels are not shown (use --raw)"
        )
    for name in ("to", "cc", "bcc"):
        if headers.get(name) is not None:
            total = headers.address_count(name)
            if total > limits.max_addresses:
                notices.append(
                    f"the {name.capitalize()} header has about {total:,} addresses; "
                    f"the first {limits.max_addresses} are shown"
                )
    return ParsedMessage(raw=raw, headers=headers, root=root, notices=notices, parts_seen=st.parts)
