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
from pathlib import Path
from typing import TYPE_CHECKING

from mailbag.errors import UsageError
from mailbag.paths import Paths
from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.config.model import Account
    from mailbag.diagnose import StepResult, TestReport
    from mailbag.message.parse import ParsedMessage
    from mailbag.store.index import Message, Store
    from mailbag.store.listing import FolderConversations, Refreshed, ThreadSummary

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
    def unread(self) -> bool:
        return "\\Seen" not in self.flags

    @property
    def marks(self) -> str:
        unread = " " if "\\Seen" in self.flags else "N"
        flagged = "!" if "\\Flagged" in self.flags else " "
        answered = "r" if "\\Answered" in self.flags else " "
        attach = "@" if self.has_attachments else " "
        return unread + flagged + answered + attach


@dataclass(frozen=True)
class AttachmentRow:
    index: int  # 1-based, as `mailbag attachments` numbers them
    name: str  # cleaned for the terminal; display only, never a path
    content_type: str
    size: int

    @property
    def label(self) -> str:
        name = self.name or "(no name)"
        return f"{self.index}. {name}  {self.content_type}, {human_size(self.size)}"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


@dataclass
class Rendered:
    id: str
    headers: list[tuple[str, str]]
    body: str
    attachments: list[AttachmentRow]
    notes: list[str] = field(default_factory=list)


ROWS_PER_FETCH = 100
QUICK_TOP = 2000  # lines a big folder shows at once, before the rest of its order is read
MAX_CACHED_ROWS = 20_000
#: folders whose conversations are kept between looks (about 40 MB for 200,000 messages)
GROUPED_FOLDERS = 3


class ListModel:
    """The message list as the screen sees it: message IDs in order, rows fetched by page.

    Flat: one line per message. Threaded: one line per conversation (its newest
    message), and an expanded conversation's older messages follow it. Lines
    are plain row IDs (a message is on one line only), with conversations and
    expanded children on the side, so a 200,000-line list costs one list of
    ints; and every operation works on this list alone (unfolding inserts a
    slice, deleting pops a line): nothing goes back over all messages on a key.
    """

    def __init__(self, ids: list[int], fetch: Callable[[list[int]], list[MessageRow]]) -> None:
        self.entries = ids
        self.fetch = fetch
        self.threaded = False
        self.heads: dict[int, ThreadSummary] = {}  # first line of a conversation of 2+
        self.children: set[int] = set()  # lines shown under an expanded conversation
        self.expanded: set[int] = set()  # newest message ID of each expanded conversation
        self.complete = True  # False: only the top of a big folder is here yet
        #: search results by conversation: the messages that matched (None: not a search);
        #: the rest of each conversation is there for context
        self.matches: set[int] | None = None
        self._rows: dict[int, MessageRow] = {}

    @classmethod
    def flat(cls, ids: list[int], fetch: Callable[[list[int]], list[MessageRow]]) -> ListModel:
        return cls(ids, fetch)

    @classmethod
    def by_thread(
        cls, threads: list[ThreadSummary], fetch: Callable[[list[int]], list[MessageRow]]
    ) -> ListModel:
        model = cls([t.ids[0] for t in threads], fetch)
        model.heads = {t.ids[0]: t for t in threads if len(t.ids) > 1}
        model.threaded = True
        return model

    @classmethod
    def of_rows(cls, rows: list[MessageRow]) -> ListModel:
        model = cls([int(r.id) for r in rows], lambda ids: [])
        model._rows = {int(r.id): r for r in rows}
        return model

    def complete_with(self, ids: list[int]) -> None:
        """The whole order of a flat list whose top was read first."""
        self.entries = ids
        self.complete = True

    def __len__(self) -> int:
        return len(self.entries)

    def thread_at(self, index: int) -> ThreadSummary | None:
        """The conversation line `index` heads (None: a single message or a child)."""
        return self.heads.get(self.entries[index])

    def is_child(self, index: int) -> bool:
        return self.entries[index] in self.children

    def row(self, index: int) -> MessageRow:
        """The message on line `index`, fetched with the next lines when not known yet."""
        message = self.entries[index]
        found = self._rows.get(message)
        if found is not None:
            return found
        if len(self._rows) > MAX_CACHED_ROWS:
            self._rows.clear()
        start = max(0, index - ROWS_PER_FETCH // 4)
        wanted = [m for m in self.entries[start : start + ROWS_PER_FETCH] if m not in self._rows]
        for row in self.fetch(wanted):
            self._rows[int(row.id)] = row
        found = self._rows.get(message)
        if found is None:  # gone meanwhile (another process): show a placeholder
            found = MessageRow(str(message), "", "", "(gone)", frozenset({"\\Seen"}), False, 0)
            self._rows[message] = found
        return found

    def rows(self) -> list[MessageRow]:
        """Every line's message (fetches them all: for tests and small lists)."""
        return [self.row(i) for i in range(len(self.entries))]

    def index_of(self, message_id: str) -> int | None:
        try:
            return self.entries.index(int(message_id))
        except ValueError:
            return None

    def head_of(self, index: int) -> int:
        """The line heading the conversation that line `index` is in."""
        while index > 0 and self.entries[index] in self.children:
            index -= 1
        return index

    def is_expanded(self, index: int) -> bool:
        return self.entries[index] in self.expanded

    def expand(self, index: int) -> None:
        thread = self.thread_at(index)
        if thread is None or thread.ids[0] in self.expanded:
            return
        self.expanded.add(thread.ids[0])
        self.children.update(thread.ids[1:])
        self.entries[index + 1 : index + 1] = thread.ids[1:]

    def collapse(self, index: int) -> int:
        """Fold the conversation line `index` is in; returns the line of its head."""
        head = self.head_of(index)
        thread = self.thread_at(head)
        if thread is None or thread.ids[0] not in self.expanded:
            return head
        self.expanded.discard(thread.ids[0])
        self.children.difference_update(thread.ids[1:])
        del self.entries[head + 1 : head + len(thread.ids)]
        return head

    def remove_conversation(self, index: int) -> None:
        """The whole conversation headed by line `index` left this folder."""
        thread = self.thread_at(index)
        if thread is None:
            self.remove(index)
            return
        self.collapse(index)
        del self.heads[thread.ids[0]]
        del self.entries[index]
        for message in thread.ids:
            self._rows.pop(message, None)

    def unfold_like(self, old: ListModel) -> None:
        """Unfold the conversations that were unfolded in `old` (the same folder, regrouped)."""
        if not old.expanded:
            return
        was_open = old.children | old.expanded
        heads = [t.ids[0] for t in self.heads.values() if not was_open.isdisjoint(t.ids)]
        for head in heads:
            index = self.index_of(str(head))
            if index is not None:
                self.expand(index)

    def toggle(self, index: int) -> int:
        head = self.head_of(index)
        if self.is_expanded(head):
            return self.collapse(head)
        self.expand(head)
        return head

    def replace(self, index: int, row: MessageRow) -> None:
        """A message's flags changed; keeps its conversation's unread count right."""
        old = self._rows.get(int(row.id))
        self._rows[int(row.id)] = row
        if old is None or old.unread == row.unread:
            return
        head = self.head_of(index)
        thread = self.thread_at(head)
        if thread is not None:
            unread = max(0, thread.unread + (1 if row.unread else -1))
            self.heads[thread.ids[0]] = thread._replace(unread=unread)

    def replace_conversation(self, index: int, rows: list[MessageRow]) -> None:
        """The messages of the conversation headed by line `index` changed flags."""
        for row in rows:
            self._rows[int(row.id)] = row
        thread = self.thread_at(index)
        if thread is not None:
            unread = sum(1 for r in rows if r.unread)
            self.heads[thread.ids[0]] = thread._replace(unread=unread)

    def is_context(self, index: int) -> bool:
        """A search result's line that did not match (shown for its conversation)."""
        return self.matches is not None and self.entries[index] not in self.matches

    def remove(self, index: int) -> None:
        """The message on line `index` left this folder."""
        message = self.entries[index]
        head = self.head_of(index)
        thread = self.thread_at(head)
        row = self._rows.pop(message, None)
        if thread is None:
            del self.entries[index]
            return
        expanded = thread.ids[0] in self.expanded
        self.collapse(head)
        del self.heads[thread.ids[0]]
        ids = tuple(i for i in thread.ids if i != message)
        unread = max(0, thread.unread - (1 if row is not None and row.unread else 0))
        self.entries[head] = ids[0]
        if len(ids) > 1:
            self.heads[ids[0]] = thread._replace(ids=ids, unread=unread)
            if expanded:
                self.expand(head)


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
        self._open_dir: Path | None = None
        # conversations of the folders looked at last, kept current after each sync
        # (see `conversations`); workers take turns through the lock
        self._grouped: dict[tuple[str, str], FolderConversations] = {}
        self._grouping = threading.Lock()
        self.last_grouping: Refreshed | None = None  # what the last `conversations` did

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

    def rows_by_id(self, ids: list[int]) -> list[MessageRow]:
        from mailbag.store.listing import messages_by_id

        if not ids:
            return []
        with self._store() as store:
            return [_row(m) for m in messages_by_id(store, ids)]

    def message_list(self, account: str, folder: str, *, size: int = 0) -> ListModel:
        """The folder newest first, one line per message. For a big folder (`size`, as the
        folder counts say) only the top is read: `complete` it later, in a worker."""
        from mailbag.store.listing import folder_order

        first = QUICK_TOP if size > 4 * QUICK_TOP else None
        with self._store() as store:
            ids = folder_order(store, account, folder, first=first)
        model = ListModel.flat(ids, self.rows_by_id)
        model.complete = first is None or len(ids) < first
        return model

    def message_order(self, account: str, folder: str) -> list[int]:
        """Every message of the folder, newest first (for `ListModel.complete_with`)."""
        from mailbag.store.listing import folder_order

        with self._store() as store:
            return folder_order(store, account, folder)

    def conversations(self, account: str, folder: str) -> list[ThreadSummary]:
        """The folder's conversations, newest first, brought up to date: grouped whole the
        first time, then only what changed since is folded in. Run it in a worker."""
        from mailbag.store.listing import FolderConversations

        key = (account, folder)
        with self._grouping:
            live = self._grouped.pop(key, None) or FolderConversations(account, folder)
            self._grouped[key] = live  # the most recently used last
            while len(self._grouped) > GROUPED_FOLDERS:
                del self._grouped[next(iter(self._grouped))]
            with self._store() as store:
                self.last_grouping = live.refresh(store)
            return list(live.threads)  # a copy: the next refresh changes the list in place

    def thread_list(self, account: str, folder: str) -> ListModel:
        """The folder by conversation, newest conversation first (run it in a worker)."""
        return ListModel.by_thread(self.conversations(account, folder), self.rows_by_id)

    def search(self, query: str, limit: int = 500) -> list[MessageRow]:
        from mailbag.store.query import search

        with self._store() as store:
            return [_row(m) for m in search(store, query, limit=limit)]

    def search_threads(self, query: str, limit: int = 500) -> ListModel:
        """Search results in their conversations (each folder's, as the folder shows them,
        joined with where they go on in other folders of the account: your replies in Sent,
        a parent archived elsewhere), newest conversation first; `matches` says which
        messages matched. Run it in a worker: a folder not grouped lately is grouped whole
        (and not kept, so a search does not push out the folders being read)."""
        from mailbag.store.listing import FolderConversations, join_across_folders, thread_order
        from mailbag.store.query import search

        with self._store() as store:
            found = search(store, query, limit=limit)
            by_folder: dict[tuple[str, str], list[int]] = {}
            for m in found:
                by_folder.setdefault((m.account, m.folder), []).append(m.id)
            threads: dict[str, dict[int, ThreadSummary]] = {}  # account -> head -> thread
            with self._grouping:
                for (account, folder), ids in by_folder.items():
                    live = self._grouped.get((account, folder)) or FolderConversations(
                        account, folder
                    )
                    live.refresh(store)
                    grouped = live.grouped
                    for i in ids:
                        thread = None if grouped is None else grouped.thread_of(i)
                        if thread is not None:  # None: gone meanwhile
                            threads.setdefault(account, {})[thread.ids[0]] = thread
            # a conversation goes on in other folders: your replies in Sent, a parent archived
            joined = [
                t
                for account, heads in threads.items()
                for t in join_across_folders(store, account, heads.values())
            ]
        model = ListModel.by_thread(sorted(joined, key=thread_order), self.rows_by_id)
        model.matches = {m.id for m in found}
        return model

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
        attachments = [
            AttachmentRow(a.index, clean_terminal(a.name), clean_terminal(a.content_type), a.size)
            for a in list_attachments(msg)
        ]
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
            attachments=attachments,
            notes=[clean_terminal(n) for n in notes],
        )

    def _parsed(self, message_id: str) -> ParsedMessage:
        from mailbag.message.parse import parse_message

        with self._store() as store:
            return parse_message(store.read_bytes(store.lookup(message_id)))

    def save_attachment(self, message_id: str, index: int, folder: str) -> Path:
        """Into `folder` under a safe name, never over an existing file (`attachments --save`)."""
        from mailbag.message.attachments import save_attachments

        target = Path(folder).expanduser()
        saved = save_attachments(self._parsed(message_id), target, only={index})
        if not saved:
            raise UsageError(f"message {message_id} has no attachment {index}")
        return saved[0][1]

    def open_attachment(self, message_id: str, index: int) -> Path:
        """Write the attachment into this session's private folder and hand it to the
        system's handler ($MAILBAG_OPENER, else xdg-open/open); returns the file."""
        import tempfile

        from mailbag.opener import open_file

        if self._open_dir is None:
            self._open_dir = Path(tempfile.mkdtemp(prefix="mailbag-open-"))  # mode 0700
        path = self.save_attachment(message_id, index, str(self._open_dir))
        open_file(path)
        return path

    def cleanup(self) -> None:
        """Remove the files written for viewing (as mail clients do on exit)."""
        import shutil

        if self._open_dir is not None:
            shutil.rmtree(self._open_dir, ignore_errors=True)
            self._open_dir = None

    def set_flag(self, message_ids: list[str], flag: str, on: bool) -> list[MessageRow]:
        """Set (or clear) a flag on several messages at once (a conversation)."""
        with self._store() as store:
            changed = []
            for message_id in message_ids:
                message = store.lookup(message_id)
                flags = message.flags | {flag} if on else message.flags - {flag}
                if flags != message.flags:
                    message = store.set_flags(message, flags, commit=False)
                changed.append(_row(message))
            store.commit()
        return changed

    def toggle_flag(self, message_id: str, flag: str) -> MessageRow:
        from mailbag.store.actions import apply_flag_changes

        with self._store() as store:
            message = store.lookup(message_id)
            sign = "-" if flag in message.flags else "+"
            name = flag.lstrip("\\").lower()
            return _row(apply_flag_changes(store, message, [sign + name]))

    def delete(self, *message_ids: str) -> str | None:
        """To Trash (returns its name), or for good when already there (returns None)."""
        from mailbag.store.actions import delete

        where = None
        with self._store() as store:
            for message_id in message_ids:
                moved = delete(store, store.lookup(message_id))
                where = None if moved is None else moved.folder
        return where

    def move(self, folder: str, *message_ids: str) -> None:
        from mailbag.store.actions import find_target_folder

        with self._store() as store:
            for message_id in message_ids:
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
