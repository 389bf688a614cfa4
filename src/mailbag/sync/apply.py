"""Carry out one folder's plan against the local store and the server.

The server side is reached through `RemoteOps` (implemented by the IMAP
driver over a selected folder), so the order of steps and their crash safety
live here, in one place:

1. pairs first (a UIDVALIDITY change voids old UIDs in the same transaction);
2. flags: server STOREs, then local renames, then the index records them;
3. deletions: the file goes before its row (a crash leaves a row without a
   file, which the next plan forgets, never a file without a row, which the
   next plan would upload again);
4. uploads: APPEND, then the UID is recorded; a crash in between is caught by
   the next plan, which pairs the server copy by Message-ID and size;
5. downloads: streamed straight into tmp/ files; every chunk is fsynced, then
   recorded in the index, then renamed into place.
Every step commits before the next, so a crash anywhere loses no mail and a
re-run neither downloads nor uploads twice.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from mailbag.errors import StoreError
from mailbag.store.envelope import MAX_HEADER_BYTES, envelope_from_bytes
from mailbag.store.index import Folder, NewMessage, Store
from mailbag.store.maildir import MaildirEntry
from mailbag.sync.events import FolderReport, Progress, ProgressCallback
from mailbag.sync.plan import (
    DeleteLocal,
    Download,
    ExpungeRemote,
    Forget,
    Pair,
    Plan,
    SetFlags,
    Upload,
)

__all__ = [
    "DownloadFn",
    "DownloadSink",
    "RemoteOps",
    "apply_plan",
    "crash_point",
    "download_messages",
]

DELETED = frozenset({"\\Deleted"})


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

    def append(self, path: Path, flags: frozenset[str], internal_date: float | None) -> int | None:
        """APPEND the file; the new UID when the server says (UIDPLUS)."""

    def fetch_bodies(self, uids: Sequence[int], sink: DownloadSink) -> None: ...


#: test hook: MAILBAG_CRASH_AFTER="download:25" kills the process at that point
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when the crash test asks for it."""
    import os

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
    """A file-like writer that also keeps the start of the message for its envelope."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.head = bytearray()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if len(self.head) < MAX_HEADER_BYTES:
            self.head += bytes(data[: MAX_HEADER_BYTES - len(self.head)])
        self.size += len(data)
        return self.fh.write(data)


class _Downloader:
    """Receives bodies from the server into tmp/ files; indexes them in durable chunks.

    Two helper threads keep the connection's reader from waiting on the disk:
    one creates the next tmp/ files ahead of need (a file creation can take a
    millisecond when the file system is busy committing), the other fsyncs and
    commits finished chunks while the next chunk downloads. The order of the
    durability steps per chunk is unchanged (fsync, index commit, rename).
    """

    AHEAD = 16  # tmp files created ahead

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
        self.store = store
        self.folder = folder
        self.maildir = folder.maildir
        self.report = report
        self.progress = progress
        self.chunk_messages = chunk_messages
        self.chunk_bytes = chunk_bytes
        self.replaces = replaces  # uid -> row whose lost file this download restores
        self._current: tuple[str, BinaryIO, _Capture] | None = None
        self._batch: list[NewMessage] = []
        self._forget: list[int] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._files: queue.Queue[tuple[str, BinaryIO] | BaseException] = queue.Queue(self.AHEAD)
        self._commits: queue.Queue[tuple[list[NewMessage], list[int]] | None] = queue.Queue(2)
        self._opener = threading.Thread(target=self._open_ahead, daemon=True)
        self._committer = threading.Thread(target=self._commit_loop, daemon=True)
        self._opener.start()
        self._committer.start()

    # --- helper threads -----------------------------------------------------------------

    def _open_ahead(self) -> None:
        while not self._stop.is_set():
            try:
                item: tuple[str, BinaryIO] | BaseException = self.maildir.open_tmp()
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
                item = exc
            while True:
                try:
                    self._files.put(item, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        if not isinstance(item, BaseException):
                            self._drop(*item)
                        return
            if isinstance(item, BaseException):
                return

    def _drop(self, key: str, fh: BinaryIO) -> None:
        fh.close()
        self.maildir.tmp_path(key).unlink(missing_ok=True)

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

    def begin(self, size: int) -> BinaryIO:
        if self._current is not None:  # a body without its FETCH end: drop it
            self._discard()
        item = self._files.get()
        if isinstance(item, BaseException):
            raise item
        key, fh = item
        cap = _Capture(fh)
        self._current = (key, fh, cap)
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
        key, fh, cap = self._current
        self._current = None
        fh.close()
        old_row = self.replaces.get(uid)
        if old_row is not None:
            self._forget.append(old_row)
        self._batch.append(
            NewMessage(
                key=key,
                envelope=envelope_from_bytes(bytes(cap.head)),
                size=cap.size,
                flags=flags - {"\\Recent"},
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
            key, fh, _ = self._current
            self._drop(key, fh)
            self._current = None

    def finish(self) -> None:
        """Commit what is complete, stop the helpers, remove unused tmp files; raises
        the first commit failure."""
        self._discard()
        if self._error is None and self._batch:
            self._commits.put((self._batch, self._forget))
        self._batch = []
        self._forget = []
        self._commits.put(None)
        self._committer.join()
        self._stop.set()
        self._opener.join()
        while True:
            try:
                item = self._files.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, BaseException):
                self._drop(*item)
        self._check()


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
    after committing everything that completed."""
    account = folder.account

    def tick(kind: str, nbytes: int = 0) -> None:
        on_progress(Progress(account, folder.name, kind, 1, nbytes))

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

    # 1. pairs (and a new UIDVALIDITY) in one transaction
    if plan.uidvalidity_changed:
        store.unpair_all(folder)
    store.update_folder(folder, uidvalidity=uidvalidity)
    for a in plan.actions:
        if isinstance(a, Forget):
            store.forget(a.row)
        elif isinstance(a, Pair):
            store.pair(row_of(a.key, a.row), a.uid)
            report.paired += 1
    store.commit()

    # 2. flags: server first (grouped by change), then the local side
    flag_actions = [a for a in plan.actions if isinstance(a, SetFlags)]
    groups: dict[tuple[bool, frozenset[str]], list[int]] = defaultdict(list)
    for fa in flag_actions:
        if fa.add:
            groups[(True, fa.add)].append(fa.uid)
        if fa.remove:
            groups[(False, fa.remove)].append(fa.uid)
    for (add, flags), uids in groups.items():
        remote.store_flags(sorted(uids), add, flags)
    for fa in flag_actions:
        row = row_of(fa.key, fa.row)
        if fa.local:
            entry = entries.get(fa.key)
            if entry is not None and entry.path.exists():
                folder.maildir.set_flags(entry, fa.flags)
        store.record_flags(row, fa.flags)
        if fa.local or fa.add or fa.remove:
            report.updated += 1
    store.commit()

    # 3. deletions: local files before their rows; server copies flagged then expunged
    local_deletes = [a for a in plan.actions if isinstance(a, DeleteLocal)]
    for dl in local_deletes:
        entry = entries.get(dl.key)
        if entry is not None:
            folder.maildir.remove(entry)
        if dl.row is not None:
            store.forget(dl.row)
        report.deleted += 1
    store.commit()
    remote_deletes = [a for a in plan.actions if isinstance(a, ExpungeRemote)]
    if remote_deletes:
        uids = sorted(a.uid for a in remote_deletes)
        remote.store_flags(uids, True, DELETED)
        remote.expunge(uids)
        for er in remote_deletes:
            if er.row is not None:
                store.forget(er.row)
            report.deleted += 1
        store.commit()

    # 4. uploads, each recorded as soon as the server confirms it
    for up in (a for a in plan.actions if isinstance(a, Upload)):
        row = row_of(up.key, up.row)
        store.commit()
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
    if downloads:
        uids = sorted(d.uid for d in downloads)
        replaces = {d.uid: d.row for d in downloads if d.row is not None}
        if download is not None:
            download(uids, replaces)
        else:
            download_messages(
                store,
                folder,
                remote,
                uids,
                replaces,
                report,
                on_progress,
                chunk_messages=chunk_messages,
                chunk_bytes=chunk_bytes,
            )


#: downloads a folder's messages another way (the driver's shared pool): (uids, replaces)
DownloadFn = Callable[[list[int], dict[int, int]], None]


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
