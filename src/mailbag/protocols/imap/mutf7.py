"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3), both ways. Pure."""

from __future__ import annotations

import base64
import binascii


def encode_mailbox(name: str) -> bytes:
    """A Unicode mailbox name as the ASCII bytes IMAP puts on the wire."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        code = ord(ch)
        if 0x20 <= code <= 0x7E:
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode_mailbox(raw: bytes) -> str:
    """Wire bytes to a Unicode name; ValueError when the encoding is broken."""
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x26:  # "&"
            end = raw.find(b"-", i + 1)
            if end < 0:
                raise ValueError(f"unterminated modified UTF-7 shift in {raw!r}")
            chunk = raw[i + 1 : end]
            if not chunk:
                out.append("&")
            else:
                b64 = chunk.replace(b",", b"/")
                b64 += b"=" * (-len(b64) % 4)
                try:
                    decoded = base64.b64decode(b64, validate=True)
                    out.append(decoded.decode("utf-16-be"))
                except (binascii.Error, UnicodeDecodeError) as exc:
                    raise ValueError(f"bad modified UTF-7 in {raw!r}") from exc
            i = end + 1
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
            i += 1
        else:
            raise ValueError(f"8-bit byte in a modified UTF-7 mailbox name {raw!r}")
    return "".join(out)
