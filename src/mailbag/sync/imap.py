"""Two-way sync of an IMAP account with the local store: the driver.

For one account: take the account's sync lock, log in, list the folders and
their STATUS (pipelined), settle folder creations/renames/deletions, carry
out moves made here, then sync the folders over a bounded pool of connections
(threads; each has its own IMAP connection and index connection). For each
folder it reads the local side (index rows plus a scan of the Maildir), skips
the folder when STATUS and the scan show no change, else asks the server for
what changed (QRESYNC: one SELECT; otherwise one `UID FETCH 1:* (FLAGS)`),
plans with `plan.plan` and executes with `apply.apply_plan`. Dropped
connections are retried with backoff; what is complete is kept, so a retry
resumes where the connection broke.

It never prints: progress goes to the callback, results into the report.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import functools
import itertools
import os
import sqlite3
import sys
import threading
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from mailbag.config.model import Account
from mailbag.errors import MailbagError, NetworkError, ProtocolError, StoreError, SyncError
from mailbag.paths import Paths
from mailbag.protocols.imap.client import FlagStream, ImapClient, Pending, SelectResult
from mailbag.protocols.imap.parser import MailboxInfo, MailboxStatus, StreamedLiteral
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.record import NamedTuple
from mailbag.store.index import PENDING_ROWS, Folder, Store, parse_flags
from mailbag.store.maildir import FLAG_LETTERS, DirWatch, MaildirEntry, flags_to_info
from mailbag.sync import quick
from mailbag.sync.events import AccountReport, FolderReport, Progress, ProgressCallback, no_progress
from mailbag.sync.lock import sync_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from io import BufferedReader
    from typing import IO, NoReturn, TypeVar

    # the planner and executor load only when a folder has work: a sync where nothing
    # changed never needs them (start-up time is most of a no-op sync)
    from mailbag.sync.apply import DownloadFn, DownloadSink, RemoteOps
    from mailbag.sync.digests import Ahead
    from mailbag.sync.keep import Kept
    from mailbag.sync.plan import Identities, LocalMessage, Plan, RemoteListing, SyncedState

    _T = TypeVar("_T")
    _R = TypeVar("_R")

__all__ = ["SyncOptions", "folder_role", "sync_account", "sync_lock"]

#: array type code for UIDs (32-bit)
_U32 = "I" if array("I").itemsize >= 4 else "L"

_ROLE_BY_SPECIAL_USE = {
    "\\SENT": "sent",
    "\\DRAFTS": "drafts",
    "\\TRASH": "trash",
    "\\JUNK": "junk",
    "\\ARCHIVE": "archive",
    "\\ALL": "all",
    "\\FLAGGED": "flagged",
}
# name fallbacks for servers without SPECIAL-USE (compared case-insensitively)
_ROLE_BY_NAME = {
    "inbox": "inbox",
    "sent": "sent",
    "sent items": "sent",
    "sent messages": "sent",
    "sent mail": "sent",
    "[gmail]/sent mail": "sent",
    "drafts": "drafts",
    "draft": "drafts",
    "[gmail]/drafts": "drafts",
    "trash": "trash",
    "deleted items": "trash",
    "deleted messages": "trash",
    "bin": "trash",
    "[gmail]/trash": "trash",
    "[gmail]/bin": "trash",
    "junk": "junk",
    "spam": "junk",
    "junk e-mail": "junk",
    "junk email": "junk",
    "[gmail]/spam": "junk",
    "archive": "archive",
    "archives": "archive",
    "all mail": "all",
    "[gmail]/all mail": "all",
}
_MAILDIR_FLAGS = frozenset(FLAG_LETTERS)
_LOOPBACK = quick.LOOPBACK


def folder_role(info: MailboxInfo) -> str | None:
    """inbox/sent/drafts/trash/junk/archive/all from SPECIAL-USE, else from the name."""
    if info.name.upper() == "INBOX":
        return "inbox"
    special = info.special_use
    if special is not None and special.upper() in _ROLE_BY_SPECIAL_USE:
        return _ROLE_BY_SPECIAL_USE[special.upper()]
    return _ROLE_BY_NAME.get(info.name.lower())


class SyncOptions(NamedTuple):
    """How `sync_account` runs (from the command line; per-account ones are in the config)."""

    folders: tuple[str, ...] = ()  # globs from the command line; replace the account's include
    force: bool = False  # carry out plans above the mass-deletion threshold
    connections: int = 4
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    chunk_messages: int = 250
    chunk_bytes: int = 32 * 1024 * 1024
    share_chunk: int = 500  # a big folder's downloads are shared in pieces this big
    lock_wait: float = 0.0  # seconds to wait for another sync of the account to end
    compress: bool | None = None  # None: when offered, except on loopback
    # the process ends with the sync (the `mailbag` program): the removal of discarded
    # files (`Unlinker`) may go on after it, as after a crash, instead of being waited for
    leave_removals: bool = False


# --- connections -------------------------------------------------------------------------


class _Connections:
    """A bounded pool of logged-in IMAP connections, shared by the worker threads."""

    def __init__(
        self, account: Account, secret: str, transcript: Transcript, options: SyncOptions
    ) -> None:
        self.account = account
        self.secret = secret
        self.transcript = transcript
        self.options = options
        self._free: deque[ImapClient] = deque()  # append/popleft are thread-safe
        self._all: list[ImapClient] = []
        self._lock = threading.Lock()
        self._enabling: dict[int, Pending] = {}  # id(client) -> its unanswered ENABLE

    def open(self, *, enable_later: bool = False) -> ImapClient:
        """Connect and log in. `enable_later`: send the ENABLE without waiting for its
        answer, so it shares a round trip with the caller's next command; the caller
        calls `ready` before anything depends on what got enabled."""
        from mailbag.sync import early

        endpoint = self.account.incoming.endpoint(self.account.ca_file)
        # logged in already while the engine loaded (`early.login_early`; what went
        # wrong there is raised here), else here
        claimed = early.claim(self.account)
        client = claimed or ImapClient(endpoint, self.transcript)
        try:
            if claimed is None:
                from mailbag.auth.login import login_imap

                client.connect()
                if endpoint.security.value == "starttls":
                    client.starttls()
                # password or OAuth2 token (refreshed as needed, one retry on refusal):
                # the shared login; the password was read once for all the connections
                login_imap(client, self.account, secret=self.secret)
            compress = self.options.compress
            if compress is None:
                compress = endpoint.host not in _LOOPBACK
            if compress:
                client.compress()
            for ext in ("QRESYNC", "CONDSTORE"):
                if ext in client.capabilities:
                    enabling = client.submit(b"ENABLE", ext.encode())
                    if enable_later:
                        self._enabling[id(client)] = enabling
                    else:
                        client.finish(enabling)
                    break
        except BaseException:
            client.close()
            raise
        with self._lock:
            self._all.append(client)
        return client

    def adopt(self, client: ImapClient) -> None:
        """Take a logged-in connection made elsewhere (`early.take_listed`) as a free one."""
        with self._lock:
            self._all.append(client)
        self._free.append(client)

    def ready(self, client: ImapClient) -> None:
        """Wait for the answer to an ENABLE sent with `enable_later` (usually read
        already, with the answer to the command that followed it)."""
        enabling = self._enabling.pop(id(client), None)
        if enabling is not None:
            client.finish(enabling)

    @contextlib.contextmanager
    def client(
        self, *, enable_later: bool = False, prefer: ImapClient | None = None
    ) -> Iterator[ImapClient]:
        """A free connection (`prefer` when it is free), else a new one."""
        c: ImapClient | None = None
        if prefer is not None:
            with contextlib.suppress(ValueError):
                self._free.remove(prefer)
                c = prefer
        if c is None:
            try:
                c = self._free.popleft()
            except IndexError:
                c = self.open(enable_later=enable_later)
        ok = False
        try:
            yield c
            self.ready(c)
            ok = True
        finally:
            if ok:
                self._free.append(c)
            else:
                self._enabling.pop(id(c), None)
                c.close()
                with self._lock:
                    if c in self._all:
                        self._all.remove(c)

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for c in clients:
            with contextlib.suppress(MailbagError, OSError):
                c.logout()


# --- server folder operations for the executor --------------------------------------------


class _RemoteFolder:
    """`apply.RemoteOps` over a client with `mailbox` selected."""

    def __init__(self, client: ImapClient, mailbox: str, uidvalidity: int) -> None:
        self.client = client
        self.mailbox = mailbox
        self.uidvalidity = uidvalidity
        self.uidplus = "UIDPLUS" in client.capabilities

    def store_flags(self, uids: Sequence[int], add: bool, flags: frozenset[str]) -> None:
        for chunk in _chunks(uids, 2000):
            self.client.uid_store(chunk, "+FLAGS" if add else "-FLAGS", sorted(flags))

    def expunge(self, uids: Sequence[int]) -> None:
        if self.uidplus:
            for chunk in _chunks(uids, 2000):
                self.client.uid_expunge(chunk)
        else:
            self.client.expunge()

    def append(self, path: Path, flags: frozenset[str], internal_date: float | None) -> int | None:
        import datetime as dt

        when = (
            dt.datetime.fromtimestamp(internal_date, dt.UTC) if internal_date is not None else None
        )
        with path.open("rb") as fh:
            result = self.client.append(self.mailbox, fh, sorted(flags), when)
        if result is None or result.uidvalidity != self.uidvalidity or not self.uidplus:
            # paired by Message-ID and size (or digests) at the next sync. (An APPENDUID
            # from a server that does not offer UIDPLUS is not taken: RFC 4315 defines
            # it for those that do; Dovecot sends it even with UIDPLUS hidden, and the
            # tests of servers without it rely on that.)
            return None
        return result.uid

    def fetch_bodies(self, uids: Sequence[int], sink: DownloadSink) -> None:
        caps = self.client.capabilities
        items = ["UID", "FLAGS", "INTERNALDATE"]
        if "CONDSTORE" in self.client.enabled:
            items.append("MODSEQ")
        if "OBJECTID" in caps:
            items.append("EMAILID")
        if "X-GM-EXT-1" in caps:
            items.append("X-GM-MSGID")
        items.append("BODY.PEEK[]")

        def body_sink(seq: int, item: str, size: int) -> IO[bytes] | None:
            return sink.begin(size)

        with self.client.uid_fetch(uids, items, body_sink=body_sink) as stream:
            for r in stream:
                if r.uid is None or not isinstance(r.bodies.get("BODY[]"), StreamedLiteral):
                    continue
                email_id = r.emailid or (str(r.x_gm_msgid) if r.x_gm_msgid else None)
                sink.done(
                    r.uid,
                    frozenset(r.flags or ()),
                    r.internaldate.timestamp() if r.internaldate else None,
                    r.modseq,
                    email_id,
                )


def _uid_array(uids: Iterable[int]) -> array[int]:
    """UIDs ascending without repeats, compact (as servers answer SEARCH: then no list
    is made on the way)."""
    out = array(_U32, uids)
    if any(out[i] >= out[i + 1] for i in range(len(out) - 1)):
        out = array(_U32, sorted(set(out)))
    return out


def _chunks(items: Sequence[_T], n: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --- sharing a big folder's downloads between connections -----------------------------


class _FolderJob:
    """A folder's downloads cut into pieces that any idle connection may take."""

    def __init__(
        self,
        folder: Folder,
        uidvalidity: int,
        pieces: Iterable[Sequence[int]],
        replaces: dict[int, int],
        report: FolderReport,
    ) -> None:
        self.folder = folder
        self.uidvalidity = uidvalidity
        self.pieces: deque[Sequence[int]] = deque(pieces)
        self.replaces = replaces
        self.report = report
        self.outstanding = 0
        self.error: BaseException | None = None


class _Board:
    """Hands out folders to the worker threads, then pieces of big folders' downloads
    to the workers that have run out of folders, so no connection idles while one
    folder (usually INBOX) still downloads."""

    def __init__(self, folders: Iterable[MailboxInfo]) -> None:
        self.cond = threading.Condition()
        self.folders: deque[MailboxInfo] = deque(folders)
        self.active = 0
        self.jobs: list[_FolderJob] = []

    def next_folder(self) -> MailboxInfo | None:
        with self.cond:
            if not self.folders:
                return None
            self.active += 1
            return self.folders.popleft()

    def folder_done(self) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def post(self, job: _FolderJob) -> None:
        with self.cond:
            self.jobs.append(job)
            self.cond.notify_all()

    def take_own(self, job: _FolderJob) -> Sequence[int] | None:
        with self.cond:
            if job.error is not None or not job.pieces:
                return None
            job.outstanding += 1
            return job.pieces.popleft()

    def steal(self) -> tuple[_FolderJob, Sequence[int]] | None:
        """A piece of someone's downloads; None when every folder is done."""
        with self.cond:
            while True:
                for job in self.jobs:
                    if job.pieces and job.error is None:
                        job.outstanding += 1
                        return job, job.pieces.pop()
                if self.active == 0 and not self.folders:
                    return None
                self.cond.wait(0.5)

    def piece_done(self, job: _FolderJob, part: FolderReport, error: BaseException | None) -> None:
        with self.cond:
            job.report.new += part.new
            job.report.restored += part.restored
            if error is not None and job.error is None:
                job.error = error
            job.outstanding -= 1
            self.cond.notify_all()

    def wait_done(self, job: _FolderJob) -> None:
        with self.cond:
            while job.outstanding:
                self.cond.wait()
            self.jobs.remove(job)


def _run_piece(
    board: _Board,
    job: _FolderJob,
    piece: Sequence[int],
    store: Store,
    remote: _RemoteFolder,
    on_progress: ProgressCallback,
    options: SyncOptions,
) -> None:
    from mailbag.sync.apply import download_messages

    part = FolderReport(job.folder.name)
    error: BaseException | None = None
    try:
        download_messages(
            store,
            job.folder,
            remote,
            piece,
            job.replaces,
            part,
            on_progress,
            chunk_messages=options.chunk_messages,
            chunk_bytes=options.chunk_bytes,
        )
    except MailbagError as exc:
        error = exc
        raise
    finally:
        board.piece_done(job, part, error)


#: pieces a big folder's downloads are cut into, for each connection (see `_shared_download`)
_PIECES_EACH = 4


def _shared_download(
    board: _Board | None,
    client: ImapClient,
    store: Store,
    folder: Folder,
    uidvalidity: int,
    report: FolderReport,
    on_progress: ProgressCallback,
    options: SyncOptions,
) -> DownloadFn:
    from mailbag.sync.apply import download_messages

    remote = _RemoteFolder(client, folder.name, uidvalidity)

    def download(uids: Sequence[int], replaces: dict[int, int]) -> None:
        # Pieces grow with the folder: a few per connection, not hundreds. Every piece
        # is a command on its own, and a server may pay for each in proportion to the
        # folder: Dovecot (Maildir) records what it learns about the messages a FETCH
        # read (their sizes) in the folder's uidlist when the command ends, and every
        # other process with the folder open then reads that whole list again.
        # 200,000 messages in 500-message pieces on 4 connections cost the server
        # ~130 s of CPU (mbsync's single connection: 41 s); one connection, 13 s.
        size = max(options.share_chunk, -(-len(uids) // (_PIECES_EACH * options.connections)))
        if board is None or len(uids) < 2 * size:
            download_messages(
                store,
                folder,
                remote,
                uids,
                replaces,
                report,
                on_progress,
                chunk_messages=options.chunk_messages,
                chunk_bytes=options.chunk_bytes,
            )
            return
        # (slices of an array of UIDs: 4 bytes a message, where a list of ints takes 36)
        compact = uids if isinstance(uids, array) else _uid_array(uids)
        pieces = (compact[i : i + size] for i in range(0, len(compact), size))
        job = _FolderJob(folder, uidvalidity, pieces, replaces, report)
        board.post(job)
        try:
            while (piece := board.take_own(job)) is not None:
                _run_piece(board, job, piece, store, remote, on_progress, options)
        finally:
            # never leave while others still write into this folder
            board.wait_done(job)
        if job.error is not None:
            raise job.error

    return download


# --- one folder -----------------------------------------------------------------------


class _LocalSide(NamedTuple):
    """A folder's local side as the planner needs it."""

    messages: Iterable[LocalMessage]  # may be iterated more than once
    entries: dict[str, MaildirEntry]  # the files of the messages (see `partial`)
    unknown: int  # files the index does not know
    changed: bool  # anything to push (or re-pair)
    empty: bool = False  # no rows, no files
    # entries holds only the files not where their rows put them (and unknown ones):
    # `_with_entries` adds those the plan's actions need
    partial: bool = False
    # the index was taken as the local side unread (`_trusted_index`): every live row's
    # file is where its flags put it, and nothing else is there
    trusted: bool = False


_ROW_COLUMNS = "id, uid, key, flags, synced_flags, message_id, size"


class _IndexRows:
    """A folder's messages as the planner needs them, streamed from the index each time
    they are iterated (a full read keeps no object per message): a row whose file is
    where its flags put it (`key:2,INFO` in cur/, or `key` in new/) stands for a
    present file with the row's flags; the rows for which that does not hold (`odd`,
    found by `_read_local`'s scan) and the files the index does not know come as the
    scan found them."""

    def __init__(
        self,
        store: Store,
        folder: Folder,
        odd: dict[int, LocalMessage],
        unknown: list[LocalMessage],
    ) -> None:
        self.store, self.folder, self.odd, self.unknown = store, folder, odd, unknown
        self._early: _EarlyRows | None = None
        self._reader: threading.Thread | None = None
        #: the print of the listing the index matched at the last sync (`_listed_of`),
        #: when the folder is clean: its rows may then be read from the copy of that
        #: listing kept beside the index (`_ListingCopy`) instead of from the index
        self.listed: str | None = None

    def _from_copy(self) -> bool:
        """Take the settled rows from the copy of the listing the index matched, when
        there is a sound one (`_ListingCopy.load`)."""
        listed, self.listed = self.listed, None
        if listed is None or self.odd or self.unknown or self._early is not None:
            return False
        self._early = _ListingCopy(self.store, self.folder.id).load(listed, self.folder.uidvalidity)
        return self._early is not None

    def __iter__(self) -> Iterator[LocalMessage]:
        return self._rows("")

    def by_uid(self) -> Iterator[LocalMessage]:
        """The same in the order of the rows' UIDs (those without one after them): after
        a UIDVALIDITY change the server's new UIDs mostly keep that order, so pairing
        again meets each message's partner soon (`repair`)."""
        yield from self._rows(" AND uid IS NOT NULL ORDER BY uid", unknown=False)
        yield from self._rows(" AND uid IS NULL")

    def _rows(
        self,
        where: str,
        args: Sequence[object] = (),
        *,
        unknown: bool = True,
        unsettled: bool = False,
        join: tuple[str, Sequence[object]] = ("", ()),
    ) -> Iterator[LocalMessage]:
        from mailbag.sync.plan import LocalMessage

        self.wait_early()
        odd = self.odd
        # `where` and `join` are this class's own clauses; values are bound
        query = f"SELECT {_ROW_COLUMNS} FROM messages{join[0]} WHERE folder_id = ?{where}"  # noqa: S608
        rows = self.store.conn.execute(query, (*join[1], self.folder.id, *args))
        for row_id, uid, key, flags_txt, synced_txt, message_id, size in rows:
            if unsettled and (row_id in odd or (uid is not None and synced_txt == flags_txt)):
                continue  # given by `odd` or `settled`
            m = odd.get(row_id)
            if m is None:
                synced = None if synced_txt is None else parse_flags(synced_txt)
                flags = parse_flags(flags_txt)
                m = LocalMessage(row_id, key, uid, flags, True, message_id or "", size, synced)
            yield m
        if unknown:
            yield from self.unknown

    # The same messages split for `plan_stream`: most rows of a synced folder are
    # "settled" (paired, flags as last synced) and are given as (UID, flags) only;
    # `rows_of` reads in full those the server side differs for.

    def settled(self) -> Iterator[tuple[Sequence[int], Sequence[frozenset[str]]]]:
        self.wait_early()
        if self._early is None:
            self._from_copy()
        early, after = self._early, 0
        if early is not None:  # (`read_early`)
            uids, ids, sets = early.uids, early.ids, early.sets
            for i in range(0, len(uids), _SETTLED_BATCH):
                yield (
                    uids[i : i + _SETTLED_BATCH],
                    list(map(sets.__getitem__, ids[i : i + _SETTLED_BATCH])),
                )
            if early.rest_after is None:
                return
            after = early.rest_after
        odd = {m.uid for m in self.odd.values() if m.uid is not None}
        for uids, texts in self._settled_texts(after):
            if odd:
                keep = [uid not in odd for uid in uids]
                uids = array(_U32, itertools.compress(uids, keep))
                texts = list(itertools.compress(texts, keep))
            yield uids, list(map(parse_flags, texts))

    def _settled_texts(self, after: int) -> Iterator[tuple[array[int], list[str]]]:
        """The settled rows with UIDs above `after`, ascending: UIDs and flag texts side
        by side, _SETTLED_BATCH at a time. SQLite joins each batch's columns into one
        string (UIDs, and flag texts one a line), split here in C: a 20,000 row folder
        reads in ~9 ms instead of ~17 ms for a tuple per row (most of that time was the
        tuples, not SQLite). The two columns are aggregated over the same rows, so they
        stay side by side whatever order SQLite joins them in."""
        query = (
            "SELECT group_concat(uid), group_concat(flags, char(10)), max(uid), count(*) FROM "
            "(SELECT uid, flags FROM messages WHERE folder_id = ? AND uid > ? "
            "AND synced_flags = flags ORDER BY uid LIMIT ?)"
        )
        conn, folder_id = self.store.conn, self.folder.id
        while True:
            joined, texts, last, count = conn.execute(
                query, (folder_id, after, _SETTLED_BATCH)
            ).fetchone()
            if not count:
                return
            uids = array(_U32, map(int, joined.split(",")))
            flags = texts.split("\n")
            if len(uids) != count or len(flags) != count:
                # (a flag text with a line break: not from IMAP or Maildir) row by row
                rows = conn.execute(
                    "SELECT uid, flags FROM messages WHERE folder_id = ? AND uid > ? "
                    "AND synced_flags = flags ORDER BY uid LIMIT ?",
                    (folder_id, after, _SETTLED_BATCH),
                ).fetchall()
                uids = array(_U32, [uid for uid, _ in rows])
                flags = [text for _, text in rows]
            yield uids, flags
            if count < _SETTLED_BATCH:
                return
            after = last

    def read_early(self) -> None:
        """Start reading the settled rows (at most _EARLY_MAX of them) into two arrays
        (~6 bytes a message), for `settled` to give later; in a thread of its own, while
        this one takes in the server's answer to the SELECT and the listing: SQLite
        joins the rows without holding Python's lock, so on a second core the index is
        read while the listing is (in a 20,000 message folder ~10-20 ms off the sync's
        time). Only for a folder whose rows are all as the index says (no `odd`, no
        unknown files). Nothing else may use the store until `wait_early` (every
        reader of the rows here calls it first)."""
        if self.odd or self.unknown or self._early is not None or self._reader is not None:
            return
        if self._from_copy():
            return  # (a file read: no thread needed)
        self._reader = threading.Thread(target=self._read_early, name="mailbag-index", daemon=True)
        self._reader.start()

    def wait_early(self) -> None:
        """Wait until the rows `read_early` reads are read (or it gave up: read later)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join()

    def _read_early(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # (read again when planned: raised there)
            self._early = self._read_settled_rows()

    def _read_settled_rows(self) -> _EarlyRows | None:
        uids, ids = array(_U32), array("H")
        sets: list[frozenset[str]] = []
        numbers: dict[str, int] = {}
        rest_after: int | None = None
        for batch, texts in self._settled_texts(0):
            for text in set(texts).difference(numbers):
                numbers[text] = len(sets)
                sets.append(parse_flags(text))
            if len(sets) > 0xFFFF:
                return None  # (that many flag combinations: read when planned)
            uids.extend(batch)
            ids.extend(map(numbers.__getitem__, texts))
            if len(uids) >= _EARLY_MAX:
                rest_after = uids[-1]
                break
        return _EarlyRows(uids, ids, sets, rest_after)

    def unsettled(self) -> Iterator[LocalMessage]:
        """The rest: odd rows, rows not settled, files the index does not know. The
        condition is `messages_pending`'s (a partial index: usually no row), which
        takes in the settled rows that are gone or moved too (skipped here). A row
        read early as settled (`read_early`) that another mailbag command changed since
        is given once, as read then (the change is pushed by the next run)."""
        yield from self.odd.values()
        rows = self._rows(
            " AND (uid IS NULL OR gone = 1 OR moved_from_uid IS NOT NULL "
            "OR synced_flags IS NULL OR flags != synced_flags)",
            unsettled=True,
        )
        early = self._early
        if early is None:
            yield from rows
            return
        for m in rows:
            if m.uid is None or not early.has(m.uid):
                yield m

    def by_uid_except(self, kept: Kept) -> Iterator[LocalMessage]:
        """`by_uid`'s rows but those `kept` (`keep.find_kept`): the rows in its open UID
        ranges but its UIDs, then those without a UID."""
        # (ranges in one query a hundred at a time: a folder where every twentieth
        # message has no Message-ID has a range for each)
        for chunk in _chunks(kept.open, _OPEN_RANGES):
            ranges = ",".join(["(?,?)"] * len(chunk))
            join = (
                f" JOIN (VALUES {ranges}) AS r ON uid > r.column1 AND uid <= r.column2",
                [bound for pair in chunk for bound in pair],
            )
            for m in self._rows(" ORDER BY uid", unknown=False, join=join):
                if m.uid is None or not kept.has(m.uid):
                    yield m
        yield from self._rows(" AND uid IS NULL")

    def rows_of(self, uids: Sequence[int]) -> Iterator[LocalMessage]:
        for chunk in _chunks(uids, 500):
            marks = ",".join("?" * len(chunk))
            yield from self._rows(f" AND uid IN ({marks})", chunk, unknown=False)


#: open UID ranges read per query (`_IndexRows.by_uid_except`)
_OPEN_RANGES = 100
#: settled rows read per query (`_IndexRows.settled`)
_SETTLED_BATCH = 4096
#: settled rows read ahead at most (`_IndexRows.read_early`): ~600 KB
_EARLY_MAX = 100_000
#: messages of a folder whose listing is copied at most (`_ListingCopy`): ~6 bytes a
#: message when read (the listing itself holds 8). Far more than the rows read ahead
#: from the index: a copy reads a 200,000 message folder's rows in ~3 ms instead of
#: ~150 ms of SQLite's, and holds them in 1.2 MB instead of SQLite's 2 MB page cache.
_COPY_MAX = 1_000_000
#: messages of a listing whose copy is written in a helper thread (`_Held.keep_copy`);
#: a smaller one's is written at once (~0.5 ms at 20,000: about what a thread costs)
_COPY_AHEAD_MIN = 50_000
#: the head line of a copy at most, and its flag texts (a damaged head is not believed)
_COPY_HEAD_MAX = 256
_COPY_TEXT_MAX = 64 << 20


class _ListingCopy:
    """A copy of the flag listing a folder's index rows matched at the end of the last
    sync that read it whole (`_state`'s " list=" print), in a file beside the index
    (`listings/FOLDER-ID.PRINT`): the settled rows of such a folder are then read from
    it, not from the index, when the folder is clean (its rows as they were then) and
    its listing changed on the server (a re-sync without CONDSTORE after flag changes
    or expunges there): ~1 ms instead of ~20 ms of CPU for 20,000 rows (SQLite's join,
    the split) on a sync that must otherwise read all of them.

    It holds what the index holds: every listed message with its flags as the index
    stores them (IGNORED_FLAGS left out), for the listing whose print is recorded. A
    copy is taken only for the print the index records now (it is written before the
    commit that records it: a crash in between leaves the old print there, and no copy
    of another listing is taken), for the folder and UIDVALIDITY it was made for, when
    its bytes check out (a CRC-32 of the rest: a torn or half-written file, which a
    crash may leave since it is not flushed, is not taken but removed); then it is
    exactly what reading the rows gives. Anything else and the rows are read from the
    index, as without a copy. Only folders of at most _COPY_MAX messages. A new copy is
    written under its own name (renamed from a temporary one, never over another file:
    ext4 flushes a file renamed over another, ~1-3 ms), and the folder's other copies
    are removed after."""

    MAGIC = b"mailbag-listing 1"

    def __init__(self, store: Store, folder_id: int) -> None:
        self.store = store
        self.dir = _listings_dir(store)
        self.folder_id = folder_id

    def path(self, listed: str) -> Path:
        return self.dir / f"{self.folder_id}.{listed}"

    def save(self, listed: str, uidvalidity: int, listing: RemoteListing) -> None:
        """Write the copy for the listing with print `listed` (not flushed), unless there
        is one; remove the folder's others. A failure only leaves it out (the rows are
        read from the index then). The listing's arrays are written as they are, with a
        CRC taken piece by piece: no copy of them is made but the flag numbers' (2 bytes
        a message)."""
        from mailbag.sync.plan import IGNORED_FLAGS

        uids, ids, sets = listing.parts()
        path = self.path(listed)
        if 0 < len(uids) <= _COPY_MAX and len(sets) <= 0xFFFF and not path.exists():
            texts = "\n".join(" ".join(sorted(fs - IGNORED_FLAGS)) for fs in sets).encode()
            if not isinstance(uids, array) or uids.typecode != _U32:
                uids = array(_U32, uids)
            numbers = array("H", ids)
            crc = zlib.crc32(numbers, zlib.crc32(uids, zlib.crc32(texts)))
            head = (
                f"{self.MAGIC.decode()} {uids.itemsize} {sys.byteorder} "
                f"{self.folder_id} {uidvalidity} {listed} {len(uids)} {len(texts)} {crc}\n"
            ).encode()
            tmp = self.dir / f".{self.folder_id}.tmp"
            try:
                self.dir.mkdir(exist_ok=True)
                with open(tmp, "wb") as fh:
                    for part in (head, texts, uids, numbers):
                        fh.write(part)
                os.rename(tmp, path)
            except OSError:
                self.remove()
                return
        # the others go with the files the sync removed (`Store.remove_later`: one `rm`
        # at its end, not an unlink each here, which waits for the file system's journal
        # when other work flushes it). Left behind by a crash, they are never taken (a
        # copy is taken only under the print the index records) and go at the next save
        self.remove(keep=path.name if path.exists() else None, later=True)

    def load(self, listed: str, uidvalidity: int | None) -> _EarlyRows | None:
        """The settled rows as `_IndexRows.read_early` reads them, from a sound copy for
        the listing `listed` (else None; an unsound one is removed)."""
        path = self.path(listed)
        try:
            with open(path, "rb") as fh:
                early = self._read(fh, listed, uidvalidity)
        except FileNotFoundError:
            return None
        except OSError:
            early = None
        if early is None:
            with contextlib.suppress(OSError):
                path.unlink()
        return early

    def _read(self, fh: BufferedReader, listed: str, uidvalidity: int | None) -> _EarlyRows | None:
        """The rows of the copy open as `fh`, when it is sound. Its arrays are read
        straight into arrays of their size (~6 bytes a message, nothing besides)."""
        parts = fh.readline(_COPY_HEAD_MAX).split()
        if len(parts) != 10 or b" ".join(parts[:2]) != self.MAGIC:
            return None
        itemsize, order, folder_id, validity, printed, count, size, crc = parts[2:]
        try:
            n, ntext = int(count), int(size)
            sound = (
                int(itemsize) == array(_U32).itemsize
                and order.decode() == sys.byteorder
                and int(folder_id) == self.folder_id
                and int(validity) == uidvalidity
                and printed.decode() == listed
                and 0 < n <= _COPY_MAX
                and 0 <= ntext <= _COPY_TEXT_MAX
            )
            expected = int(crc)
        except (ValueError, UnicodeDecodeError):
            return None
        if not sound:
            return None
        texts = fh.read(ntext)
        uids, ids = array(_U32, [0]) * n, array("H", [0]) * n
        if (
            len(texts) != ntext
            or fh.readinto(uids) != n * uids.itemsize
            or fh.readinto(ids) != n * ids.itemsize
            or fh.read(1)
            or zlib.crc32(ids, zlib.crc32(uids, zlib.crc32(texts))) != expected
        ):
            return None
        try:
            sets = [parse_flags(t) for t in texts.decode().split("\n")]
        except UnicodeDecodeError:
            return None
        if max(ids) >= len(sets):
            return None
        return _EarlyRows(uids, ids, sets, None)

    def remove(self, keep: str | None = None, *, later: bool = False) -> None:
        """Remove the folder's copies (but `keep`); `later`: by the store's removals
        (`Store.remove_later`), not here."""
        prefix = f"{self.folder_id}."
        with contextlib.suppress(OSError), os.scandir(self.dir) as it:
            for e in it:
                if e.name.startswith(prefix) and e.name != keep:
                    if later:
                        self.store.remove_later(e.path)
                        continue
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)


def _listings_dir(store: Store) -> Path:
    """Where the copies of listings go (`_ListingCopy`): beside the index."""
    for _, name, file in store.conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent / "listings"
    raise StoreError("the index has no file")  # (an index in memory: not for a sync)


class _EarlyRows(NamedTuple):
    """Settled rows read ahead (`_IndexRows.read_early`): UIDs ascending and the number
    of each one's flags in `sets`, side by side; the rows above `rest_after` (None:
    there are none) are read when planned."""

    uids: array[int]
    ids: array[int]
    sets: list[frozenset[str]]
    rest_after: int | None

    def has(self, uid: int) -> bool:
        i = bisect.bisect_left(self.uids, uid)
        return i < len(self.uids) and self.uids[i] == uid


def _trusted_index(store: Store, folder: Folder) -> bool:
    """The index is the folder's local side: the directory times are those recorded
    after the last complete scan and no row waits to be pushed (see `_start_folder`)."""
    stamp = _dir_stamp(folder)
    return (
        stamp is not None
        and stamp == _stamp_of(folder)
        and folder.id not in store.folders_with_pending(folder.account)
    )


def _read_local(store: Store, folder: Folder) -> _LocalSide:
    """The folder's local side for a full read. Kept per message: a hash of its file
    name and its row's id while the names in cur/ and new/ are matched with the rows
    (none when `_trusted_index`), then only what differs from the index (rows whose
    file moved or went, unknown files)."""
    from mailbag.store.maildir import split_name
    from mailbag.sync.plan import LocalMessage

    if _trusted_index(store, folder):
        # (one row looked up, not all counted: ~1-5 ms less in a 20,000 message folder)
        empty = (
            store.conn.execute(
                "SELECT 1 FROM messages WHERE folder_id = ? LIMIT 1", (folder.id,)
            ).fetchone()
            is None
        )
        return _LocalSide(
            _IndexRows(store, folder, {}, []), {}, 0, False, empty=empty, partial=True, trusted=True
        )
    # Each row is matched with the file name it puts its message at, and each name in
    # cur/ and new/ with the row it belongs to, by their `_row_token`/`_name_token`
    # compared as 64-bit hashes, in arrays split by the hashes' low bits into parts of
    # ~1,000 (compared a part at a time, as sets): ~20 bytes a message instead of ~115
    # for sets of the names (a 200,000 message folder: ~4 MB, not 23). Only the names
    # no row puts there are then kept (a second listing, when there are any), and only
    # the rows whose name is not there are read in full. A hash shared by two different
    # names (chance ~1e-9 in a 200,000 message folder) can only hide a change for a run:
    # a row is taken as gone only when no name with its hash is there at all.
    parts = _hash_parts(folder.messages)
    mask = parts - 1
    row_hashes = [array("q") for _ in range(parts)]
    (top,) = store.conn.execute("SELECT max(id) FROM messages").fetchone()
    id_type = "i" if (top or 0) < 2**31 else "q"  # (4 bytes a row where they fit)
    row_ids = [array(id_type) for _ in range(parts)]
    # only the columns the planner needs, row by row (no list of every row at once):
    # this runs over every message of a changed folder
    rows = store.conn.execute(
        "SELECT id, uid, key, flags, synced_flags, gone, message_id, size, moved_from_uid "
        "FROM messages WHERE folder_id = ?",
        (folder.id,),
    )
    odd_rows: dict[int, tuple[int | None, str, str, str | None, int, str | None, int | None]] = {}
    changed = False
    count = 0
    for row_id, uid, key, flags_txt, synced_txt, gone, message_id, size, moved in rows:
        count += 1
        if gone:
            odd_rows[row_id] = (uid, key, flags_txt, synced_txt, gone, message_id, size)
            continue
        info = _info_of(flags_txt)
        h = hash(f"{key}:2,{info}" if info else key)  # (`_row_token`, inline: per message)
        row_hashes[h & mask].append(h)
        row_ids[h & mask].append(row_id)
        if not changed:
            synced = None if synced_txt is None else parse_flags(synced_txt)
            # (a row whose file is not where it says is a change too: found below)
            changed = uid is None or bool(moved) or parse_flags(flags_txt) != synced
    name_hashes = [array("q") for _ in range(parts)]
    for subdir in ("cur", "new"):
        # (`_names`, inline: per message)
        with contextlib.suppress(FileNotFoundError), os.scandir(folder.path / subdir) as it:
            for e in it:
                if not e.name.startswith("."):
                    h = hash(_name_token(subdir, e.name))
                    name_hashes[h & mask].append(h)
    lost: list[int] = []  # rows whose file is not where they put it
    stray: set[int] = set()  # hashes of the names no row puts there
    for i in range(parts):
        by_rows, by_names = set(row_hashes[i]), set(name_hashes[i])
        if len(by_names) < len(name_hashes[i]):
            # one name twice: `KEY:2,` in cur/ and `KEY` in new/ (a row without Maildir
            # flags puts its file at either): both are looked at as strays
            seen: set[int] = set()
            for h in name_hashes[i]:
                if h in seen:
                    stray.add(h)
                seen.add(h)
        if by_rows != by_names:
            gone_here = by_rows - by_names
            if gone_here:
                ids = row_ids[i]
                lost.extend(ids[j] for j, h in enumerate(row_hashes[i]) if h in gone_here)
            stray |= by_names - by_rows
        row_hashes[i], row_ids[i], name_hashes[i] = array("q"), array(id_type), array("q")
    del row_hashes, row_ids, name_hashes
    for chunk in _chunks(lost, 500):
        marks = ",".join("?" * len(chunk))
        for row_id, uid, key, flags_txt, synced_txt, message_id, size in store.conn.execute(
            "SELECT id, uid, key, flags, synced_flags, message_id, size FROM messages "  # noqa: S608
            f"WHERE id IN ({marks})",
            chunk,
        ):
            # (gone -1: not where the row puts it, looked up among the strays)
            odd_rows[row_id] = (uid, key, flags_txt, synced_txt, -1, message_id, size)
    if lost:
        changed = True
    # the files not where a row puts them: key -> entry (cur/ over new/, as a scan)
    entries = _renamed(folder, stray, odd_rows)
    if stray:  # (not all found so: each name looked at again)
        for subdir in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for name in _names(folder.path / subdir):
                    if hash(_name_token(subdir, name)) in stray:
                        key = split_name(name)[0]
                        entries[key] = MaildirEntry(key, subdir, name, folder.path)
    known = _known_keys(store, folder, entries)
    odd: dict[int, LocalMessage] = {}
    for row_id, (uid, key, flags_txt, synced_txt, gone, message_id, size) in odd_rows.items():
        entry = None if gone == 1 else entries.get(key)
        row_flags = parse_flags(flags_txt)
        synced = None if synced_txt is None else parse_flags(synced_txt)
        if entry is not None:
            keywords = row_flags - _MAILDIR_FLAGS
            flags = entry.flags | keywords if keywords else entry.flags
        else:
            flags = row_flags
        changed = True  # (a file gone or renamed here)
        odd[row_id] = LocalMessage(
            row_id, key, uid, flags, entry is not None, message_id or "", size, synced
        )
    del odd_rows
    unknown: list[LocalMessage] = []
    for key, entry in entries.items():
        if key in known:
            continue
        changed = True
        # (imported for a file to read only: ~6 ms of a no-op re-sync otherwise)
        from mailbag.store.envelope import envelope_from_file

        try:
            env = envelope_from_file(entry.path)
            size = entry.path.stat().st_size
        except FileNotFoundError:
            continue  # removed meanwhile
        unknown.append(LocalMessage(None, key, None, entry.flags, True, env.message_id, size))
    return _LocalSide(
        _IndexRows(store, folder, odd, unknown),
        entries,
        len(entries) - len(known),
        changed,
        empty=count == 0 and not entries,
        partial=True,
    )


#: the info letters a Maildir program may give a file, each set of them sorted
_INFOS = tuple(
    "".join(letters)
    for n in range(1, len(FLAG_LETTERS) + 1)
    for letters in itertools.combinations(sorted(FLAG_LETTERS.values()), n)
)
#: rows not where they were, at most, whose files `_renamed` looks for by name
_RENAMED_MAX = 500


def _renamed(
    folder: Folder,
    stray: set[int],
    odd_rows: dict[int, tuple[int | None, str, str, str | None, int, str | None, int | None]],
) -> dict[str, MaildirEntry]:
    """The files of `stray` (hashes of `_name_token`s no row puts there) that are rows'
    files under other flags (a mail reader renamed them), found without listing the
    folder again: each name such a row's file can have is hashed and, where it is one of
    `stray`, looked up (a stat). When that finds all of them, `stray` is emptied and
    they are returned (key -> entry, cur/ over new/, as a scan); else (a new file, a
    name no flags give) none, and the caller lists the folder again."""
    lost = [key for _, key, _, _, gone, _, _ in odd_rows.values() if gone == -1]
    if not lost or len(lost) > _RENAMED_MAX:
        return {}
    cur = folder.path / "cur"
    found: dict[str, MaildirEntry] = {}
    explained: set[int] = set()
    for key in lost:
        h = hash(key)  # (no flags: `KEY` in new/ or `KEY:2,` in cur/)
        if h in stray:
            for subdir, name in (("new", key), ("cur", f"{key}:2,")):
                if os.path.exists(folder.path / subdir / name):
                    explained.add(h)
                    found[key] = MaildirEntry(key, subdir, name, folder.path)
        for info in _INFOS:
            name = f"{key}:2,{info}"
            h = hash(name)
            if h in stray and os.path.exists(cur / name):
                explained.add(h)
                found[key] = MaildirEntry(key, "cur", name, folder.path)
    if explained != stray:
        return {}
    stray.clear()
    return found


def _hash_parts(messages: int | None) -> int:
    """How many parts `_read_local` splits a folder's hashes into: a power of two, for
    ~1,000 messages each (the folder's count at the last sync: only a guess)."""
    parts = 1
    while parts * 1024 < (messages or 0) and parts < 4096:
        parts *= 2
    return parts


def _known_keys(store: Store, folder: Folder, entries: dict[str, MaildirEntry]) -> set[str]:
    """Which of the keys of `entries` the index has rows for."""
    known: set[str] = set()
    keys = list(entries)
    for chunk in _chunks(keys, 500):
        marks = ",".join("?" * len(chunk))
        known.update(
            k
            for (k,) in store.conn.execute(
                f"SELECT key FROM messages WHERE folder_id = ? AND key IN ({marks})",  # noqa: S608
                (folder.id, *chunk),
            )
        )
    return known


def _with_entries(
    store: Store, folder: Folder, local: _LocalSide, result: Plan
) -> dict[int, tuple[str, str]]:
    """Add to a partial local side the files the plan's actions rename, remove or upload:
    each looked up where its row's flags put it (the scan, or the directory times, showed
    it there). Where the index was trusted (`_LocalSide.trusted`) a file with Maildir
    flags is taken to be where they put it, without a look (the only place it can be:
    ~10 us a file in a 100,000 message folder); if another program took it away since,
    carrying out the plan finds it gone, as after any look. Returns the key and flags
    of the rows looked up, by UID (those with one)."""
    from mailbag.sync.plan import DeleteLocal, SetFlags, Upload

    rows: dict[int, tuple[str, str]] = {}
    if not local.partial:
        return rows
    wanted = [
        a.row
        for a in result.actions
        if isinstance(a, DeleteLocal | Upload) or (isinstance(a, SetFlags) and a.local)
        if a.row is not None and a.key not in local.entries
    ]
    cur, new = str(folder.path / "cur"), str(folder.path / "new")
    for chunk in _chunks(wanted, 500):
        marks = ",".join("?" * len(chunk))
        for uid, key, flags_text, gone in store.conn.execute(
            f"SELECT uid, key, flags, gone FROM messages WHERE id IN ({marks})",  # noqa: S608
            tuple(chunk),
        ):
            if uid is not None and not gone:
                rows[uid] = (key, flags_text)
            info = _info_of(flags_text)
            name = f"{key}:2,{info}"
            if (info and local.trusted) or os.path.exists(f"{cur}/{name}"):
                local.entries[key] = MaildirEntry(key, "cur", name, folder.path)
            elif not info and os.path.exists(f"{new}/{key}"):
                local.entries[key] = MaildirEntry(key, "new", key, folder.path)
    return rows


def _unchanged(folder: Folder, status: MailboxStatus | None) -> bool:
    return (
        status is not None
        and folder.uidvalidity is not None
        and status.uidvalidity == folder.uidvalidity
        and status.uidnext == folder.uidnext
        and status.messages == folder.messages
        and (
            status.highestmodseq == folder.highestmodseq
            if status.highestmodseq is not None
            # without CONDSTORE flags can change unseen, except in an empty folder
            else status.messages == 0
        )
    )


#: a change within one file-system timestamp tick (a few ms) of the last one would not
#: show in the directory times, so only a stamp this much older than now is trusted
_STAMP_SAFE_NS = 30_000_000
#: a file system that keeps whole seconds (or milliseconds) only, such as ext3, FAT or
#: some network mounts, needs a margin of that size instead
_COARSE_STAMP_SAFE_NS = 2_000_000_000


def _stamp_margin(cur: int, new: int) -> int:
    # both times a whole millisecond: not a nanosecond clock (chance ~1e-12 otherwise)
    coarse = cur % 1_000_000 == 0 and new % 1_000_000 == 0
    return _COARSE_STAMP_SAFE_NS if coarse else _STAMP_SAFE_NS


def _dir_stamp(folder: Folder) -> str | None:
    """Modification times of cur/ and new/: adding, removing or renaming a file (which
    is how Maildir programs change flags) changes them. None when too fresh to trust."""
    try:
        cur = os.stat(folder.path / "cur").st_mtime_ns
        new = os.stat(folder.path / "new").st_mtime_ns
    except FileNotFoundError:
        return None
    if time.time_ns() - max(cur, new) < _stamp_margin(cur, new):
        return None
    return f"dirs={cur}:{new}"


def _times_stamp(folder: Folder) -> str | None:
    """`_dir_stamp` however fresh (for times `_step_back` made safe)."""
    return quick.dir_times(folder.path)


def _step_back(path: Path, st: os.stat_result) -> bool:
    """Set a directory's modification time 1 ns before the one the last change gave it.

    A change from now on gets the time of the kernel's clock, which is never before the
    last change's: so it always moves the time away from the new value, even within
    the same clock tick (when it would have left the old value as it was). That makes
    the time safe to record at once instead of after a tick (see `_rearm`). Programs
    that look for a newer time see none, rightly: nothing changed since they looked.
    Returns whether it worked (not on a file system that keeps coarser times)."""
    try:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 1))
        return os.stat(path).st_mtime_ns < st.st_mtime_ns
    except OSError:
        return False


def _skippable(
    existing: Folder | None,
    info: MailboxInfo,
    status: MailboxStatus | None,
    exclude_uids: set[int],
    pending: set[int],
) -> bool:
    """Nothing changed on the server (STATUS), nor here: the directory times are those
    recorded after the last complete scan and no index row waits to be pushed (`pending`:
    `Store.folders_with_pending`). Costs two stat calls; reads no folder."""
    return (
        existing is not None
        and not exclude_uids
        and existing.sync_state is not None
        and existing.id not in pending
        and _unchanged(existing, status)
        and existing.role == folder_role(info)
        and _dir_stamp(existing) == _stamp_of(existing)
    )


def _record_stamp(
    store: Store,
    folder: Folder,
    before_scan: str | None,
    *,
    commit: bool = True,
    listed: str | None = None,
) -> bool:
    """Remember the directory times taken before the scan, when nothing has changed
    them since: then the scan saw everything up to them. Otherwise forget the stamp,
    so the next run scans (unless `_rearm` shows the files match the index). `listed`:
    the print of the server's listing the index now matches (`_state`). Commits
    (unless not `commit`), with whatever the caller left uncommitted; returns whether
    a stamp was recorded."""
    stamp = before_scan if before_scan is not None and _dir_stamp(folder) == before_scan else None
    state = _state(stamp, listed)
    if state != folder.sync_state:
        store.update_folder(folder, sync_state=state)
    if commit:
        store.commit()
    return stamp is not None


# A folder's `sync_state`: its directory times (`_dir_stamp`), recorded when the index
# holds all its files, and, for a folder read whole, " list=" and the print of the last
# flag listing (`FlagStream.print`) when the index holds exactly what it listed: every
# server message with the flags last synced, nothing else, nothing changed on the server
# by the sync since. A later listing with the same print, of a folder whose directory
# times and rows show no change here, is then a sync with nothing to do: the rows are
# not read, nothing is planned (`_listed_unchanged`).


def _state(stamp: str | None, listed: str | None) -> str | None:
    return stamp if stamp is None or listed is None else f"{stamp} list={listed}"


def _stamp_of(folder: Folder) -> str | None:
    """The directory times part of the folder's `sync_state`."""
    state = folder.sync_state
    return None if state is None else state.partition(" list=")[0]


def _listed_of(folder: Folder) -> str | None:
    """The listing print part of the folder's `sync_state`."""
    state = folder.sync_state
    return None if state is None else state.partition(" list=")[2] or None


@functools.lru_cache(maxsize=256)
def _info_of(flags_text: str) -> str:
    return flags_to_info(parse_flags(flags_text))


def _row_token(key: str, flags_text: str) -> str:
    """What `_listing_print` counts for the file of a row named as its flags say."""
    info = _info_of(flags_text)
    return f"{key}:2,{info}" if info else key


def _name_token(subdir: str, name: str) -> str:
    """What `_listing_print` counts for the name `name` in `subdir` (cur or new). A file
    without Maildir flags counts alike in new/ as `KEY` and in cur/ as `KEY:2,` (both
    where its row puts it); other names unlike any a row could have."""
    if subdir == "cur":
        if name.endswith(":2,") and ":" not in name[:-3]:
            return name[:-3]
        return name if ":2," in name else "cur/" + name
    return name if ":" not in name else "new/" + name


def _listing_print(folder: Folder) -> tuple[int, int] | None:
    """(how many, sum of the hashes of their `_name_token`s) of the names in cur/ and
    new/, read as a stream: memory stays the same however big the folder. Two listings
    with the same print hold the same names (but for a 64-bit hash collision); the
    hashes are Python's, so prints are compared within one process only."""
    count = total = 0
    try:
        for subdir in ("cur", "new"):
            for name in _names(folder.path / subdir):
                count += 1
                total += hash(_name_token(subdir, name))
    except FileNotFoundError:
        return None
    return count, total


def _watch_print(watch: DirWatch, wds: tuple[int, int]) -> tuple[int, int] | None:
    """The print (`_listing_print`) of the names added to cur/ and new/ since they were
    watched (`wds`), less that of the names removed; None when the watch lost track."""
    count = total = 0
    for subdir, wd in zip(("cur", "new"), wds, strict=True):
        changes = watch.changes(wd)
        if changes is None:
            return None
        for added, name in changes:
            if name.startswith("."):
                continue  # (not listed either)
            if added:
                count += 1
                total += hash(_name_token(subdir, name))
            else:
                count -= 1
                total -= hash(_name_token(subdir, name))
    return count, total


def _names(directory: Path) -> Iterator[str]:
    """The names in a Maildir subdirectory (not hidden ones), read as a stream."""
    with os.scandir(directory) as it:
        for e in it:
            if not e.name.startswith("."):
                yield e.name


def _matches_index(store: Store, folder: Folder) -> bool:
    """The files of the folder are exactly the index's live rows, each where its flags
    put it (`key:2,INFO` in cur/, or plain `key` in new/ when it has no Maildir flags):
    what a full scan would find. Listings and a walk over the rows, compared by their
    prints (`_listing_print`): no file opened, nothing held per message."""
    listed = _listing_print(folder)
    if listed is None:
        return False
    count = total = 0
    for key, flags_text in store.conn.execute(
        "SELECT key, flags FROM messages WHERE folder_id = ? AND gone = 0", (folder.id,)
    ):
        count += 1
        total += hash(_row_token(key, flags_text))
    return (count, total) == listed


class _Baseline(NamedTuple):
    """The folder's files when a delta sync began (they matched the index then): their
    print (`_listing_print`), or, where the kernel reports changes, a watch on cur/ and
    new/ (`DirWatch` and its handles) that says what changed since; the print of the
    files the sync set out to change, and the affected UIDs (vanished, changed, new on
    the server)."""

    listed: tuple[int, int] | None
    touched: tuple[int, int]
    uids: set[int]
    watch: DirWatch | None = None
    wds: tuple[int, int] | None = None


def _rows_print(store: Store, folder: Folder, uids: Iterable[int]) -> tuple[int, int]:
    """The print (`_listing_print`) of the files of the live rows with these UIDs, each
    named as its flags say."""
    count = total = 0
    for chunk in _chunks(sorted(uids), 500):
        marks = ",".join("?" * len(chunk))
        query = (
            f"SELECT key, flags FROM messages WHERE folder_id = ? AND gone = 0 AND uid IN ({marks})"  # noqa: S608
        )
        for key, flags_text in store.conn.execute(query, (folder.id, *chunk)):
            count += 1
            total += hash(_row_token(key, flags_text))
    return count, total


def _delta_applied(store: Store, folder: Folder, base: _Baseline) -> bool | None:
    """The files are the baseline with exactly this run's changes: the untouched ones
    all still there, and besides them one file per affected row left in the index,
    named as its flags say. Compared by their prints: the baseline's listing against
    a listing now, or only the names the watch saw added and removed against those of
    the affected rows (no listing at all); the affected rows are read, not the whole
    index. None when the watch lost track (the caller checks another way)."""
    count, total = _rows_print(store, folder, base.uids)
    count -= base.touched[0]
    total -= base.touched[1]
    if base.watch is not None and base.wds is not None:
        moved = _watch_print(base.watch, base.wds)
        return None if moved is None else moved == (count, total)
    if base.listed is None:
        return None
    return _listing_print(folder) == (base.listed[0] + count, base.listed[1] + total)


def _rearm(store: Store, folder: Folder, base: _Baseline | None) -> str | None:
    """After a run that changed the folder's files itself: the directory times to
    record when the files are exactly what the index says (checked against the baseline
    of a delta sync, else against every row), so the next run need not read the folder.
    A time recorded must show any later change by another program: one within a clock
    tick of the last change would leave it as it is, so a fresh time is stepped back
    first (`_step_back`), or else this waits (at most _STAMP_SAFE_NS) until the tick has
    passed. The check of the files comes after that: it sees whatever came before."""
    dirs = (folder.path / "cur", folder.path / "new")
    try:
        stats = [os.stat(d) for d in dirs]
    except FileNotFoundError:
        return None
    cur, new = stats[0].st_mtime_ns, stats[1].st_mtime_ns
    margin = _stamp_margin(cur, new)
    if margin > _STAMP_SAFE_NS:
        return None  # a coarse clock: not worth waiting seconds for; the next run reads
    now = time.time_ns()
    fresh = [(d, st) for d, st in zip(dirs, stats, strict=True) if now - st.st_mtime_ns < margin]
    if all(_step_back(d, st) for d, st in fresh):
        stamp = _times_stamp(folder)
    else:
        wait = margin - (time.time_ns() - max(cur, new))
        if wait > 0:
            time.sleep(wait / 1e9 + 0.001)
        stamp = _dir_stamp(folder)
    if stamp is None or folder.id in store.folders_with_pending(folder.account):
        return None  # rows to push are left: the next run must read the folder
    same = _delta_applied(store, folder, base) if base is not None else None
    if same is None:
        same = _matches_index(store, folder)
    if not same or _times_stamp(folder) != stamp:
        return None
    return stamp


#: files (in the folders a run checks after changing them) up to which the run checks
#: them by listing the folders (`_listing_print`, `_matches_index`) rather than through
#: a `DirWatch`: opening one loads ctypes (~8M instructions, 2-4 ms), about what listing
#: 700-1,000 files twice costs (~11k instructions a file). Either way the check is the
#: same: a change another program made meanwhile is seen.
_LIST_MAX = 1000


class _Changed:
    """The folders this run changed itself, with their delta baselines (checked by
    `_rearm_all` at the end), and the watch on their directories (`DirWatch`, opened
    for the first delta that needs one: one descriptor for the whole run)."""

    def __init__(self) -> None:
        self.folders: list[tuple[int, _Baseline | None]] = []  # (append is thread-safe)
        self.listed: dict[int, str] = {}  # folder id -> listing print to record with it
        self._watch: DirWatch | None = None
        self._opened = False
        self._unwatched = 0  # files of the folders checked by listing
        self._lock = threading.Lock()

    def append(self, item: tuple[int, _Baseline | None]) -> None:
        self.folders.append(item)

    def watch(self, files: int | None = None) -> DirWatch | None:
        """The run's watch, for a folder of about `files` files (None: any number);
        None while the folders checked by listing hold `_LIST_MAX` files at most (a
        small mailbox: cheaper than loading what a watch needs), or without inotify."""
        with self._lock:
            if not self._opened:
                if files is not None and self._unwatched + files <= _LIST_MAX:
                    self._unwatched += files
                    return None
                self._opened = True
                self._watch = DirWatch.open()
            return self._watch

    def close(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            # closing waits for the kernel to free the watches (10-30 ms of sleep here):
            # in a helper thread, while the stores close and the connections log out
            threading.Thread(target=watch.close, name="mailbag-unwatch", daemon=True).start()


def _rearm_all(store: Store, rearm: _Changed) -> None:
    """`_rearm` the folders this run changed; the stamps are recorded in one commit."""
    _rearm_folders(store, rearm.folders, rearm.listed)
    store.commit()


def _rearm_folders(
    store: Store,
    folders: Iterable[tuple[int, _Baseline | None]],
    listed: dict[int, str] | None = None,
) -> None:
    """`_rearm` `folders` (ids and baselines); their stamps (with the listing prints
    `listed`, by folder id) go into the open transaction (the caller commits)."""
    stamps: list[tuple[Folder, str]] = []
    for folder_id, base in folders:
        with contextlib.suppress(StoreError):
            folder = store.folder_by_id(folder_id)
            stamp = _rearm(store, folder, base)
            if stamp is not None:
                stamps.append((folder, stamp))
    for folder, stamp in stamps:
        store.update_folder(folder, sync_state=_state(stamp, (listed or {}).get(folder.id)))
    # a folder skipped by its stamp is not looked at (nor its tmp/): files this run took
    # out of the folders must be sure to go before the stamps say that nothing is left
    store.settle_removals()


#: changed UIDs above which reading the whole folder is about as cheap as the delta
_DELTA_MAX = 2000


def _qresync_ready(client: ImapClient, folder: Folder) -> bool:
    return (
        "QRESYNC" in client.enabled
        and folder.uidvalidity is not None
        and folder.highestmodseq is not None
    )


def _qresync_select(client: ImapClient, folder: Folder) -> SelectResult | None:
    """SELECT with QRESYNC where the server and the folder's state allow it."""
    if not _qresync_ready(client, folder):
        return None
    assert folder.uidvalidity is not None and folder.highestmodseq is not None
    return client.select(folder.name, qresync=(folder.uidvalidity, folder.highestmodseq))


def _delta(
    store: Store, folder: Folder, stamp: str, sel: SelectResult, watch: DirWatch | None = None
) -> tuple[_LocalSide, RemoteListing, _Baseline | None] | None:
    """Given a QRESYNC SELECT: when the local side is unchanged (the caller checked),
    what the server reports as changed (VANISHED, and FETCH with new flags or new
    messages) is all there is to sync: only those rows and files are read. None when
    that does not hold (a new UIDVALIDITY, counts that do not add up, a file not where
    the index says): the caller reads everything."""
    from mailbag.sync.plan import LocalMessage, RemoteListing

    if sel.uidvalidity != folder.uidvalidity or sel.nomodseq:
        return None
    changed = {
        r.uid: frozenset(r.flags) for r in sel.changed if r.uid is not None and r.flags is not None
    }
    if len(sel.vanished) + len(changed) > _DELTA_MAX:
        return None
    affected = sorted(set(sel.vanished) | set(changed))
    rows: dict[int, tuple[int, str, str, str | None, str | None, int | None]] = {}
    for chunk in _chunks(affected, 500):
        marks = ",".join("?" * len(chunk))
        for row_id, uid, key, flags_text, synced_text, message_id, size in store.conn.execute(
            "SELECT id, uid, key, flags, synced_flags, message_id, size FROM messages "  # noqa: S608
            f"WHERE folder_id = ? AND uid IN ({marks})",
            (folder.id, *chunk),
        ):
            rows[uid] = (row_id, key, flags_text, synced_text, message_id, size)
    (paired,) = store.conn.execute(
        "SELECT COUNT(*) FROM messages WHERE folder_id = ? AND uid IS NOT NULL", (folder.id,)
    ).fetchone()
    gone = sum(1 for uid in sel.vanished if uid in rows)
    arrived = sum(1 for uid in changed if uid not in rows)
    if paired - gone + arrived != sel.exists:
        return None  # a server that forgot expunges, or an index out of step
    # the baseline: from now on the watch reports every change (else the listing is it)
    wds = _watch_dirs(watch, folder) if watch is not None else None
    listed = None if wds is not None else _listing_print(folder)
    # the files are the index's picture only if nothing moved the directory times since
    # the caller's check; else there is no baseline
    listed_clean = (wds is not None or listed is not None) and _dir_stamp(folder) == stamp
    # the files are where the index says (the folder is unchanged since it was checked):
    # looked up by name, one by one, for the affected rows only
    cur, new = str(folder.path / "cur"), str(folder.path / "new")
    entries: dict[str, MaildirEntry] = {}
    touched_count = touched_total = 0
    for _row, key, flags_text, *_ in rows.values():
        info = _info_of(flags_text)
        name = key + ":2," + info
        if os.path.exists(f"{cur}/{name}"):
            entries[key] = MaildirEntry(key, "cur", name, folder.path)
        elif not info and os.path.exists(f"{new}/{key}"):
            entries[key] = MaildirEntry(key, "new", key, folder.path)
        else:
            return None  # named otherwise by another program: the caller reads all
        touched_count += 1
        touched_total += hash(_row_token(key, flags_text))
    messages: list[LocalMessage] = []
    for uid, (row_id, key, flags_text, synced_text, message_id, size) in rows.items():
        entry = entries.get(key)
        if entry is None:
            return None
        keywords = parse_flags(flags_text) - _MAILDIR_FLAGS
        flags = entry.flags | keywords if keywords else entry.flags
        base = None if synced_text is None else parse_flags(synced_text)
        messages.append(LocalMessage(row_id, key, uid, flags, True, message_id or "", size, base))
    view = RemoteListing.of(changed)
    baseline = None
    if listed_clean:
        touched = (touched_count, touched_total)
        baseline = _Baseline(listed, touched, set(affected), watch if wds else None, wds)
    return _LocalSide(messages, entries, 0, False), view, baseline


def _changes_files(result: Plan) -> bool:
    """Whether carrying out the plan may change the folder's files (or rows)."""
    return bool(result.actions or result.fetch or result.pairs)


def _full_baseline(
    store: Store,
    folder: Folder,
    stamp: str,
    local: _LocalSide,
    result: Plan,
    watch: DirWatch | None,
    known: dict[int, tuple[str, str]],
) -> _Baseline | None:
    """The baseline (`_Baseline`) of a full read of a folder whose index was taken as
    its local side (`_LocalSide.trusted`, the directory times `stamp` those recorded):
    its directories watched from now on, and the rows the plan changes (by UID) as they
    are. The end of the sync then checks only those rows and the names the watch saw
    come and go (`_delta_applied`) instead of listing every file and walking every row
    (`_matches_index`: ~60 ms of CPU in a 20,000 message folder). None, and that check
    is made, when the plan touches rows without a UID (not in such a folder), or there
    is no watch, or the directory times moved since the folder was found clean: another
    program changed a file the plan does not know of. `known`: key and flags of rows
    read already (`_with_entries`), by UID."""
    from mailbag.sync.plan import DeleteLocal, Download, ExpungeRemote, SetFlags

    if watch is None or not local.trusted or result.pairs or result.restored:
        return None
    uids = set(result.fetch)
    for a in result.actions:
        if not isinstance(a, Download | SetFlags | DeleteLocal | ExpungeRemote):
            return None
        uids.add(a.uid)
    wds = _watch_dirs(watch, folder)
    # from here the watch sees every change; before it, a change moved the times
    if wds is None or _dir_stamp(folder) != stamp:
        return None
    count, total = _rows_print(store, folder, uids.difference(known))
    for uid in uids.intersection(known):
        count += 1
        total += hash(_row_token(*known[uid]))
    return _Baseline(None, (count, total), uids, watch, wds)


def _watch_dirs(watch: DirWatch, folder: Folder) -> tuple[int, int] | None:
    cur = watch.watch(folder.path / "cur")
    new = watch.watch(folder.path / "new") if cur is not None else None
    return None if cur is None or new is None else (cur, new)


def _full_listing(
    client: ImapClient, sel: SelectResult, sent: FlagStream | None = None
) -> RemoteListing:
    """Every server message with its flags, from one `UID FETCH 1:* (FLAGS)` (`sent`
    already, or sent here), kept compact as the answers stream in."""
    from mailbag.sync.plan import RemoteListing

    listing = RemoteListing()
    if sel.exists == 0:
        if sent is not None:
            sent.discard()
        return listing
    with sent if sent is not None else client.uid_fetch_flags("1:*") as stream:
        for uids, flags in stream.batches():
            listing.extend(uids, flags)
    return listing.finish()


class _ReadAhead:
    """A folder's SELECT and its flag listing, sent together before the local side is
    read: the server selects and lists while the index is read here (a round trip
    less, and in a 20,000 message folder ~10-30 ms of the server's work overlapped).
    `on_selected` is called with the SELECT's result before the listing is read."""

    def __init__(self, client: ImapClient, folder: Folder) -> None:
        self.client, self.folder = client, folder
        condstore = "CONDSTORE" in client.enabled
        self.select = client.submit_select(folder.name, condstore=condstore)
        self.listing = client.uid_fetch_flags("1:*")
        self.on_selected: Callable[[SelectResult], None] | None = None
        self.print: str | None = None  # the listing's (`FlagStream.print`), once read

    def finish(self) -> tuple[SelectResult, RemoteListing | None]:
        """The SELECT's result and the listing; None after a UIDVALIDITY change (the
        listing is read and dropped: pairing again fetches what it needs)."""
        try:
            sel = self.client.finish_select(self.select, self.folder.name)
        except ProtocolError:
            self.listing.discard()  # (refused too: no mailbox is selected)
            raise
        if _repairing(self.folder, sel):
            self.listing.discard()
            return sel, None
        if self.on_selected is not None:
            self.on_selected(sel)
        listing = _full_listing(self.client, sel, self.listing)
        self.print = self.listing.print
        return sel, listing

    def drop(self) -> None:
        """Read the answers and leave them (the folder goes another way)."""
        with contextlib.suppress(ProtocolError):
            self.client.finish_select(self.select, self.folder.name)
        self.listing.discard()


class _Ahead:
    """A folder whose SELECT and listing were sent on `client` while the folder before
    it was still being read (`_Pipeline`); `read` None: claimed, nothing sent (the
    sending failed). `done`/`error`: read already, as `_ReadAhead.finish` gives it."""

    def __init__(self, info: MailboxInfo, client: ImapClient) -> None:
        self.info, self.client = info, client
        self.read: _ReadAhead | None = None
        self.done: tuple[SelectResult, RemoteListing | None] | None = None
        self.error: ProtocolError | None = None

    @property
    def pending(self) -> bool:
        """Its answers are still to be read from the connection."""
        return self.read is not None and self.done is None and self.error is None

    def read_now(self) -> None:
        """Read its answers now and keep them (`done`), so the connection is free for
        other commands: one folder's listing in memory (~6 bytes a message)."""
        if self.read is None or not self.pending:
            return
        self.read.on_selected = None
        try:
            self.done = self.read.finish()
        except ProtocolError as exc:
            self.error = exc

    def drop(self) -> None:
        """Leave its answers unused (read and dropped when still pending)."""
        if self.pending and self.read is not None:
            self.read.drop()
        self.read, self.done = None, None


class _Pipeline:
    """One worker's folders read whole, each SELECT and flag listing sent while the
    folder before it is still being read: the server selects and lists the next folder
    while this one's listing streams in and is planned, instead of waiting idle for
    the next command (a pass over the folder per SELECT for Dovecot), and no round
    trip between folders. Only after a folder's SELECT showed nothing that needs more
    commands on the connection (`_predict_local`: no new mail there, nothing to push
    from here): its plan is then made without the connection (`usable` false), and a
    plan that needs the server after all (rare: a message the index lacks) first has
    the next folder's answers read and kept (`_Ahead.read_now`) and its own folder
    selected again (`_select_again`). The next folder is taken from the board when sent
    (one worker: nobody else uses the connection meanwhile)."""

    def __init__(
        self, board: _Board, known: dict[str, Folder], exclude_by_name: dict[str, set[int]]
    ) -> None:
        self.board, self.known, self.exclude_by_name = board, known, exclude_by_name
        self.next: _Ahead | None = None  # sent ahead (or claimed), not yet begun
        self.given: _Ahead | None = None  # the folder being synced, if it was sent ahead

    def send_next(self, client: ImapClient) -> None:
        """Take the next folder from the board and send its SELECT and listing, when it
        is one that is read whole (synced before, no QRESYNC, no moves into it)."""
        if self.next is not None:
            return
        board = self.board
        with board.cond:
            if not board.folders:
                return
            info = board.folders[0]
            folder = self.known.get(info.name)
            if (
                folder is None
                or folder.uidvalidity is None
                or self.exclude_by_name.get(info.name)
                or _qresync_ready(client, folder)
            ):
                return
            board.folders.popleft()
            board.active += 1
        self.next = _Ahead(info, client)  # (claimed: synced next even if sending fails)
        self.next.read = _ReadAhead(client, folder)

    def claim(self) -> MailboxInfo | None:
        """The folder sent ahead, to be synced now (its answers move to `given`)."""
        self.given, self.next = self.next, None
        return None if self.given is None else self.given.info

    def take(self, name: str, client: ImapClient) -> _Ahead | None:
        """What was sent ahead for folder `name` on `client` (None: nothing, or on a
        connection lost since)."""
        given, self.given = self.given, None
        if given is None or given.info.name != name or given.read is None:
            return None
        if given.client is not client:
            return None  # (its connection failed and was closed: nothing to read)
        return given

    def drop_given(self) -> None:
        """After a folder's sync: answers sent ahead for it and not used are read and
        dropped, before the connection is used again."""
        given, self.given = self.given, None
        if given is not None and given.pending:
            try:
                given.drop()
            except MailbagError:
                given.client.close()  # (out of step or gone: not used again)

    def read_next(self, client: ImapClient) -> None:
        """Read the answers sent ahead on `client` for the next folder and keep them."""
        if self.next is not None and self.next.client is client:
            self.next.read_now()


def _listed_unchanged(folder: Folder, sel: SelectResult, listed: str | None) -> bool:
    """Whether the SELECT leaves it possible that the listing is the last one (`listed`)
    again: the same UIDVALIDITY, UIDNEXT and count as recorded."""
    return (
        listed is not None
        and sel.uidvalidity == folder.uidvalidity
        and sel.uidnext == folder.uidnext
        and sel.exists == folder.messages
    )


def _predict_local(
    folder: Folder, local: _LocalSide, dir_missing: bool, exclude_uids: set[int]
) -> Callable[[SelectResult], bool]:
    """Whether, by its SELECT, a folder's plan will need nothing from the server: no
    new message there (UIDNEXT as recorded), the same UIDVALIDITY, and nothing to push
    from here (the local side unchanged since the last sync). Flag changes and
    expunges there are taken over here."""

    def predict(sel: SelectResult) -> bool:
        return (
            not local.changed
            and not dir_missing
            and not exclude_uids
            and folder.uidnext is not None
            and sel.uidnext == folder.uidnext
            and sel.uidvalidity == folder.uidvalidity
        )

    return predict


def _select_again(
    client: ImapClient, folder: Folder, sel: SelectResult, pipe: _Pipeline | None
) -> None:
    """Make the connection usable for `folder` again (see `_Pipeline`): the answers
    sent ahead for the next folder are read and kept, then the folder is selected
    again, with the UIDVALIDITY its plan was made for."""
    if pipe is not None:
        pipe.read_next(client)
    again = client.select(folder.name, condstore="CONDSTORE" in client.enabled)
    if again.uidvalidity != sel.uidvalidity:
        raise SyncError(
            f"the UIDVALIDITY of {folder.name} changed during the sync: it is synced again "
            "at the next run",
            folder=folder.name,
        )


def _remote_state(
    client: ImapClient, store: Store, folder: Folder, sel: SelectResult | None
) -> tuple[SelectResult, RemoteListing]:
    """Every server message with its flags, cheaply when we can: from the QRESYNC
    SELECT `sel` (made on `client`, the folder still selected) and the flags last
    synced (the index's paired rows), else from one `UID FETCH 1:* (FLAGS)`. `sel`
    None: SELECT here."""
    from mailbag.sync.plan import RemoteListing

    if sel is None:
        sel = client.select(folder.name, condstore="CONDSTORE" in client.enabled)
    elif sel.uidvalidity == folder.uidvalidity and not sel.nomodseq:
        changed = {r.uid: r.flags for r in sel.changed if r.uid is not None and r.flags is not None}
        skip = set(sel.vanished).union(changed)
        # the changed messages go in among the rows, in UID order: the listing comes
        # sorted, so `finish` has nothing to sort (after them, a 200,000 message folder
        # was sorted whole: ~80 bytes a message for a moment)
        later = sorted(changed.items(), reverse=True)
        above = later[-1][0] if later else _NO_UID
        view = RemoteListing()
        for uid, synced_txt in store.conn.execute(
            "SELECT uid, synced_flags FROM messages WHERE folder_id = ? AND uid IS NOT NULL "
            "ORDER BY uid",
            (folder.id,),
        ):
            while uid >= above:
                view.add(*later.pop())
                above = later[-1][0] if later else _NO_UID
            if uid not in skip:
                view.add(uid, parse_flags(synced_txt))
        while later:
            view.add(*later.pop())
        view.finish()
        if len(view) == sel.exists:
            return sel, view
        # counts disagree (a server that forgot expunges): ask for everything
    return sel, _full_listing(client, sel)


#: above every UID (they are 32-bit)
_NO_UID = 1 << 32


class _NoClient(Exception):
    """Pairing needs the server's Message-IDs and there is no connection to ask."""


def _identities(client: ImapClient | None) -> Callable[[Sequence[int]], Identities]:
    """The planner's source of Message-ID and size of unpaired server messages."""

    def fetch(uids: Sequence[int]) -> Identities:
        from mailbag.store.envelope import message_id_of

        if client is None:
            raise _NoClient
        with client.uid_fetch_identities(list(uids)) as stream:
            for uid, _flags, size, head in stream:
                yield uid, message_id_of(head), size

    return fetch


def _repairing(folder: Folder, sel: SelectResult) -> bool:
    """The server's UIDVALIDITY changed since the last sync: every UID here is void."""
    return folder.uidvalidity is not None and sel.uidvalidity not in (None, folder.uidvalidity)


def _journals_on_disk(store: Store) -> None:
    """Pairing a folder again writes every row of it in statements as big as the folder
    (`Store.unpair_all`). With `temp_store` MEMORY (set for the savepoints of folders
    applied together, see `_select_ahead`) SQLite keeps the original of every page such
    a statement changes in memory until it ends (its statement journal), and the
    temporary table of the pairings kept too: 100,000 messages took 15 MB more at the
    peak. With the default those go to a temporary file past a small size. For the rest
    of the worker's run (a UIDVALIDITY change is rare): it can only change outside a
    transaction."""
    if not store.conn.in_transaction:
        store.conn.execute("PRAGMA temp_store = DEFAULT")


#: the index's page cache (KiB) while a folder is paired again after a UIDVALIDITY change:
#: SQLite's default, and the rows it changes go to the WAL (uncommitted) past it, not
#: kept in memory up to the sync's 8 MiB (`_SPILL_KIB`). Planning reads every row of the
#: folder, and applying the plan writes every one of them, so a bigger cache would only
#: fill up with them:
#: the peak RSS grew with the folder until the cache was full (100,000 messages without
#: a Message-ID: 64 MB, of which 16 MB of index pages).
_REPAIR_CACHE_KIB = 2000


def _plan_repair(
    client: ImapClient,
    store: Store,
    folder: Folder,
    local: _LocalSide,
    sel: SelectResult,
    exclude_uids: set[int],
) -> tuple[int, Plan]:
    """The plan for a folder whose UIDVALIDITY changed (`repair.plan_repair`): the
    server's messages with their flags and identities come from one `UID FETCH 1:*`,
    streamed into the planner while it reads the index; those without a Message-ID
    are compared by digests of their files here and their headers there."""
    from mailbag.sync.plan import SyncedState
    from mailbag.sync.repair import RemoteIdentity, plan_repair

    assert sel.uidvalidity is not None

    def server(want: bool) -> Iterator[RemoteIdentity]:
        from mailbag.store.envelope import message_id_of

        if sel.exists == 0:
            return
        sets: dict[tuple[str, ...], frozenset[str]] = {}  # the flag tuples come interned
        if not want:
            with client.uid_fetch_flags("1:*") as flags:
                for uid, names in flags:
                    fs = sets.get(names)
                    if fs is None:
                        fs = sets[names] = frozenset(names)
                    yield uid, fs, None, None
            return
        with client.uid_fetch_identities("1:*") as stream:
            for uid, names, size, head in stream:
                fs = sets.get(names)
                if fs is None:
                    fs = sets[names] = frozenset(names)
                yield uid, fs, message_id_of(head), size

    state = SyncedState(folder.uidvalidity)
    messages = local.messages
    digests = _Digests(client, folder, local)
    with store.page_cache(_REPAIR_CACHE_KIB):
        if isinstance(messages, _IndexRows) and local.trusted and not local.empty and sel.exists:
            return sel.uidvalidity, _plan_repair_kept(
                client, folder, messages, state, sel.uidvalidity, exclude_uids, digests
            )
        if isinstance(messages, _IndexRows):
            messages = messages.by_uid()
        return sel.uidvalidity, plan_repair(
            messages, state, sel.uidvalidity, server, exclude_uids=exclude_uids, digests=digests
        )


def _plan_repair_kept(
    client: ImapClient,
    folder: Folder,
    rows: _IndexRows,
    state: SyncedState,
    uidvalidity: int,
    exclude_uids: set[int],
    digests: _Digests,
) -> Plan:
    """`_plan_repair` where the index is the folder's local side: the rows the server
    kept under their UIDs are found a run of answers at a time (`keep`), and only the
    rest goes through the planner."""
    from mailbag.sync.digests import Ahead
    from mailbag.sync.keep import Leftovers, StoreSide, find_kept
    from mailbag.sync.repair import RemoteIdentity, plan_repair

    rows.wait_early()
    left = Leftovers()
    # the header digests of the server's messages without a Message-ID, asked for as
    # the listing gives them: the server reads those headers right after the listing,
    # while it is compared and the files here are hashed (`digests.Ahead`)
    ahead = digests.ahead = Ahead(client)

    def leftover(item: RemoteIdentity) -> None:
        left.add(item)
        message_id = item[2]
        if message_id is not None and "@" not in message_id:  # (`repair._named`)
            ahead.add(item[0])

    try:
        with client.uid_fetch_identity_runs("1:*", others=ahead.found) as stream:
            kept = find_kept(
                stream.batches(), StoreSide(rows.store, folder), exclude_uids, leftover
            )
        ahead.send()
        plan = plan_repair(
            rows.by_uid_except(kept),
            state,
            uidvalidity,
            lambda want: iter(left),
            exclude_uids=exclude_uids,
            digests=digests,
            kept=kept,
        )
        digests.settle()  # (answers not asked for by the planner: read, the connection free)
        digests.early = {}
        return plan
    finally:
        left.close()


class _Digests:
    """`repair.Digests` of a folder: of its files here (`_paths`) and of the server's
    copies on `client` (the folder selected); `sync.digests` loaded on first use."""

    def __init__(self, client: ImapClient, folder: Folder, local: _LocalSide) -> None:
        self.client, self.folder, self.local = client, folder, local
        self.root = str(folder.path)
        # header digests asked for ahead (`_plan_repair_kept`), read at the first use of
        # the connection (their answers come before any other's)
        self.ahead: Ahead | None = None
        self.early: dict[int, bytes] = {}

    def settle(self) -> None:
        """Read the answers to what was asked for ahead (the connection is then free)."""
        if self.ahead is not None:
            ahead, self.ahead = self.ahead, None
            self.early = ahead.take()

    def here(
        self, files: Sequence[tuple[str, frozenset[str]]], whole: bool
    ) -> Iterator[bytes | None]:
        from mailbag.sync.digests import digest_file

        for key, flags in files:
            yield self._each(key, flags, lambda path: digest_file(path, whole))

    def there(self, uids: Iterable[int], whole: bool) -> Iterator[tuple[int, bytes]]:
        from mailbag.sync.digests import fetch_digests

        self.settle()
        if whole or not self.early:
            return fetch_digests(self.client, uids, whole)
        return self._there_early(uids, self.early)

    def _there_early(
        self, uids: Iterable[int], early: dict[int, bytes]
    ) -> Iterator[tuple[int, bytes]]:
        """`there`'s header digests, those asked for ahead from `early` (taken out), the
        others from the server."""
        from mailbag.sync.digests import fetch_digests

        found: list[tuple[int, bytes]] = []

        def others() -> Iterator[int]:
            for uid in uids:
                digest = early.pop(uid, None)
                if digest is None:
                    yield uid
                else:
                    found.append((uid, digest))

        for item in fetch_digests(self.client, others(), False):
            if found:
                yield from found
                found.clear()
            yield item
        yield from found

    def measure(
        self, files: Sequence[tuple[str, frozenset[str]]]
    ) -> Iterator[tuple[int, bytes] | None]:
        from mailbag.sync.digests import measure_file

        for key, flags in files:
            yield self._each(key, flags, measure_file)

    def _each(self, key: str, flags: frozenset[str], read: Callable[[str], _R | None]) -> _R | None:
        """`read` of the file of a local message, None when it is gone: where the scan
        found it, else where its flags put it (as the store does: `cur/KEY:2,INFO`, or
        `new/KEY` without Maildir flags), else where a rename by another program may
        have put it (`Maildir.find`: a scan of cur/, rare). Opened, not looked up first
        (a `stat` and two `Path`s less a file: ~40% of hashing a small message here)."""
        entry = self.local.entries.get(key)
        if entry is not None:
            return read(entry.file)
        info = flags_to_info(flags)
        got = read(f"{self.root}/cur/{key}:2,{info}" if info else f"{self.root}/new/{key}")
        if got is None and not info:
            got = read(f"{self.root}/cur/{key}:2,")
        if got is None:
            entry = self.folder.maildir.find(key)
            got = None if entry is None else read(entry.file)
        return got


class _Held:
    """A worker's folders applied here alone (their plans needed nothing from the
    server: the server's flag changes and expunges, taken over) whose changes wait,
    uncommitted, in its store's open transaction for the next folder's to join them:
    one flush of the index, and of each changed directory, for several folders instead
    of one each (without CONDSTORE every synced folder is read whole, so a small change
    in each of six folders cost six flushes). Each joins in a savepoint
    (`Store.savepoint`): a folder that fails undoes its own part alone, and what the
    folders before it completed is kept (`settle`). What waits is committed before a
    folder's server work, before the index would stay locked waiting for a slow server
    (`_HOLD_WAIT`), and when the worker runs out of folders. For one worker only: the
    open transaction holds the index's write lock, which others would wait for."""

    def __init__(self) -> None:
        self.folders = 0  # folders whose changes wait in the open transaction
        #: copies of their listings being written (`keep_copy`)
        self._copies: list[threading.Thread] = []

    def keep_copy(
        self, copy: _ListingCopy, listed: str, uidvalidity: int, listing: RemoteListing
    ) -> None:
        """`copy.save` of a waiting folder's listing in a helper thread, done before the
        commit that records its print (`commit`, `settle`): a big folder's copy (1.2 MB
        at 200,000 messages) is written while the next folders are read and the index
        flushed, not on the sync's path (10-50 ms there when other work was flushing)."""
        thread = threading.Thread(
            target=copy.save, args=(listed, uidvalidity, listing), name="mailbag-copy", daemon=True
        )
        thread.start()
        self._copies.append(thread)

    def _copied(self) -> None:
        copies, self._copies = self._copies, []
        for thread in copies:
            thread.join()

    def commit(self, store: Store) -> None:
        """Commit what waits (nothing: no flush)."""
        self._copied()
        if store.conn.in_transaction:
            store.commit()
        self.folders = 0

    def settle(self, store: Store) -> None:
        """After a folder failed: commit what the folders before it completed, roll
        back anything else. (What the failed folder wrote into their transaction is
        its savepoint's, undone already, and complete records of the folder itself:
        its row, role, stamp.)"""
        self._copied()
        if self.folders and store.conn.in_transaction:
            try:
                store.commit()
            except (MailbagError, sqlite3.Error, OSError):
                store.rollback()  # (as a crash: the next run finds the files as they are)
        elif store.conn.in_transaction:
            store.rollback()
        self.folders = 0


class _Start(NamedTuple):
    """A folder about to be synced, as found here (see `_start_folder`)."""

    folder: Folder
    report: FolderReport
    dir_missing: bool  # the folder's directory is gone though it has synced rows
    stamp: str | None  # the directory times now (None: too fresh to trust)
    clean: bool  # nothing changed here since the last sync: the index is the local side


def _start_folder(
    store: Store,
    account: Account,
    info: MailboxInfo,
    exclude_uids: set[int],
    held: _Held | None = None,
    report: FolderReport | None = None,
) -> _Start:
    """Make sure the folder exists here (row and Maildir), finish deliveries a crash
    left incomplete, and find whether anything changed here since the last sync. What
    it writes (a new row, a new role) is committed at once, unless folders before it
    wait uncommitted (`held`): then it joins them. `report`: the folder's, when tried
    again (with what the tries before committed), else a new one."""
    name = info.name
    if report is None:
        report = FolderReport(name)
    existing = store.find_folder(account.name, name)
    dir_missing = (
        existing is not None
        and existing.uidvalidity is not None
        and not existing.path.exists()
        and any(True for _ in store.folder_messages(existing))
    )
    role = folder_role(info)
    folder = store.folder(account.name, name, delimiter=info.delimiter, role=role)
    if folder.delimiter != info.delimiter or folder.role != role:
        store.update_folder(folder, delimiter=info.delimiter, role=role)
    if held is None or not held.folders:
        store.commit()
    if store.recover(folder):
        report.notes.append("finished deliveries an earlier run left incomplete")
        report.committed()  # (done in the files: no rollback undoes it)
    stamp = _dir_stamp(folder)
    # The local side is what the index says when the directory times are those of the
    # last complete scan and no row waits to be pushed: then only what QRESYNC reports
    # as changed on the server is read (`_delta`), not the whole folder.
    clean = (
        stamp is not None
        and stamp == _stamp_of(folder)
        and not exclude_uids
        and not dir_missing
        and folder.id not in store.folders_with_pending(account.name)
    )
    return _Start(folder, report, dir_missing, stamp, clean)


def _finish_folder(
    store: Store,
    start: _Start,
    base: _Baseline | None,
    rearm: _Changed | list[tuple[int, _Baseline | None]] | None,
    *,
    commit: bool = True,
    listed: str | None = None,
) -> FolderReport:
    """Commit the folder's last changes with its directory stamp (when still valid) and
    the print `listed` of the listing the index now matches (see `_state`); not
    `commit`: the caller commits them."""
    report = start.report
    # only a completed run has put into the index all the scan saw
    folder = store.folder_by_id(start.folder.id)
    ok = report.error is None
    stamp = start.stamp if ok else None
    recorded = _record_stamp(store, folder, stamp, commit=commit, listed=listed if ok else None)
    if not recorded and ok and rearm is not None:
        rearm.append((folder.id, base))  # this run changed the folder: checked at the end
        if listed is not None and isinstance(rearm, _Changed):
            rearm.listed[folder.id] = listed
    return report


def _sync_folder(
    pool: _Connections,
    store: Store,
    account: Account,
    info: MailboxInfo,
    status: MailboxStatus | None,
    options: SyncOptions,
    on_progress: ProgressCallback,
    exclude_uids: set[int],
    board: _Board | None = None,
    rearm: _Changed | None = None,
    start: _Start | None = None,
    held: _Held | None = None,
    pipe: _Pipeline | None = None,
    report: FolderReport | None = None,
) -> FolderReport:
    """Sync one folder. `held`: folders before it whose changes wait uncommitted in the
    store's transaction (see `_Held`): this folder's join them when its plan needs
    nothing from the server, else they are committed first. `pipe`: see `_Pipeline`
    (with `held` only). `report`: see `_start_folder` (without `start`)."""
    if start is None:
        start = _start_folder(store, account, info, exclude_uids, held, report)
    folder, report, dir_missing = start.folder, start.report, start.dir_missing
    local = None if start.clean else _read_local(store, folder)
    if (
        local is not None
        and not local.changed
        and not exclude_uids
        and not dir_missing
        and _unchanged(folder, status)
    ):
        report.skipped = True
        _record_stamp(
            store,
            folder,
            start.stamp,
            commit=held is None or not held.folders,
            listed=_listed_of(folder),  # (nothing changed)
        )
        return report
    # a connection only for folders with work to do (the one its answers were sent
    # ahead on, if they were)
    sent = pipe.given.client if pipe is not None and pipe.given is not None else None
    with pool.client(prefer=sent) as client:
        base, listed = _sync_folder_remote(
            client,
            store,
            account,
            folder,
            local,
            dir_missing,
            options,
            on_progress,
            report,
            exclude_uids,
            board,
            start.stamp if start.clean else None,
            # (opened when a change is to be watched: ctypes takes a few ms to load)
            rearm.watch if rearm is not None and start.clean else None,
            held,
            pipe,
        )
    # (held back with the others when this folder's changes joined them)
    return _finish_folder(
        store, start, base, rearm, commit=held is None or not held.folders, listed=listed
    )


def _plan_folder(
    client: ImapClient | None,
    account: Account,
    options: SyncOptions,
    folder: Folder,
    local: _LocalSide,
    sel: SelectResult,
    listing: RemoteListing,
    dir_missing: bool,
    exclude_uids: set[int],
) -> tuple[int, Plan] | None:
    """The server's UIDVALIDITY and the plan for the folder. Pairing may need the
    Message-IDs of unpaired server messages, fetched on `client` (the folder selected
    there); None when some are needed and there is no `client`."""
    from mailbag.sync.plan import SyncedState, plan_stream

    if sel.uidvalidity is None:
        raise ProtocolError(
            f"the server gave no UIDVALIDITY for {folder.name}", cause="no-uidvalidity"
        )
    state = SyncedState(folder.uidvalidity, local_dir_missing=dir_missing)
    rows = local.messages
    # most rows given as (UID, flags) only (see `plan_stream`), while UIDVALIDITY holds
    split = rows if isinstance(rows, _IndexRows) and sel.uidvalidity == folder.uidvalidity else None
    try:
        result = plan_stream(
            rows if split is None else split.unsettled(),
            state,
            sel.uidvalidity,
            listing,
            identities=_identities(client),
            threshold=account.sync.mass_delete_threshold,
            force=options.force,
            exclude_uids=exclude_uids,
            settled=() if split is None else split.settled(),
            settled_rows=None if split is None else split.rows_of,
            digests=None if client is None else _Digests(client, folder, local),
        )
    except _NoClient:
        return None
    return sel.uidvalidity, result


def _apply_and_record(
    store: Store,
    folder: Folder,
    result: Plan,
    uidvalidity: int,
    ops: RemoteOps,
    local: _LocalSide,
    sel: SelectResult,
    report: FolderReport,
    on_progress: ProgressCallback,
    options: SyncOptions,
    download: DownloadFn | None = None,
) -> None:
    """Carry out the plan and put the folder's new sync state into the transaction of
    its last local changes (the caller commits: one flush for both)."""
    from mailbag.sync.apply import apply_plan
    from mailbag.sync.plan import Download, Upload

    todo = len(result.fetch) + sum(1 for a in result.actions if isinstance(a, Download | Upload))
    on_progress(Progress(folder.account, folder.name, "plan", todo))
    # (pairing again writes every row of the folder: see `_REPAIR_CACHE_KIB`)
    with (
        store.page_cache(_REPAIR_CACHE_KIB, spill=True)
        if result.uidvalidity_changed
        else contextlib.nullcontext()
    ):
        apply_plan(
            result,
            store=store,
            folder=folder,
            remote=ops,
            entries=local.entries,
            report=report,
            on_progress=on_progress,
            uidvalidity=uidvalidity,
            chunk_messages=options.chunk_messages,
            chunk_bytes=options.chunk_bytes,
            download=download,
        )
    _record_selected(store, folder, sel)


def _keep_copy(
    store: Store,
    folder: Folder,
    matched: str | None,
    uidvalidity: int,
    listing: RemoteListing | None,
    held: _Held | None = None,
) -> None:
    """Keep a copy of the listing with print `matched` that the index is to match (see
    `_ListingCopy`), before the commit that records the print: here, or, for a big
    folder whose changes wait in `held`'s transaction, while the sync goes on
    (`_Held.keep_copy`)."""
    if matched is not None and listing is not None and matched != _listed_of(folder):
        copy = _ListingCopy(store, folder.id)
        if held is not None and held.folders and len(listing) >= _COPY_AHEAD_MIN:
            held.keep_copy(copy, matched, uidvalidity, listing)
        else:
            copy.save(matched, uidvalidity, listing)


def _recorded(folder: Folder, uidvalidity: int, sel: SelectResult) -> bool:
    """Whether the folder's server state as of `sel` is what the index holds already
    (what `_record_selected` would write, but for the time)."""
    return (
        folder.uidvalidity == uidvalidity
        and folder.uidnext == sel.uidnext
        and folder.messages == sel.exists
        and folder.highestmodseq == (None if sel.nomodseq else sel.highestmodseq)
    )


def _record_selected(store: Store, folder: Folder, sel: SelectResult) -> None:
    """The folder's server state as of `sel`, once everything it showed is done here."""
    store.update_folder(
        folder,
        uidnext=sel.uidnext,
        highestmodseq=None if sel.nomodseq else sel.highestmodseq,
        messages=sel.exists,
        last_sync=time.time(),
    )


def _sync_folder_remote(
    client: ImapClient,
    store: Store,
    account: Account,
    folder: Folder,
    local: _LocalSide | None,
    dir_missing: bool,
    options: SyncOptions,
    on_progress: ProgressCallback,
    report: FolderReport,
    exclude_uids: set[int],
    board: _Board | None = None,
    stamp: str | None = None,
    watch: Callable[[int], DirWatch | None] | None = None,
    held: _Held | None = None,
    pipe: _Pipeline | None = None,
) -> tuple[_Baseline | None, str | None]:
    """Sync one folder on `client`; `local` None: the local side is unchanged since the
    last sync (the caller checked; `stamp` the directory times then), so a QRESYNC
    delta may be all that is read, or, for a folder read whole, a listing like the last
    one says all (`_state`). Returns the baseline for `_rearm` (of a delta, or of a full
    read of such a folder: `_full_baseline`), and the print of the listing the index now
    matches, to record (None: none does); `watch` gives the `DirWatch`.
    `held`: see `_sync_folder`; a plan that needs nothing from the server is applied
    into their transaction (and `held.folders` counts it), the others after a commit.
    `pipe`: the worker's `_Pipeline` (this folder's SELECT and listing may have been
    sent already; the next folder's may be sent while this one's listing is read)."""
    fresh = (
        local is not None
        and folder.uidvalidity is None
        and local.empty
        and not dir_missing
        and not exclude_uids
    )
    given = pipe.take(folder.name, client) if pipe is not None else None
    if given is not None and (fresh or _qresync_ready(client, folder)):
        given.drop()  # (not read whole after all)
        given = None
    if fresh:
        if held is not None:
            held.commit(store)
        _download_fresh_folder(client, store, account, folder, options, on_progress, report, board)
        return None, None
    if held is not None and held.folders and _qresync_ready(client, folder):
        held.commit(store)  # (not kept open over a round trip)
    sel = _qresync_select(client, folder)
    base: _Baseline | None = None
    planned: tuple[int, Plan] | None = None
    delta = (
        _delta(store, folder, stamp, sel, watch(sel.exists) if watch is not None else None)
        if sel and local is None and stamp
        else None
    )
    if sel is not None and delta is not None:
        local, listing, base = delta
        planned = _plan_folder(
            client, account, options, folder, local, sel, listing, dir_missing, exclude_uids
        )
        if planned is not None and planned[1].stop is not None:
            # the mass-deletion guard speaks of the whole folder: plan it from a full read
            planned, base, local = None, None, None
    usable = True  # the connection has the folder selected, nothing else in flight
    printed: str | None = None  # the print of the listing read (`FlagStream.print`)
    full: RemoteListing | None = None  # that listing
    if planned is None:
        ahead: _ReadAhead | None = None
        if given is not None and given.read is not None and given.pending:
            ahead = given.read  # (sent while the folder before was read)
            ahead.folder = folder
        elif sel is None and given is None:
            ahead = _ReadAhead(client, folder)
        # clean here, and the index matched the last listing: a listing like it is a
        # sync with nothing to do (`_state`); the rows are read only if it is not
        listed_before = _listed_of(folder) if local is None and stamp is not None else None
        local = local if local is not None else _read_local(store, folder)
        rows = local.messages if isinstance(local.messages, _IndexRows) else None
        if rows is not None and local.trusted:
            rows.listed = listed_before  # (the rows as they were then: see _ListingCopy)
        if ahead is not None:
            predict = _predict_local(folder, local, dir_missing, exclude_uids)

            def on_selected(sel: SelectResult) -> None:
                if pipe is not None and predict(sel):
                    pipe.send_next(client)
                if rows is not None and not _listed_unchanged(folder, sel, listed_before):
                    rows.read_early()  # while the listing is read

            ahead.on_selected = on_selected
            if rows is not None and listed_before is None:
                rows.read_early()  # while the server selects and lists
            if held is not None and held.folders and not client.stream.wait_readable(_HOLD_WAIT):
                held.commit(store)  # (the index is not kept locked for a slow server)
            try:
                sel, full = ahead.finish()
            finally:
                if rows is not None:
                    rows.wait_early()  # (the store is this thread's again)
            printed = ahead.print
        elif given is not None:  # read already, while the folder before needed the server
            if given.error is not None:
                raise given.error
            assert given.done is not None and given.read is not None
            sel, full = given.done
            printed = given.read.print
        elif sel is not None and not _repairing(folder, sel):
            sel, full = _remote_state(client, store, folder, sel)
        assert sel is not None
        if (
            full is not None
            and printed is not None
            and printed == listed_before
            and sel.uidvalidity is not None
            and _recorded(folder, sel.uidvalidity, sel)
        ):
            return None, printed  # the same listing as last time: nothing to do
        # (a SELECT sent ahead for the next folder, or this folder's answers read while
        # the folder before was selected: plan without the connection first)
        usable = client.selected == folder.name
        if full is None:  # a new UIDVALIDITY: every message is paired again
            if held is not None:
                held.commit(store)  # (for `_journals_on_disk`)
            _journals_on_disk(store)
            if not usable:
                _select_again(client, folder, sel, pipe)
                usable = True
            planned = _plan_repair(client, store, folder, local, sel, exclude_uids)
        else:
            args = (account, options, folder, local, sel, full, dir_missing, exclude_uids)
            planned = _plan_folder(client if usable else None, *args)
            if planned is None or (planned[1].stop is None and not _local_only(planned[1])):
                if not usable:  # the server is needed after all
                    _select_again(client, folder, sel, pipe)
                    usable = True
                if planned is None:  # (pairing asks the server)
                    planned = _plan_folder(client, *args)
    assert planned is not None and local is not None and sel is not None
    uidvalidity, result = planned
    report.notes.extend(result.notes)
    if result.stop is not None:
        report.error = (
            f"{result.stop.reason}; nothing was changed in this folder. If that is what you "
            "want, run `mailbag sync --force`"
        )
        return None, None
    # (the index will hold exactly what was listed: only when nothing was left out)
    matched = None if exclude_uids or dir_missing else printed
    if not _changes_files(result) and _recorded(folder, uidvalidity, sel):
        # nothing to do and nothing new to record: no write, no flush of the index (as
        # for a folder STATUS shows unchanged, `last_sync` stays that of the last change)
        # but for the listing's print, once
        _keep_copy(store, folder, matched, uidvalidity, full)
        return base, matched
    looked_up = _with_entries(store, folder, local, result)
    if base is None and stamp is not None and watch is not None and _changes_files(result):
        base = _full_baseline(store, folder, stamp, local, result, watch(sel.exists), looked_up)
    if _local_only(result) and (held is not None or not usable):
        # nothing for the server: applied into the transaction the folders before left
        # open, in a savepoint (a failure undoes this folder's part alone); a folder
        # with many changes goes first in a transaction of its own (see _SAVEPOINT_MAX)
        if held is not None and held.folders and len(result.actions) > _SAVEPOINT_MAX:
            held.commit(store)
        with store.savepoint():
            _apply_and_record(
                store,
                folder,
                result,
                uidvalidity,
                _NoServer(),
                local,
                sel,
                report,
                on_progress,
                options,
            )
        if held is not None:
            held.folders += 1
            # (its directories made durable while the next folders are read: the
            # shared commit then flushes only the last ones')
            store.flush_dirs_ahead()
        _keep_copy(store, folder, matched, uidvalidity, full, held)
        return base, matched
    assert usable  # (a plan that needs the server was made with the folder selected)
    if held is not None:
        held.commit(store)  # (this folder's own commits, with its server work, follow)
    if _listed_of(folder) is not None:
        # the server changes now: the last listing's print no longer says anything (in
        # the transaction of this folder's first changes)
        store.update_folder(folder, sync_state=_stamp_of(folder))
    _apply_and_record(
        store,
        folder,
        result,
        uidvalidity,
        _RemoteFolder(client, folder.name, uidvalidity),
        local,
        sel,
        report,
        on_progress,
        options,
        _shared_download(board, client, store, folder, uidvalidity, report, on_progress, options),
    )
    return base, None


# --- folders changed only on the server, selected together ---------------------------


class _NoServer:
    """`apply.RemoteOps` for a plan that needs no server command (checked before)."""

    uidplus = False

    def _refuse(self) -> NoReturn:
        raise SyncError("internal error: a plan made for local work only asked for the server")

    def store_flags(self, uids: Sequence[int], add: bool, flags: frozenset[str]) -> None:
        self._refuse()

    def expunge(self, uids: Sequence[int]) -> None:
        self._refuse()

    def append(self, path: Path, flags: frozenset[str], internal_date: float | None) -> int | None:
        self._refuse()

    def fetch_bodies(self, uids: Sequence[int], sink: DownloadSink) -> None:
        self._refuse()


def _local_only(result: Plan) -> bool:
    """Whether the plan changes only this side: the server's changes, taken over."""
    from mailbag.sync.plan import DeleteLocal, Forget, SetFlags

    return (
        result.stop is None
        and not result.fetch
        and not result.pairs
        and all(
            isinstance(a, Forget | DeleteLocal)
            or (isinstance(a, SetFlags) and not a.add and not a.remove)
            for a in result.actions
        )
    )


def _select_ahead(
    pool: _Connections,
    store: Store,
    account: Account,
    infos: Sequence[MailboxInfo],
    known: dict[str, Folder],
    statuses: dict[str, MailboxStatus],
    exclude_by_name: dict[str, set[int]],
    options: SyncOptions,
    on_progress: ProgressCallback,
    results: dict[str, FolderReport],
    rearm: _Changed,
) -> tuple[list[MailboxInfo], dict[str, _Start]]:
    """Sync the folders that changed only on the server, without new mail there (their
    local side unchanged, their UIDNEXT too): what QRESYNC reports is all they need,
    and it is applied here alone. Their SELECTs go out together on one connection, so
    they cost one round trip, and the server prepares each answer while the previous
    folder is applied here. A folder whose plan turns out to need the server (or a
    full read) is left to the usual path, which selects it again. Returns the folders
    left, and what `_start_folder` found for those it already looked at."""
    candidates: list[MailboxInfo] = []
    rest: list[MailboxInfo] = []
    for info in infos:
        folder, status = known.get(info.name), statuses.get(info.name)
        if (
            folder is not None
            and status is not None
            and not exclude_by_name.get(info.name)
            and folder.highestmodseq is not None
            and folder.uidvalidity == status.uidvalidity
            and folder.uidnext == status.uidnext
        ):
            candidates.append(info)
        else:
            rest.append(info)
    starts: dict[str, _Start] = {}
    if len(candidates) < 2:
        return list(infos), starts  # nothing to gain over the usual path
    ready: list[_Start] = []
    for info in candidates:
        try:
            start = _start_folder(store, account, info, set())
        except MailbagError:
            if store.conn.in_transaction:
                store.rollback()
            rest.append(info)  # the usual path tries again, and reports
            continue
        starts[info.name] = start
        if start.clean:
            ready.append(start)
        else:
            rest.append(info)
    left = {s.folder.name for s in ready}
    # the folders applied and not committed yet whose files this run changed: their
    # re-armed stamps (`_rearm`) go into the commit of their changes (one flush)
    changed: list[tuple[int, _Baseline | None]] = []
    try:
        with pool.client() as client:
            if not all(_qresync_ready(client, s.folder) for s in ready):
                return list(infos), starts
            sent = []
            for s in ready:
                f = s.folder
                assert f.uidvalidity is not None and f.highestmodseq is not None
                sent.append(
                    (s, client.submit_select(f.name, qresync=(f.uidvalidity, f.highestmodseq)))
                )
            # the watch (ctypes, a few ms to load) is made while the server answers, when
            # these folders are too big to be checked by listing them (`_Changed.watch`)
            if sum((statuses[s.folder.name].messages or 0) for s, _ in sent) > _LIST_MAX:
                threading.Thread(target=rearm.watch, name="mailbag-watch", daemon=True).start()
            if sent:
                # and so are the planner and the executor loaded (~3 ms), which every
                # folder here needs, instead of after the first answer has come
                import mailbag.sync.apply
                import mailbag.sync.plan  # noqa: F401
            # each folder is applied as its answer comes, while the server prepares the
            # next one; the index is not kept locked while waiting for a slow server.
            # Each is applied in a savepoint of the shared transaction; SQLite keeps the
            # originals of the pages it changes in memory here (no temporary file), so a
            # folder with many changes goes first in a transaction of its own (no
            # savepoint): that memory stays small.
            store.conn.execute("PRAGMA temp_store = MEMORY")
            for s, pending in sent:
                if store.conn.in_transaction and not client.stream.wait_readable(_HOLD_WAIT):
                    _record_applied(store, changed)
                try:
                    sel = client.finish_select(pending, s.folder.name)
                except ProtocolError:
                    continue  # (the answer is read: the next ones follow in order)
                if (
                    store.conn.in_transaction
                    and len(sel.vanished) + len(sel.changed) > _SAVEPOINT_MAX
                ):
                    _record_applied(store, changed)
                base = _apply_selected_ahead(store, account, s, sel, options, on_progress, rearm)
                if base is None:
                    continue
                results[s.folder.name] = _finish_folder(store, s, base[0], changed, commit=False)
                on_progress(Progress(account.name, s.folder.name, "folder-done"))
                left.discard(s.folder.name)
                starts.pop(s.folder.name)
    except NetworkError:
        pass  # (the folders not applied yet go the usual way)
    _record_applied(store, changed)
    store.conn.execute("PRAGMA temp_store = DEFAULT")
    # (what is left goes the usual way, with its retries)
    rest_names = left | {i.name for i in rest}
    return [i for i in infos if i.name in rest_names], starts


#: changes (vanished and changed UIDs) above which a folder selected ahead is applied in a
#: transaction of its own, not in a savepoint of the shared one (whose page copies are
#: kept in memory: at most ~7 pages of 4 KiB per change)
_SAVEPOINT_MAX = 300

#: seconds the index stays locked (an open transaction) waiting for the server's next
#: answer; a slower server first gets what was applied committed
_HOLD_WAIT = 0.05


def _apply_selected_ahead(
    store: Store,
    account: Account,
    start: _Start,
    sel: SelectResult,
    options: SyncOptions,
    on_progress: ProgressCallback,
    rearm: _Changed,
) -> tuple[_Baseline | None] | None:
    """`_apply_server_changes` in a savepoint of the open transaction (None: nothing of
    it is kept, and the folder goes the usual way)."""
    try:
        with store.savepoint():
            return _apply_server_changes(
                store, account, start, sel, options, on_progress, rearm.watch(sel.exists)
            )
    except MailbagError:
        start.report.rolled_back()  # (and so are its counts)
        return None  # (its changes undone) the usual path tries again, and reports


def _record_applied(store: Store, changed: list[tuple[int, _Baseline | None]]) -> None:
    """Commit what `_select_ahead` applied, with the folders' re-armed stamps."""
    _rearm_folders(store, changed)
    changed.clear()
    store.commit()


def _apply_server_changes(
    store: Store,
    account: Account,
    start: _Start,
    sel: SelectResult,
    options: SyncOptions,
    on_progress: ProgressCallback,
    watch: DirWatch | None = None,
) -> tuple[_Baseline | None] | None:
    """Apply a QRESYNC delta to a clean folder when that needs nothing from the server;
    None (and nothing done) otherwise. Leaves the changes uncommitted."""
    folder = start.folder
    assert start.stamp is not None
    delta = _delta(store, folder, start.stamp, sel, watch)
    if delta is None:
        return None
    local, listing, base = delta
    planned = _plan_folder(
        None, account, options, folder, local, sel, listing, start.dir_missing, set()
    )
    if planned is None or not _local_only(planned[1]):
        return None
    uidvalidity, result = planned
    start.report.notes.extend(result.notes)
    _apply_and_record(
        store,
        folder,
        result,
        uidvalidity,
        _NoServer(),
        local,
        sel,
        start.report,
        on_progress,
        options,
    )
    return (base,)


def _download_fresh_folder(
    client: ImapClient,
    store: Store,
    account: Account,
    folder: Folder,
    options: SyncOptions,
    on_progress: ProgressCallback,
    report: FolderReport,
    board: _Board | None,
) -> None:
    """The first sync of a folder that has nothing here (no index rows, no files):
    everything on the server is downloaded, so no flag listing and no plan are
    needed (for 90,000 messages they would hold about 70 MB; the UIDs alone, from
    one UID SEARCH, hold 3 MB). Flags come with the bodies. A message expunged
    meanwhile is just not in the answer; a crash leaves the UIDVALIDITY recorded,
    so the next run takes the usual path and downloads only what is missing."""
    sel = client.select(folder.name, condstore="CONDSTORE" in client.enabled)
    if sel.uidvalidity is None:
        raise ProtocolError(
            f"the server gave no UIDVALIDITY for {folder.name}", cause="no-uidvalidity"
        )
    # an array, not a list: 4 bytes a message instead of 36 (0.7 MB for 200,000)
    uids = _uid_array(client.uid_search("ALL").uids) if sel.exists else _uid_array(())
    store.update_folder(folder, uidvalidity=sel.uidvalidity)
    store.commit()
    on_progress(Progress(account.name, folder.name, "plan", len(uids)))
    if uids:
        download = _shared_download(
            board, client, store, folder, sel.uidvalidity, report, on_progress, options
        )
        download(uids, {})
    store.commit()
    _record_selected(store, folder, sel)
    store.commit()


# --- folders that appear, move or disappear ----------------------------------------------


def _selected(account: Account, options: SyncOptions, name: str, role: str | None) -> bool:
    include = options.folders or account.sync.include
    if not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    if any(fnmatch.fnmatchcase(name, p) for p in account.sync.exclude):
        return False
    if role == "all":
        # Gmail's All Mail repeats every other folder: only when named explicitly
        return any(p not in ("*", "**") and fnmatch.fnmatchcase(name, p) for p in include)
    return True


def _remove_folder_dir(path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        with contextlib.suppress(OSError):
            (path / sub).rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def _settle_folders(
    client: ImapClient,
    store: Store,
    account: Account,
    options: SyncOptions,
    server: dict[str, MailboxInfo],
    report: AccountReport,
    before_server: Callable[[], None] = lambda: None,
) -> None:
    """Folders in the index but not on the server: create, follow a rename, or delete.
    `before_server` is called before the first command sent."""
    known = {f.name: f for f in store.folders(account.name)}
    gone = [
        f for n, f in known.items() if n not in server and _selected(account, options, n, f.role)
    ]
    if not gone:
        return
    before_server()
    new_names = [n for n in server if n not in known]
    statuses: dict[str, MailboxStatus] = {}
    for n in new_names:
        with contextlib.suppress(ProtocolError):
            statuses[n] = client.status(n, ("UIDVALIDITY", "MESSAGES"))
    for f in gone:
        rows = list(store.folder_messages(f))
        if f.uidvalidity is None:
            # made here (never on the server): create it there
            client.create(f.name)
            server[f.name] = MailboxInfo(f.name, f.name.encode(), f.delimiter, ())
            report.folders.append(FolderReport(f.name, notes=["created on the server"]))
            continue
        renamed = next((n for n, s in statuses.items() if s.uidvalidity == f.uidvalidity), None)
        if renamed is not None:
            info = server[renamed]
            target = store.folder_path(account.name, renamed, info.delimiter)
            if f.path.exists() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(f.path, target)
                store.note_dir_changes(f.path.parent, target.parent)
            store.update_folder(f, name=renamed, delimiter=info.delimiter)
            store.commit()
            statuses.pop(renamed)
            report.folders.append(
                FolderReport(f.name, notes=[f"renamed on the server to {renamed!r}; followed"])
            )
            continue
        fr = FolderReport(f.name)
        report.folders.append(fr)
        local_only = [m for m in rows if m.uid is None and not m.gone]
        if local_only:
            fr.error = (
                f"deleted on the server, but {len(local_only)} messages here were never "
                "uploaded: the local folder is kept"
            )
            continue
        live = [m for m in rows if not m.gone]
        if len(live) > account.sync.mass_delete_threshold and not options.force:
            fr.error = (
                f"deleted on the server with {len(live)} messages; syncing would delete them "
                "here too (more than the limit). Run `mailbag sync --force` if that is intended"
            )
            continue
        entries = f.maildir.scan()
        for m in rows:
            entry = entries.get(m.key)
            if entry is not None:
                f.maildir.remove(entry)
        store.delete_folder(f)
        store.commit()
        _remove_folder_dir(f.path)
        fr.deleted = len(live)
        fr.notes.append("deleted on the server; deleted here")


def _apply_moves(
    client: ImapClient,
    store: Store,
    account: Account,
    before_server: Callable[[], None] = lambda: None,
) -> dict[int, set[int]]:
    """Carry out moves made here (`mailbag move`) with UID MOVE; returns the source
    UIDs still pending per folder id (left alone by this run's folder syncs).
    `before_server` is called before the first command sent."""
    # PENDING_ROWS (implied by the rest) lets SQLite use the pending-rows index: no scan
    query = (  # noqa: S608 (PENDING_ROWS is a constant)
        "SELECT m.id, m.moved_from_folder, m.moved_from_uid, f.name FROM messages m "
        "JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id "
        "WHERE a.name = ? AND m.moved_from_uid IS NOT NULL AND m.uid IS NULL AND "
    ) + PENDING_ROWS
    rows = store.conn.execute(query, (account.name,)).fetchall()
    pending: dict[int, set[int]] = {}
    if rows:
        before_server()
    for row, src_id, src_uid, target_name in rows:
        try:
            source = store.folder_by_id(src_id)
        except StoreError:
            store.pair(row, None)
            store.commit()
            continue
        try:
            sel = client.select(source.name)
            if sel.uidvalidity != source.uidvalidity:
                store.pair(row, None)  # the old UID means nothing now: upload (paired)
                store.commit()
                continue
            if "MOVE" in client.capabilities:
                res = client.uid_move([src_uid], target_name)
            else:
                res = client.uid_copy([src_uid], target_name)
                client.uid_store([src_uid], "+FLAGS", ["\\Deleted"])
                if "UIDPLUS" in client.capabilities:
                    client.uid_expunge([src_uid])
        except ProtocolError:
            pending.setdefault(src_id, set()).add(src_uid)
            continue
        dest = res.mapping().get(src_uid) if res is not None else None
        # no COPYUID: the target sync pairs the server copy by Message-ID and size
        store.pair(row, dest)
        store.commit()
    return pending


# --- the account ------------------------------------------------------------------------


def sync_account(
    account: Account,
    secret: str,
    paths: Paths,
    *,
    options: SyncOptions | None = None,
    on_progress: ProgressCallback = no_progress,
    transcript: Transcript = NO_TRACE,
) -> AccountReport:
    """Sync every selected folder of an IMAP account; errors end up in the report
    (per folder where they are per folder), except a lock held by another sync."""
    options = options or SyncOptions()
    report = AccountReport(account.name)
    with sync_lock(paths, account.name, options.lock_wait):
        pool = _Connections(account, secret, transcript, options)
        try:
            _sync_locked(account, paths, options, on_progress, pool, report)
        except MailbagError as exc:
            report.error = exc.message
            report.hint = exc.hint
        finally:
            pool.close()
    return report


#: the changed pages a sync's index connection holds before it writes any to the WAL
#: ahead of the commit ("spills"), in KiB: the pages a 1% re-sync of 20,000 messages
#: changes (~1,000, in seven b-trees; SQLite's memory peaks at 3-4.5 MB there, its cache
#: included) fit, so none is written to the WAL before the commit and again in it (with
#: every later frame's checksum computed again: ~4,000 more reads and writes of the
#: WAL). A bigger sync's changes spill past it: a 1% re-sync of 200,000 messages in one
#: folder changes ~4,000 rows, and held them in up to 16 MiB before (peak RSS 47 MB, 39
#: with 8 MiB; wall and CPU time the same in 12 A/B rounds). Pages only read stay within
#: SQLite's default cache (2,000 KiB), whatever the size of the folder: a 16 MiB cache
#: filled up with the rows a full read of a big folder goes through (that re-sync: peak
#: RSS 62 -> 49 MB, of which 16 MiB were pages only read; the read done in a helper
#: thread (`_IndexRows.read_early`) left its pages in that thread's malloc arena, freed
#: there when the main thread's changes evicted them, and RSS grew by as much again).
#: Measured no slower (1% re-syncs of 20,000 messages with and without CONDSTORE, 10-12
#: rounds each): those read few rows (`_delta`, `_ListingCopy`).
_SPILL_KIB = 8192


def _open_store(paths: Paths) -> Store:
    """The index as a sync uses it (`Store.open`, deferring full-text work)."""
    store = Store.open(paths, defer_indexing=True)
    store.conn.execute(f"PRAGMA cache_spill = -{_SPILL_KIB}")
    return store


def _sync_locked(
    account: Account,
    paths: Paths,
    options: SyncOptions,
    on_progress: ProgressCallback,
    pool: _Connections,
    report: AccountReport,
) -> None:
    from mailbag.sync import early

    # (for `quick.record`: the index as it was before this run opened it)
    index_before = quick.index_stamp(paths)
    store: Store | None = _open_store(paths)
    assert store is not None
    store.checkpoint_ahead()  # (what the last run left in the WAL, while this one logs in)
    first: _Ahead | None = None  # the first folder's SELECT and listing, sent with the LIST
    # the listing read by `quick.sync_if_unchanged`, on the connection it leaves here
    listed = early.take_listed(account)
    if listed is not None:
        pool.adopt(listed[0])
    quiet_listing: list[tuple[MailboxInfo, MailboxStatus | None]] | None = None
    unchanged = False  # nothing to do, nothing done: `quick.record`
    try:
        store.account_id(account.name)
        store.commit()
        with pool.client(enable_later=True) as client:
            statuses: dict[str, MailboxStatus] | None = None
            sent: _ReadAhead | None = None
            before = store.folders(account.name)
            whole = _read_whole(client, before)
            if whole:
                # the folders, and the STATUS of those known here that are not read whole
                # anyway, in one round trip; behind them the SELECT and the listing of the
                # folder synced first (`_first_whole`): the server works on it while the
                # folders are settled here
                others = [f.name for f in before if f.name not in whole]
                biggest = _first_whole(account, options, before, whole)
                everything, statuses, sent = _list_with_statuses(client, others, biggest)
                infos = [i for i in everything if i.selectable]
            elif "LIST-STATUS" in client.capabilities:
                # folders and their STATUS in one command, sent with the ENABLE: one
                # round trip after the login
                listing = listed[1] if listed is not None else client.list_status(_STATUS_ITEMS)
                quiet_listing = listing
                infos = [i for i, _ in listing if i.selectable]
                statuses = {i.name: st for i, st in listing if st is not None}
            else:
                infos = [i for i in client.list_folders() if i.selectable]
            pool.ready(client)
            server = {i.name: i for i in infos}
            if sent is not None:
                info = server.get(sent.folder.name)
                if info is None:
                    sent.drop()  # (gone from the server)
                else:
                    first = _Ahead(info, client)
                    first.read = sent

            def quiet() -> None:
                """Before another command: the answers sent ahead, read and kept."""
                if first is not None:
                    first.read_now()

            _settle_folders(client, store, account, options, server, report, quiet)
            wanted = [
                server[n] for n in server if _selected(account, options, n, folder_role(server[n]))
            ]
            if statuses is None:
                statuses = _statuses(client, [i.name for i in wanted])
            elif whole:  # (new folders, or renamed here just now)
                asked = set(statuses) | whole
                if new := [i.name for i in wanted if i.name not in asked]:
                    quiet()
                    statuses.update(_statuses(client, new))
            pending_moves = _apply_moves(client, store, account, quiet)
            exclude_by_name: dict[str, set[int]] = {}
            for fid, uids in pending_moves.items():
                with contextlib.suppress(StoreError):
                    exclude_by_name[store.folder_by_id(fid).name] = uids
        # folders where nothing changed on either side are settled here, in one index
        # query and two stat calls each: no thread, no index connection, no SELECT
        pending = store.folders_with_pending(account.name)
        known = {f.name: f for f in store.folders(account.name)}
        results: dict[str, FolderReport] = {}
        todo: list[MailboxInfo] = []
        for info in wanted:
            exclude = exclude_by_name.get(info.name, set())
            status = statuses.get(info.name)
            if _skippable(known.get(info.name), info, status, exclude, pending):
                results[info.name] = FolderReport(info.name, skipped=True)
                on_progress(Progress(account.name, info.name, "folder-done"))
            else:
                todo.append(info)
        unchanged = (
            not todo
            and not report.folders
            and not pending_moves
            and store.conn.total_changes == 0
            and "CONDSTORE" in client.capabilities
        )
        if todo:
            # (the store goes on as the first thread's, and is closed there; as closing
            # it here did, nothing left uncommitted is kept)
            if store.conn.in_transaction:
                store.rollback()
            given, store = store, None
            taken, first = first, None  # (`_sync_folders` takes it, or drops it)
            _sync_folders(
                account,
                paths,
                options,
                on_progress,
                pool,
                statuses,
                exclude_by_name,
                todo,
                results,
                known,
                given,
                taken,
            )
    finally:
        if first is not None:  # (not taken: left unread, they would hold up the logout)
            try:
                first.drop()
            except MailbagError:
                first.client.close()  # (out of step or gone: not used again)
        if store is not None:
            store.close()
    if unchanged and index_before is not None and quiet_listing is not None:
        stamps = [(i.name, str(known[i.name].path), _stamp_of(known[i.name]) or "") for i in wanted]
        quick.record(paths, account, options.folders, index_before, client, quiet_listing, stamps)
    else:
        quick.forget(paths, account.name)
    report.folders.extend(results[i.name] for i in wanted if i.name in results)


def _sync_folders(
    account: Account,
    paths: Paths,
    options: SyncOptions,
    on_progress: ProgressCallback,
    pool: _Connections,
    statuses: dict[str, MailboxStatus],
    exclude_by_name: dict[str, set[int]],
    wanted: list[MailboxInfo],
    results: dict[str, FolderReport],
    store_folders: dict[str, Folder],
    first: Store,
    sent: _Ahead | None = None,
) -> None:
    """Sync the folders that have work, over the pool's connections (threads when
    there is much to download). `first` is this thread's store (closed here). `sent`:
    a folder's SELECT and listing sent ahead (by `_sync_locked`): taken by the worker
    as the first folder when it is that, else read and dropped."""

    local = threading.local()
    write_lock = threading.Lock()
    unlinker = first.unlinker  # (removes what the folders' plans discard, for all)
    unlinker.leave_running = options.leave_removals
    first.write_lock = write_lock
    local.store = first
    stores: list[Store] = [first]
    stores_lock = threading.Lock()

    def thread_store() -> Store:
        s: Store | None = getattr(local, "store", None)
        if s is None:
            s = _open_store(paths)
            s.write_lock = write_lock
            s.unlinker = unlinker
            local.store = s
            with stores_lock:
                stores.append(s)
        return s

    # folders this run changed, for `_rearm`
    rearm = _Changed()

    starts: dict[str, _Start] = {}
    # biggest folders first; then idle workers help with the big folders' downloads
    board = _Board(())
    # (one worker: folders applied here alone share a commit, folders read whole are
    # sent ahead)
    held: _Held | None = None
    pipe: _Pipeline | None = None

    def unwind(s: Store) -> None:
        if held is not None:
            held.settle(s)
        elif s.conn.in_transaction:
            s.rollback()

    def work(info: MailboxInfo) -> FolderReport:
        delay = options.backoff
        attempt = 0
        start = starts.pop(info.name, None)
        # one report for every try: each adds what it committed (a failed try's
        # uncommitted part is taken back with its rollback: `FolderReport.committed`)
        report = start.report if start is not None else FolderReport(info.name)
        while True:
            s = thread_store()
            try:
                fr = _sync_folder(
                    pool,
                    s,
                    account,
                    info,
                    statuses.get(info.name),
                    options,
                    on_progress,
                    exclude_by_name.get(info.name, set()),
                    board,
                    rearm,
                    start,
                    held,
                    pipe,
                    report,
                )
                on_progress(Progress(account.name, info.name, "folder-done"))
                return fr
            except NetworkError as exc:
                unwind(s)
                report.rolled_back()
                attempt += 1
                if attempt > options.retries:
                    report.error = f"{exc.message} (after {attempt} tries)"
                    return report
                on_progress(Progress(account.name, info.name, "retry", detail=exc.message))
                start = None  # (a retry looks again)
                time.sleep(delay)
                delay *= 2
            except MailbagError as exc:
                unwind(s)
                report.rolled_back()
                report.error = exc.message
                return report

    def help_out() -> None:
        while (got := board.steal()) is not None:
            job, piece = got
            settled = False
            try:
                with pool.client() as client:
                    # a connection that has the folder selected already keeps it: a SELECT
                    # costs the server a pass over the whole folder (Dovecot: ~6 ms of
                    # CPU per 1,000 messages, with its first FETCH), and a big folder is
                    # shared out in hundreds of pieces
                    if (client.selected, client.selected_uidvalidity) != (
                        job.folder.name,
                        job.uidvalidity,
                    ):
                        sel = client.select(job.folder.name)
                        if sel.uidvalidity != job.uidvalidity:
                            raise SyncError(
                                f"UIDVALIDITY of {job.folder.name} changed during the sync"
                            )
                    remote = _RemoteFolder(client, job.folder.name, job.uidvalidity)
                    settled = True  # from here _run_piece settles the piece, also on errors
                    _run_piece(board, job, piece, thread_store(), remote, on_progress, options)
            except MailbagError as exc:
                if not settled:
                    board.piece_done(job, FolderReport(job.folder.name), exc)

    def worker() -> None:
        while info := (pipe.claim() if pipe is not None else None) or board.next_folder():
            try:
                results[info.name] = work(info)
            finally:
                if pipe is not None:
                    pipe.drop_given()
                board.folder_done()
        if held is not None:
            s = thread_store()
            if held.folders and rearm.folders:
                # the folders this run changed get their re-armed stamps (`_rearm`) in
                # the commit of what the last folders left waiting: one flush of the
                # index for both
                _rearm_folders(s, rearm.folders, rearm.listed)
                rearm.folders.clear()
                # the watch has served (those checks were its last use): the kernel frees
                # it (10-30 ms, which the process's exit waits for) while the commit
                # flushes, not after it; a later check finds it closed and reads the folder
                rearm.close()
            held.commit(s)  # (what the last folders left waiting)
        help_out()

    try:
        if sent is not None and "QRESYNC" in sent.client.enabled:
            sent.read_now()  # (the connection may be used for QRESYNC selects below)
        wanted, starts = _select_ahead(
            pool,
            thread_store(),
            account,
            wanted,
            store_folders,
            statuses,
            exclude_by_name,
            options,
            on_progress,
            results,
            rearm,
        )
        wanted.sort(key=lambda i: -(_size_of(i.name, statuses, store_folders) or 0))
        board.folders.extend(wanted)
        workers = max(1, min(options.connections, len(wanted)))
        if _downloads_at_most(store_folders, statuses, wanted) < options.share_chunk:
            # fewer new messages than one share of a big folder: more connections would
            # cost more (a TLS handshake and a login each, threads taking turns for the
            # GIL) than they could save
            workers = 1
        if sent is not None:
            if workers == 1 and wanted and wanted[0].name == sent.info.name:
                with board.cond:  # (the pipeline's next folder: as `_Pipeline.send_next`)
                    board.folders.popleft()
                    board.active += 1
            else:
                sent.drop()
                sent = None
        if not wanted:
            pass
        elif workers == 1:
            held = _Held()
            pipe = _Pipeline(board, store_folders, exclude_by_name)
            pipe.next = sent
            # (a savepoint's copies of the pages it changes kept in memory, as
            # `_select_ahead` does: at most _SAVEPOINT_MAX changes a savepoint)
            thread_store().conn.execute("PRAGMA temp_store = MEMORY")
            worker()  # here, on the connection that listed the folders
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailbag-sync") as ex:
                for f in [ex.submit(worker) for _ in range(workers)]:
                    f.result()
        if rearm.folders:
            _rearm_all(thread_store(), rearm)
    finally:
        rearm.close()
        _close_overlapping(stores, pool)


def _close_overlapping(stores: list[Store], pool: _Connections) -> None:
    """Close the stores (the index's last checkpoint, a few ms of writes and a flush)
    while the connections log out (a round trip): the work is done."""
    errors: list[BaseException] = []

    def close_stores() -> None:
        for s in stores:
            try:
                s.close()
            except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
                errors.append(exc)

    closer = threading.Thread(target=close_stores, name="mailbag-close")
    closer.start()
    try:
        pool.close()
    finally:
        closer.join()
    if errors:
        raise errors[0]


#: what STATUS tells about a folder (HIGHESTMODSEQ too, where CONDSTORE is offered)
_STATUS_ITEMS = quick.STATUS_ITEMS


def _size_of(name: str, statuses: dict[str, MailboxStatus], known: dict[str, Folder]) -> int | None:
    """The folder's message count: from its STATUS, else as last synced."""
    st, folder = statuses.get(name), known.get(name)
    if st is not None:
        return st.messages
    return None if folder is None else folder.messages


def _read_whole(client: ImapClient, known: Iterable[Folder]) -> set[str]:
    """The known folders whose next sync reads them whole whatever a STATUS would say:
    the server has no CONDSTORE (a STATUS cannot show a flag change) and the folder is
    synced and not empty. Their STATUS is not asked for: it tells nothing the SELECT
    does not, and Dovecot makes a pass over the folder for it as for the SELECT (~150
    ms in a 100,000 message folder, ~10 ms at 20,000)."""
    if "CONDSTORE" in client.capabilities:
        return set()
    return {f.name for f in known if f.uidvalidity is not None and f.messages}


def _list_with_statuses(
    client: ImapClient, names: Sequence[str], behind: Folder | None = None
) -> tuple[list[MailboxInfo], dict[str, MailboxStatus], _ReadAhead | None]:
    """LIST, and the STATUS of the folders `names` (those of them that exist), sent
    together: one round trip; and behind them the SELECT and listing of the folder
    `behind` (`_ReadAhead`, its answers not read yet)."""
    from mailbag.protocols.imap.parser import parse_list

    args = [b'""', b"*"]
    if {"LIST-EXTENDED", "SPECIAL-USE"} <= client.capabilities:
        args.append(b"RETURN (SPECIAL-USE)")
    listing = client.submit(b"LIST", *args)
    pending = _submit_statuses(client, names)
    sent = None if behind is None else _ReadAhead(client, behind)
    client.finish(listing)
    infos = [parse_list(u, client.utf8) for u in listing.untagged if u.name == "LIST"]
    return infos, _finish_statuses(client, names, pending), sent


def _first_whole(
    account: Account, options: SyncOptions, known: Iterable[Folder], whole: set[str]
) -> Folder | None:
    """The folder read whole that is synced first: the biggest selected one, as the
    board orders them (when one worker syncs them: none downloads much, see
    `_downloads_at_most`, which leaves the folders read whole out)."""
    candidates = [
        f
        for f in known
        if f.name in whole and f.messages and _selected(account, options, f.name, f.role)
    ]
    return max(candidates, key=lambda f: f.messages or 0, default=None)


def _downloads_at_most(
    known: dict[str, Folder], statuses: dict[str, MailboxStatus], todo: Sequence[MailboxInfo]
) -> int:
    """An upper bound of the messages to download, from STATUS and the index: UIDs are
    handed out in ascending order, so no more than UIDNEXT grew by are new."""
    total = 0
    for info in todo:
        folder, st = known.get(info.name), statuses.get(info.name)
        if st is None and folder is not None and folder.uidvalidity is not None and folder.messages:
            continue  # read whole without a STATUS (`_read_whole`): its new mail is not known
        if st is None or st.messages is None:
            return 1 << 30  # no STATUS: assume the worst
        if (
            folder is not None
            and folder.uidnext is not None
            and st.uidnext is not None
            and folder.uidvalidity == st.uidvalidity
        ):
            total += min(st.messages, max(0, st.uidnext - folder.uidnext))
        else:
            total += st.messages  # never synced, or a new UIDVALIDITY
    return total


def _statuses(client: ImapClient, names: Sequence[str]) -> dict[str, MailboxStatus]:
    """STATUS of every folder, pipelined: one round trip for all of them."""
    return _finish_statuses(client, names, _submit_statuses(client, names))


def _submit_statuses(client: ImapClient, names: Sequence[str]) -> list[Pending]:
    from mailbag.protocols.imap import command as cmd

    items = list(_STATUS_ITEMS)
    if "CONDSTORE" in client.capabilities:
        items.append("HIGHESTMODSEQ")
    return [
        client.submit(b"STATUS", cmd.mailbox(n, client.utf8), cmd.item_list(items)) for n in names
    ]


def _finish_statuses(
    client: ImapClient, names: Sequence[str], pending: Sequence[Pending]
) -> dict[str, MailboxStatus]:
    from mailbag.protocols.imap.parser import parse_status

    out: dict[str, MailboxStatus] = {}
    for n, p in zip(names, pending, strict=True):
        try:
            client.finish(p)
        except ProtocolError:
            continue
        for u in p.untagged:
            if u.name == "STATUS":
                out[n] = parse_status(u, client.utf8)
    return out
