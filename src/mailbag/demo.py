"""Sample content for `mailbag demo`: mail in a few folders and a welcome note.

Library code: it only talks to the sandbox, never to the user (the CLI does that).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, localtime, make_msgid

from mailbag.sandbox import Sandbox

DEMO_USER = "alice"
DEMO_ACCOUNT = "demo"
FOLDERS = {"INBOX": 1.0, "Work": 0.3, "Newsletters": 0.2}

WELCOME = """\
Welcome to mailbag.

This inbox lives on a real mail server (Dovecot) running on your machine's
loopback interface; mailbag added an account named "demo" for it, tested it,
and synced it into a local Maildir with a search index.

Things to try in another terminal while the demo runs:

  mailbag list                        the newest messages
  mailbag read ID                     one message (IDs are in the first column)
  mailbag search 'from:eva report'    full-text search with fields
  mailbag send --to bob@sandbox.test --subject hi --body 'hello'
  mailbag account test demo           the layer-by-layer account check
  mailbag sync                        pick up what changed on the server

Everything stays on this machine.
"""


def welcome_message(sb: Sandbox, user: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "mailbag <welcome@sandbox.test>"
    msg["To"] = sb.address(user)
    msg["Subject"] = "Welcome to mailbag"
    msg["Date"] = format_datetime(localtime())
    msg["Message-ID"] = make_msgid(domain="sandbox.test")
    msg.set_content(WELCOME)
    return msg.as_bytes(policy=SMTP)


def populate(sb: Sandbox, messages: int, user: str = DEMO_USER) -> dict[str, int]:
    """Sample mail in a few folders plus a welcome note; returns folder -> count."""
    counts = {}
    for seed, (folder, share) in enumerate(FOLDERS.items(), start=1):
        n = max(1, int(messages * share))
        sb.fill(user, n, folder, seed=seed)
        counts[folder] = n
    sb.deliver(user, welcome_message(sb, user))
    counts["INBOX"] += 1
    return counts
