"""The local store: Maildir folders on disk plus one SQLite index (WAL).

Layout: `Paths.mail_dir/<account>/<folder path>` is a Maildir per folder
(server folder names are split at their delimiter and each part made safe, see
`folder_dir`); `Paths.index_file` is the index. The index maps Maildir keys to
server UIDs, holds the envelope fields `list`/`search` show, and the flags as
last synced (for three-way merges).

API (all a `Store` method unless said otherwise)::

    store = Store.open(paths)                  # or `with Store.open(paths) as store:`
    f = store.folder("acct", "INBOX")          # creates the row (and Maildir) if new
    store.folders("acct") -> [Folder]          # every known folder of an account
    key, fh = store.maildir(f).open_tmp()      # stream the message into tmp/ ...
    fh.write(data); fh.close()
    m = store.add_message(f, key, flags={"\\Seen"})     # ... then index + deliver it
    store.add_bytes(f, data, flags=...)        # the same for bytes already in memory
    store.set_flags(m, {"\\Seen", "\\Flagged"})          # renames the file, updates the row
    store.remove(m)                            # deletes the file; next sync expunges it
    store.move(m, other_folder) -> Message     # moves the file; next sync moves on the server
    store.get(id) / store.lookup("42")         # by short stable local ID (`Message.short_id`)
    store.messages(account=, folder=, unread=, limit=)   # newest first
    store.path(m) -> Path                      # where the file is now
    store.close()

Durability: `add_message(..., commit=False)` leaves the file unsynced in tmp/;
`commit()` fsyncs every pending file, commits the index, then renames the
files into place. A crash before the commit leaves only tmp/ files (removed by
`recover()`); a crash after it leaves indexed files in tmp/ that `recover()`
delivers. So a row never points at mail that is not on disk.

Hooks: the full-text index plugs in through `Store.hooks` (objects with
`message_added(store, message, path)` and `message_removed(store, message_id)`),
called inside the same transaction (the sync defers `message_added`, see `open`).
If `mailbag.store.fulltext` defines `store_hook(store)`, `Store.open` adds what
it returns (a store that defers indexing skips it when the full-text schema is in
place: `fulltext_in_place`).

This module must never delete a file it has not been asked to delete, and
never turn a missing file or a missing index into a deletion anywhere else.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from mailbag.errors import StoreError, UsageError
from mailbag.paths import Paths
from mailbag.record import NamedTuple, Record
from mailbag.store.maildir import (
    Maildir,
    MaildirEntry,
    Unlinker,
    fsync_dir,
    fsync_many,
    is_own_tmp_name,
    sync_batch,
    writer_may_be_running,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from mailbag.store.envelope import Envelope

__all__ = [
    "SCHEMA_VERSION",
    "Folder",
    "Message",
    "NewMessage",
    "Store",
    "StoreHook",
    "flags_text",
    "folder_dir",
    "parse_flags",
]

# --- schema ------------------------------------------------------------------------------

#: the newest-first order (`list`, `search`, contacts): COALESCE(date, internal_date), id
WHEN_INDEX = "messages_by_when"

#: what the full-text index (`mailbag.store.fulltext`, which makes them) keeps in the
#: index file: its tables' version, and its triggers and indexes on `messages`. Named
#: here so that a store deferring indexing (the sync) can tell they are in place without
#: loading that module (`fulltext_in_place`): then the triggers keep its to-do lists,
#: and nothing of the module would run.
FULLTEXT_VERSION = 2
FULLTEXT_TRIGGERS = ("fulltext_on_insert", "fulltext_forget_deleted", "fulltext_forget_gone")
FULLTEXT_INDEXES = (WHEN_INDEX, "messages_with_attachments")


def fulltext_names(conn: sqlite3.Connection) -> set[str] | None:
    """The full-text index's triggers and the `messages_` indexes in the index file, when
    its tables are of `FULLTEXT_VERSION`; None when they are missing or older."""
    try:
        row = conn.execute("SELECT version FROM fulltext_meta").fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None or row[0] != FULLTEXT_VERSION:
        return None
    return {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE (type = 'trigger' AND name LIKE 'fulltext_%')"
            " OR (type = 'index' AND name LIKE 'messages_%')"
        )
    }


def fulltext_in_place(conn: sqlite3.Connection) -> bool:
    """The full-text tables, triggers and indexes are all there, at this version."""
    names = fulltext_names(conn)
    return names is not None and names.issuperset((*FULLTEXT_TRIGGERS, *FULLTEXT_INDEXES))


_MIGRATIONS: list[str] = [
    # 1: first schema
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        state TEXT                       -- JSON: capabilities seen, sync notes
    );
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,              -- the server's name (decoded), '/'-free not assumed
        delimiter TEXT,
        role TEXT,                       -- inbox, sent, drafts, trash, junk, archive, all
        uidvalidity INTEGER,             -- NULL until the first sync pairs it
        uidnext INTEGER,
        highestmodseq INTEGER,
        messages INTEGER,                -- count on the server at the last sync
        sync_state TEXT,                 -- JSON, engine-private
        last_sync REAL,
        UNIQUE (account_id, name)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER,                     -- NULL: only here (not yet uploaded)
        key TEXT NOT NULL,               -- Maildir base name
        flags TEXT NOT NULL DEFAULT '',  -- current local flags, sorted, space separated
        synced_flags TEXT,               -- flags both sides agreed on last (NULL: never)
        gone INTEGER NOT NULL DEFAULT 0, -- file deleted here, the server copy goes next sync
        size INTEGER,
        internal_date REAL,
        date REAL,
        message_id TEXT,
        subject TEXT,
        from_addr TEXT,
        to_addrs TEXT,
        cc_addrs TEXT,
        in_reply_to TEXT,
        refs TEXT,
        modseq INTEGER,
        email_id TEXT,                   -- OBJECTID EMAILID or X-GM-MSGID
        has_attachments INTEGER NOT NULL DEFAULT 0,
        moved_from_folder INTEGER,       -- set by `move`: where the server copy still is
        moved_from_uid INTEGER,
        added REAL NOT NULL,
        UNIQUE (folder_id, key)
    );
    CREATE UNIQUE INDEX messages_folder_uid ON messages(folder_id, uid) WHERE uid IS NOT NULL;
    CREATE INDEX messages_when ON messages(date);
    CREATE INDEX messages_msgid ON messages(message_id);
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,              -- 'flags' | 'delete' | 'move' (for the next sync)
        message_row INTEGER,
        folder_id INTEGER,
        uid INTEGER,
        detail TEXT,
        created REAL NOT NULL
    );
    """,
    # 2: the rows a sync has to push, found without reading the folder (the no-change
    # check of every folder at every sync); queries must repeat PENDING_ROWS exactly
    """
    CREATE INDEX messages_pending ON messages(folder_id) WHERE
        uid IS NULL OR gone = 1 OR moved_from_uid IS NOT NULL OR synced_flags IS NULL
        OR flags != synced_flags;
    """,
    # 3: one newest-first index instead of two: `messages_when` (date) did what
    # `messages_by_when` (made by the full-text module until now) does, and every index
    # is one more B-tree each added or deleted message writes (a sync deleting 1% of
    # 20,000 messages spent a fifth of its index time on this one)
    f"""
    DROP INDEX IF EXISTS messages_when;
    CREATE INDEX IF NOT EXISTS {WHEN_INDEX} ON messages(COALESCE(date, internal_date), id);
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)
#: rows with something for the next sync to push: new, deleted or moved here, or flags
#: changed here. The `messages_pending` partial index covers exactly this condition.
PENDING_ROWS = (
    "(uid IS NULL OR gone = 1 OR moved_from_uid IS NOT NULL OR synced_flags IS NULL "
    "OR flags != synced_flags)"
)


# --- values --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def parse_flags(text: str | None) -> frozenset[str]:
    # cached: a store has few distinct flag combinations and many messages
    return frozenset(text.split()) if text else frozenset()


_INSERT_MESSAGE = (
    "INSERT INTO messages(folder_id, uid, key, flags, synced_flags, size, "
    "internal_date, date, message_id, subject, from_addr, to_addrs, cc_addrs, "
    "in_reply_to, refs, modseq, email_id, has_attachments, added) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


class Folder(NamedTuple):
    """A folder of an account: its Maildir and what the last sync knew of it."""

    id: int
    account: str
    name: str
    delimiter: str | None
    role: str | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    messages: int | None
    sync_state: str | None
    path: Path
    last_sync: float | None = None  # when a sync last completed this folder (time.time())

    @property
    def maildir(self) -> Maildir:
        return Maildir(self.path)


class Message(NamedTuple):
    """One row of the index: a message file and what is known about it."""

    id: int
    folder_id: int
    account: str
    folder: str
    uid: int | None
    key: str
    flags: frozenset[str]
    synced_flags: frozenset[str] | None
    gone: bool
    size: int | None
    internal_date: float | None
    date: float | None
    message_id: str
    subject: str
    from_addr: str
    to_addrs: str
    cc_addrs: str
    in_reply_to: str
    references: str
    modseq: int | None
    email_id: str | None
    has_attachments: bool
    moved_from_folder: int | None
    moved_from_uid: int | None

    @property
    def short_id(self) -> str:
        """The ID users type: stable for the life of the message in this store."""
        return str(self.id)

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


if TYPE_CHECKING:  # (a Protocol: for the type checker only)

    class StoreHook(Protocol):
        def message_added(self, store: Store, message: Message, path: Path) -> None: ...

        def message_removed(self, store: Store, message_id: int) -> None: ...


_UNSAFE_PARTS = {"", ".", "..", "cur", "new", "tmp"}


def _safe_part(part: str) -> str:
    """One path component from a server name: never '..', never a Maildir subdir."""
    out = []
    for ch in part:
        if ch in "%/\\\x00" or ord(ch) < 32:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    text = "".join(out)
    if text.startswith("."):
        text = "%2E" + text[1:]
    if text in _UNSAFE_PARTS:
        text = "%" + text
    return text


def folder_dir(mail_dir: Path, account: str, name: str, delimiter: str | None) -> Path:
    """Where folder `name` of `account` lives on disk.

    Server names are split at the server's delimiter into nested directories;
    each part is escaped so that it stays inside the account's directory and
    never collides with a Maildir's own cur/new/tmp.
    """
    parts = name.split(delimiter) if delimiter else [name]
    return mail_dir.joinpath(_safe_part(account), *(_safe_part(p) for p in parts))


_MESSAGE_COLUMNS = (
    "m.id, m.folder_id, a.name, f.name, m.uid, m.key, m.flags, m.synced_flags, m.gone, m.size, "
    "m.internal_date, m.date, m.message_id, m.subject, m.from_addr, m.to_addrs, m.cc_addrs, "
    "m.in_reply_to, m.refs, m.modseq, m.email_id, m.has_attachments, m.moved_from_folder, "
    "m.moved_from_uid"
)
_MESSAGE_FROM = (
    "messages m JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id"
)


def _message(row: Sequence[Any]) -> Message:
    return Message(
        id=row[0],
        folder_id=row[1],
        account=row[2],
        folder=row[3],
        uid=row[4],
        key=row[5],
        flags=parse_flags(row[6]),
        synced_flags=None if row[7] is None else parse_flags(row[7]),
        gone=bool(row[8]),
        size=row[9],
        internal_date=row[10],
        date=row[11],
        message_id=row[12] or "",
        subject=row[13] or "",
        from_addr=row[14] or "",
        to_addrs=row[15] or "",
        cc_addrs=row[16] or "",
        in_reply_to=row[17] or "",
        references=row[18] or "",
        modseq=row[19],
        email_id=row[20],
        has_attachments=bool(row[21]),
        moved_from_folder=row[22],
        moved_from_uid=row[23],
    )


class NewMessage(NamedTuple):
    """A message written to tmp/KEY, with what the index records about it."""

    key: str
    envelope: Envelope
    size: int
    flags: frozenset[str] = frozenset()
    uid: int | None = None
    synced: bool = False  # `flags` are agreed with the server (a download)
    internal_date: float | None = None
    modseq: int | None = None
    email_id: str | None = None


class _Pending(Record):
    """Work around the next commit: files and directories to fsync before it,
    renames after."""

    __slots__ = ("deliver", "dirs", "fsync")
    fsync: list[Path]
    dirs: set[str]
    deliver: list[tuple[Maildir, str, frozenset[str]]]

    def __init__(self) -> None:
        self.fsync = []
        self.dirs = set()
        self.deliver = []


#: the size the WAL file is cut back to when it is written from its start again after a
#: checkpoint (PRAGMA journal_size_limit): the WAL is kept between runs (`Store.close`),
#: and a big transaction (an initial sync) would otherwise leave it as big as it was. 8
#: MiB: twice SQLite's auto-checkpoint size (1,000 pages of 4 KiB), so that the WAL of
#: ordinary runs is written over, never cut and grown again (a commit that grows the
#: file costs its fdatasync a journal commit).
_WAL_KEPT_BYTES = 8 * 1024 * 1024


def _wal_mark(index_file: Path) -> str | None:
    """The index's WAL as a file (inode, size, time), or None when it has none or an
    empty one; a commit writes it, a checkpoint only reads it."""
    try:
        st = os.stat(f"{index_file}-wal")
    except OSError:
        return None
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns}" if st.st_size else None


#: the bytes of `_checkpoint`'s note (a `_wal_mark`, padded with spaces; a line)
_NOTE_WIDTH = 80


def _checkpointed_file(index_file: Path) -> str:
    """Where `_checkpoint` notes the WAL whose every page it copied (`_wal_mark`)."""
    return f"{index_file}-checkpointed"


def _checkpoint(index_file: Path, mark: str) -> None:
    """`Store.checkpoint_ahead`'s work, in its thread: checkpoint the WAL found as `mark`;
    when that copied all of it and nothing wrote it meanwhile, note so, so that later
    runs do not copy the same pages again (SQLite, opening an index whose WAL was left at
    close, takes none of its pages as checkpointed). A note gone stale costs nothing
    but a checkpoint skipped: the WAL holds whatever it holds, and readers read it."""
    try:
        conn = sqlite3.connect(index_file, timeout=0.0, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error:
        return  # (busy, or the index damaged: the WAL stays as it was; others report it)
    finally:
        conn.close()
    if busy or frames != copied or _wal_mark(index_file) != mark:
        return
    # written over in place at one length (no rename, no truncation: the note needs no
    # sync, and a torn or lost one means one more checkpoint)
    with contextlib.suppress(OSError):
        fd = os.open(_checkpointed_file(index_file), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, f"{mark:<{_NOTE_WIDTH - 1}}\n".encode("ascii"), 0)
        finally:
            os.close(fd)


class Store:
    """Maildir + index for one mailbag home. Not shared between threads: open one each."""

    def __init__(self, conn: sqlite3.Connection, mail_dir: Path) -> None:
        self.conn = conn
        self.mail_dir = mail_dir
        #: the index file (`open_at`): where `close` leaves the WAL and `checkpoint_ahead`
        #: checkpoints it; None: closed as SQLite does by itself
        self.index_file: Path | None = None
        self._checkpoint: threading.Thread | None = None
        self.hooks: list[StoreHook] = []
        self.defer_indexing = False
        #: shared by the Stores of one process that write at once (see `_begin`)
        self.write_lock: threading.Lock | None = None
        self._pending = _Pending()
        #: directories being made durable ahead of the commit (`flush_dirs_ahead`)
        self._flushing: list[tuple[threading.Thread, list[BaseException]]] = []
        self._folder_cache: dict[int, Folder] = {}
        #: removes discarded files (`remove_later`); the Stores of one sync share one
        self.unlinker = Unlinker()

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, paths: Paths, *, hooks: bool = True, defer_indexing: bool = False) -> Store:
        return cls.open_at(
            paths.index_file, paths.mail_dir, hooks=hooks, defer_indexing=defer_indexing
        )

    @classmethod
    def open_at(
        cls, index_file: Path, mail_dir: Path, *, hooks: bool = True, defer_indexing: bool = False
    ) -> Store:
        """`defer_indexing`: skip the hooks' `message_added` (removals still run); the
        full-text index catches up later (`fulltext.index_missing`). The sync uses it:
        extracting text from every message would double its time."""
        try:
            index_file.parent.mkdir(parents=True, exist_ok=True)
            mail_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                index_file, timeout=60.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the index {index_file}: {exc}",
                hint="check that the data directory is writable",
                path=str(index_file),
            ) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns (the sync relies on it)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # the WAL is kept between runs (`close`): a big transaction's stays no
            # bigger than this once it has been checkpointed and is written again
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_KEPT_BYTES}")
            _migrate(conn, index_file)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"the index {index_file} is damaged: {exc}",
                hint="move it aside (with its -wal and -shm files) and run `mailbag sync`: the "
                "mail in the Maildir is kept "
                "and paired again with the server (nothing is downloaded twice or deleted)",
                path=str(index_file),
            ) from exc
        store = cls(conn, mail_dir)
        store.index_file = index_file.absolute()
        store.defer_indexing = defer_indexing
        if hooks:
            store._load_hooks()
        return store

    def _load_hooks(self) -> None:
        if self.defer_indexing and fulltext_in_place(self.conn):
            # the full-text hook indexes nothing while indexing is deferred, and has
            # nothing to do for removals: its triggers keep its lists (loading the
            # module, ~1M instructions, saved on every sync)
            return
        import importlib  # (here: a sync loads the module only for this, and seldom)

        try:
            fulltext = importlib.import_module("mailbag.store.fulltext")
        except ModuleNotFoundError as exc:
            if exc.name != "mailbag.store.fulltext":
                raise
            return
        make = getattr(fulltext, "store_hook", None)
        if callable(make):
            hook = make(self)
            if hook is not None:
                self.hooks.append(hook)

    def close(self) -> None:
        """Close the index; returns once the files handed to `remove_later` are gone
        (or, with `Unlinker.leave_running`, once an `rm` removing them has started).

        The WAL is left as it is, not checkpointed: what was committed is durable in it
        already (synchronous=FULL), and every reader finds it there. SQLite checkpoints
        when the last connection to a database closes (copying every page the WAL holds
        into the database file, fsyncing that, deleting the WAL: ~10 ms after a 1%
        re-sync of 20,000 messages, at the end of the sync when nothing else is left to
        do; and the next sync's first commit grew a new WAL file, which costs its
        fdatasync a journal commit). Python 3.11's sqlite3 cannot turn that off
        (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE); a read-only connection open meanwhile does:
        the closing connection cannot lock the database for the checkpoint, and a
        read-only one never checkpoints. The WAL is checkpointed instead by the next
        sync while it logs in (`checkpoint_ahead`) and, as ever, by the commit that takes
        it past SQLite's auto-checkpoint size (1,000 pages); `_WAL_KEPT_BYTES` bounds
        the file after a big transaction."""
        try:
            if self.conn.in_transaction:
                self.rollback()
            self.wait_checkpoint()
            keeper = self._wal_keeper()
            try:
                self.conn.close()
            finally:
                if keeper is not None:
                    keeper.close()
        finally:
            self.unlinker.close()

    def _wal_keeper(self) -> sqlite3.Connection | None:
        """A read-only connection to the index, holding its shared lock (`close`); None
        when it cannot be opened (then closing checkpoints as SQLite does)."""
        if self.index_file is None:
            return None
        # (as a URI by hand: Path.as_uri imports urllib.parse, ~1 ms)
        path = str(self.index_file).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
        try:
            keeper = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            # (a read, which takes the lock; of the header only: the schema is not loaded)
            keeper.execute("PRAGMA schema_version").fetchall()
        except sqlite3.Error:
            keeper.close()
            return None
        return keeper

    def checkpoint_ahead(self) -> None:
        """Checkpoint the WAL in a helper thread, on a connection of its own (PASSIVE:
        neither this connection's writes nor readers wait for it): what the last run
        left there (`close`) goes into the database file while this one waits for the
        server (the sync calls it before its login). A failure is not an error: the
        WAL stays, whole, as it was (the next checkpoint copies it). Nothing to do when
        the WAL is the one a checkpoint copied whole (`_checkpoint`'s note): a run that
        wrote nothing does not make the next copy the same pages again."""
        if self.index_file is None or self._checkpoint is not None:
            return
        mark = _wal_mark(self.index_file)
        if mark is None:
            return  # (none: nothing to checkpoint)
        try:
            with open(_checkpointed_file(self.index_file), encoding="ascii") as fh:
                if fh.read(_NOTE_WIDTH).rstrip() == mark:
                    return
        except (OSError, ValueError):
            pass  # (no note, or not ours: checkpoint)
        thread = threading.Thread(
            target=_checkpoint,
            args=(self.index_file, mark),
            name="mailbag-checkpoint",
            daemon=True,
        )
        thread.start()
        self._checkpoint = thread

    def wait_checkpoint(self) -> None:
        """Wait for `checkpoint_ahead`'s checkpoint (`close` does)."""
        thread, self._checkpoint = self._checkpoint, None
        if thread is not None:
            thread.join()

    @contextlib.contextmanager
    def page_cache(self, kib: int, *, spill: bool = False) -> Iterator[None]:
        """The index's page cache at most `kib` KiB while the block runs (unused pages
        are let go at once when that is less than it was), then as it was. `spill`:
        pages changed in the block go to the WAL (uncommitted) past that size too,
        instead of waiting in memory for the commit (`cache_spill`): more writes, but
        memory that does not grow with the number of rows changed."""
        conn = self.conn
        (before,) = conn.execute("PRAGMA cache_size").fetchone()
        spilled = conn.execute("PRAGMA cache_spill").fetchone()[0] if spill else None
        conn.execute(f"PRAGMA cache_size = -{int(kib)}")
        if spill:
            conn.execute(f"PRAGMA cache_spill = -{int(kib)}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA cache_size = {int(before)}")
            if spilled:
                # (as pages; then turned on again: SQLite reads a number as a boolean
                # too, and one such as 3840 as "off", its low byte being 0)
                conn.execute(f"PRAGMA cache_spill = {int(spilled)}")
                conn.execute("PRAGMA cache_spill = ON")
            elif spilled is not None:
                conn.execute("PRAGMA cache_spill = OFF")

    def remove_later(self, path: str) -> None:
        """Remove a file that is out of its Maildir folder already (`Maildir.discard`),
        or that nothing reads any more (a sync's old copies of listings), in a helper
        thread or process; `finish_removals` and `close` wait for it. Callable from any
        thread."""
        self.unlinker.put(path)

    def start_removals(self) -> None:
        """Start removing what was handed to `remove_later` so far (no waiting)."""
        self.unlinker.flush()

    def settle_removals(self) -> None:
        """Make sure the files handed to `remove_later` are removed even if this process
        dies now (`Unlinker.detach`); waits only where removing needs this process."""
        self.unlinker.detach()

    def finish_removals(self) -> None:
        """Wait until every file handed to `remove_later` is removed."""
        self.unlinker.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if e is None:
            self.commit()
        self.close()

    # --- transactions -------------------------------------------------------------------

    def _begin(self) -> None:
        if not self.conn.in_transaction:
            # Stores of one process (the sync's worker threads) take turns here instead
            # of in SQLite's busy handler, which sleeps in steps of up to 100 ms.
            if self.write_lock is not None:
                self.write_lock.acquire()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._release()
                raise

    def _release(self) -> None:
        if self.write_lock is not None and self.write_lock.locked():
            self.write_lock.release()

    def _end(self, statement: str) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute(statement)
        finally:
            self._release()

    def note_dir_changes(self, *directories: str | Path) -> None:
        """Files were created in, renamed in or moved out of `directories` for what the
        open transaction records (downloads, flag changes, discards, moves): `commit`
        makes those directories durable before the index says so."""
        self._pending.dirs.update(map(str, directories))

    def flush_dirs_ahead(self) -> None:
        """Start making the directories noted so far (`note_dir_changes`) durable now, in
        a helper thread, while the caller goes on (with the next folder of a commit that
        several share): `commit` waits for it, and flushes only the directories noted
        since. A directory changed again after is noted again, and flushed again."""
        dirs = sorted(self._pending.dirs)
        if not dirs:
            return
        self._pending.dirs = set()
        errors: list[BaseException] = []

        def flush() -> None:
            try:
                for d in dirs:
                    with contextlib.suppress(FileNotFoundError):  # (as `commit`)
                        fsync_dir(d)
            except BaseException as exc:  # noqa: BLE001 - raised by the commit
                errors.append(exc)

        thread = threading.Thread(target=flush, name="mailbag-flush", daemon=True)
        thread.start()
        self._flushing.append((thread, errors))

    def _flushed(self) -> None:
        """Wait for `flush_dirs_ahead`'s flushes; raise the first failure."""
        flushing, self._flushing = self._flushing, []
        failed: list[BaseException] = []
        for thread, errors in flushing:
            thread.join()
            failed.extend(errors)
        if failed:
            raise failed[0]

    def commit(self, *, fsync: bool = True) -> None:
        """fsync pending files and changed directories, commit the index, then rename
        the files into place. (`fsync=False`: the caller made the pending files durable;
        the directories of `note_dir_changes` are fsynced all the same.)

        Each directory is fsynced once per commit, whatever the number of renames in it.
        No file system is trusted to order the renames before the index: the index's
        own flush is SQLite's fdatasync(2) of its WAL, which by contract flushes only
        what reading that file back needs, not other directories (fdatasync(2), "does
        not flush modified metadata unless..."). On ext4 it starts a journal commit only
        when the WAL's own size or blocks changed (fs/ext4/fsync.c, ext4_fsync_journal:
        the commit it waits for is the inode's `i_datasync_tid`); a reused WAL, the usual
        case, changes neither, so renames in the running transaction would be committed
        only by the journal's timer, seconds later; XFS forces its log for fdatasync only
        when the inode has more than timestamp changes. The first directory fsync on
        ext4 commits the whole journal transaction, so the others cost little."""
        pending, self._pending = self._pending, _Pending()
        self._flushed()
        if fsync:
            fsync_many(pending.fsync)
            pending.dirs.update(str(p.parent) for p in pending.fsync)
        for d in pending.dirs:
            # (a folder gone meanwhile has nothing left to make durable)
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(d)
        if self.conn.in_transaction:
            self._end("COMMIT")
        dirs: set[Path] = set()
        for maildir, key, flags in pending.deliver:
            entry = maildir.deliver(key, flags)
            dirs.add(entry.path.parent)
        if fsync:
            for delivered in dirs:
                fsync_dir(delivered)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that a failure undoes alone: when the block raises,
        what it wrote is rolled back (and the deliveries it queued dropped, their tmp/
        files removed) and the rest of the transaction stays, uncommitted.

        A block that begins the transaction is the transaction: no SAVEPOINT, and a
        failure rolls it back. (SQLite keeps the original of every page a savepoint
        changes, in a temporary file unless `temp_store` is MEMORY: 1,400 pages
        written there, and not needed, in a 1% re-sync of 20,000 messages.)"""
        fresh = not self.conn.in_transaction
        self._begin()
        fsyncs, delivers = len(self._pending.fsync), len(self._pending.deliver)
        if not fresh:
            self.conn.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            if fresh:
                if self.conn.in_transaction:
                    self._end("ROLLBACK")
            elif self.conn.in_transaction:  # (not committed inside the block)
                self.conn.execute("ROLLBACK TO part")
                self.conn.execute("RELEASE part")
            dropped = self._pending.deliver[delivers:]
            del self._pending.fsync[fsyncs:]
            del self._pending.deliver[delivers:]
            for maildir, key, _ in dropped:
                with contextlib.suppress(FileNotFoundError):
                    maildir.tmp_path(key).unlink()
            self._folder_cache.clear()
            raise
        if not fresh and self.conn.in_transaction:
            self.conn.execute("RELEASE part")

    def rollback(self) -> None:
        pending, self._pending = self._pending, _Pending()
        with contextlib.suppress(OSError):
            self._flushed()  # (nothing is recorded: a failed flush does not matter)
        if self.conn.in_transaction:
            self._end("ROLLBACK")
        for maildir, key, _ in pending.deliver:
            with contextlib.suppress(FileNotFoundError):
                maildir.tmp_path(key).unlink()
        self._folder_cache.clear()

    # --- accounts and folders -----------------------------------------------------------

    def account_id(self, name: str, *, create: bool = True) -> int | None:
        row = self.conn.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
        if row:
            return int(row[0])
        if not create:
            return None
        self._begin()
        # another connection may have created it meanwhile: that is fine
        self.conn.execute("INSERT OR IGNORE INTO accounts(name) VALUES (?)", (name,))
        row = self.conn.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def accounts(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM accounts ORDER BY name")]

    def _folder_from_row(self, row: Sequence[Any]) -> Folder:
        account, name, delimiter = row[1], row[2], row[3]
        return Folder(
            id=row[0],
            account=account,
            name=name,
            delimiter=delimiter,
            role=row[4],
            uidvalidity=row[5],
            uidnext=row[6],
            highestmodseq=row[7],
            messages=row[8],
            sync_state=row[9],
            path=folder_dir(self.mail_dir, account, name, delimiter),
            last_sync=row[10],
        )

    _FOLDER_SELECT = (
        "SELECT f.id, a.name, f.name, f.delimiter, f.role, f.uidvalidity, f.uidnext, "
        "f.highestmodseq, f.messages, f.sync_state, f.last_sync FROM folders f "
        "JOIN accounts a ON a.id = f.account_id"
    )

    def folder(
        self,
        account: str,
        name: str,
        *,
        delimiter: str | None = "/",
        role: str | None = None,
        create: bool = True,
    ) -> Folder:
        """The folder `name` of `account`; created (row and Maildir) when `create`."""
        row = self.conn.execute(
            self._FOLDER_SELECT + " WHERE a.name = ? AND f.name = ?", (account, name)
        ).fetchone()
        if row is None:
            if not create:
                raise UsageError(
                    f"no folder {name!r} in account {account!r}",
                    hint="`mailbag folders` lists the folders; run `mailbag sync` first",
                )
            acc = self.account_id(account)
            self._begin()
            self.conn.execute(
                "INSERT OR IGNORE INTO folders(account_id, name, delimiter, role) "
                "VALUES (?, ?, ?, ?)",
                (acc, name, delimiter, role),
            )
            row = self.conn.execute(
                self._FOLDER_SELECT + " WHERE a.name = ? AND f.name = ?", (account, name)
            ).fetchone()
        folder = self._folder_from_row(row)
        folder.maildir.create()
        return folder

    def folder_path(self, account: str, name: str, delimiter: str | None) -> Path:
        return folder_dir(self.mail_dir, account, name, delimiter)

    def folder_by_id(self, folder_id: int) -> Folder:
        row = self.conn.execute(self._FOLDER_SELECT + " WHERE f.id = ?", (folder_id,)).fetchone()
        if row is None:
            raise StoreError(f"folder #{folder_id} is not in the index")
        return self._folder_from_row(row)

    def find_folder(self, account: str, name: str) -> Folder | None:
        row = self.conn.execute(
            self._FOLDER_SELECT + " WHERE a.name = ? AND f.name = ?", (account, name)
        ).fetchone()
        return None if row is None else self._folder_from_row(row)

    def folders(self, account: str | None = None) -> list[Folder]:
        if account is None:
            rows = self.conn.execute(self._FOLDER_SELECT + " ORDER BY a.name, f.name")
        else:
            rows = self.conn.execute(
                self._FOLDER_SELECT + " WHERE a.name = ? ORDER BY f.name", (account,)
            )
        return [self._folder_from_row(r) for r in rows]

    def folder_counts(self, account: str | None = None) -> list[tuple[Folder, int, int]]:
        """(folder, messages, unread) for every folder, counted in one query."""
        counts = {
            row[0]: (row[1], row[2])
            # instr() is exact here: no other flag can contain \Seen (keywords have
            # no backslash), and it halves the time of this scan (110 -> 60 ms on 200,000)
            for row in self.conn.execute(
                "SELECT folder_id, COUNT(*), SUM(instr(flags, '\\Seen') = 0) "
                "FROM messages WHERE gone = 0 GROUP BY folder_id"
            )
        }
        return [(f, *counts.get(f.id, (0, 0))) for f in self.folders(account)]

    def folders_with_pending(self, account: str) -> set[int]:
        """Ids of the account's folders that have rows to push (see PENDING_ROWS);
        an index lookup, whatever the size of the folders."""
        rows = self.conn.execute(
            "SELECT DISTINCT folder_id FROM messages WHERE "  # noqa: S608
            + PENDING_ROWS
            + " AND folder_id IN (SELECT f.id FROM folders f JOIN accounts a "
            "ON a.id = f.account_id WHERE a.name = ?)",
            (account,),
        )
        return {r[0] for r in rows}

    def folder_by_role(self, account: str, role: str) -> Folder | None:
        row = self.conn.execute(
            self._FOLDER_SELECT + " WHERE a.name = ? AND f.role = ? ORDER BY f.id LIMIT 1",
            (account, role),
        ).fetchone()
        return None if row is None else self._folder_from_row(row)

    def update_folder(self, folder: Folder, **values: Any) -> None:
        """Set folder columns (uidvalidity, uidnext, highestmodseq, role, ...)."""
        allowed = {
            "delimiter",
            "role",
            "uidvalidity",
            "uidnext",
            "highestmodseq",
            "messages",
            "sync_state",
            "last_sync",
            "name",
        }
        bad = set(values) - allowed
        if bad:
            raise ValueError(f"not folder columns: {sorted(bad)}")
        if not values:
            return
        self._begin()
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE folders SET {sets} WHERE id = ?", (*values.values(), folder.id))  # noqa: S608

    def remove_account(self, name: str) -> int:
        """Forget an account: its index rows, POP3 ledger and local Maildir folders.

        Only for `mailbag account remove` (which asks first); returns how many
        messages were removed. The server is not touched.
        """
        acc = self.account_id(name, create=False)
        removed = 0
        if acc is not None:
            for folder in self.folders(name):
                removed += sum(1 for _ in self.folder_messages(folder))
                self.delete_folder(folder)
                self.conn.execute("DELETE FROM messages WHERE folder_id = ?", (folder.id,))
            self.conn.execute("DELETE FROM changes WHERE account_id = ?", (acc,))
            self.conn.execute("DELETE FROM accounts WHERE id = ?", (acc,))
            has_ledger = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pop_ledger'"
            ).fetchone()
            if has_ledger:
                self.conn.execute("DELETE FROM pop_ledger WHERE account = ?", (name,))
            self.commit()
        account_dir = self.mail_dir / _safe_part(name)
        if account_dir.is_dir():
            import shutil

            shutil.rmtree(account_dir)
        return removed

    def delete_folder(self, folder: Folder) -> None:
        """Forget a folder in the index (its Maildir is left on disk for the caller)."""
        self._begin()
        for (mid,) in self.conn.execute(
            "SELECT id FROM messages WHERE folder_id = ?", (folder.id,)
        ):
            for hook in self.hooks:
                hook.message_removed(self, mid)
        self.conn.execute("DELETE FROM folders WHERE id = ?", (folder.id,))

    # --- messages: adding -------------------------------------------------------------

    def maildir(self, folder: Folder) -> Maildir:
        return folder.maildir

    def add_message(
        self,
        folder: Folder,
        key: str,
        *,
        flags: Iterable[str] = (),
        uid: int | None = None,
        synced: bool = False,
        internal_date: float | None = None,
        modseq: int | None = None,
        email_id: str | None = None,
        envelope: Envelope | None = None,
        size: int | None = None,
        commit: bool = True,
    ) -> Message:
        """Index the message written to tmp/KEY of `folder` and deliver it.

        `synced=True` records `flags` as agreed with the server (set by the
        sync when it downloads); otherwise the message is new here and the next
        sync uploads it. With `commit=False` the file stays in tmp/ until the
        next `commit()` (which fsyncs it first): that is how batches share fsyncs.
        """
        maildir = folder.maildir
        tmp = maildir.tmp_path(key)
        try:
            st = tmp.stat()
        except FileNotFoundError as exc:
            raise StoreError(f"no message {key} in {maildir.root / 'tmp'}") from exc
        item = NewMessage(
            key=key,
            flags=frozenset(flags),
            uid=uid,
            synced=synced,
            internal_date=internal_date if internal_date is not None else st.st_mtime,
            modseq=modseq,
            email_id=email_id,
            envelope=envelope if envelope is not None else _envelope_of_file(tmp),
            size=size if size is not None else st.st_size,
        )
        self._begin()
        message = self._insert(folder, item)
        self._pending.fsync.append(tmp)
        self._pending.deliver.append((maildir, key, item.flags))
        if commit:
            self.commit()
        return message

    def add_messages(
        self, folder: Folder, items: Sequence[NewMessage], *, forget: Iterable[int] = ()
    ) -> int:
        """Index and deliver many messages already written to tmp/, durably and at once;
        returns how many.

        The files (and tmp/) are made durable before the index transaction starts
        (`sync_batch`: one syncfs on Linux), so the write lock is held only for the
        inserts: several folders can be downloaded into one index at the same time.
        `forget` rows are dropped in the same transaction (files being replaced).
        """
        if self.conn.in_transaction:
            raise StoreError("add_messages needs no open transaction (commit first)")
        maildir = folder.maildir
        tmp = str(maildir.root / "tmp")
        sync_batch(tmp, [f"{tmp}/{i.key}" for i in items])
        self._begin()
        try:
            for row in forget:
                self.forget(row)
            if self.defer_indexing or not self.hooks:
                self._insert_many(folder, items)
            else:
                for item in items:
                    self._insert(folder, item)
            self._end("COMMIT")
        except BaseException:
            self.rollback()
            raise
        for d in maildir.deliver_many([(i.key, i.flags) for i in items]):
            fsync_dir(d)
        return len(items)

    def _insert_many(self, folder: Folder, items: Sequence[NewMessage]) -> None:
        """`_insert` for a batch in one executemany, without Message objects (nothing
        is handed to hooks): a third of the per-message index cost."""
        now = time.time()
        rows = [_message_row(folder.id, item, now) for item in items]
        try:
            self.conn.executemany(_INSERT_MESSAGE, rows)
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"a message of this batch is already in folder {folder.name!r}: {exc}"
            ) from exc

    def _insert(self, folder: Folder, item: NewMessage) -> Message:
        env = item.envelope
        try:
            cur = self.conn.execute(_INSERT_MESSAGE, _message_row(folder.id, item, time.time()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"message {item.key} (UID {item.uid}) is already in folder {folder.name!r}: {exc}"
            ) from exc
        message = Message(
            id=int(cur.lastrowid or 0),
            folder_id=folder.id,
            account=folder.account,
            folder=folder.name,
            uid=item.uid,
            key=item.key,
            flags=item.flags,
            synced_flags=item.flags if item.synced else None,
            gone=False,
            size=item.size,
            internal_date=item.internal_date,
            date=env.date,
            message_id=env.message_id,
            subject=env.subject,
            from_addr=env.from_addr,
            to_addrs=env.to_addrs,
            cc_addrs=env.cc_addrs,
            in_reply_to=env.in_reply_to,
            references=env.references,
            modseq=item.modseq,
            email_id=item.email_id,
            has_attachments=env.has_attachments,
            moved_from_folder=None,
            moved_from_uid=None,
        )
        if not self.defer_indexing:
            for hook in self.hooks:
                hook.message_added(self, message, folder.maildir.tmp_path(item.key))
        return message

    def add_bytes(
        self, folder: Folder, data: bytes, *, flags: Iterable[str] = (), commit: bool = True
    ) -> Message:
        """Store a message given as bytes (a draft, a sent copy); the next sync uploads it."""
        key, fh = folder.maildir.open_tmp()
        with fh:
            fh.write(data)
        return self.add_message(
            folder, key, flags=flags, envelope=_envelope_of_bytes(data), commit=commit
        )

    # --- messages: reading --------------------------------------------------------------

    def get(self, message_id: int) -> Message | None:
        row = self.conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.id = ?",  # noqa: S608
            (message_id,),
        ).fetchone()
        return None if row is None else _message(row)

    def lookup(self, short_id: str) -> Message:
        """The message a user means by ID (as printed by `list`); UsageError if none."""
        text = short_id.strip().lstrip("#")
        message = self.get(int(text)) if text.isdigit() else None
        if message is None or message.gone:
            raise UsageError(
                f"no message with ID {short_id!r}",
                hint="IDs are shown by `mailbag list` and `mailbag search`",
            )
        return message

    def messages(
        self,
        *,
        account: str | None = None,
        folder: str | None = None,
        unread: bool = False,
        limit: int | None = None,
        include_gone: bool = False,
    ) -> list[Message]:
        """Messages newest first (by Date header, else arrival)."""
        where = []
        args: list[Any] = []
        if not include_gone:
            where.append("m.gone = 0")
        if account is not None:
            where.append("a.name = ?")
            args.append(account)
        if folder is not None:
            where.append("f.name = ?")
            args.append(folder)
        if unread:
            where.append("(' ' || m.flags || ' ') NOT LIKE '% \\Seen %'")
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM}"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY COALESCE(m.date, m.internal_date) DESC, m.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_message(r) for r in self.conn.execute(sql, args)]

    def messages_from_uid(self, account: str, folder: str, uid: int) -> list[Message]:
        """Messages of `account`/`folder` whose server UID is `uid` or higher, by UID."""
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} "  # noqa: S608
            "WHERE m.uid >= ? AND m.gone = 0 AND a.name = ? AND f.name = ? ORDER BY m.uid"
        )
        return [_message(r) for r in self.conn.execute(sql, (uid, account, folder))]

    def folder_messages(self, folder: Folder) -> Iterator[Message]:
        """Every row of a folder, including tombstones (for the sync)."""
        rows = self.conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.folder_id = ?",  # noqa: S608
            (folder.id,),
        )
        for row in rows:
            yield _message(row)

    def path(self, message: Message) -> Path:
        folder = self.folder_by_id(message.folder_id)
        entry = folder.maildir.find(message.key)
        if entry is None:
            raise StoreError(
                f"the file of message {message.short_id} is gone from {folder.path}",
                hint="another program may have removed it; `mailbag sync` brings it back "
                "from the server or forgets it",
            )
        return entry.path

    def read_bytes(self, message: Message) -> bytes:
        return self.path(message).read_bytes()

    # --- messages: changing -------------------------------------------------------------

    def set_flags(self, message: Message, flags: Iterable[str], *, commit: bool = True) -> Message:
        """Set the local flags (file name and row); the next sync pushes the change."""
        flagset = frozenset(flags)
        folder = self.folder_by_id(message.folder_id)
        entry = folder.maildir.find(message.key)
        if entry is None:
            raise StoreError(f"the file of message {message.short_id} is gone from {folder.path}")
        folder.maildir.set_flags(entry, flagset)
        self.note_dir_changes(entry.path.parent, folder.maildir.root / "cur")
        self._begin()
        self.conn.execute(
            "UPDATE messages SET flags = ? WHERE id = ?", (flags_text(flagset), message.id)
        )
        if commit:
            self.commit()
        return _replace(message, flags=flagset)

    def remove(self, message: Message, *, commit: bool = True) -> None:
        """Delete the local copy. A message known to the server stays as a tombstone
        until the next sync expunges it there; one that never reached it is forgotten."""
        folder = self.folder_by_id(message.folder_id)
        entry = folder.maildir.find(message.key)
        self._begin()
        if message.uid is None and message.moved_from_uid is None:
            self.conn.execute("DELETE FROM messages WHERE id = ?", (message.id,))
        else:
            self.conn.execute("UPDATE messages SET gone = 1 WHERE id = ?", (message.id,))
        for hook in self.hooks:
            hook.message_removed(self, message.id)
        if commit:
            self.commit()
        if entry is not None:
            folder.maildir.remove(entry)

    def move(self, message: Message, target: Folder, *, commit: bool = True) -> Message:
        """Move to another folder of the same account; the next sync moves it on the server.

        The moved message gets a new ID in the target folder.
        """
        from mailbag.store.envelope import Envelope

        source = self.folder_by_id(message.folder_id)
        if source.account != target.account:
            raise UsageError("messages can only be moved within one account")
        if source.id == target.id:
            return message
        entry = source.maildir.find(message.key)
        if entry is None:
            raise StoreError(f"the file of message {message.short_id} is gone from {source.path}")
        key, fh = target.maildir.open_tmp()
        fh.close()
        os.replace(entry.path, target.maildir.tmp_path(key))
        # (the source's entry is gone for good only when its directory is durable: else
        # the file could come back there after a crash, beside its moved copy)
        self.note_dir_changes(entry.path.parent)
        self._begin()
        moved = self.add_message(
            target,
            key,
            flags=message.flags,
            envelope=Envelope(
                message_id=message.message_id,
                subject=message.subject,
                from_addr=message.from_addr,
                to_addrs=message.to_addrs,
                cc_addrs=message.cc_addrs,
                date=message.date,
                in_reply_to=message.in_reply_to,
                references=message.references,
                has_attachments=message.has_attachments,
            ),
            internal_date=message.internal_date,
            commit=False,
        )
        from_folder = message.moved_from_folder if message.uid is None else source.id
        from_uid = message.moved_from_uid if message.uid is None else message.uid
        self.conn.execute(
            "UPDATE messages SET moved_from_folder = ?, moved_from_uid = ? WHERE id = ?",
            (from_folder, from_uid, moved.id),
        )
        # the source row is no tombstone: the server-side MOVE takes the copy away
        self.conn.execute("DELETE FROM messages WHERE id = ?", (message.id,))
        for hook in self.hooks:
            hook.message_removed(self, message.id)
        if commit:
            self.commit()
        return _replace(moved, moved_from_folder=from_folder, moved_from_uid=from_uid)

    # --- for the sync engine ------------------------------------------------------------

    def adopt(
        self, folder: Folder, entry: MaildirEntry, *, extra_flags: Iterable[str] = ()
    ) -> Message:
        """Index a file another program put into the folder (or the index lost)."""
        env = _envelope_of_file(entry.path)
        st = entry.path.stat()
        flags = entry.flags | frozenset(extra_flags)
        self._begin()
        cur = self.conn.execute(
            "INSERT INTO messages(folder_id, uid, key, flags, size, internal_date, date, "
            "message_id, subject, from_addr, to_addrs, cc_addrs, in_reply_to, refs, "
            "has_attachments, added) VALUES (?,NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                folder.id,
                entry.key,
                flags_text(flags),
                st.st_size,
                st.st_mtime,
                env.date,
                env.message_id,
                env.subject,
                env.from_addr,
                env.to_addrs,
                env.cc_addrs,
                env.in_reply_to,
                env.references,
                int(env.has_attachments),
                time.time(),
            ),
        )
        message = self.get(int(cur.lastrowid or 0))
        assert message is not None
        if not self.defer_indexing:
            for hook in self.hooks:
                hook.message_added(self, message, entry.path)
        return message

    def pair(self, row: int, uid: int | None, synced_flags: Iterable[str] | None = None) -> None:
        """Record the server UID of a row (None: not on the server)."""
        self._begin()
        self.conn.execute(
            "UPDATE messages SET uid = ?, synced_flags = ?, moved_from_folder = NULL, "
            "moved_from_uid = NULL WHERE id = ?",
            (uid, None if synced_flags is None else flags_text(synced_flags), row),
        )

    def pair_many(self, pairs: Iterable[tuple[int, str | None, str | None, int]]) -> None:
        """`pair` for many rows at once, as (UID, synced flags, flags, row), the flags as
        `flags_text` gives them: synced flags None, no base (the next sync unites both
        sides' flags); flags None, the row's stay."""
        self._begin()
        self.conn.executemany(
            "UPDATE messages SET uid = ?, synced_flags = ?, flags = COALESCE(?, flags), "
            "moved_from_folder = NULL, moved_from_uid = NULL WHERE id = ?",
            pairs,
        )

    def unpair_all(
        self,
        folder: Folder,
        keep: Iterable[tuple[int, int, str]] = (),
        *,
        only: Sequence[tuple[int, int]] | None = None,
        also_kept: Sequence[int] = (),
    ) -> None:
        """Void every UID of a folder (after a UIDVALIDITY change); rows and files stay.

        `keep`: pairings found again, as (row, UID, flags text), whose row the index
        should already hold with that UID and those flags as both its flags and its
        last synced ones (a server that kept its UIDs). The rows for which that holds
        are left as they are (but for a pending move's marks, which pairing clears);
        the others among them are paired as `pair_many` would. Why: voiding and then
        pairing again rewrites every row and its index entries twice (~0.1 s of CPU
        per 20,000 rows, under the write lock), where checking costs a lookup.

        `only`: the rows were found kept in bulk (`sync.keep`): only those with UIDs in
        these ranges (after < UID <= upto), but for those of `also_kept`, and those
        without a UID, are voided (or checked against `keep`); the rest stay. (Under the
        sync's lock nothing else changes a row's UID or last synced flags.)"""
        import itertools

        self._begin()
        conn = self.conn
        keep = iter(keep)
        first = next(keep, None)
        rows = "folder_id = ?1"
        if only is not None:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS repair_open(after INTEGER PRIMARY KEY, "
                "upto INTEGER NOT NULL)"
            )
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS repair_kept(uid INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.repair_open")
            conn.execute("DELETE FROM temp.repair_kept")
            conn.executemany("INSERT INTO temp.repair_open VALUES (?,?)", only)
            conn.executemany("INSERT INTO temp.repair_kept VALUES (?)", ((u,) for u in also_kept))
            # (the rows without a UID first: in one condition with the others, SQLite
            # would look at every row of the index)
            conn.execute(
                "UPDATE messages SET synced_flags = NULL WHERE folder_id = ? AND uid IS NULL "
                "AND synced_flags IS NOT NULL",
                (folder.id,),
            )
            # (CROSS JOIN: the ranges outside, each looked up by the UID index; SQLite
            # otherwise took every row of the folder and each range below its UID, 0.1 s
            # for a folder of 9,000 with a range every twentieth)
            rows = (
                "id IN (SELECT m.id FROM temp.repair_open AS r CROSS JOIN messages AS m "
                "ON m.folder_id = ?1 AND m.uid > r.after AND m.uid <= r.upto "
                "WHERE m.uid NOT IN (SELECT uid FROM temp.repair_kept))"
            )
        if first is None:
            # `rows` is one of the two conditions above; values are bound
            conn.execute(
                f"UPDATE messages SET uid = NULL, synced_flags = NULL WHERE {rows} "  # noqa: S608
                "AND (uid IS NOT NULL OR synced_flags IS NOT NULL)",
                (folder.id,),
            )
            if only is None:
                return
        else:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS repair_keep(row INTEGER PRIMARY KEY, "
                "uid INTEGER NOT NULL, flags TEXT NOT NULL)"
            )
            conn.execute("DELETE FROM temp.repair_keep")
            conn.executemany(
                "INSERT OR REPLACE INTO temp.repair_keep VALUES (?,?,?)",
                itertools.chain((first,), keep),
            )
            conn.execute(
                f"UPDATE messages SET uid = NULL, synced_flags = NULL WHERE {rows} "  # noqa: S608
                "AND (uid IS NOT NULL OR synced_flags IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM "
                "temp.repair_keep AS k WHERE k.row = messages.id AND k.uid = messages.uid "
                "AND k.flags = messages.flags AND k.flags = messages.synced_flags)",
                (folder.id,),
            )
        # what is left paired is what was kept; the rest of `keep` is paired here
        conn.execute(
            "UPDATE messages SET moved_from_folder = NULL, moved_from_uid = NULL "
            "WHERE folder_id = ? AND uid IS NOT NULL "
            "AND (moved_from_folder IS NOT NULL OR moved_from_uid IS NOT NULL)",
            (folder.id,),
        )
        if first is None:
            return
        conn.execute(
            "UPDATE messages SET uid = k.uid, synced_flags = k.flags, flags = k.flags, "
            "moved_from_folder = NULL, moved_from_uid = NULL FROM temp.repair_keep AS k "
            "WHERE messages.id = k.row AND messages.folder_id = ? AND messages.uid IS NULL",
            (folder.id,),
        )
        conn.execute("DELETE FROM temp.repair_keep")

    def uid_range_columns(
        self, folder: Folder, after: int, upto: int, limit: int = -1
    ) -> tuple[int, str, str, str, str, str]:
        """The folder's rows with after < UID <= upto, in UID order (the first `limit`; -1:
        all), as SQLite joins them
        (`sync.keep.IndexColumns`): their count, UIDs and sizes comma separated,
        Message-IDs and flags one a line, and a "1" for each that cannot be kept as it
        is (flags not as last synced, deleted or moved here, no size, no Message-ID with
        an "@"), else a "0". (~2x faster than a tuple a row: a re-pair reads them all.)"""
        if limit == 0:
            return (0, "", "", "", "", "")
        if limit > 0 and upto - after > limit:
            # (the limit as a UID bound: the aggregate over a subquery with ORDER BY and
            # LIMIT took 1.6x as long, its rows copied once more)
            last = self.conn.execute(
                "SELECT uid FROM messages WHERE folder_id = ? AND uid > ? AND uid <= ? "
                "ORDER BY uid LIMIT 1 OFFSET ?",
                (folder.id, after, upto, limit - 1),
            ).fetchone()
            if last is not None:
                upto = last[0]
        # the values in the order of the UID index (SQLite's for this search; another
        # order would cost `keep` its speed, not its answer: it compares UIDs too)
        row = self.conn.execute(
            "SELECT count(*), coalesce(group_concat(uid), ''), "
            "coalesce(group_concat(coalesce(size, -1)), ''), "
            "coalesce(group_concat(coalesce(message_id, ''), char(10)), ''), "
            "coalesce(group_concat(flags, char(10)), ''), coalesce(group_concat(CASE WHEN "
            "synced_flags IS NOT flags OR gone != 0 OR moved_from_uid IS NOT NULL OR size IS NULL "
            "OR message_id IS NULL OR instr(message_id, '@') = 0 THEN '1' ELSE '0' END, ''), '') "
            "FROM messages WHERE folder_id = ? AND uid > ? AND uid <= ?",
            (folder.id, after, upto),
        ).fetchone()
        return row  # type: ignore[no-any-return]

    def uid_range_rows(
        self, folder: Folder, after: int, upto: int, limit: int = -1
    ) -> list[tuple[int, int | None, str | None, str, str | None, int, int | None]]:
        """The same rows one by one: UID, size, Message-ID, flags, last synced flags, gone,
        moved from UID (`sync.keep.IndexRow`)."""
        return self.conn.execute(
            "SELECT uid, size, message_id, flags, synced_flags, gone, moved_from_uid "
            "FROM messages WHERE folder_id = ? AND uid > ? AND uid <= ? ORDER BY uid LIMIT ?",
            (folder.id, after, upto, limit),
        ).fetchall()

    def has_uid(self, folder: Folder, uid: int) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM messages WHERE folder_id = ? AND uid = ?", (folder.id, uid)
            ).fetchone()
            is not None
        )

    def record_flags(
        self, row: int, flags: Iterable[str], *, synced: bool = True, modseq: int | None = None
    ) -> None:
        """Set a row's flags (and, when `synced`, its last-synced flags) without touching files."""
        text = flags_text(flags)
        self._begin()
        if synced:
            self.conn.execute(
                "UPDATE messages SET flags = ?, synced_flags = ?, modseq = COALESCE(?, modseq) "
                "WHERE id = ?",
                (text, text, modseq, row),
            )
        else:
            self.conn.execute("UPDATE messages SET flags = ? WHERE id = ?", (text, row))

    def forget(self, row: int) -> None:
        """Drop an index row (its file is already gone)."""
        self.forget_many((row,))

    def forget_many(self, rows: Sequence[int]) -> None:
        """`forget` for many rows, in one statement run for each (a sync's deletions).
        Hooks whose `rows_followed` says they learn of deleted rows by themselves (the
        full-text index: its triggers) are not called for each."""
        if not rows:
            return
        self._begin()
        self.conn.executemany("DELETE FROM messages WHERE id = ?", [(row,) for row in rows])
        for hook in self.hooks:
            if not getattr(hook, "rows_followed", False):
                for row in rows:
                    hook.message_removed(self, row)

    def record_flags_many(self, rows: Sequence[tuple[int, str]]) -> None:
        """`record_flags(row, flags)` (synced, no MODSEQ) for many rows, as (row, the
        flags as `flags_text` gives them), in one statement run for each."""
        if not rows:
            return
        self._begin()
        self.conn.executemany(
            "UPDATE messages SET flags = ?, synced_flags = ? WHERE id = ?",
            [(text, text, row) for row, text in rows],
        )

    def set_key(self, row: int, key: str) -> None:
        self._begin()
        self.conn.execute("UPDATE messages SET key = ? WHERE id = ?", (key, row))

    # --- recovery -----------------------------------------------------------------------

    def recover(self, folder: Folder) -> int:
        """Finish deliveries a crash interrupted; remove our own unindexed tmp files.

        Returns how many indexed messages were delivered from tmp/.
        """
        maildir = folder.maildir
        names = maildir.tmp_names()
        if not names:
            return 0
        # the rows of those names only (not every row of the folder: a big one's keys would
        # take ~150 bytes a message), 500 names a query
        known: dict[str, frozenset[str]] = {}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, flags in self.conn.execute(
                f"SELECT key, flags FROM messages WHERE folder_id = ? AND key IN ({marks})",  # noqa: S608
                (folder.id, *chunk),
            ):
                known[key] = parse_flags(flags)
        delivered = 0
        for name in names:
            if name in known:
                if maildir.find(name) is None:
                    maildir.deliver(name, known[name])
                    delivered += 1
                else:  # delivered already; tmp copy is a leftover hard link or duplicate
                    maildir.tmp_path(name).unlink()
            elif is_own_tmp_name(name) and not writer_may_be_running(name):
                # debris of a process that died before its commit
                with contextlib.suppress(FileNotFoundError):
                    maildir.tmp_path(name).unlink()
        return delivered


def _replace(message: Message, **changes: Any) -> Message:
    return message._replace(**changes)


# the envelope parser (regexes, header decoding) loads with the first message added:
# a sync where nothing changed adds none


def _envelope_of_file(path: Path) -> Envelope:
    from mailbag.store.envelope import envelope_from_file

    return envelope_from_file(path)


def _envelope_of_bytes(data: bytes) -> Envelope:
    from mailbag.store.envelope import envelope_from_bytes

    return envelope_from_bytes(data)


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements (executescript would commit mid-migration)."""
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                yield buf
            buf = ""


def _migrate(conn: sqlite3.Connection, index_file: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the index {index_file} was written by a newer mailbag (schema {version})",
            hint="upgrade mailbag, or move the index aside (with its -wal and -shm files) to "
            "rebuild it with `mailbag sync`",
        )
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-check under the write lock: another process may have migrated meanwhile
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version < SCHEMA_VERSION:
                for statement in _statements(_MIGRATIONS[version]):
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _message_row(folder_id: int, item: NewMessage, now: float) -> tuple[object, ...]:
    """The values `_INSERT_MESSAGE` takes for one new message."""
    env = item.envelope
    flags = flags_text(item.flags)
    return (
        folder_id,
        item.uid,
        item.key,
        flags,
        flags if item.synced else None,
        item.size,
        item.internal_date,
        env.date,
        env.message_id,
        env.subject,
        env.from_addr,
        env.to_addrs,
        env.cc_addrs,
        env.in_reply_to,
        env.references,
        item.modseq,
        item.email_id,
        int(env.has_attachments),
        now,
    )
