"""Carry out one folder's plan against the local store and the server.

The server side is reached through `RemoteOps` (implemented by the IMAP
driver over a selected folder), so the order of steps and their crash safety
live here, in one place:

1. pairs first (a UIDVALIDITY change voids old UIDs in the same transaction);
2. flags: server STOREs, then local renames, then the index records them;
3. deletions: the file goes before its row (a crash leaves a row without a
   file, which the next plan forgets, never a file without a row, which the
   next plan would upload again);
   the directories of the renames of 2. and 3. are fsynced before the commit
   that records them (`Store.note_dir_changes`), once each: after a power loss
   the index never holds a flag change or a removal that the files lost (the
   next sync would push the old flags back, or upload the message again);
4. uploads: APPEND, then the UID is recorded; a crash in between is caught by
   the next plan, which pairs the server copy by Message-ID and size;
5. downloads: streamed straight into tmp/ files; every chunk is fsynced, then
   recorded in the index, then renamed into place.
File renames and removals run in a helper thread while the index records them
(`_FileWork`); nothing is committed until they are done. A removal is a rename out
of the folder into tmp/ (`Maildir.discard`): the slow part, freeing the file's
blocks, is left to the store's unlinker (`rm`), which needs no order with the index.
The index records a step only after the step is done, and every server command
and every transfer begins with nothing uncommitted, so a crash anywhere loses no
mail and a re-run neither downloads nor uploads twice. The steps that only change
things here (pairs, local renames and deletions, and their index rows) share one
transaction, which `apply_plan` leaves open: the caller adds the folder's new
sync state and commits it all at once (a commit costs a file-system flush).
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mailbag.errors import StoreError
from mailbag.store.index import Folder, NewMessage, Store, flags_text, parse_flags
from mailbag.store.maildir import Maildir, MaildirEntry, flags_to_info
from mailbag.sync.events import FolderReport, Progress, ProgressCallback
from mailbag.sync.plan import (
    DeleteLocal,
    Download,
    ExpungeRemote,
    Forget,
    Merge,
    Pair,
    Pairs,
    Plan,
    SetFlags,
    Upload,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from typing import BinaryIO, Protocol

__all__ = [
    "DownloadFn",
    "DownloadSink",
    "RemoteOps",
    "apply_plan",
    "crash_point",
    "download_messages",
]

DELETED = frozenset({"\\Deleted"})


if TYPE_CHECKING:  # (Protocols: for the type checker only)

    class DownloadSink(Protocol):
        def begin(self, size: int) -> BinaryIO:
            """Where the next body goes (called before its bytes arrive)."""

        def done(
            self,
            uid: int,
            flags: frozenset[str],
            internal_date: float | None,
            modseq: int | None,
            email_id: str | None,
        ) -> None:
            """The body of `uid` is complete."""

    class RemoteOps(Protocol):
        """The selected server folder, as the executor needs it."""

        uidplus: bool

        def store_flags(self, uids: Sequence[int], add: bool, flags: frozenset[str]) -> None: ...

        def expunge(self, uids: Sequence[int]) -> None: ...

        def append(
            self, path: Path, flags: frozenset[str], internal_date: float | None
        ) -> int | None:
            """APPEND the file; the new UID when the server says (UIDPLUS)."""

        def fetch_bodies(self, uids: Sequence[int], sink: DownloadSink) -> None: ...


#: test hook: MAILBAG_CRASH_AFTER="download:25" kills the process at that point
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when the crash test asks for it."""
    spec = os.environ.get("MAILBAG_TEST_CRASH")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(count or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class _Capture:
    """A message file being written (a raw descriptor: no buffer copy) that also keeps
    the message's header block, up to its first empty line, for the envelope."""

    __slots__ = ("fd", "head", "in_head", "limit", "size")

    def __init__(self, fd: int, limit: int | None = None) -> None:
        if limit is None:
            from mailbag.store.envelope import MAX_HEADER_BYTES

            limit = MAX_HEADER_BYTES
        self.fd = fd
        self.limit = limit  # (the header bytes the envelope reads at most)
        self.head = b""
        self.in_head = True
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self.in_head:
            self._keep(data)
        view = memoryview(data)
        done = 0
        try:
            while done < n:
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            raise StoreError(
                f"cannot write a downloaded message: {exc.strerror or exc}",
                hint="check that the mail directory is writable and the disk not full",
            ) from exc
        self.size += n
        return n

    def _keep(self, data: bytes | bytearray | memoryview) -> None:
        have = len(self.head)
        head = self.head + bytes(data[: self.limit - have])
        start = max(0, have - 3)
        end = head.find(b"\r\n\r\n", start)
        bare = head.find(b"\n\n", start, None if end < 0 else end)
        if bare >= 0:
            self.head, self.in_head = head[: bare + 2], False
        elif end >= 0:
            self.head, self.in_head = head[: end + 4], False
        else:
            self.head, self.in_head = head, len(head) < self.limit

    def close(self) -> None:
        os.close(self.fd)


class _Downloader:
    """Receives bodies from the server into tmp/ files; indexes them in durable chunks.

    The connection's reader thread creates and writes the files; a helper thread
    makes finished chunks durable and commits them to the index while the next
    chunk downloads. The order of the durability steps per chunk: the files are
    made durable (`Maildir.sync_batch`), then recorded in the index, then renamed
    into place.
    """

    def __init__(
        self,
        store: Store,
        folder: Folder,
        report: FolderReport,
        progress: Callable[[int], None],
        *,
        chunk_messages: int,
        chunk_bytes: int,
        replaces: dict[int, int],
    ) -> None:
        # (loaded here: a sync that downloads nothing need not load the envelope parser)
        import queue

        from mailbag.store.envelope import MAX_HEADER_BYTES, envelope_from_bytes

        self._envelope = envelope_from_bytes
        self._header_limit = MAX_HEADER_BYTES
        self.store = store
        self.folder = folder
        self.maildir = folder.maildir
        self._tmp = str(folder.maildir.root / "tmp")
        self.report = report
        self.progress = progress
        self.chunk_messages = chunk_messages
        self.chunk_bytes = chunk_bytes
        self.replaces = replaces  # uid -> row whose lost file this download restores
        self._current: tuple[str, _Capture] | None = None
        self._batch: list[NewMessage] = []
        self._forget: list[int] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._commits: queue.Queue[tuple[list[NewMessage], list[int]] | None] = queue.Queue(2)
        self._committer = threading.Thread(target=self._commit_loop, daemon=True)
        self._committer.start()

    # --- the helper thread --------------------------------------------------------------

    def _commit_loop(self) -> None:
        while True:
            job = self._commits.get()
            if job is None:
                return
            if self._error is not None:
                continue  # after a failure nothing more is recorded; the files stay in tmp/
            batch, forget = job
            try:
                self.store.add_messages(self.folder, batch, forget=forget)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the reader thread
                self._error = exc
                continue
            self.report.restored += len(forget)
            self.report.new += len(batch) - len(forget)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    # --- the sink -----------------------------------------------------------------------

    def _create(self) -> tuple[str, int]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        key = Maildir.new_key()
        try:
            return key, os.open(f"{self._tmp}/{key}", flags, 0o666)
        except FileNotFoundError:
            self.maildir.create()
            return key, os.open(f"{self._tmp}/{key}", flags, 0o666)
        except OSError as exc:
            raise StoreError(
                f"cannot write in {self._tmp}: {exc.strerror or exc}",
                hint="check that the mail directory is writable and the disk not full",
            ) from exc

    def begin(self, size: int) -> BinaryIO:
        if self._current is not None:  # a body without its FETCH end: drop it
            self._discard()
        key, fd = self._create()
        cap = _Capture(fd, self._header_limit)
        self._current = (key, cap)
        return cap  # type: ignore[return-value]

    def done(
        self,
        uid: int,
        flags: frozenset[str],
        internal_date: float | None,
        modseq: int | None,
        email_id: str | None,
    ) -> None:
        if self._current is None:
            return  # a FETCH without a body (an unsolicited flag update)
        key, cap = self._current
        self._current = None
        cap.close()
        old_row = self.replaces.get(uid)
        if old_row is not None:
            self._forget.append(old_row)
        self._batch.append(
            NewMessage(
                key=key,
                envelope=self._envelope(cap.head),
                size=cap.size,
                flags=flags - _RECENT if "\\Recent" in flags else flags,
                uid=uid,
                synced=True,
                internal_date=internal_date,
                modseq=modseq,
                email_id=email_id,
            )
        )
        self._batch_bytes += cap.size
        self.progress(cap.size)
        crash_point("download")
        if len(self._batch) >= self.chunk_messages or self._batch_bytes >= self.chunk_bytes:
            self._hand_over()

    def _hand_over(self) -> None:
        self._check()
        if self._batch:
            self._commits.put((self._batch, self._forget))
        self._batch = []
        self._forget = []
        self._batch_bytes = 0

    def _discard(self) -> None:
        if self._current is not None:
            key, cap = self._current
            self._current = None
            cap.close()
            self.maildir.tmp_path(key).unlink(missing_ok=True)

    def finish(self) -> None:
        """Commit what is complete, stop the helper, remove an unfinished tmp file;
        raises the first commit failure."""
        self._discard()
        if self._error is None and self._batch:
            self._commits.put((self._batch, self._forget))
        self._batch = []
        self._forget = []
        self._commits.put(None)
        self._committer.join()
        self._check()


_RECENT = frozenset({"\\Recent"})


class _FileWork:
    """Renames and removals of message files for what the caller then records in the
    index. Nothing is committed before `wait` has returned, so the index still records
    only what is done; the first failure is raised by `wait`, and after it nothing
    more is carried out.

    They run here, one by one, not in a helper thread: a rename takes the file system
    ~20 us, and a thread doing them got the interpreter lock back after each only when
    the main thread let go of it (the index's statements do, a few times per message),
    two thread switches per file: on the 1% re-sync of 20,000 messages (400 renames)
    the thread cost more CPU than it saved time (~10 ms)."""

    def __init__(self) -> None:
        self._error: BaseException | None = None

    def do(self, job: Callable[..., object], *args: object) -> None:
        if self._error is None:
            try:
                job(*args)
            except BaseException as exc:  # noqa: BLE001 - raised by `wait`
                self._error = exc

    def wait(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


def _rename_if_there(maildir: Maildir, entry: MaildirEntry, flags: frozenset[str]) -> None:
    """Rename the file for `flags`, unless another program removed it meanwhile (looked
    at only when the rename finds no file: a stat less per message otherwise)."""
    try:
        maildir.set_flags(entry, flags)
    except StoreError as exc:
        if not isinstance(exc.__cause__, FileNotFoundError) or os.path.exists(entry.file):
            raise


def _discard(store: Store, maildir: Maildir, entry: MaildirEntry) -> None:
    path = maildir.discard(entry)
    if path is not None:
        store.remove_later(path)  # (freeing the blocks needs no order with the index)


def _unlike_pairs(
    store: Store,
    folder: Folder,
    entries: dict[str, MaildirEntry],
    pairs: Pairs,
    unlike: set[int],
) -> Iterator[tuple[int, MaildirEntry | None, Merge]]:
    """The pairings whose flags must change on some side, with their files, looked up
    500 rows at a time: where the scan found them (`entries`) or where their row's flags
    put them. (The pairings are read a chunk at a time: `Pairs.chunks`.)"""
    chunk: dict[int, int] = {}
    for rows, _, merges, _ in pairs.chunks():
        for row, n in zip(rows, merges, strict=True):
            if n in unlike:
                chunk[row] = n
                if len(chunk) >= 500:
                    yield from _unlike_chunk(store, folder, entries, pairs, chunk)
                    chunk = {}
    if chunk:
        yield from _unlike_chunk(store, folder, entries, pairs, chunk)


def _unlike_chunk(
    store: Store,
    folder: Folder,
    entries: dict[str, MaildirEntry],
    pairs: Pairs,
    chunk: dict[int, int],
) -> Iterator[tuple[int, MaildirEntry | None, Merge]]:
    cur, new = str(folder.path / "cur"), str(folder.path / "new")
    marks = ",".join("?" * len(chunk))
    for row, key, flags in store.conn.execute(
        f"SELECT id, key, flags FROM messages WHERE id IN ({marks})",  # noqa: S608
        tuple(chunk),
    ).fetchall():
        entry = entries.get(key)
        if entry is None:
            info = flags_to_info(parse_flags(flags))
            name = f"{key}:2,{info}"
            if os.path.exists(f"{cur}/{name}"):
                entry = MaildirEntry(key, "cur", name, folder.path)
            elif not info and os.path.exists(f"{new}/{key}"):
                entry = MaildirEntry(key, "new", key, folder.path)
        yield row, entry, pairs.table[chunk[row]]


def _settled(pairs: Pairs, texts: Sequence[str | None]) -> Iterator[tuple[int, int, str]]:
    """(row, UID, flags text) of the pairings `Pairs.settled` marks (their flags the same
    on both sides: `texts` has theirs)."""
    for row, uid, n, s in pairs.settled_rows():
        text = texts[n]
        if s and text is not None:
            yield row, uid, text


def apply_plan(
    plan: Plan,
    *,
    store: Store,
    folder: Folder,
    remote: RemoteOps,
    entries: dict[str, MaildirEntry],
    report: FolderReport,
    on_progress: ProgressCallback,
    uidvalidity: int,
    chunk_messages: int = 200,
    chunk_bytes: int = 32 * 1024 * 1024,
    download: DownloadFn | None = None,
) -> None:
    """Execute `plan` for `folder`; counts go into `report`. Raises on failure
    after committing everything that completed (and marking its counts in `report`
    as committed: `FolderReport.committed`). Returns with the last local changes
    uncommitted (one transaction): the caller commits them."""
    account = folder.account

    def tick(kind: str, nbytes: int = 0) -> None:
        on_progress(Progress(account, folder.name, kind, 1, nbytes))

    files = _FileWork()

    def before_server() -> None:
        files.wait()
        # no transaction (the write lock) is held while waiting for the server
        if store.conn.in_transaction:
            store.commit()
        report.committed()  # (a server that fails from here takes none of it back)

    rows: dict[str, int] = {}  # key -> row, for files adopted during this run

    def row_of(key: str, row: int | None) -> int:
        if row is not None:
            return row
        if key in rows:
            return rows[key]
        entry = entries.get(key)
        if entry is None:
            raise StoreError(f"file {key} vanished from {folder.path} during the sync")
        rows[key] = store.adopt(folder, entry).id
        return rows[key]

    # 1. pairs (and a new UIDVALIDITY)
    paired_before = report.paired
    pairs = plan.pairs
    # a pairing whose flags are the same on both sides is complete; the others get
    # no base yet (a crash before their flags are done leaves them to be united)
    texts = [flags_text(m[0]) if m[4] else None for m in pairs.table]
    settled = plan.uidvalidity_changed and pairs.settled_count > 0
    kept = plan.kept
    if plan.uidvalidity_changed:
        # (the rows already recorded as paired again are checked, not rewritten; those
        # found kept in bulk are left as they are)
        store.unpair_all(
            folder,
            _settled(pairs, texts) if settled else (),
            only=None if kept is None else kept.open,
            also_kept=() if kept is None else kept.uids,
        )
    if folder.uidvalidity != uidvalidity:
        store.update_folder(folder, uidvalidity=uidvalidity)
    store.forget_many([a.row for a in plan.actions if isinstance(a, Forget)])
    for a in plan.actions:
        if isinstance(a, Pair):
            store.pair(row_of(a.key, a.row), a.uid)
            report.paired += 1
    if pairs:
        store.pair_many(
            (uid, texts[n], texts[n], row)
            for row, uid, n, s in pairs.settled_rows()
            if not (s and settled)
        )
        report.paired += len(pairs)
    if kept is not None:
        report.paired += kept.count
    if plan.uidvalidity_changed:
        report.paired_again += report.paired - paired_before
        report.paired_by_hash += plan.hashed

    try:
        # 2. flags: server first (grouped by change), then the local side
        flag_actions = [a for a in plan.actions if isinstance(a, SetFlags)]
        groups: dict[tuple[bool, frozenset[str]], list[int]] = defaultdict(list)
        for fa in flag_actions:
            if fa.add:
                groups[(True, fa.add)].append(fa.uid)
            if fa.remove:
                groups[(False, fa.remove)].append(fa.uid)
        # pairings whose flags differ: UIDs by merge (as few lists as distinct merges)
        unlike = {n for n, m in enumerate(pairs.table) if not m[4]}
        pair_uids: dict[int, array[int]] = {}
        if unlike:
            for _, of_chunk, merges, _ in pairs.chunks():
                for paired_uid, n in zip(of_chunk, merges, strict=True):
                    if n in unlike:
                        pair_uids.setdefault(n, array(of_chunk.typecode)).append(paired_uid)
            for n, of_merge in pair_uids.items():
                _, _, add_flags, remove_flags, _ = pairs.table[n]
                if add_flags:
                    groups[(True, add_flags)].extend(of_merge)
                if remove_flags:
                    groups[(False, remove_flags)].extend(of_merge)
            del pair_uids
        if groups:
            before_server()
        if pairs:
            crash_point("paired")  # (committed when the server's flags must change)
        for (add, flags), group in groups.items():
            remote.store_flags(sorted(group), add, flags)
        maildir = folder.maildir
        # the directories the renames change, fsynced once each before the commit
        cur = f"{maildir.root}/cur"
        changed = {"cur": (cur,), "new": (f"{maildir.root}/new", cur)}
        recorded: list[tuple[int, str]] = []  # (row, flags text), recorded together
        if unlike:
            for pair_row, entry, merge in _unlike_pairs(store, folder, entries, pairs, unlike):
                if merge[1] and entry is not None:
                    files.do(_rename_if_there, maildir, entry, merge[0])
                    store.note_dir_changes(*changed[entry.subdir])
                recorded.append((pair_row, flags_text(merge[0])))
                report.updated += 1
        for fa in flag_actions:
            row = row_of(fa.key, fa.row)
            if fa.local:
                entry = entries.get(fa.key)
                if entry is not None:
                    files.do(_rename_if_there, maildir, entry, fa.flags)
                    store.note_dir_changes(*changed[entry.subdir])
            recorded.append((row, flags_text(fa.flags)))
            if fa.local or fa.add or fa.remove:
                report.updated += 1
        store.record_flags_many(recorded)

        # 3. deletions: local files before their rows; server copies flagged then expunged
        local_deletes = [a for a in plan.actions if isinstance(a, DeleteLocal)]
        for dl in local_deletes:
            entry = entries.get(dl.key)
            if entry is not None:
                files.do(_discard, store, maildir, entry)
                # (its leaving the folder must be durable: a file back in cur/ without
                # its row would be taken for a new message here and uploaded again)
                store.note_dir_changes(changed[entry.subdir][0])
            report.deleted += 1
        store.forget_many([dl.row for dl in local_deletes if dl.row is not None])
        remote_deletes = [a for a in plan.actions if isinstance(a, ExpungeRemote)]
        if remote_deletes:
            before_server()
            uids = sorted(a.uid for a in remote_deletes)
            remote.store_flags(uids, True, DELETED)
            remote.expunge(uids)
            store.forget_many([er.row for er in remote_deletes if er.row is not None])
            report.deleted += len(remote_deletes)
    finally:
        files.wait()  # (raises the first failure of the file work, if any)
        store.start_removals()
    crash_point("local-files")  # (the files changed, the index not yet committed)

    # 4. uploads, each recorded as soon as the server confirms it
    for up in (a for a in plan.actions if isinstance(a, Upload)):
        row = row_of(up.key, up.row)
        store.commit()
        report.committed()
        entry = folder.maildir.find(up.key, entries.get(up.key))
        if entry is None:
            continue  # deleted meanwhile: nothing to upload
        message = store.get(row)
        uid = remote.append(entry.path, up.flags, message.internal_date if message else None)
        crash_point("upload")
        if uid is not None:
            store.pair(row, uid, up.flags)
        store.commit()
        report.uploaded += 1
        tick("message", entry.path.stat().st_size)

    # 5. downloads, streamed and committed in chunks
    downloads = [a for a in plan.actions if isinstance(a, Download)]
    if downloads or plan.fetch:
        before_server()  # (the downloads commit from a thread of their own)
        wanted: Sequence[int] = (
            sorted([*(d.uid for d in downloads), *plan.fetch]) if downloads else plan.fetch
        )
        replaces = {d.uid: d.row for d in downloads if d.row is not None}
        if download is not None:
            download(wanted, replaces)
        else:
            download_messages(
                store,
                folder,
                remote,
                wanted,
                replaces,
                report,
                on_progress,
                chunk_messages=chunk_messages,
                chunk_bytes=chunk_bytes,
            )


#: the index's page cache while messages download, in KiB: SQLite's default, which the
#: sync's connections keep (`sync.imap._SPILL_KIB`), whatever cache the store was given.
#: A download adds rows all over the indexes (by Message-ID, by date), so a bigger cache
#: only fills with pages it may not need again, and a big first sync's peak RSS grows
#: with it (a 16 MiB cache took 200,000 messages from 40 to 56 MB).
DOWNLOAD_CACHE_KIB = 2000

#: downloads a folder's messages another way (the driver's shared pool): (uids, replaces)
DownloadFn = Callable[[Sequence[int], dict[int, int]], None]


def download_messages(
    store: Store,
    folder: Folder,
    remote: RemoteOps,
    uids: Sequence[int],
    replaces: dict[int, int],
    report: FolderReport,
    on_progress: ProgressCallback,
    *,
    chunk_messages: int = 200,
    chunk_bytes: int = 32 * 1024 * 1024,
) -> None:
    """Stream `uids` into the folder, durably, in chunks; what completes is kept
    even when the connection breaks (then this raises)."""
    account = folder.account

    def tick(nbytes: int) -> None:
        on_progress(Progress(account, folder.name, "message", 1, nbytes))

    with store.page_cache(DOWNLOAD_CACHE_KIB):
        sink = _Downloader(
            store,
            folder,
            report,
            tick,
            chunk_messages=chunk_messages,
            chunk_bytes=chunk_bytes,
            replaces=replaces,
        )
        try:
            remote.fetch_bodies(uids, sink)
        finally:
            sink.finish()
