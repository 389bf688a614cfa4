"""The demo: sandbox servers, sample mail, and the inbox listing.

Kept out of the CLI layer so the TUI can start the same demo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import signal
import threading
from dataclasses import dataclass

from mailbag.cli.context import Context
from mailbag.sandbox import Sandbox
from mailbag.textsafe import clean_terminal

FOLDERS = {"INBOX": 1.0, "Work": 0.3, "Newsletters": 0.2}


@dataclass(frozen=True)
class Envelope:
    uid: int
    date: str
    sender: str
    subject: str
    seen: bool


def populate(sb: Sandbox, user: str, messages: int) -> dict[str, int]:
    """Put sample mail in a few folders; returns folder -> count."""
    counts = {}
    for seed, (folder, share) in enumerate(FOLDERS.items(), start=1):
        n = max(1, int(messages * share))
        sb.fill(user, n, folder, seed=seed)
        counts[folder] = n
    return counts


def inbox_listing(sb: Sandbox, user: str, limit: int = 20) -> list[Envelope]:
    """The newest INBOX messages, read straight from the server (header fields only)."""
    out = []
    with sb.control(user) as imap:
        imap.select("INBOX")
        _, data = imap.imap.uid(
            "FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
        )
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(head.split("UID ", 1)[1].split()[0])
            msg = email.message_from_bytes(item[1], policy=email.policy.default)
            date = msg["Date"].datetime if msg["Date"] else None
            out.append(
                Envelope(
                    uid=uid,
                    date=date.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if date else "",
                    sender=str(msg["From"] or ""),
                    subject=str(msg["Subject"] or ""),
                    seen="\\Seen" in head,
                )
            )
    out.sort(key=lambda e: e.date, reverse=True)
    return out[:limit]


def run_demo(ctx: Context, *, messages: int, wait: bool) -> int:
    ctx.info("Starting the sandbox mail server (Dovecot + SMTP on loopback)...")
    with Sandbox() as sb:
        user = "alice"
        counts = populate(sb, user, messages)
        ctx.info("Sample mail: " + ", ".join(f"{folder} {n}" for folder, n in counts.items()))
        listing = inbox_listing(sb, user)
        if ctx.json:
            ctx.emit_json(
                {
                    "account": sb.address(user),
                    "folders": counts,
                    "inbox": [e.__dict__ for e in listing],
                }
            )
        else:
            ctx.out(f"INBOX of {sb.address(user)} (newest {len(listing)} of {counts['INBOX']})")
            for e in listing:
                mark = " " if e.seen else "*"
                sender = clean_terminal(e.sender)[:28]
                subject = clean_terminal(e.subject)[:60]
                ctx.out(f"{mark} {e.uid:>4}  {e.date}  {sender:<28}  {subject}")
        if wait:
            info = sb.describe()
            ctx.info(
                "\nThe sandbox is running until you press Ctrl-C:\n"
                f"  IMAPS    localhost:{info['imaps']}   (STARTTLS on {info['imap_starttls']})\n"
                f"  POP3S    localhost:{info['pop3s']}   (STLS on {info['pop3_stls']})\n"
                f"  SMTPS    localhost:{info['smtps']}   (STARTTLS on {info['smtp_starttls']})\n"
                f"  user     {sb.address(user)} / {sb.password(user)}\n"
                f"  CA file  {info['ca_file']}\n"
            )
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            ctx.info("Stopping the sandbox.")
    return 0
