"""A re-sync with nothing to do, told apart before the sync engine loads.

A sync where nothing changed on either side reads the folder listing with its STATUS
(one round trip), finds every folder unchanged from the index and from the times of
its directories, and ends (`sync.imap._skippable`). The engine and the index it loads
for that (sqlite3, `store.index`, `store.maildir`, `sync.imap`: ~20M of a ~190M
instruction `mailbag sync`) decide nothing then that was not decided the time before.

So when such a run ends, the engine records what it decided on (`record`): the
account's settings, the index as it was (`index_stamp`), each folder's directory
times, the server's capabilities and the listing it answered. The next `mailbag sync`
compares (`sync_if_unchanged`), under the account's sync lock, on the connection
logged in early (`sync.early`): when all of it is the same, the engine would take the
same inputs to the same decision, and the run ends with the same report. Anything
different (a flag renamed by a mail reader, a file added or removed, any write to the
index by any program, new mail, a changed setting) leaves the sync to the engine,
which then takes that connection and the listing read on it (`early.hand_back`): no
round trip is added.

Times are trusted only when older than a file-system timestamp tick can hide, the
index's (`index_stamp`) as the directories' (`sync.imap._dir_stamp`).
Never raises for a missing or unreadable record: the engine runs.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import time
from collections.abc import Sequence

from mailbag import __version__
from mailbag.errors import MailbagError
from mailbag.sync import early
from mailbag.sync.lock import sync_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailbag.config.model import Account
    from mailbag.paths import Paths
    from mailbag.protocols.imap.client import ImapClient
    from mailbag.protocols.imap.parser import MailboxInfo, MailboxStatus
    from mailbag.sync.events import AccountReport, ProgressCallback

    #: (layout, version, settings, index, capabilities, listing, folders)
    _Saved = tuple[
        int, str, str, tuple[int, ...], tuple[str, ...], Any, tuple[tuple[str, str, str], ...]
    ]

__all__ = [
    "LOOPBACK",
    "STATUS_ITEMS",
    "dir_times",
    "forget",
    "index_stamp",
    "record",
    "sync_if_unchanged",
]

#: what the sync asks STATUS for (HIGHESTMODSEQ too, where CONDSTORE is offered)
STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
#: hosts the sync does not ask to compress for
LOOPBACK = ("localhost", "127.0.0.1", "::1")

#: the record's layout; a different one (or another mailbag version) is not read
_FORMAT = 1
#: an index file changed less than this long ago is not trusted to show the next write
#: in its time, as the engine's directory times (`sync.imap._STAMP_SAFE_NS`); on a file
#: system that keeps whole milliseconds or seconds, less than this
_SAFE_NS = 30_000_000
_COARSE_SAFE_NS = 2_000_000_000


def _file(paths: Paths, account: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in account)
    return os.path.join(paths.state_dir, f"sync-{safe}.quick")


def _settings(account: Account, folders: Sequence[str]) -> str:
    """Everything configured that a sync's decisions depend on."""
    return f"{account!r} folders={tuple(folders)!r}"


def index_stamp(paths: Paths) -> tuple[int, ...] | None:
    """What shows a write to the index by any program: its write-ahead log's inode,
    size and modification time (every commit is written there first; the WAL stays
    between runs, `Store.close`) and the index file's inode and size. Not the index
    file's time: a sync checkpoints the WAL into it (`Store.checkpoint_ahead`, every
    run, the same pages again: a WAL read back at the first open counts as not
    checkpointed), which rewrites it without changing what it holds. Without a WAL
    (an index closed by SQLite's own last checkpoint), the index file's time as well.
    None when there is a rollback journal, or when that time is too recent to show
    the next write within the same file-system tick (`sync.imap._stamp_margin`'s
    margins)."""
    db = str(paths.index_file)
    try:
        st = os.stat(db)
        if os.path.exists(db + "-journal"):
            return None
        try:
            wal = os.stat(db + "-wal")
        except FileNotFoundError:
            wal = None
    except OSError:
        return None
    last = st if wal is None else wal
    when = last.st_mtime_ns
    coarse = when % 1_000_000 == 0  # (a whole millisecond: a coarse clock)
    if time.time_ns() - when < (_COARSE_SAFE_NS if coarse else _SAFE_NS):
        return None
    return (st.st_ino, st.st_size, last.st_ino, last.st_size, when)


def dir_times(path: str | os.PathLike[str]) -> str | None:
    """A folder's directory times as the engine records them (`sync.imap._dir_stamp`)."""
    try:
        cur = os.stat(os.path.join(path, "cur")).st_mtime_ns
        new = os.stat(os.path.join(path, "new")).st_mtime_ns
    except FileNotFoundError:
        return None
    return f"dirs={cur}:{new}"


def _listing_of(listing: Sequence[tuple[MailboxInfo, MailboxStatus | None]]) -> Any:
    return tuple((tuple(i), None if st is None else tuple(st)) for i, st in listing)


def record(
    paths: Paths,
    account: Account,
    folders: Sequence[str],
    index: tuple[int, ...],
    client: ImapClient,
    listing: Sequence[tuple[MailboxInfo, MailboxStatus | None]],
    stamps: Sequence[tuple[str, str, str]],
) -> None:
    """Record a run that found nothing to do (see the module): `index` as taken before
    the run opened the index (kept only if the run left it so), `stamps` (name, path,
    directory times) of each folder synced, in order."""
    if index_stamp(paths) != index:
        forget(paths, account.name)
        return
    saved: _Saved = (
        _FORMAT,
        __version__,
        _settings(account, folders),
        index,
        tuple(sorted(client.capabilities)),
        _listing_of(listing),
        tuple(stamps),
    )
    path = _file(paths, account.name)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(paths.state_dir, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            marshal.dump(saved, fh)
        os.replace(tmp, path)  # (no fsync: a record lost or old is one the index disowns)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def forget(paths: Paths, account: str) -> None:
    """Drop the account's record (a run that did something)."""
    with contextlib.suppress(OSError):
        os.unlink(_file(paths, account))


def _load(paths: Paths, account: Account, folders: Sequence[str]) -> _Saved | None:
    try:
        with open(_file(paths, account.name), "rb") as fh:
            # (private, in the state directory, as `config.file`'s cache: see there)
            saved = marshal.load(fh)  # noqa: S302
    except (OSError, EOFError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    if not (isinstance(saved, tuple) and len(saved) == 7):
        return None
    if saved[:3] != (_FORMAT, __version__, _settings(account, folders)):
        return None
    return saved


def _local_unchanged(paths: Paths, saved: _Saved) -> bool:
    index = index_stamp(paths)
    return (
        index is not None
        and index == saved[3]
        and all(dir_times(path) == times for _, path, times in saved[6])
    )


def sync_if_unchanged(
    account: Account,
    paths: Paths,
    folders: Sequence[str],
    lock_wait: float,
    on_progress: ProgressCallback,
) -> AccountReport | None:
    """The report of a sync with nothing to do, when the last run recorded one (`record`)
    and nothing has changed since, here or on the server; None when the engine must run
    (with the connection `login_early` made and the listing read on it, when read).
    Only for an account being logged in early; raises what `sync_lock` raises."""
    saved = _load(paths, account, folders)
    if saved is None:
        return None
    with sync_lock(paths, account.name, lock_wait):
        if not _local_unchanged(paths, saved):
            return None
        client = early.claim_ready(account)
        if client is None:
            return None
        if tuple(sorted(client.capabilities)) != saved[4]:
            client.close()  # (a changed server: the engine connects again)
            return None
        try:
            listing = _first_listing(client, account)
        except (MailbagError, OSError):
            client.close()  # (the engine connects again, and reports what fails)
            return None
        if _listing_of(listing) != saved[5]:
            early.hand_back(account, client, listing)
            return None
        with contextlib.suppress(MailbagError, OSError):
            client.logout()
    from mailbag.sync.events import AccountReport, FolderReport, Progress

    names = [name for name, _, _ in saved[6]]
    for name in names:
        on_progress(Progress(account.name, name, "folder-done"))
    return AccountReport(account.name, [FolderReport(name, skipped=True) for name in names])


def _first_listing(
    client: ImapClient, account: Account
) -> list[tuple[MailboxInfo, MailboxStatus | None]]:
    """What the engine sends first on a logged-in connection (`sync.imap._Connections.open`
    and `_sync_locked` on a server with LIST-STATUS), the same way: COMPRESS where it
    would, ENABLE, the listing with STATUS."""
    if account.incoming.host not in LOOPBACK:
        client.compress()
    enabling = None
    for ext in ("QRESYNC", "CONDSTORE"):
        if ext in client.capabilities:
            enabling = client.submit(b"ENABLE", ext.encode())
            break
    listing = client.list_status(STATUS_ITEMS)
    if enabling is not None:
        client.finish(enabling)
    return listing
