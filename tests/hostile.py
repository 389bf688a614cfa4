"""Large hostile messages, built at test time (too big to commit).

Each builder returns raw bytes that break naive parsers: the stdlib raises
RecursionError on ~1,000-deep multiparts, takes seconds on 40,000 parts and on a
To header with 20,000 addresses.
"""

from __future__ import annotations

import functools
from pathlib import Path

EML_DIR = Path(__file__).parent / "data" / "eml"

HEAD = (
    "From: Big <big@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
    "Date: Mon, 05 Jan 2026 11:00:00 +0000\r\nMessage-ID: <{mid}@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
)


def deep_nesting(depth: int = 2000) -> bytes:
    """multipart/mixed nested `depth` levels, text at the bottom."""
    opening = []
    closing = []
    for i in range(depth):
        opening.append(f'Content-Type: multipart/mixed; boundary="n{i}"\r\n\r\n--n{i}\r\n')
        closing.append(f"\r\n--n{i}--\r\n")
    body = (
        "".join(opening)
        + "Content-Type: text/plain\r\n\r\nthe bottom of the well\r\n"
        + "".join(reversed(closing))
    )
    head = HEAD.format(to="you@example.net", subject="deeply nested", mid="deep")
    return (head + body).encode()


def many_parts(count: int = 40_000) -> bytes:
    head = HEAD.format(to="you@example.net", subject="forty thousand parts", mid="many")
    head += 'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
    first = "--p\r\nContent-Type: text/plain\r\n\r\nfirst part is the body\r\n"
    rest = "".join(
        "--p\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: attachment; filename="f{i}.bin"\r\n\r\nx\r\n'
        for i in range(count - 1)
    )
    return (head + first + rest + "--p--\r\n").encode()


def huge_to(count: int = 20_000) -> bytes:
    to = ",\r\n ".join(f'"Person {i}" <person{i}@example.com>' for i in range(count))
    head = HEAD.format(to=to, subject="twenty thousand recipients", mid="hugeto")
    return (head + "Content-Type: text/plain\r\n\r\nHello everyone.\r\n").encode()


def huge_header_line(size: int = 5_000_000) -> bytes:
    head = HEAD.format(to="you@example.net", subject="X" * size, mid="longline")
    return (head + "\r\nbody after a 5 MB subject\r\n").encode()


def many_headers(count: int = 100_000) -> bytes:
    head = HEAD.format(to="you@example.net", subject="a hundred thousand fields", mid="fields")
    head += "".join(f"X-Junk-{i}: {i}\r\n" for i in range(count))
    return (head + "\r\nbody after many fields\r\n").encode()


def repeated_to(fields: int = 400, per_field: int = 500) -> bytes:
    """Hundreds of To fields, each with hundreds of addresses."""
    head = HEAD.format(to="you@example.net", subject="repeated To fields", mid="repeated")
    one = ", ".join(f"r{i}@example.com" for i in range(per_field))
    head += "".join(f"To: {one}\r\n" for _ in range(fields))
    return (head + "\r\nbody after many To fields\r\n").encode()


def big_html(paragraphs: int = 100_000) -> bytes:
    head = HEAD.format(to="you@example.net", subject="huge html", mid="bightml")
    head += "Content-Type: text/html; charset=utf-8\r\n\r\n"
    body = "<div>" * 5000 + "".join(f"<p>para {i} <b>bold</b></p>" for i in range(paragraphs))
    return (head + body + "\r\n").encode()


LARGE = {
    "deep-nesting": deep_nesting,
    "many-parts": many_parts,
    "huge-to": huge_to,
    "huge-header-line": huge_header_line,
    "many-headers": many_headers,
    "big-html": big_html,
    "repeated-to": repeated_to,
}


@functools.cache
def corpus() -> dict[str, bytes]:
    """Every broken/hostile message: the committed files and the large ones.
    Built once per run; callers must not change the returned dict."""
    out = {p.name: p.read_bytes() for p in sorted(EML_DIR.glob("*.eml"))}
    for name, build in LARGE.items():
        out[name + ".eml"] = build()
    return out
