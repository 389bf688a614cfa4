"""Helpers for the interactive-client tests: a mailbag home holding one sandbox account,
and waiting for the app to get somewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailbag.config import save_account
from mailbag.paths import Paths
from mailbag.record import replace
from mailbag.sandbox import Sandbox


def sandbox_home(
    tmp_path: Path, sb: Sandbox, user: str, name: str, display_name: str | None = None
) -> Paths:
    """Paths under `tmp_path` whose config has `user`'s sandbox account as the default
    (implicit TLS both ways, the password from a command: no keyring needed)."""
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    account = sb.account(user, name=name, password_command=True)
    if display_name is not None:
        account = replace(account, display_name=display_name)
    save_account(paths, account, make_default=True)
    return paths


def status_line(app: Any) -> str:
    """What the main screen's status bar says, whole (the bar cuts it to one line)."""
    return str(app.status_text)


async def wait_for(
    pilot: Any,
    check: Callable[[], object],
    timeout: float = 20.0,
    *,
    explain: Callable[[], object] | None = None,
) -> None:
    """Let the app run (workers, timers, pushed mail) until `check()` holds; after
    `timeout` seconds fail, saying what `explain()` (else the status bar) shows."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            shown = explain() if explain is not None else status_line(pilot.app)
            raise AssertionError(f"the screen did not get there in time ({shown})")
        await pilot.pause(0.05)


def thread_mail(
    msgid: str,
    subject: str,
    day: int,
    references: str = "",
    *,
    sender: str = "Bob <bob@sandbox.test>",
    month: str = "Mar",
    attachments: bool = False,
) -> bytes:
    """A short message to carol dated `day` of `month` 2026, replying to the last
    Message-ID of `references` when given; with `attachments`, a PDF and a script
    whose name tries to climb out of the save folder."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "carol@sandbox.test"
    msg["Subject"] = subject
    msg["Date"] = f"{day:02d} {month} 2026 10:00:00 +0000"
    msg["Message-ID"] = msgid
    if references:
        msg["In-Reply-To"] = references.split()[-1]
        msg["References"] = references
    msg.set_content(f"this is {subject}\n")
    if attachments:
        msg.add_attachment(b"%PDF-1.4 report", "application", "pdf", filename="report.pdf")
        msg.add_attachment(b"#!/bin/sh\necho no\n", "text", "x-sh", filename="../../evil.sh")
    return msg.as_bytes()


def folder_label(app: Any, account: str, folder: str) -> tuple[int, int]:
    """(messages, unread) of a folder in the tree, checking the label drawn says the same."""
    row = app.folder_row(account, folder)
    assert row is not None, f"no folder {folder} in the tree"
    assert str(app._folder_nodes[(account, folder)].label) == row.label
    return int(row.total), int(row.unread)


def subjects(app: Any) -> list[str]:
    """The subjects of the message list's lines, top to bottom."""
    return [r.subject for r in app.model.rows()]
