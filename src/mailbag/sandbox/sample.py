"""Realistic generated mail for the sandbox, the demo and the benchmarks.

Deterministic for a given seed: plain text, HTML alternatives, attachments,
non-ASCII names and subjects (RFC 2047), and replies with threading headers.
Messages are built with the stdlib `email` package and returned as bytes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

PEOPLE = [
    ("Alice Liddell", "alice"),
    ("Bob Marley", "bob"),
    ("Chloé Dupré", "chloe"),
    ("Dmitri Ivanov", "dmitri"),
    ("Eva Müller", "eva"),
    ("Fatima Zahra", "fatima"),
    ("Grace Hopper", "grace"),
    ("Hiroshi Tanaka", "hiroshi"),
    ("Ingrid Bergström", "ingrid"),
    ("José Álvarez", "jose"),
]
DOMAINS = ["example.org", "example.net", "example.com"]
TOPICS = [
    "Quarterly report",
    "Lunch on Friday?",
    "Build failed on main",
    "Invoice #{n}",
    "Trip to Zürich",
    "Réunion de projet",
    "Meeting notes",
    "Your order has shipped",
    "Re: design review",
    "Photos from the weekend",
    "Weekly newsletter",
    "Password policy update",
]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "mail",
    "sync",
    "server",
    "client",
    "message",
    "folder",
    "report",
    "budget",
    "meeting",
    "tomorrow",
    "release",
    "deadline",
    "review",
    "draft",
    "attach",
    "note",
    "thanks",
    "please",
    "update",
    "status",
    "project",
    "team",
    "schedule",
    "coffee",
    "weekend",
    "travel",
    "invoice",
]


def _paragraphs(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 60))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def make_message(
    rng: random.Random,
    n: int,
    *,
    to: str,
    domain: str = "sandbox.test",
    when: dt.datetime | None = None,
    reply_to: EmailMessage | None = None,
    kind: str | None = None,
) -> EmailMessage:
    """One message; `kind` is 'text', 'html' or 'attachment' (random when None)."""
    name, local = rng.choice(PEOPLE)
    sender = Address(name, local, rng.choice(DOMAINS))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if reply_to is not None:
        subject = str(reply_to["Subject"])
        msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        msg["In-Reply-To"] = reply_to["Message-ID"]
        refs = str(reply_to.get("References", "")).split()
        msg["References"] = " ".join([*refs, str(reply_to["Message-ID"])])
    else:
        msg["Subject"] = rng.choice(TOPICS).format(n=1000 + n)
    when = when or dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=37 * n)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(idstring=f"s{n}.{rng.randint(0, 10**9)}", domain=domain)
    body = "\n\n".join(_paragraphs(rng, rng.randint(1, 5)))
    body = f"Hi,\n\n{body}\n\n-- \n{name}\n"
    msg.set_content(body)
    kind = kind or rng.choices(["text", "html", "attachment"], weights=[7, 2, 1])[0]
    if kind in ("html", "attachment"):
        html_paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
        msg.add_alternative(
            f"<html><body>{html_paras}"
            f'<img src="https://tracker.example.com/p.gif?id={n}" width="1" height="1">'
            "</body></html>",
            subtype="html",
        )
    if kind == "attachment":
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(2_000, 30_000)))
        filename = rng.choice(["report.pdf", "photo.jpg", "Übersicht.pdf", "notes.txt"])
        maintype, subtype = {
            "pdf": ("application", "pdf"),
            "jpg": ("image", "jpeg"),
            "txt": ("application", "octet-stream"),
        }[filename.rsplit(".", 1)[1]]
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def generate(
    count: int, *, to: str, seed: int = 1, domain: str = "sandbox.test"
) -> Iterator[bytes]:
    """`count` messages as bytes; about 30% are replies to earlier ones."""
    rng = random.Random(seed)
    earlier: list[EmailMessage] = []
    for n in range(count):
        parent = rng.choice(earlier) if earlier and rng.random() < 0.3 else None
        msg = make_message(rng, n, to=to, domain=domain, reply_to=parent)
        if len(earlier) < 50:
            earlier.append(msg)
        yield msg.as_bytes(policy=SMTP)
