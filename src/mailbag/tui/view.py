"""What the interactive client shows and does, as plain values and calls.

The Textual app talks only to this module; this module talks only to the
library's public API (config, store, message rendering, sync, diagnose). No
widget code here and no SQL, so both sides can be tested on their own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.paths import Paths
from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.config.model import Account
    from mailbag.diagnose import StepResult, TestReport
    from mailbag.store.index import Message, Store

ROLE_ORDER = ["inbox", "drafts", "sent", "archive", "junk", "trash"]


@dataclass(frozen=True)
class FolderRow:
    account: str
    name: str
    role: str | None
    total: int
    unread: int

    @property
    def label(self) -> str:
        count = f" ({self.unread})" if self.unread else ""
        return clean_terminal(self.name) + count


@dataclass(frozen=True)
class MessageRow:
    id: str
    date: str
    sender: str
    subject: str
    flags: frozenset[str]
    has_attachments: bool
    size: int | None

    @property
    def marks(self) -> str:
        unread = " " if "\\Seen" in self.flags else "N"
        flagged = "!" if "\\Flagged" in self.flags else " "
        answered = "r" if "\\Answered" in self.flags else " "
        attach = "@" if self.has_attachments else " "
        return unread + flagged + answered + attach


@dataclass
class Rendered:
    id: str
    headers: list[tuple[str, str]]
    body: str
    attachments: list[str]
    notes: list[str] = field(default_factory=list)


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    d = dt.datetime.fromtimestamp(ts).astimezone()
    now = dt.datetime.now().astimezone()
    if d.date() == now.date():
        return d.strftime("%H:%M")
    if d.year == now.year:
        return d.strftime("%b %d")
    return d.strftime("%Y-%m-%d")


def _sender(from_addr: str) -> str:
    from email.utils import parseaddr

    name, addr = parseaddr(from_addr)
    return clean_terminal(name or addr or from_addr)


def _row(m: Message) -> MessageRow:
    return MessageRow(
        id=m.short_id,
        date=_when(m.date or m.internal_date),
        sender=_sender(m.from_addr),
        subject=clean_terminal(m.subject) or "(no subject)",
        flags=m.flags,
        has_attachments=m.has_attachments,
        size=m.size,
    )


class MailView:
    """One user's mail as the interactive client sees it."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def _store(self) -> Store:
        from mailbag.store.index import Store

        return Store.open(self.paths)

    # --- accounts and folders --------------------------------------------------------

    def accounts(self) -> list[Account]:
        from mailbag.config import load_config

        return list(load_config(self.paths).accounts.values())

    def folders(self) -> list[FolderRow]:
        """Every local folder: per account, roles first (inbox, drafts, ...), then by name."""
        if not self.paths.index_file.exists():
            return []
        with self._store() as store:
            rows = [
                FolderRow(f.account, f.name, f.role, total, unread)
                for f, total, unread in store.folder_counts()
            ]

        def order(r: FolderRow) -> tuple[str, int, str]:
            rank = ROLE_ORDER.index(r.role) if r.role in ROLE_ORDER else len(ROLE_ORDER)
            return (r.account, rank, r.name.lower())

        return sorted(rows, key=order)

    # --- messages --------------------------------------------------------------------

    def messages(self, account: str, folder: str, limit: int | None = None) -> list[MessageRow]:
        with self._store() as store:
            return [_row(m) for m in store.messages(account=account, folder=folder, limit=limit)]

    def search(self, query: str, limit: int = 500) -> list[MessageRow]:
        from mailbag.store.query import search

        with self._store() as store:
            return [_row(m) for m in search(store, query, limit=limit)]

    def read(self, message_id: str, *, mark_seen: bool = True) -> Rendered:
        from mailbag.message.attachments import list_attachments
        from mailbag.message.parse import parse_message
        from mailbag.message.render import render_body
        from mailbag.store.actions import mark_seen as seen

        with self._store() as store:
            message = store.lookup(message_id)
            raw = store.read_bytes(message)
            if mark_seen:
                seen(store, message)
        msg = parse_message(raw)
        body = render_body(msg)
        h = msg.headers
        headers = [
            (name, clean_terminal(value))
            for name, value in (
                ("From", h.decoded("From")),
                ("To", h.decoded("To")),
                ("Cc", h.decoded("Cc")),
                ("Date", h.decoded("Date")),
                ("Subject", h.decoded("Subject")),
            )
            if value
        ]
        notes = list(msg.notices + body.notices)
        summary = body.remote.summary()
        if summary:
            notes.insert(0, f"{summary}; nothing was fetched")
        return Rendered(
            id=message_id,
            headers=headers,
            body=clean_terminal(body.text or "(no text body)", keep_newlines=True),
            attachments=[clean_terminal(a.name or a.content_type) for a in list_attachments(msg)],
            notes=[clean_terminal(n) for n in notes],
        )

    def toggle_flag(self, message_id: str, flag: str) -> MessageRow:
        from mailbag.store.actions import apply_flag_changes

        with self._store() as store:
            message = store.lookup(message_id)
            sign = "-" if flag in message.flags else "+"
            name = flag.lstrip("\\").lower()
            return _row(apply_flag_changes(store, message, [sign + name]))

    def delete(self, message_id: str) -> None:
        from mailbag.store.actions import delete

        with self._store() as store:
            delete(store, store.lookup(message_id))

    def move(self, message_id: str, folder: str) -> None:
        from mailbag.store.actions import find_target_folder

        with self._store() as store:
            message = store.lookup(message_id)
            store.move(message, find_target_folder(store, message.account, folder))

    def folder_names(self, account: str) -> list[str]:
        with self._store() as store:
            return [f.name for f in store.folders(account)]

    # --- network work (run these in a worker thread) ------------------------------------

    def sync(self, on_note: Callable[[str], None]) -> list[str]:
        """Sync every account; returns one line per account (errors included)."""
        from mailbag.config.model import Protocol
        from mailbag.config.secrets import get_secret
        from mailbag.errors import MailbagError
        from mailbag.sync.imap import SyncOptions, sync_account

        lines = []
        for account in self.accounts():
            on_note(f"syncing {account.name} ...")
            try:
                if account.protocol is Protocol.POP3:
                    from mailbag.sync.pop3 import sync_pop3_account

                    pop = sync_pop3_account(account, self.paths)
                    summary = pop.folder_summary()
                    lines.append(f"{account.name}: {summary['new']} new")
                    continue
                oauth2 = account.incoming.auth.value == "oauth2"  # tokens: mailbag.auth
                report = sync_account(
                    account,
                    "" if oauth2 else get_secret(account, "incoming"),
                    self.paths,
                    options=SyncOptions(lock_wait=60.0),
                )
            except MailbagError as exc:
                lines.append(f"{account.name}: {exc.message}")
                continue
            if report.error:
                lines.append(f"{account.name}: {report.error}")
            else:
                new = sum(f.new for f in report.folders)
                lines.append(f"{account.name}: {new} new")
        return lines

    def start_push(
        self,
        on_new: Callable[[str, int], None],
        stop: threading.Event,
        on_error: Callable[[str, str], None] = lambda name, message: None,
    ) -> list[str]:
        """Watch every IMAP account's INBOX (IDLE) in daemon threads; returns their names."""
        from mailbag.config.model import Protocol
        from mailbag.sync.watch import watch_account

        names = []
        for account in self.accounts():
            if account.protocol is not Protocol.IMAP:
                continue
            name = account.name
            threading.Thread(
                target=watch_account,
                name=f"push-{name}",
                kwargs={
                    "account": account,
                    "paths": self.paths,
                    "on_new": lambda new, name=name: on_new(name, len(new)),
                    "on_error": lambda exc, name=name: on_error(name, exc.message),
                    "stop": stop,
                },
                daemon=True,
            ).start()
            names.append(name)
        return names

    def test_account(
        self, account: Account, secrets: dict[str, str], on_step: Callable[[StepResult], None]
    ) -> TestReport:
        from mailbag.diagnose import test_account

        def secret(which: str) -> str:
            return secrets.get(which) or secrets["incoming"]

        return test_account(account, secret=secret, send=True, on_step=on_step)
